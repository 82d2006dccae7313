"""Rendering messages in a person's language: catalogs, the localizer, translators' tools."""
