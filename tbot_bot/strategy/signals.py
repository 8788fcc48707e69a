"""Pure numpy signal functions for OPEN, MID and CLOSE (DESIGN §7), plus session VWAP. MID's ADX and Bollinger
indicators and rules are owned by `enhancements.adx_filter` and `enhancements.bollinger_confluence`.

Arrays are 2-D: one row per (session, symbol), one column per bar in time order, starting at the session
open; a row shorter than the grid is padded at the END (close = NaN, time = TIME_PAD). Times are int64
minutes since the Unix epoch (bar START, UTC). Every function is causal: the value at column k depends only
on columns <= k, so the live path (a one-row grid of the bars closed so far) and the backtest path (the
whole day) get bit-identical answers. Indicators also accept 1-D arrays (they work along the last axis).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from tbot_bot.enhancements import adx_filter, bollinger_confluence

TIME_PAD = np.int64(2**62)  # time of a padding cell: later than any real bar
NO_BAR = -1


class Kind(IntEnum):
    NONE = 0
    BREAKOUT = 1
    VWAP_REVERSION = 2
    CONTINUATION = 3
    FADE = 4


class Exit(IntEnum):
    NONE = 0
    TRAILING_STOP = 1
    STOP_LOSS = 2
    VWAP_TOUCH = 3
    TIMEOUT = 4
    SESSION_CLOSE = 5


# ---------------------------------------------------------------- indicators


def session_vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """VWAP of the typical price (h+l+c)/3, cumulative from the first column (the session open).
    Before any volume has traded the typical price itself is returned."""
    tp = (np.asarray(high, float) + np.asarray(low, float) + np.asarray(close, float)) / 3.0
    vol = np.asarray(volume, float)
    cum_pv = np.cumsum(tp * vol, axis=-1)
    cum_v = np.cumsum(vol, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = cum_pv / cum_v
    return np.where(cum_v > 0, vwap, tp)


# ---------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class Entries:
    """Per row: column of the signal bar (NO_BAR = none), direction (+1/-1/0), strength, Kind."""

    index: np.ndarray
    direction: np.ndarray
    strength: np.ndarray
    kind: np.ndarray


def _col(x: np.ndarray | int) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).reshape(-1, 1)


def entry_mask(
    t: np.ndarray, breakout_start: np.ndarray, breakout_end: np.ndarray, last_bar: np.ndarray
) -> np.ndarray:
    """Bars on whose close an entry may be decided: inside [breakout_start, breakout_end), and the fill (the
    next minute at the earliest) strictly before the session's last bar, which is reserved for closing."""
    return (t >= _col(breakout_start)) & (t < _col(breakout_end)) & (t + 1 < _col(last_bar))


def _first(
    bull: np.ndarray, bear: np.ndarray, bull_strength: np.ndarray, bear_strength: np.ndarray, kind: np.ndarray
) -> Entries:
    sig = bull | bear
    has = sig.any(axis=-1)
    idx = np.where(has, sig.argmax(axis=-1), NO_BAR)
    rows = np.arange(sig.shape[0])
    safe = np.maximum(idx, 0)
    is_bull = bull[rows, safe] & has
    direction = np.where(has, np.where(is_bull, 1, -1), 0).astype(np.int8)
    strength = np.where(is_bull, bull_strength[rows, safe], bear_strength[rows, safe])
    return Entries(
        idx, direction, np.where(has, strength, 0.0), np.where(has, kind[rows, safe], 0).astype(np.int8)
    )


