"""Real mail servers that the tests start and stop themselves (private, on 127.0.0.1 only)."""
