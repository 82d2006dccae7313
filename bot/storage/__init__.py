"""Persistence: the store contract and its SQLite implementation."""
