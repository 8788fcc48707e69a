"""Everything one trading day shares across its windows: services, counters, status, safety reactions."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.acct_client import AccountingClient
from tbot_bot.broker.broker_api import Broker
from tbot_bot.config.env_bot import BotSettings
from tbot_bot.config.error_handler import ErrorHandler
from tbot_bot.domain.clock import Clock
from tbot_bot.domain.intents import Intent, IntentStatus, client_order_id
from tbot_bot.domain.results import cents, net_pnl
from tbot_bot.domain.vocab import (
    OPTION_MULTIPLIER,
    STRATEGY_NAMES,
    ExitReason,
    OrderSide,
    Purpose,
    WindowStatus,
)
from tbot_bot.enhancements.black_scholes_filter import BlackScholesFilter
from tbot_bot.enhancements.imbalance_scanner_ibkr import ImbalanceScanner
from tbot_bot.enhancements.ticker_blocklist import TickerBlocklist
from tbot_bot.errors import TbotError
from tbot_bot.reporting.rebalance_notifier import RebalanceMonitor
from tbot_bot.runtime.booking import book_day
from tbot_bot.runtime.bot_log import BotLog
from tbot_bot.runtime.control import ControlFiles, defense_clear_file, paused_by
from tbot_bot.runtime.defense import DEFENSE_LOG, DefenseMonitor, realised_performance
from tbot_bot.runtime.market_feed import MarketFeed
from tbot_bot.runtime.order_journal import DENIALS_PREFIX, OrderJournal
from tbot_bot.runtime.positions import (
    OpenTrade,
    RoundTrip,
    open_trades,
    position_side,
    round_trip_for,
    round_trips,
    signal_direction,
)
from tbot_bot.runtime.run_mode import RunMode
from tbot_bot.runtime.status_bot import BotState, StatusBoard
from tbot_bot.screeners.finnhub_screener import Screener
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.trading.kill_switch import KillSwitch
from tbot_bot.trading.notifier_bot import Alert, AlertEvent, AlertLevel, Notifier
from tbot_bot.trading.orders_bot import OrderRouter
from tbot_bot.trading.risk_bot import RiskManager

_MINUTE = timedelta(minutes=1)
ACCOUNT_READ_EVERY = timedelta(
    minutes=5
)  # broker equity/cash for status.json: one account call per 5 minutes


@dataclass
class DayContext:
    settings: BotSettings
    home: BotHome
    binding: LedgerBinding
    mode: RunMode  # the clock, waiting and the stop check of this run (live, replay or check)
    broker: Broker
    journal: OrderJournal
    errors: ErrorHandler
    risk: RiskManager
    kill: KillSwitch
    defense: DefenseMonitor
    blocklist: TickerBlocklist
    screener: Screener
    status: StatusBoard
    log: BotLog
    notifier: Notifier
    session_date: date
    universe: list[str]
    tradable: set[str]
    bsm: BlackScholesFilter
    imbalance: ImbalanceScanner | None  # IBKR only: the closing-auction gate CLOSE consults
    vix_lookup: Callable[[date], float | None]
    option_volatility: float = 0.25
    halted_reason: str | None = None
    rebalance: RebalanceMonitor | None = None  # REBALANCE_ENABLED
    acct: AccountingClient | None = None  # when acct_api_credentials exist
    denials: dict[str, dict[str, int]] = field(default_factory=dict)
    orders: OrderRouter = field(init=False)
    _account_at: datetime | None = field(default=None, init=False)  # the last broker account read (money)
    # the intents of positions carried from earlier sessions (read once a day, again while one of them works)
    _carried: list[Intent] | None = field(default=None, init=False)
    # conditions alerted as begun and not yet alerted as ended (an outage): never alerted twice while they last
    _open_conditions: set[str] = field(default_factory=set, init=False)
    _reconnects_seen: int | None = field(default=None, init=False)  # the adapter's reconnect count, last read

    def __post_init__(self) -> None:
        # fills reach position keeping (on_fill) through the router's constructor
        self.orders = OrderRouter(
            self.broker,
            self.journal,
            self.errors,
            self.clock,
            self.log,
            confirmation_required=self.settings.TRADE_CONFIRMATION_REQUIRED,
            is_confirmed=ControlFiles(self.home).is_confirmed,
            on_filled=self.on_fill,
            on_rejected=self.on_rejected,
        )

    @property
    def clock(self) -> Clock:
        return self.mode.clock

    def wait(self, t: datetime) -> bool:
        """Advance/sleep to a time; False when a stop was requested."""
        return self.mode.wait(t)

    def stop_requested(self) -> bool:
        return self.mode.stop_requested()

    @property
    def bot_id(self) -> str:
        return self.binding.identity.BOT_ID

    @property
    def day_key(self) -> str:
        return self.session_date.isoformat()

    # ---- time
    def wait_until(self, t: datetime) -> bool:
        """Advance/sleep to `t`; False when a stop was requested. A long wait (to the next window) takes a pause or
        a resume, and a defense clear, at least once a minute of the run's clock, so status shows them between
        windows too (a replay showed a resume only when its next window began)."""
        while self.clock.now() + _MINUTE < t:
            if not self.wait(self.clock.now() + _MINUTE):
                return False
            self.check_operator_pause()
        return self.wait(t)

    def vix_at(self, t: datetime) -> float | None:
        """VIX known at a window's start: the previous session's close (replay and live alike)."""
        return self.vix_lookup(self.session_date)

    def resume_point(self, strategy: str) -> datetime | None:
        """The minute after the last one fully processed before a restart, if any."""
        raw = self.journal.get_value(f"cursor:{self.day_key}:{strategy}")
        return datetime.fromisoformat(raw) + timedelta(minutes=1) if raw else None

    def restore_risk_usage(self, strategy: str) -> None:
        """The window's MAX_TRADES and session-cap usage as the journal has it (none at its first start; after a
        restart, or in another process, what it entered)."""
        entries = [
            i
            for i in self.journal.intents(self.day_key, strategy)
            # a refused entry, or one whose confirmation expired, counts only if part of it filled
            if i.purpose == "entry"
            and (i.status not in (IntentStatus.REJECTED, IntentStatus.ABANDONED) or i.filled_qty)
        ]
        self.risk.start_window(strategy)
        if entries:
            self.risk.restore_usage(
                strategy, len(entries), sum((i.notional or Decimal(0) for i in entries), Decimal(0))
            )

    def broker_reconnected(self) -> bool:
        """True once per reconnect an adapter made inside its own calls since the last look (IBKR counts them in
        `reconnects`; the others reconnect per request and report none)."""
        count = int(getattr(self.broker, "reconnects", 0) or 0)
        seen, self._reconnects_seen = self._reconnects_seen, count
        return seen is not None and count != seen

    # ---- counters and status
    def count(self, strategy: str, key: str) -> None:
        self.status.counts.setdefault(strategy, {"signaled": 0, "entered": 0, "exited": 0})[key] += 1

    def count_denial(self, strategy: str, code: str) -> None:
        d = self.denials.setdefault(strategy, {})
        d[code] = d.get(code, 0) + 1
        # kept with the day's journal: a restart of the day (a kill, a crash) reports every denial of the day
        self.journal.set_value(f"{DENIALS_PREFIX}{self.day_key}", json.dumps(self.denials, sort_keys=True))

    def status_window(
        self,
        strategy: str,
        state: WindowStatus,
        *,
        actual_start: datetime | None = None,
        actual_end: datetime | None = None,
        note: str | None = None,
    ) -> None:
        for w in self.status.windows:
            if w["strategy"] == strategy:
                w["status"] = state
                if actual_start:
                    w["actual_start"] = actual_start.isoformat()
                if actual_end:
                    w["actual_end"] = actual_end.isoformat()
                if note:
                    w["note"] = note
        active = strategy if state is WindowStatus.RUNNING else None
        self.status.publish(
            active_strategy=active,
            state=BotState.ANALYZING if state is WindowStatus.RUNNING else self._idle_state(),
        )

    def _idle_state(self) -> BotState:
        return BotState.HALTED if self.halted_reason else BotState.IDLE

    def pending_confirmation(self, intent: Intent, expires: datetime) -> None:
        self.status.pending_confirmations = [
            p for p in self.status.pending_confirmations if p["client_order_id"] != intent.client_order_id
        ]
        self.status.pending_confirmations.append(
            {
                "client_order_id": intent.client_order_id,
                "symbol": intent.symbol,
                "strategy": intent.strategy,
                "expires_at": expires.isoformat(),
            }
        )
        self.status.publish()

    def is_listed_pending(self, intent: Intent) -> bool:
        return any(p["client_order_id"] == intent.client_order_id for p in self.status.pending_confirmations)

    def drop_settled_confirmations(self) -> None:
        """Only orders still awaiting confirmation stay in status.json (an expired one leaves it)."""
        keep = []
        for p in self.status.pending_confirmations:
            intent = self.journal.get(p["client_order_id"])
            if intent is not None and intent.status is IntentStatus.AWAITING_CONFIRMATION:
                keep.append(p)
        if len(keep) != len(self.status.pending_confirmations):
            self.status.publish(pending_confirmations=keep)

    def open_position_count(self) -> int:
        """The positions MAX_OPEN_POSITIONS counts: every one held (a carried one included), and every entry that
        may still open one (working at the broker unfilled, waiting for `tbot confirm`, journaled and unsent). Those
        were left out, so a minute's signals were sized into slots a working entry was about to take."""
        intents = self._held_intents()
        held = {tr.entry.client_order_id for tr in open_trades(intents)}
        coming = {
            i.client_order_id
            for i in intents
            if i.purpose == Purpose.ENTRY and i.status.is_open and i.client_order_id not in held
        }
        return len(held) + len(coming)

    def publish_positions(self, feed: MarketFeed | None) -> None:
        rows = []
        # every position the bot holds, whichever session opened it (one carried over a weekend was left out)
        held = open_trades(self._held_intents())
        for tr in held:
            e = tr.entry
            last = feed.last_close(e.symbol) if feed else None
            entry_px = e.filled_price or Decimal(0)
            sign = Decimal(-1) if e.order_side == "sell" else Decimal(1)
            # what is still held: an exit cancelled after a partial fill closed part of the position
            unreal = (
                sign * (Decimal(str(last)) - entry_px) * tr.remaining
                if last is not None and e.instrument == "equity"
                else None
            )
            rows.append(
                {
                    "symbol": e.symbol,
                    "strategy": e.strategy,
                    "side": position_side(e),
                    "direction": signal_direction(e),
                    "tag": e.tag,
                    "qty": str(tr.remaining),
                    "entry_price": f"{entry_px:.4f}",
                    "last_price": f"{last:.4f}" if last is not None else "",
                    "unrealized_pnl": f"{unreal:.2f}" if unreal is not None else "",
                }
            )
        # monitoring while a window runs and holds positions; between windows (a position carried over a weekend,
        # held until the open) the state is the idle one: nothing rewrites status each minute then, and
        # "monitoring" would read stale after five minutes
        monitoring = bool(rows) and self.status.active_strategy is not None
        state = (
            BotState.HALTED
            if self.halted_reason
            else (
                BotState.MONITORING
                if monitoring
                else (BotState.TRADING if self.status.active_strategy else self._idle_state())
            )
        )
        self.status.api = {
            "retries": self.errors.retries + getattr(self.broker, "api_retries", 0),
            "errors": self.errors.errors,
        }
        self.status.publish(positions=rows, state=state, money=self._money(feed, held))

    def _held_intents(self) -> list[Intent]:
        """Today's intents, and the entries and exits of positions carried from earlier sessions: what the bot
        holds, without reading the whole journal each minute (status is published every tick)."""
        if self._carried is None or any(i.status.is_open for i in self._carried):
            earlier = self.journal.intents_before(self.day_key, "")
            carried = {tr.entry.client_order_id for tr in open_trades(earlier)}
            self._carried = [
                i for i in earlier if i.client_order_id in carried or i.entry_client_order_id in carried
            ]
        return self._carried + self.journal.intents(self.day_key)

    # ---- money in sight (status.json `money`)
    def _money(self, feed: MarketFeed | None, held: list[OpenTrade]) -> dict[str, object]:
        """Broker equity and cash (read at most every ACCOUNT_READ_EVERY, and after a fill), open exposure at the last price
        (else the entry's), today's net PnL after fees, the float and each window's session cap used."""
        now, money = self.clock.now(), dict(self.status.money)
        if self._account_at is None or now - self._account_at >= ACCOUNT_READ_EVERY:
            self._account_at = now
            try:
                acct = self.broker.get_account()
                money.update(
                    equity=f"{acct.equity:.2f}", cash=f"{acct.cash:.2f}", currency=acct.currency,
                    account_read_at=now.isoformat(), account_error=None,
                )  # fmt: skip
            except TbotError as exc:  # shown, never fatal: the last figures stay with their time
                money["account_error"] = str(exc)
        exposure = Decimal(0)
        for tr in held:
            e = tr.entry
            last = feed.last_close(e.symbol) if feed and e.instrument == "equity" else None
            price = Decimal(str(last)) if last is not None else (e.filled_price or Decimal(0))
            multiplier = OPTION_MULTIPLIER if e.instrument == "option" else 1
            exposure += abs(tr.remaining) * price * multiplier
        money.update(
            open_exposure=f"{exposure:.2f}",
            net_pnl_today=f"{cents(self.status.day_totals()[2]):.2f}",
            float=f"{self.risk.broker_current_float:.2f}",
            session_cap=f"{self.risk.session_cap():.2f}",
            windows=self.risk.window_usage(),
        )
        return money

    # ---- operator pause (`tbot pause` / `tbot resume`, runtime/control.pause_file)
    def check_operator_pause(self) -> None:
        """Follow the pause file: no new entries while it exists (exits still managed); logged, alerted, shown.
        A request to clear defense mode is taken at the same moments."""
        self.check_defense_clear()
        stamp = paused_by(self.home)
        if stamp == self.risk.operator_pause:
            return
        self.risk.operator_pause = stamp
        event = "entries_paused" if stamp else "entries_resumed"
        self.log.event("supervisor", event, by=stamp or "tbot resume")
        message = f"new entries paused ({stamp}); exits still managed" if stamp else "new entries resumed"
        self._alert(AlertLevel.ROUTINE, AlertEvent.INFO, None, None, event, message)
        self.status.publish(paused=stamp)

    def check_defense_clear(self) -> None:
        """`tbot defense clear`: an automatic defense mode ends for this session (logged, alerted, shown); the
        request is consumed either way, its outcome said."""
        path = defense_clear_file(self.home)
        try:
            stamp = path.read_text(encoding="utf-8").strip() or "unknown"
            made = datetime.fromtimestamp(path.stat().st_mtime, UTC).date()
        except FileNotFoundError:
            return
        was = self.risk.defense_reason
        if made < self.defense.previous_session:
            # made before the session whose switch would carry into today: not meant for this day
            message = f"defense clear ({stamp}) discarded: made before the session of {self.defense.previous_session}"
        elif was is None:
            message = f"defense clear ({stamp}): defense mode was not on"
        elif self.risk.clear_defense():
            self.defense.clear(stamp, [t.exit.client_order_id for t in self.trips()])
            message = f"defense mode cleared by {stamp} (it was on: {was})"
            self.status.publish(defense_mode=False, defense_reason=None)
        else:
            message = (
                f"defense clear ({stamp}) refused: DEFENSE_MODE_ACTIVE=true keeps it on (`tbot config set`)"
            )
        path.unlink(missing_ok=True)
        self.log.event("supervisor", "defense_clear", by=stamp, outcome=message)
        self._alert(AlertLevel.ROUTINE, AlertEvent.INFO, None, None, "defense_clear", message)
        self.status.publish(message=message)

    def restore_from_journal(self) -> None:
        self.denials = self.journal.day_counts(self.day_key)[1]
        for intent in self.journal.intents(self.day_key):
            if intent.purpose == "entry" and intent.filled_qty:
                self.count(intent.strategy, "entered")
        trips = self.trips()
        for trip in trips:
            self.count(trip.entry.strategy, "exited")
            self._book_realised(trip.entry.strategy, trip)
        if not trips:
            self._restore_from_ledger()
        for strategy, n in self.journal.signal_counts(self.day_key).items():
            self.status.counts.setdefault(strategy, {"signaled": 0, "entered": 0, "exited": 0})[
                "signaled"
            ] = n
        # every window that began today (before a restart, or under another process: the operator's desk) shows
        # its MAX_TRADES and session-cap usage, also when it will not run again (a halted day, a flatten)
        for strategy in STRATEGY_NAMES:
            row = self.journal.window(self.day_key, strategy)
            if row is not None and row["actual_start"]:
                self.restore_risk_usage(strategy)

    def _restore_from_ledger(self) -> None:
        """A journal that holds nothing of a day the ledger traded (lost, emptied; the day is then refused until
        rebuilt): status and the kill switch take the day's closed trades from the ledger, never show 0.00."""
        from tbot_bot.reporting.ledger_trades import read_trades

        try:
            booked = read_trades(self.binding.ledger_path, day=self.session_date)
        except TbotError:
            return
        for t in booked:
            if t.pnl is not None:
                self._book(t.strategy, t.pnl, t.fees, closes=t.exit_time is not None)

    def _book_realised(self, strategy: str, trip: RoundTrip) -> None:
        self._book(strategy, trip.gross_pnl, trip.fees, closes=trip.closes)

    def _book(self, strategy: str, gross: Decimal, fees: Decimal, *, closes: bool = True) -> None:
        """Status shows the ledger's PnL (before fees) and fees; the kill switch counts the net loss. A trade sold
        in two exits is one trade, as the books count it (`closes`: this exit sold the rest)."""
        st = self.status
        st.realized_pnl_by_strategy[strategy] = st.realized_pnl_by_strategy.get(strategy, Decimal(0)) + gross
        st.fees_by_strategy[strategy] = st.fees_by_strategy.get(strategy, Decimal(0)) + fees
        if closes:
            st.trades_by_strategy[strategy] = st.trades_by_strategy.get(strategy, 0) + 1
        self.kill.record_realised(net_pnl(gross, fees))

    # ---- fills and safety
    def on_rejected(self, intent: Intent) -> None:
        """An entry the broker refused never traded: its MAX_TRADES slot and session-cap notional go back to its
        window, as a restart counts it (restore_risk_usage) and as the backtest gives back an entry it cannot fill.
        Its instrument stays on the day's blocklist, as in the backtest."""
        # an earlier day's entry found refused (a reconciliation) took no slot of today's windows
        if intent.purpose == "entry" and intent.session_date == self.day_key:
            self.risk.release(intent.strategy, intent.notional or Decimal(0))

    def on_fill(self, intent: Intent) -> None:
        s = self.settings
        # a fill moved the broker's cash: the next status reads the account again, whatever the interval (after
        # the session's last exit, status would otherwise show the cash of an open position until tomorrow)
        self._account_at = None
        if intent.purpose == "entry":
            self.count(intent.strategy, "entered")
            self.log.event(
                intent.strategy,
                "entry_fill",
                ticker=intent.symbol,
                signal_ticker=intent.signal_ticker,
                side=position_side(intent),
                direction=signal_direction(intent),
                size=str(intent.filled_qty),
                entry_price=str(intent.filled_price),
                broker=s.BROKER_NAME,
                signal_time=intent.signal_time,
                entry_time=intent.filled_at,
                fee=str(intent.fee or 0),
                client_order_id=intent.client_order_id,
                tag=intent.tag,
            )
            # NOTIFY_ON_FILL: a routine alert per entry fill
            if s.NOTIFY_ON_FILL:
                self._alert(
                    AlertLevel.ROUTINE,
                    AlertEvent.FILL,
                    intent,
                    None,
                    "entry",
                    # a short sale's entry sells (the ledger's SELLSHORT); the alert said "bought"
                    f"{'sold short' if intent.order_side == OrderSide.SELL else 'bought'} {intent.filled_qty} "
                    f"{intent.symbol} at {intent.filled_price}",
                )
            return
        entry = self.journal.get(intent.entry_client_order_id or "")
        if entry is None or not intent.filled_qty:
            return
        # the entry and every exit naming it, on any day: a carried position's earlier exits take its fee and
        # part of its quantity (the entry's day alone counted the fee twice and took a partial exit for the last)
        trip = round_trip_for(self._held_intents(), intent) or RoundTrip(entry, intent)
        self.count(intent.strategy, "exited")
        pnl = trip.pnl
        self.log.event(
            intent.strategy,
            "exit_fill",
            ticker=intent.symbol,
            signal_ticker=intent.signal_ticker,
            side=position_side(entry),
            direction=signal_direction(entry),
            size=str(trip.qty),
            entry_price=str(trip.entry.filled_price),
            exit_price=str(intent.filled_price),
            PnL=f"{trip.gross_pnl:.4f}",
            fees=f"{trip.fees:.4f}",
            net_pnl=f"{pnl:.4f}",
            broker=s.BROKER_NAME,
            signal_time=entry.signal_time,
            entry_time=entry.filled_at,
            exit_time=intent.filled_at,
            exit_reason=intent.exit_reason,
            client_order_id=intent.client_order_id,
            tag=entry.tag,
        )
        # NOTIFY_ON_EXIT: a routine alert per exit fill, with its PnL
        if s.NOTIFY_ON_EXIT:
            self._alert(
                AlertLevel.ROUTINE,
                AlertEvent.EXIT,
                intent,
                pnl,
                intent.exit_reason or "exit",
                f"closed {trip.qty} {intent.symbol} at {intent.filled_price}, PnL {pnl:.2f}",
            )
        self._book_realised(intent.strategy, trip)
        self.observe_defense()
        if self.kill.tripped:
            self._kill_switch_tripped()

    @property
    def kill_switch_key(self) -> str:
        return f"kill_switch:{self.day_key}"

    def kill_switch_state(self) -> dict[str, object]:
        """Tripped today (now, or before a restart that reads another float or limit: the journal keeps it) and why,
        as status and the day's summary show it."""
        if self.kill.tripped:
            return {"tripped": True, "reason": self.kill.reason}
        kept = self.journal.get_value(self.kill_switch_key)
        return {"tripped": kept is not None, "reason": kept}

    def _kill_switch_tripped(self) -> None:
        """Halt (the halt's alert names the kill switch); when trading was already halted for another reason the
        kill switch is alerted on its own. Either way once a day: later exit fills and restarts stay quiet."""
        message = f"kill switch: {self.kill.reason}"
        # remembered for the day: a restart re-adds the day's losses against a float read again (the accounting
        # API may assign another), which could find the limit not reached and trade again
        if self.journal.get_value(self.kill_switch_key) is None:
            self.journal.set_value(self.kill_switch_key, self.kill.reason or "tripped")
        first = self._first_time("kill_switch", "kill_switch")
        if self.halted_reason is None:
            self.halt(message)  # its alert is the kill switch's
        else:
            self.status.publish(kill_switch={"tripped": True, "reason": self.kill.reason})
            if first:
                self._alert(AlertLevel.CRITICAL, AlertEvent.FAILURE, None, self.kill.realised_today, "kill_switch",
                            f"{message} (trading was already halted: {self.halted_reason})")  # fmt: skip

    # ---- defense mode
    def observe_defense(self) -> None:
        """After each closed trade and at session end: DEFENSE_MODE_TRIGGER_* see the day's net results."""
        # DEFENSE_MODE_ACTIVE=true or a trigger already fired: defense mode is on, nothing left to switch
        if self.risk.defense_mode:
            return
        perf = realised_performance(
            self.trips(), self.risk.broker_current_float, leave_out=self.defense.cleared_exits()
        )
        if not self.risk.observe_performance(drawdown=perf.drawdown, win_rate=perf.win_rate):
            return
        reason = self.risk.defense_reason or "defense mode"
        self.defense.record(reason)
        now = self.clock.now()
        line = {
            "ts": now.isoformat(),
            "event": "defense_mode_on",
            "reason": reason,
            "session_date": self.day_key,
            "drawdown": perf.drawdown,
            "win_rate": perf.win_rate,
        }
        path = self.home.logs_dir(self.binding.scope) / DEFENSE_LOG
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        self.log.event("supervisor", "defense_mode_on", reason=reason)
        self._alert(
            AlertLevel.CRITICAL, AlertEvent.FAILURE, None, None, "defense_mode", f"defense mode on: {reason}"
        )
        self.publish_defense()

    def publish_defense(self) -> None:
        self.status.defense_mode = self.risk.defense_mode
        self.status.defense_reason = self.risk.defense_reason
        self.status.publish()

    def _alert(
        self,
        level: AlertLevel,
        event: AlertEvent,
        intent: Intent | None,
        pnl: Decimal | None,
        trigger: str,
        message: str,
    ) -> None:
        self.notifier.notify(
            Alert(
                level,
                event,
                self.clock.now(),
                intent.strategy if intent else None,
                intent.symbol if intent else None,
                pnl,
                trigger,
                message,
            )
        )

    def alert_operator(self, level: AlertLevel, trigger: str, message: str) -> None:
        """An alert that is about the bot, not about one order (outages, resumptions). A condition that begins and
        ends (CONDITIONS: an outage and its resumption) alerts once when it begins, however often it is seen
        again meanwhile (every probe, every window), and once when it ends."""
        if trigger in CONDITIONS:
            if trigger in self._open_conditions:
                return
            self._open_conditions.add(trigger)
        for opened, ended in CONDITIONS.items():
            if trigger == ended:
                if opened not in self._open_conditions:
                    return  # nothing was alerted as begun: no "resumed" without an outage
                self._open_conditions.discard(opened)
        self._alert(level, AlertEvent.FAILURE if level is AlertLevel.CRITICAL else AlertEvent.INFO, None, None,
                    trigger, message)  # fmt: skip

    def alert_once(self, level: AlertLevel, trigger: str, message: str, *, key: str | None = None) -> bool:
        """One alert per distinct event and session, across restarts too: the journal remembers what was sent
        (a booking that fails again after a restart, a failure seen by two callers with the same `key`, are not
        alerted again). False when it was already sent."""
        if not self._first_time(key if key is not None else f"{trigger}:{message}", trigger):
            return False
        self._alert(level, AlertEvent.FAILURE if level is AlertLevel.CRITICAL else AlertEvent.INFO, None, None,
                    trigger, message)  # fmt: skip
        return True

    def _first_time(self, key: str, trigger: str) -> bool:
        """True the first time `key` is seen this session (remembered in the journal, so across restarts)."""
        mark = f"alerted:{self.day_key}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        try:
            if self.journal.get_value(mark):
                return False
            self.journal.set_value(mark, f"{self.clock.now().isoformat()} {trigger}")
        except (TbotError, sqlite3.Error):
            pass  # the journal itself is failing: alert (perhaps twice) rather than stay silent
        return True

    def halt(self, reason: str, *, close_positions: bool = True) -> None:
        """Stop new orders; optionally close every open position (kill switch, broker outage, manual stop)."""
        first = self.halted_reason is None
        self.halted_reason = self.halted_reason or reason
        self.risk.halt(reason)
        self.log.error(
            "supervisor", f"trading halted: {reason}", {"realised_today": str(self.kill.realised_today)}
        )
        # NOTIFY_ON_FAILURE: halts go to the critical channel
        if first and self.settings.NOTIFY_ON_FAILURE:
            self._alert(
                AlertLevel.CRITICAL,
                AlertEvent.FAILURE,
                None,
                self.kill.realised_today,
                reason,
                f"trading halted: {reason}",
            )
        self.status.kill_switch = self.kill_switch_state()
        self.status.publish(state=BotState.HALTED, message=reason)
        if close_positions:
            self.flatten(reason)

    def flatten(self, reason: str) -> None:
        """Cancel working entries and send an exit for every open position (of any day: nothing is left behind).

        Every position gets its exit even when one fails (one order's timeout must not leave the others held);
        each failure is logged with its symbol and the first is raised once all were tried."""
        from tbot_bot.runtime.run_mode import market_closed

        if market_closed(self):
            # live, the exchange closed (a kill switch tripped by a position adopted on a weekend): nothing can be
            # sent; the positions are held, said and alerted, and the next session's first window closes them
            held = [f"{t.remaining.normalize():f} {t.entry.symbol}" for t in open_trades(self.journal.intents())
                    if t.exit is None]  # fmt: skip
            if held:
                self.hold_until_open(held)
                self.status.publish(
                    message=f"{reason}; the market is closed: {', '.join(held)} held until it opens"
                )
            return
        failures: list[TbotError] = []
        try:
            self.orders.cancel_open(reason, purpose=Purpose.ENTRY)
        except TbotError as exc:
            failures.append(exc)  # place_exit still cancels each position's own working entry first
            self.log.error(
                "supervisor", f"cancelling entries while closing failed: {exc}", {"reason": reason}, exc
            )
        self.drop_settled_confirmations()  # abandoned: no longer offered for `tbot confirm` (status.json)
        for tr in open_trades(self.journal.intents()):
            if tr.exit is None:
                try:
                    self.place_exit(tr.entry, _reason_code(reason), self.clock.now())
                except TbotError as exc:
                    failures.append(exc)
                    self.log.error(
                        tr.entry.strategy,
                        f"exit of {tr.entry.symbol} failed while closing ({reason}): {exc}",
                        {"ticker": tr.entry.symbol, "client_order_id": tr.entry.client_order_id},
                        exc,
                    )
        if failures:
            raise failures[0]

    def hold_until_open(self, held: list[str]) -> None:
        """Positions that cannot be closed now (the exchange is closed): logged and alerted once, as held until the
        open; the next session's first window closes them (recovery.close_overdue)."""
        held_now = ", ".join(held)
        self.log.event("supervisor", "held_until_open", positions=held_now)
        self.alert_once(
            AlertLevel.CRITICAL,
            "held_until_open",
            f"the market is closed: {held_now} held until it opens; the next session's first window closes "
            "them (while trading is stopped: `tbot flatten` once the market is open)",
            key=f"held_until_open:{held_now}",
        )

    def place_exit(self, entry: Intent, exit_reason: ExitReason, signal_time: datetime) -> Intent | None:
        """Journal and send the order that closes what an entry still holds.

        A still-working entry is cancelled first, so shares that fill later cannot be left behind; the exit is
        sized from fills (entry fills minus earlier exits' fills), never from order sizes.
        """
        from tbot_bot.runtime.run_mode import market_closed

        if market_closed(self):
            # live, the exchange closed: a market order would wait for the open and be cancelled unfilled; the
            # position stays held and the next session's first window closes it (recovery.close_overdue)
            self.log.event(entry.strategy, "held_until_open", ticker=entry.symbol, exit_reason=exit_reason)
            return None
        if entry.status.is_open:
            entry = self.orders.cancel(entry, f"closing the position ({exit_reason})")
        # what is still held, counting exits of every day (a carried position's earlier exits sold part of it:
        # the entry's day alone sized an order for more than was held, which opened a short)
        held = next(
            (
                t.remaining
                for t in open_trades(self._held_intents())
                if t.entry.client_order_id == entry.client_order_id
            ),
            Decimal(0),
        )
        if held <= 0:
            return None
        qty = held
        seq = self.journal.next_seq(self.day_key, entry.strategy, entry.symbol)
        intent = Intent(
            client_order_id=client_order_id(self.bot_id, self.day_key, entry.strategy, entry.symbol, seq),
            session_date=self.day_key, strategy=entry.strategy, purpose=Purpose.EXIT, symbol=entry.symbol,
            signal_ticker=entry.signal_ticker, direction=entry.direction,
            order_side=OrderSide.SELL if entry.order_side == OrderSide.BUY else OrderSide.BUY,
            instrument=entry.instrument, qty=qty,
            status=IntentStatus.INTENT, created_at=self.clock.now().isoformat(), tag=entry.tag,
            leverage=entry.leverage, option_json=entry.option_json, entry_client_order_id=entry.client_order_id,
            signal_time=signal_time.isoformat(), exit_reason=exit_reason,
        )  # fmt: skip
        placed = self.orders.place(intent)
        self.log.event(
            entry.strategy,
            "exit_order",
            ticker=placed.symbol,
            signal_ticker=placed.signal_ticker,
            size=str(qty),
            exit_reason=exit_reason,
            client_order_id=placed.client_order_id,
            status=placed.status.value,
        )
        return placed

    def check_rebalance(self, reason: str | None = None) -> None:
        """The interval check (reason None) or a forced one (after the session); never stops trading on error."""
        if self.rebalance is None:
            return
        try:
            checked = self.rebalance.check(reason) if reason else self.rebalance.maybe_check()
            if checked is not None:
                self.follow_rebalance()
        except TbotError as exc:
            self.errors.handle(exc, strategy="supervisor", context={"action": "rebalance_check"})

    def sync_accounting(self) -> None:
        """After a session, when the accounting API is configured: push the ledger (resumable, by FITID)."""
        if self.acct is None:
            return
        from tbot_bot.accounting.ledger_sync import remember_sync, sync_ledger

        try:
            result = sync_ledger(self.acct, self.binding)
        except TbotError as exc:
            # not fatal: the next session (or `tbot accounting sync`) resumes from the acknowledged FITID
            self.errors.handle(exc, strategy="supervisor", context={"action": "accounting_sync"})
            return
        remember_sync(self.home, result, self.clock.now())
        self.log.event(
            "supervisor",
            "accounting_synced",
            pushed=result.pushed,
            duplicates=result.duplicates,
            batches=result.batches,
            last_fitid=result.last_fitid,
        )

    def on_rebalance(self, message: str, opened: bool) -> None:
        """A breach opened or closed: pause or resume entries, log, alert."""
        if opened:
            # REBALANCE_PAUSE_ENTRIES=true: no new entries until the float is back inside the band
            if self.settings.REBALANCE_PAUSE_ENTRIES:
                self.risk.pause_entries(f"rebalance: {message}")
        else:
            self.risk.resume_entries()
        self._publish_rebalance_pause()
        self.log.event("supervisor", "rebalance_breach" if opened else "rebalance_resolved", reason=message)
        self._alert(AlertLevel.ROUTINE, AlertEvent.INFO, None, None, "rebalance", message)

    def _rebalance_pause(self) -> str | None:
        reason = self.risk.pause_reason
        return reason if reason is not None and reason.startswith("rebalance:") else None

    def _publish_rebalance_pause(self) -> None:
        if self.status.rebalance_pause != self._rebalance_pause():
            self.status.publish(rebalance_pause=self._rebalance_pause())

    def follow_rebalance(self) -> None:
        """Entries paused while a breach is open, wherever it was opened or closed (this supervisor's checks, a
        start, `tbot rebalance check` in another process), and said in status."""
        breach = self.rebalance.open_breach if self.rebalance is not None else None
        # REBALANCE_PAUSE_ENTRIES=true: an open breach pauses new entries until the float is back inside the band
        if breach is not None and self.settings.REBALANCE_PAUSE_ENTRIES and self.risk.pause_reason is None:
            self.risk.pause_entries(f"rebalance: breach {breach['breach_id']} open")
        elif breach is None and self._rebalance_pause() is not None:
            self.risk.resume_entries()  # closed by another process: this one would have held the pause until a restart
            self.log.event(
                "supervisor", "rebalance_resolved", reason="the breach was closed by another check"
            )
        self._publish_rebalance_pause()

    def book_day(self) -> None:
        """Book the day's fills; a booking that fails (the ledger, its pre-ingestion backup, the reports) is
        alerted once, then raised as before (the caller decides whether the run goes on)."""
        try:
            book_day(self)
        except (TbotError, OSError, sqlite3.Error) as exc:
            # keyed by the failure: the shutdown that follows, or a restart failing the same way, adds no alert
            self.alert_once(AlertLevel.CRITICAL, "booking_failed",
                            f"booking session {self.day_key} failed: {exc}", key=str(exc))  # fmt: skip
            raise

    def trips(self) -> list[RoundTrip]:
        """Today's exits as round trips, a carried position's included (its entry from an earlier day)."""
        return [t for t in round_trips(self._held_intents()) if t.exit.session_date == self.day_key]


# an alert trigger that begins a condition -> the one that ends it (DayContext.alert_operator)
CONDITIONS = {"broker_outage": "broker_resumed"}


def _reason_code(reason: str) -> ExitReason:
    r = reason.lower()
    if r.startswith("kill switch"):
        return ExitReason.KILL_SWITCH
    if "stop" in r:
        return ExitReason.MANUAL_STOP
    if "broker" in r:
        return ExitReason.BROKER_OUTAGE
    if "restart" in r or "recover" in r:
        return ExitReason.RECOVERED_AFTER_WINDOW
    return ExitReason.FORCED_EXIT
