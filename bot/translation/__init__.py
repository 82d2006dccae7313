"""Offline machine translation: the translator contract, masking, and its model families."""
