"""Daily loss kill switch: trips (and stays tripped for the day) when today's net realised loss exceeds
broker_current_float x DAILY_LOSS_LIMIT (spec: emergency event matrix, "PnL Loss > DAILY_LOSS_LIMIT").
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tbot_bot.checks import REFUSED, CheckResult

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings


class KillSwitch:
    """Accumulates today's realised PnL. The caller replays today's closed trades after a restart."""

    def __init__(
        self, settings: BotSettings, broker_current_float: Decimal, *, realised_today: Decimal = Decimal(0)
    ) -> None:
        self.broker_current_float = Decimal(broker_current_float)
        self.daily_loss_limit = settings.DAILY_LOSS_LIMIT
        self._realised = Decimal(0)
        self._reason: str | None = None
        self.record_realised(Decimal(realised_today))

    @property
    def loss_limit(self) -> Decimal:
        """The money amount a realised loss must exceed to trip."""
        return self.broker_current_float * self.daily_loss_limit

    @property
    def realised_today(self) -> Decimal:
        return self._realised

    @property
    def tripped(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        return self._reason

    def record_realised(self, pnl: Decimal) -> bool:
        """Add one closed trade's realised PnL (negative = loss); returns True if the switch is tripped."""
        if isinstance(pnl, float):
            raise TypeError("realised PnL must be Decimal, not a binary float")
        self._realised += pnl
        loss = -self._realised
        # DAILY_LOSS_LIMIT: strictly greater than float x limit halts; equal does not
        if self._reason is None and loss > self.loss_limit:
            self._reason = (
                f"realised loss today {loss:.2f} > float {self.broker_current_float:.2f} x "
                f"DAILY_LOSS_LIMIT {self.daily_loss_limit} = {self.loss_limit:.2f}"
            )
        return self.tripped

    def self_check(self) -> CheckResult:
        context = {
            "float": str(self.broker_current_float),
            "daily_loss_limit": str(self.daily_loss_limit),
            "realised_today": str(self._realised),
        }
        if self.broker_current_float <= 0:
            return CheckResult(
                False, "broker_current_float must be positive for the kill switch", context, REFUSED
            )
        # DAILY_LOSS_LIMIT: a fraction of the float in (0, 1]; outside it the kill switch could not act
        if not 0 < self.daily_loss_limit <= 1:
            return CheckResult(
                False, f"DAILY_LOSS_LIMIT={self.daily_loss_limit} outside (0, 1]", context, REFUSED
            )
        if self.tripped:
            return CheckResult(False, f"kill switch already tripped: {self._reason}", context, REFUSED)
        return CheckResult(True, "ok", context)
