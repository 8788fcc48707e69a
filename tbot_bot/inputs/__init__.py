"""Live inputs the strategies need and a provisioned home fetches itself: VIX history, the trading universe,
and the warm-up of previous-session data at boot."""
