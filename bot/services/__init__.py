"""The directory of services: model, loader and (pure) matching."""
