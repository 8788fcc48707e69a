"""MID's session indicators (VWAP, Wilder ADX, Bollinger bands) kept up to date column by column for the live
evaluator, so a minute costs O(symbols) instead of recomputing the whole session for every symbol.

Same arithmetic as `signals.session_vwap`, `adx_filter.wilder_adx` and `bollinger_confluence.bollinger_bands`
(the per-bar steps `adx_filter.movement`, `adx_filter.dx_from_smoothed` and `bollinger_confluence.bands_from_sums`
are shared, not copied): the cumulative sums continue from the last column (numpy's cumsum is sequential, so the
continuation adds in the same order), and Wilder smoothing keeps the same closed-form blocks of
`adx_filter.WILDER_BLOCK` columns from the seed. Rows are the symbols of an aligned grid (every row has the same
minutes); a different row set or a changed history starts over.
"""

from __future__ import annotations

import numpy as np

from tbot_bot.enhancements import adx_filter, bollinger_confluence

_BLOCK = adx_filter.WILDER_BLOCK


class _Wilder:
    """`adx_filter._wilder` over a growing last axis."""

    def __init__(self, shape: tuple[int, ...], period: int, first: int, *, average: bool, cap: int) -> None:
        self.period, self.first, self.average = period, first, average
        self.seed = first + period - 1
        self.x = np.zeros((*shape, cap))
        self.out = np.full((*shape, cap), np.nan)
        self.running = np.zeros(shape)
        self.growth = (1.0 - 1.0 / period) ** -np.arange(1, _BLOCK + 1, dtype=float)

    def grow(self, cap: int) -> None:
        pad = cap - self.x.shape[-1]
        self.x = np.concatenate([self.x, np.zeros((*self.x.shape[:-1], pad))], axis=-1)
        self.out = np.concatenate([self.out, np.full((*self.out.shape[:-1], pad), np.nan)], axis=-1)

    def extend(self, xs: np.ndarray, j0: int) -> np.ndarray:
        """Append columns j0.. (values xs along the last axis); returns the smoothed new columns."""
        k = j0 + xs.shape[-1]
        self.x[..., j0:k] = xs
        j = j0
        while j < k:
            if j < self.seed:
                j = min(k, self.seed)
                continue
            if j == self.seed:
                acc = self.x[..., self.first : self.seed + 1].sum(axis=-1)
                self.out[..., j] = acc / self.period if self.average else acc
                j += 1
                continue
            k0 = self.seed + _BLOCK * ((j - self.seed - 1) // _BLOCK)  # this block covers (k0, k0 + 64]
            end = min(k, k0 + _BLOCK + 1)
            growth = self.growth[j - k0 - 1 : end - k0 - 1]
            x = self.x[..., j:end]
            step = x / self.period if self.average else x
            prev = self.running if j > k0 + 1 else np.zeros(self.running.shape)
            run = np.cumsum(np.concatenate([prev[..., None], step * growth], axis=-1), axis=-1)[..., 1:]
            self.out[..., j:end] = (self.out[..., k0 : k0 + 1] + run) / growth
            self.running = run[..., -1]
            j = end
        return self.out[..., j0:k]


class RunningIndicators:
    """VWAP, ADX(adx_period) and Bollinger(bb_period, bb_std) of the rows seen so far; `update` appends."""

    def __init__(self, adx_period: int, bb_period: int, bb_std: float) -> None:
        self.adx_period, self.bb_period, self.bb_std = adx_period, bb_period, bb_std
        # columns the window will reach (set by the live evaluator): reserved at once, never grown by doubling
        self.columns: int | None = None
        self.symbols: tuple[str, ...] = ()
        self.k = 0
        self._t0 = -1

    def _reset(self, symbols: tuple[str, ...], t0: int, cap: int) -> None:
        n = len(symbols)
        self.symbols, self.k, self._t0, self._cap = symbols, 0, t0, cap
        self.cum_pv = np.zeros(n)
        self.cum_v = np.zeros(n)
        self.c0 = np.zeros(n)
        self.cs = np.zeros((n, cap + 1))
        self.cs2 = np.zeros((n, cap + 1))
        self.vwap = np.full((n, cap), np.nan)
        self.adx = np.full((n, cap), np.nan)
        self.upper = np.full((n, cap), np.nan)
        self.lower = np.full((n, cap), np.nan)
        self._dm = _Wilder((3, n), self.adx_period, 1, average=False, cap=cap)
        self._dx = _Wilder((n,), self.adx_period, self.adx_period, average=True, cap=cap)
        self._last = np.zeros((3, n))  # high, low, close of the newest column

    def _grow(self, k: int) -> None:
        cap = max(k, 2 * self._cap)
        pad = cap - self._cap
        n = len(self.symbols)

        def more(a: np.ndarray, fill: float) -> np.ndarray:
            return np.concatenate([a, np.full((n, pad), fill)], axis=1)

        self.cs, self.cs2 = more(self.cs, 0.0), more(self.cs2, 0.0)
        self.vwap, self.adx = more(self.vwap, np.nan), more(self.adx, np.nan)
        self.upper, self.lower = more(self.upper, np.nan), more(self.lower, np.nan)
        self._dm.grow(cap)
        self._dx.grow(cap)
        self._cap = cap

    def update(
        self, symbols: tuple[str, ...], t: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
        volume: np.ndarray,
    ) -> int:  # fmt: skip
        """Bring the indicators up to the grid's k columns (rows `symbols`, minutes `t`); returns the first
        column computed now (0 after a start-over, k when nothing was new)."""
        k = close.shape[1]
        if symbols != self.symbols or k < self.k or int(t[0]) != self._t0:
            self._reset(symbols, int(t[0]), max(k, self.columns) if self.columns else max(k, 64) + 64)
        j0 = self.k
        if k == j0:
            return j0
        if k > self._cap:
            self._grow(k)
        h, lo, c, v = (np.asarray(a[:, j0:k], float) for a in (high, low, close, volume))
        # VWAP: cumulative typical price x volume from the session open
        tp = (h + lo + c) / 3.0
        cum_pv = np.cumsum(np.concatenate([self.cum_pv[:, None], tp * v], axis=1), axis=1)[:, 1:]
        cum_v = np.cumsum(np.concatenate([self.cum_v[:, None], v], axis=1), axis=1)[:, 1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.vwap[:, j0:k] = np.where(cum_v > 0, cum_pv / cum_v, tp)
        self.cum_pv, self.cum_v = cum_pv[:, -1], cum_v[:, -1]
        # Bollinger: running sums of the close centred on the session's first close
        if j0 == 0:
            self.c0 = c[:, 0].copy()
        x = c - self.c0[:, None]
        self.cs[:, j0 + 1 : k + 1] = np.cumsum(np.concatenate([self.cs[:, j0 : j0 + 1], x], axis=1), axis=1)[
            :, 1:
        ]
        self.cs2[:, j0 + 1 : k + 1] = np.cumsum(
            np.concatenate([self.cs2[:, j0 : j0 + 1], x * x], axis=1), axis=1
        )[:, 1:]
        p = self.bb_period
        lo_col = max(j0, p - 1)
        if lo_col < k:
            s = self.cs[:, lo_col + 1 : k + 1] - self.cs[:, lo_col + 1 - p : k + 1 - p]
            s2 = self.cs2[:, lo_col + 1 : k + 1] - self.cs2[:, lo_col + 1 - p : k + 1 - p]
            _, self.upper[:, lo_col:k], self.lower[:, lo_col:k] = bollinger_confluence.bands_from_sums(
                s, s2, self.c0[:, None], p, self.bb_std
            )
        # ADX: directional movement and true range need the previous column
        prev = self._last if j0 > 0 else np.stack([h[:, :1], lo[:, :1], c[:, :1]])[..., 0]
        ph = np.concatenate([prev[0][:, None], h[:, :-1]], axis=1)
        pl = np.concatenate([prev[1][:, None], lo[:, :-1]], axis=1)
        pc = np.concatenate([prev[2][:, None], c[:, :-1]], axis=1)
        tr, plus_dm, minus_dm = adx_filter.movement(h, lo, ph, pl, pc)
        if j0 == 0:  # the session's first bar has no movement and no true range
            tr[:, 0] = plus_dm[:, 0] = minus_dm[:, 0] = 0.0
        s_tr, s_p, s_m = self._dm.extend(np.stack([tr, plus_dm, minus_dm]), j0)
        dx = adx_filter.dx_from_smoothed(s_tr, s_p, s_m)
        self.adx[:, j0:k] = np.clip(self._dx.extend(dx, j0), 0.0, 100.0)
        self._last = np.stack([h[:, -1], lo[:, -1], c[:, -1]])
        self.k = k
        return j0

    def source(self, j0: int, k: int) -> ColumnSource:
        return ColumnSource(self, j0, k)


class ColumnSource:
    """The `IndicatorSource` view of columns [j0, k) (what `MidStrategy.entries` reads)."""

    def __init__(self, ind: RunningIndicators, j0: int, k: int) -> None:
        self._ind, self._j0, self._k = ind, j0, k

    def vwap(self) -> np.ndarray:
        return self._ind.vwap[:, self._j0 : self._k]

    def adx(self, period: int) -> np.ndarray:
        return self._ind.adx[:, self._j0 : self._k]

    def bollinger(self, period: int, num_std: float) -> tuple[np.ndarray, np.ndarray]:
        return self._ind.upper[:, self._j0 : self._k], self._ind.lower[:, self._j0 : self._k]

    def first_open(self) -> np.ndarray:
        raise NotImplementedError("MID does not read the session's first open")
