"""Paper, live or replay: the one answer to "is real money at stake?", derived from the broker and its settings.

Every surface that shows the mode (status.json, `tbot status`, `tbot check`, the dashboard badge, trade history,
daily summaries, the OFX memo, alerts) asks this module, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"
    REPLAY = "replay"


# broker settings that say paper or live: not secret, and shown unmasked by `tbot secrets list`
MODE_SWITCHES = ("ALPACA_PAPER", "TRADIER_SANDBOX", "IBKR_PORT")
# IB's documented defaults: TWS paper 7497, IB Gateway paper 4002 (live: 7496 / 4001)
IBKR_PAPER_PORTS = (7497, 4002)


def _flag(value: Any, default: bool) -> bool:
    return default if value is None else str(value).strip().lower() in ("1", "true", "yes", "on")


def mode_from_credentials(broker_name: str, creds: Mapping[str, Any], *, replay: bool) -> TradingMode:
    """The mode of one broker's credentials; an unreadable switch counts as live (never claim paper unproven)."""
    if broker_name == "SIM":
        return TradingMode.REPLAY if replay else TradingMode.PAPER
    if broker_name == "ALPACA":
        # ALPACA_PAPER (default true): the adapter trades the paper endpoint
        return TradingMode.PAPER if _flag(creds.get("ALPACA_PAPER"), True) else TradingMode.LIVE
    if broker_name == "TRADIER":
        # TRADIER_SANDBOX (default true): the adapter trades the sandbox
        return TradingMode.PAPER if _flag(creds.get("TRADIER_SANDBOX"), True) else TradingMode.LIVE
    if broker_name == "IBKR":
        # IBKR_PORT: the paper account is reached on IB's paper ports
        try:
            return (
                TradingMode.PAPER
                if int(creds.get("IBKR_PORT") or 0) in IBKR_PAPER_PORTS
                else TradingMode.LIVE
            )
        except (TypeError, ValueError):
            return TradingMode.LIVE
    return TradingMode.LIVE


def trading_mode(home: BotHome, broker_name: str, *, replay: bool | None = None) -> TradingMode:
    """The home's mode. `replay` is the run's (None outside a run: a SIM home only replays recorded days)."""
    if broker_name == "SIM":
        return mode_from_credentials("SIM", {}, replay=True if replay is None else replay)
    from tbot_bot.support.decrypt_secrets import load_secret_json

    try:
        creds = load_secret_json(home, "broker_credentials")
    except (ConfigError, OSError):
        return (
            TradingMode.LIVE
        )  # credentials unreadable: a paper label must be proven, live is the safe claim
    return mode_from_credentials(broker_name, creds, replay=bool(replay))
