"""Sample bars, VIX closes and fundamentals for the demo and tests; built by build_sample.py."""
