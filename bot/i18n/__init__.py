"""Languages, normalisation of what users type, and rendering of messages in their language."""
