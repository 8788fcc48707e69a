"""Bundled market data (see sample/README.md)."""
