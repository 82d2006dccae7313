"""The pure conversation engine: (session, inbound) -> (new session, events). No I/O."""
