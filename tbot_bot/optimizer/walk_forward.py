"""Walk-forward folds: the sessions of the range are cut into K+1 consecutive blocks of (almost) equal size;
fold k (1..K) optimises on every block before block k (anchored, growing in-sample) and scores the chosen
parameters on block k, which the optimisation never saw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from tbot_bot.errors import ConfigError

MIN_SESSIONS_PER_BLOCK = 2  # a Sharpe ratio needs two daily returns


@dataclass(frozen=True, slots=True)
class Fold:
    index: int  # 1..K
    in_sample: tuple[date, ...]
    out_of_sample: tuple[date, ...]

    def describe(self) -> dict[str, object]:
        return {
            "fold": self.index,
            "is_start": self.in_sample[0].isoformat(),
            "is_end": self.in_sample[-1].isoformat(),
            "is_sessions": len(self.in_sample),
            "oos_start": self.out_of_sample[0].isoformat(),
            "oos_end": self.out_of_sample[-1].isoformat(),
            "oos_sessions": len(self.out_of_sample),
        }


def make_folds(days: tuple[date, ...], k: int) -> list[Fold]:
    if k < 1:
        raise ConfigError(f"--walk-forward must be at least 1 (found {k})")
    need = MIN_SESSIONS_PER_BLOCK * (k + 1)
    if len(days) < need:
        raise ConfigError(
            f"--walk-forward {k} needs at least {need} sessions with bars ({k + 1} blocks of "
            f"{MIN_SESSIONS_PER_BLOCK}); the range has {len(days)}: widen --start/--end or lower --walk-forward"
        )
    blocks = [tuple(b) for b in np.array_split(np.array(days, dtype=object), k + 1)]
    return [
        Fold(i, tuple(d for b in blocks[:i] for d in b), tuple(blocks[i]))  # type: ignore[misc]
        for i in range(1, k + 1)
    ]
