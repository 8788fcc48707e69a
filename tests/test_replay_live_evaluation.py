"""Parity of the live evaluator with the vectorised simulate() on every day of the bundled sample."""

from __future__ import annotations

from helpers import make_settings
from replay_parity import SAMPLE
from strategy_bars import comparable, replay_live

from tbot_bot.backtest.load_historical_data import load_bars, load_vix
from tbot_bot.enhancements.vix_gatekeeper import previous_close_vix
from tbot_bot.strategy.strategy_router import strategy_module


def test_every_sample_day_live_evaluation_equals_simulate() -> None:
    """Parity on every day of the bundled sample (43 sessions, both sides of the DST change), all strategies:
    the bar-by-bar evaluator and the vectorised simulate() give the same trades."""
    from tbot_bot.data.sample import sample_days

    symbols = ["SPY"] + [f"SYN{i}" for i in range(1, 9)]
    bars = load_bars(SAMPLE, symbols=symbols)
    vix_closes = load_vix(SAMPLE / "vix.csv")
    days = sample_days()
    assert len(days) == 43
    by_day = {d: g.reset_index(drop=True) for d, g in bars.groupby(bars["timestamp"].dt.date)}
    settings = make_settings()
    traded = 0
    for name in ("open", "mid", "close"):
        strategy = strategy_module(name)
        vix = {d: v for d in days if (v := previous_close_vix(vix_closes, d)) is not None}
        simulated = strategy.simulate(bars, strategy.params_from_settings(settings), vix=vix)
        for d in days:
            live = replay_live(strategy, settings, by_day[d], d, vix_at_start=vix.get(d))
            expected = simulated[simulated["session"] == d]
            assert comparable(live) == comparable(expected), (name, d)
            traded += len(live)
    assert traded > 200