def _analysis_range(
    t: np.ndarray, high: np.ndarray, low: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    in_an = (t >= _col(start)) & (t < _col(end))
    hi = np.where(in_an, high, -np.inf).max(axis=-1)
    lo = np.where(in_an, low, np.inf).min(axis=-1)
    return hi, lo, in_an


def open_entries(
    t: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    analysis_start: np.ndarray,
    breakout_start: np.ndarray,
    breakout_end: np.ndarray,
    last_bar: np.ndarray,
    buffer: float,
) -> Entries:
    """OPEN: first breakout-window close beyond the analysis range high*(1+buffer) / low*(1-buffer)."""
    hi, lo, in_an = _analysis_range(t, high, low, analysis_start, breakout_start)
    ok = entry_mask(t, breakout_start, breakout_end, last_bar) & in_an.any(axis=-1, keepdims=True)
    up = (hi * (1 + buffer))[:, None]
    down = (lo * (1 - buffer))[:, None]
    with np.errstate(invalid="ignore"):
        bull = ok & (close > up)
        bear = ok & (close < down)
        return _first(bull, bear, close / up - 1, 1 - close / down, np.full(t.shape, Kind.BREAKOUT))


def mid_entries(
    t: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    breakout_start: np.ndarray,
    breakout_end: np.ndarray,
    last_bar: np.ndarray,
    vwap_threshold: float,
    adx_period: int,
    adx_threshold: float,
    bb_period: int,
    bb_std: float,
) -> Entries:
    """MID: first breakout-window close beyond VWAP*(1 -+ threshold), with ADX below its threshold and the
    close outside the Bollinger band on the same side. Rows must start at the session open (VWAP)."""
    vwap = session_vwap(high, low, close, volume)
    adx = adx_filter.wilder_adx(high, low, close, adx_period)
    _, upper, lower = bollinger_confluence.bollinger_bands(close, bb_period, bb_std)
    return mid_entries_from(
        t,
        close,
        vwap,
        adx,
        upper,
        lower,
        breakout_start,
        breakout_end,
        last_bar,
        vwap_threshold,
        adx_threshold,
    )


def mid_entries_from(
    t: np.ndarray,
    close: np.ndarray,
    vwap: np.ndarray,
    adx: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    breakout_start: np.ndarray,
    breakout_end: np.ndarray,
    last_bar: np.ndarray,
    vwap_threshold: float,
    adx_threshold: float,
) -> Entries:
    """`mid_entries` on indicators already computed from the session open (the columns may be any slice of
    the session, so the optimizer computes the indicators once and slices them per trial)."""
    ok = entry_mask(t, breakout_start, breakout_end, last_bar) & adx_filter.calm(adx, adx_threshold)
    below_band, above_band = bollinger_confluence.beyond_bands(close, upper, lower)
    with np.errstate(invalid="ignore"):
        lo_trig = vwap * (1 - vwap_threshold)
        hi_trig = vwap * (1 + vwap_threshold)
        bull = ok & (close < lo_trig) & below_band
        bear = ok & (close > hi_trig) & above_band
        return _first(
            bull, bear, 1 - close / lo_trig, close / hi_trig - 1, np.full(t.shape, Kind.VWAP_REVERSION)
        )


def close_entries(
    t: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    analysis_start: np.ndarray,
    breakout_start: np.ndarray,
    breakout_end: np.ndarray,
    last_bar: np.ndarray,
    buffer: float,
    momentum_pct: float,
    spike_pct: float,
    session_first_open: np.ndarray | None = None,
) -> Entries:
    """CLOSE: continuation = range breakout (as OPEN) in the direction of the day's move when |day return|
    >= momentum_pct; fade = analysis move >= spike_pct and a close back through the analysis midpoint,
    against the spike. Day return = last analysis close / session open - 1 (known when the breakout window
    begins); analysis move = last analysis close / first analysis open - 1. Rows start at the session open
    unless `session_first_open` (per row) is given."""
    hi, lo, in_an = _analysis_range(t, high, low, analysis_start, breakout_start)
    has_an: np.ndarray = np.asarray(in_an.any(axis=-1))
    cols = np.arange(t.shape[-1])
    first_an = np.where(has_an, np.where(in_an, cols, t.shape[-1]).min(axis=-1), 0)
    last_an = np.where(has_an, np.where(in_an, cols, -1).max(axis=-1), 0)
    rows = np.arange(t.shape[0])
    an_close = close[rows, last_an]
    first_open = open_[:, 0] if session_first_open is None else session_first_open
    day_ret = an_close / first_open - 1
    an_move = an_close / open_[rows, first_an] - 1
    # a row without analysis bars (a skipped window, e.g. after an early close) has hi=-inf, lo=+inf: its
    # NaN midpoint is masked out by `ok` below
    with np.errstate(invalid="ignore"):
        midpoint = ((hi + lo) / 2)[:, None]
    ok = entry_mask(t, breakout_start, breakout_end, last_bar) & has_an[:, None]
    up = (hi * (1 + buffer))[:, None]
    down = (lo * (1 - buffer))[:, None]
    with np.errstate(invalid="ignore"):
        cont_bull = ok & (day_ret >= momentum_pct)[:, None] & (close > up)
        cont_bear = ok & (day_ret <= -momentum_pct)[:, None] & (close < down)
        fade_bull = ok & (an_move <= -spike_pct)[:, None] & (close > midpoint)
        fade_bear = ok & (an_move >= spike_pct)[:, None] & (close < midpoint)
        bull_strength = np.where(cont_bull, close / up - 1, close / midpoint - 1)
        bear_strength = np.where(cont_bear, 1 - close / down, 1 - close / midpoint)
    kind = np.where(cont_bull | cont_bear, Kind.CONTINUATION, Kind.FADE)
    return _first(cont_bull | fade_bull, cont_bear | fade_bear, bull_strength, bear_strength, kind)


# ---------------------------------------------------------------- exits


def _since_entry(t: np.ndarray, entry_col: np.ndarray) -> np.ndarray:
    return np.arange(t.shape[-1])[None, :] >= _col(entry_col)


def trailing_stop_hits(
    close: np.ndarray, entry_col: np.ndarray, direction: np.ndarray, pct: float
) -> np.ndarray:
    """OPEN: close retreats pct from the best close since entry (the entry bar's close included)."""
    since = _since_entry(close, entry_col)
    d = _col(direction)
    with np.errstate(invalid="ignore"):
        best_up = np.maximum.accumulate(np.where(since, close, -np.inf), axis=-1)
        best_dn = np.minimum.accumulate(np.where(since, close, np.inf), axis=-1)
        hit = np.where(d > 0, close <= best_up * (1 - pct), close >= best_dn * (1 + pct))
    return since & hit


def stop_loss_hits(
    close: np.ndarray, entry_col: np.ndarray, entry_price: np.ndarray, direction: np.ndarray, pct: float
) -> np.ndarray:
    """MID/CLOSE: close beyond entry price -+ pct against the position."""
    since = _since_entry(close, entry_col)
    d = _col(direction)
    p = np.asarray(entry_price, float).reshape(-1, 1)
    with np.errstate(invalid="ignore"):
        return since & np.where(d > 0, close <= p * (1 - pct), close >= p * (1 + pct))


def vwap_touch_hits(
    close: np.ndarray, vwap: np.ndarray, entry_col: np.ndarray, direction: np.ndarray
) -> np.ndarray:
    """MID: the close is back at or through VWAP."""
    since = _since_entry(close, entry_col)
    d = _col(direction)
    with np.errstate(invalid="ignore"):
        return since & np.where(d > 0, close >= vwap, close <= vwap)


def first_hit(hits: np.ndarray) -> np.ndarray:
    """Column of the first True per row, NO_BAR when none."""
    return np.where(hits.any(axis=-1), hits.argmax(axis=-1), NO_BAR)


def combine_triggers(triggers: list[tuple[np.ndarray, Exit]]) -> tuple[np.ndarray, np.ndarray]:
    """Earliest trigger column per row and its reason; on the same bar the earlier list entry wins."""
    rows = triggers[0][0].shape[0]
    col = np.full(rows, NO_BAR, dtype=np.int64)
    reason = np.zeros(rows, dtype=np.int8)
    for hits, why in triggers:
        k = first_hit(hits)
        better = (k >= 0) & ((col < 0) | (k < col))
        col = np.where(better, k, col)
        reason = np.where(better, int(why), reason)
    return col, reason


def deadline_minute(
    entry_time: np.ndarray, monitoring: int, last_bar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Minute at which a position must go (entry + M, or the session's last bar if earlier) and the reason."""
    timeout_at = np.asarray(entry_time, np.int64) + monitoring
    last = np.asarray(last_bar, np.int64)
    return np.minimum(timeout_at, last), np.where(
        timeout_at <= last, int(Exit.TIMEOUT), int(Exit.SESSION_CLOSE)
    )


def resolve_exits(
    t: np.ndarray,
    nbars: np.ndarray,
    entry_col: np.ndarray,
    trigger_col: np.ndarray,
    trigger_reason: np.ndarray,
    deadline: np.ndarray,
    deadline_reason: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Exit fill column and reason per row with an entry. A trigger on bar k's close fills at bar k+1's open;
    the deadline fills at the first bar starting at or after it; whichever fills first wins (a trigger on
    the same fill bar wins: it was decided first). With no bar left, the last bar of the row is used."""
    cols = np.arange(t.shape[-1])[None, :]
    valid = cols < _col(nbars)
    at_dl = valid & (t >= _col(deadline)) & (cols >= _col(entry_col))
    dl_col = np.where(at_dl.any(axis=-1), at_dl.argmax(axis=-1), np.asarray(nbars) - 1)
    trig_fill = np.where(trigger_col >= 0, trigger_col + 1, np.iinfo(np.int64).max)
    use_trig = (trigger_col >= 0) & (trig_fill <= dl_col) & (trig_fill < nbars)
    exit_col = np.where(use_trig, trig_fill, dl_col)
    reason = np.where(use_trig, trigger_reason, deadline_reason).astype(np.int8)
    return np.where(entry_col >= 0, exit_col, NO_BAR), np.where(entry_col >= 0, reason, 0)
