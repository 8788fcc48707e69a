"""The day's audit artifacts: trade history (CSV + JSON), the session's daily summary (+ index), and the session's
OFX statement (LEDGER_EXPORT_MODE=auto). Trades come from the ledger (reporting/ledger_history), so every report
equals the books even after a restore or a lost journal. Nothing is written for a non-trading day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.generate_ofx import statement_days_since
from tbot_bot.accounting.ledger_read import account_fees, prior_period_adjustments
from tbot_bot.domain.intents import Intent, IntentStatus
from tbot_bot.reporting.daily_summary import build_daily_summary, summary_path, write_daily_summary
from tbot_bot.reporting.ledger_history import ledger_records, refresh_trade_history
from tbot_bot.reporting.trade_history import TradeRecord, trade_history_paths
from tbot_bot.runtime.positions import position_side, signal_direction
from tbot_bot.runtime.run_mode import RunKind
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.trading_mode import trading_mode

if TYPE_CHECKING:
    from tbot_bot.runtime.day_context import DayContext


def report_paths(home: BotHome, binding: LedgerBinding, day: date) -> dict[str, Any]:
    scope = binding.scope
    th = trade_history_paths(home.trades_dir(scope), scope)
    return {
        "ofx": home.session_ofx(scope, day),
        "trade_history_csv": th["csv"],
        "trade_history_json": th["json"],
        "summary": summary_path(home.summaries_dir(scope), day),
        "logs": home.logs_dir(scope),
    }


_Q = Decimal("0.0001")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def rejected_records(intents: list[Intent], broker: str, mode: str) -> list[TradeRecord]:
    """Entries the broker rejected (in the journal only: the ledger books fills), as error rows of the summary."""
    out = []
    for i in intents:
        if i.purpose == "entry" and i.status is IntentStatus.REJECTED:
            out.append(
                TradeRecord(
                    timestamp=_dt(i.sent_at) or _dt(i.created_at),  # type: ignore[arg-type]
                    strategy_name=i.strategy,
                    ticker=i.symbol,
                    signal_ticker=i.signal_ticker,
                    side=position_side(i),
                    size=i.qty.quantize(_Q),
                    entry_price=None,
                    exit_price=None,
                    PnL=None,
                    broker=broker,
                    error_code="rejected",
                    signal_time=_dt(i.signal_time),
                    mode=mode,
                    tag=i.tag,
                    direction=signal_direction(i),
                )  # fmt: skip
            )
    return sorted(out, key=lambda r: (r.timestamp, r.strategy_name, r.ticker))


def is_trading_session(day: date, calendar_name: str) -> bool:
    from tbot_bot.market_time import session_bounds

    return session_bounds(day, calendar_name) is not None


def refresh_earlier_reports(ctx: DayContext, days: list[date]) -> None:
    """After fills of earlier `days` were booked late: those days' summaries, and every session statement from the
    first of them on (their cash runs on from it), written again from the ledger (as a correction does)."""
    from tbot_bot.reporting.ledger_history import rebuild_summaries

    scope, s = ctx.binding.scope, ctx.settings
    mode = trading_mode(ctx.home, s.BROKER_NAME, replay=ctx.mode.kind is RunKind.REPLAY)
    # MARKET_CALENDAR decides what a session is: a holiday or weekend has no summary to rewrite
    sessions = [d for d in days if is_trading_session(d, s.MARKET_CALENDAR)]
    if sessions:
        rebuild_summaries(
            ctx.binding.ledger_path, ctx.home.summaries_dir(scope), scope, broker=s.BROKER_NAME, mode=mode,
            days=sessions,
        )  # fmt: skip
    # LEDGER_EXPORT_MODE=auto: statements follow the books; off: only `tbot ofx export` writes them
    if s.LEDGER_EXPORT_MODE == "auto":
        _export_statements(ctx, sorted(set(sessions) | statement_days_since(ctx.home, scope, days[0])), mode)


def _export_statements(ctx: DayContext, days: list[date], mode: str) -> None:
    """The session statements of `days`, from one verification of the ledger."""
    from tbot_bot.accounting.generate_ofx import export_statements, statement_ids
    from tbot_bot.accounting.ledger_anchor import AnchorStore

    if not days:
        return
    scope = ctx.binding.scope
    ctx.home.session_ofx(scope, days[0]).parent.mkdir(parents=True, exist_ok=True)
    broker_id, account_id = statement_ids(ctx.binding)
    export_statements(
        ctx.binding.ledger_path, {d: ctx.home.session_ofx(scope, d) for d in days},
        broker_id=broker_id, account_id=account_id, anchors=AnchorStore.for_home(ctx.home),
        backup_dir=ctx.binding.backup_dir, mode=mode,
    )  # fmt: skip


def write_reports(ctx: DayContext, *, exported: bool) -> dict[str, Any] | None:
    """Write the session's reports; None (nothing written) when the day is not an exchange session."""
    scope, s = ctx.binding.scope, ctx.settings
    # MARKET_CALENDAR decides what a session is: a holiday or weekend run leaves no summary and no OFX
    if not is_trading_session(ctx.session_date, s.MARKET_CALENDAR):
        ctx.log.event("supervisor", "reports_skipped", reason=f"{ctx.day_key} is not a trading session")
        return None
    paths = report_paths(ctx.home, ctx.binding, ctx.session_date)
    mode = trading_mode(ctx.home, s.BROKER_NAME, replay=ctx.mode.kind is RunKind.REPLAY)
    # the ledger is the record: history and the day's trades are its round trips; the journal adds only what
    # the ledger cannot hold (signal times, rejected orders)
    journal_today = ctx.journal.intents(ctx.day_key)
    signal_times = {i.client_order_id: t for i in journal_today if (t := _dt(i.signal_time)) is not None}
    refresh_trade_history(
        ctx.binding.ledger_path, ctx.home.trades_dir(scope), scope, broker=s.BROKER_NAME, mode=mode,
        signal_times=signal_times,
    )  # fmt: skip
    rejected = rejected_records(journal_today, s.BROKER_NAME, mode)
    today = (
        ledger_records(
            ctx.binding.ledger_path,
            broker=s.BROKER_NAME,
            mode=mode,
            day=ctx.session_date,
            signal_times=signal_times,
        )
        + rejected
    )
    denials = {k: sum(v.values()) for k, v in ctx.denials.items()}
    # fees the broker posted apart from fills (Alpaca's regulatory fees) are the day's cost too
    extra = account_fees(ctx.binding.ledger_path, ctx.day_key)
    summary = build_daily_summary(
        today, ctx.journal.signal_counts(ctx.day_key), denials, extra,
        prior_period_adjustments(ctx.binding.ledger_path, ctx.day_key),
    )  # fmt: skip
    summary["denials_by_filter"] = ctx.denials
    summary["mode"] = mode
    summary["kill_switch"] = ctx.kill_switch_state()
    write_daily_summary(
        ctx.home.summaries_dir(scope),
        scope,
        summary,
        generated_at=ctx.clock.now(),
        session_date=ctx.session_date,
    )
    # LEDGER_EXPORT_MODE=auto: the day's OFX statement follows each ingestion; off: only `tbot ofx export`
    if s.LEDGER_EXPORT_MODE == "auto" and (exported or not Path(paths["ofx"]).exists()):
        # the later sessions' statements too (a day replayed or booked late): their cash balances run on from it
        later = statement_days_since(ctx.home, scope, ctx.session_date + timedelta(days=1))
        _export_statements(ctx, sorted({ctx.session_date} | later), mode)
    return paths
