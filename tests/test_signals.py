"""Indicators and kernels of tbot_bot.strategy.signals, and the ADX / Bollinger indicators it calls from
enhancements.adx_filter and enhancements.bollinger_confluence, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tbot_bot.enhancements import adx_filter, bollinger_confluence
from tbot_bot.strategy import signals as sig


def test_session_vwap_is_cumulative_typical_price_weighted_by_volume() -> None:
    h = np.array([11.0, 12.0, 13.0])
    lo = np.array([9.0, 10.0, 11.0])
    c = np.array([10.0, 11.0, 12.0])
    v = np.array([100.0, 300.0, 0.0])
    vwap = sig.session_vwap(h, lo, c, v)
    assert vwap[0] == pytest.approx(10.0)
    assert vwap[1] == pytest.approx((10 * 100 + 11 * 300) / 400)
    assert vwap[2] == pytest.approx(vwap[1])  # no volume: unchanged


def test_session_vwap_before_any_volume_is_the_typical_price() -> None:
    vwap = sig.session_vwap(np.array([3.0]), np.array([1.0]), np.array([2.0]), np.array([0.0]))
    assert vwap[0] == pytest.approx(2.0)


def test_bollinger_matches_pandas_population_std_and_is_nan_until_full() -> None:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 0.1, 60))
    mid, upper, lower = bollinger_confluence.bollinger_bands(close, 20, 2.0)
    s = pd.Series(close)
    exp_mid = s.rolling(20).mean().to_numpy()
    exp_std = s.rolling(20).std(ddof=0).to_numpy()
    assert np.isnan(mid[:19]).all()
    np.testing.assert_allclose(mid[19:], exp_mid[19:], rtol=1e-12)
    np.testing.assert_allclose(upper[19:], exp_mid[19:] + 2 * exp_std[19:], rtol=1e-10)
    np.testing.assert_allclose(lower[19:], exp_mid[19:] - 2 * exp_std[19:], rtol=1e-10)


def _reference_adx(h: list[float], lo: list[float], c: list[float], n: int) -> list[float]:
    """Textbook Wilder ADX written as a plain loop."""
    tr, pdm, mdm = [0.0], [0.0], [0.0]
    for i in range(1, len(c)):
        up, dn = h[i] - h[i - 1], lo[i - 1] - lo[i]
        pdm.append(up if up > dn and up > 0 else 0.0)
        mdm.append(dn if dn > up and dn > 0 else 0.0)
        tr.append(max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])))
    out = [math.nan] * len(c)
    s_tr, s_p, s_m = sum(tr[1 : n + 1]), sum(pdm[1 : n + 1]), sum(mdm[1 : n + 1])
    dxs = []
    for i in range(n, len(c)):
        if i > n:
            s_tr = s_tr - s_tr / n + tr[i]
            s_p = s_p - s_p / n + pdm[i]
            s_m = s_m - s_m / n + mdm[i]
        pdi, mdi = 100 * s_p / s_tr, 100 * s_m / s_tr
        dxs.append(100 * abs(pdi - mdi) / (pdi + mdi) if pdi + mdi else 0.0)
    adx = sum(dxs[:n]) / n
    out[2 * n - 1] = adx
    for j, i in enumerate(range(2 * n, len(c))):
        adx = (adx * (n - 1) + dxs[n + j]) / n
        out[i] = adx
    return out


def test_wilder_adx_matches_the_textbook_loop() -> None:
    rng = np.random.default_rng(11)
    c = 100 + np.cumsum(rng.normal(0, 0.2, 80))
    h = c + rng.uniform(0.01, 0.3, 80)
    lo = c - rng.uniform(0.01, 0.3, 80)
    adx = adx_filter.wilder_adx(h, lo, c, 14)
    ref = _reference_adx(h.tolist(), lo.tolist(), c.tolist(), 14)
    assert np.isnan(adx[:27]).all() and not np.isnan(adx[27])
    np.testing.assert_allclose(adx[27:], ref[27:], rtol=1e-9)


def test_wilder_adx_is_high_in_a_steady_trend() -> None:
    ramp = np.linspace(100, 130, 60)
    adx = adx_filter.wilder_adx(ramp + 0.5, ramp - 0.5, ramp, 14)
    assert adx[-1] > 90


@pytest.mark.parametrize("k", [1, 25, 40, 79])
def test_indicators_are_causal_prefix_equals_full_day(k: int) -> None:
    """The live path evaluates a prefix; the backtest the whole day: values must be bit-identical."""
    rng = np.random.default_rng(3)
    c = 50 + np.cumsum(rng.normal(0, 0.1, 80))
    h, lo, v = c + 0.05, c - 0.05, rng.uniform(100, 1000, 80)
    assert np.array_equal(sig.session_vwap(h, lo, c, v)[:k], sig.session_vwap(h[:k], lo[:k], c[:k], v[:k]))
    full, part = adx_filter.wilder_adx(h, lo, c, 14)[:k], adx_filter.wilder_adx(h[:k], lo[:k], c[:k], 14)
    assert np.array_equal(full, part, equal_nan=True)
    for a, b in zip(
        bollinger_confluence.bollinger_bands(c, 20, 2.0),
        bollinger_confluence.bollinger_bands(c[:k], 20, 2.0),
        strict=True,
    ):
        assert np.array_equal(a[:k], b, equal_nan=True)


def test_indicators_work_row_wise_on_2d_grids() -> None:
    rng = np.random.default_rng(5)
    c = 100 + np.cumsum(rng.normal(0, 0.1, (3, 50)), axis=1)
    adx2 = adx_filter.wilder_adx(c + 0.1, c - 0.1, c, 14)
    for r in range(3):
        assert np.array_equal(
            adx2[r], adx_filter.wilder_adx(c[r] + 0.1, c[r] - 0.1, c[r], 14), equal_nan=True
        )


def test_resolve_exits_trigger_fills_next_bar_and_beats_a_same_bar_deadline() -> None:
    t = np.arange(10, dtype=np.int64)[None, :]
    nbars = np.array([10])
    # trigger on bar 4's close -> fill at bar 5; deadline at minute 5 -> same bar: the trigger wins
    col, why = sig.resolve_exits(
        t, nbars, np.array([2]), np.array([4]), np.array([int(sig.Exit.STOP_LOSS)]),
        np.array([5]), np.array([int(sig.Exit.TIMEOUT)]),
    )  # fmt: skip
    assert (col[0], why[0]) == (5, sig.Exit.STOP_LOSS)
    col, why = sig.resolve_exits(
        t, nbars, np.array([2]), np.array([6]), np.array([int(sig.Exit.STOP_LOSS)]),
        np.array([5]), np.array([int(sig.Exit.TIMEOUT)]),
    )  # fmt: skip
    assert (col[0], why[0]) == (5, sig.Exit.TIMEOUT)


def test_deadline_is_entry_plus_m_or_the_last_bar() -> None:
    dl, why = sig.deadline_minute(np.array([100, 100]), 30, np.array([200, 120]))
    assert dl.tolist() == [130, 120]
    assert why.tolist() == [int(sig.Exit.TIMEOUT), int(sig.Exit.SESSION_CLOSE)]
