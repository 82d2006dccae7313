"""Text basics below the engine: languages, normalisation, script guessing, bidi isolation."""
