"""Chat platforms. Each turns platform updates into Inbound and Outbound into platform calls."""
