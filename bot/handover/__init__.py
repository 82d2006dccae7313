"""Handing a chat to a person: the volunteer queue, matching, and the relay between them."""
