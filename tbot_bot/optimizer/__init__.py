"""Strategy optimizer (DESIGN §11): Optuna studies over the vectorised backtest path with walk-forward
validation, proposals for a person to approve, and the tuning tracker over live logs."""
