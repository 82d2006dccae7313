"""Flow files: strict YAML reading, the typed model, validation and the loaded library."""
