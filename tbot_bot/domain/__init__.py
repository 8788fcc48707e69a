"""The ground floor: vocabulary every layer shares (clock, order intents, closed sets, crash seams).

Nothing here imports anything above it (a test enforces it): broker adapters, strategies, the runtime, the
backtest and the ledger all speak these types, so none of them has to import another to agree on a word.
"""
