"""listgate: an email-list-style discussion gateway (shared core)."""

__version__ = "0.1.0"
