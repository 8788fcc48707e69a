"""One strategy window, minute by minute: screener -> signals -> filters -> risk -> orders -> fills -> exits.

The same code runs live (wall clock) and in replay (replay clock over recorded bars). Each minute boundary t
evaluates the bars that closed by t: entries decided on bar t-1's close are sent at t and fill at bar t's open.
Every step is idempotent against the journal, so a restart re-processing a minute never sends twice.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tbot_bot.domain.crashpoints import crashpoint
from tbot_bot.domain.intents import Intent, IntentStatus, client_order_id
from tbot_bot.domain.vocab import (
    DenialCode,
    Direction,
    ExitReason,
    PositionSide,
    Purpose,
    StrategyName,
    WindowStatus,
)
from tbot_bot.inputs.vix import NO_VIX
from tbot_bot.market_time import Window, both_times, exchange_zone, window_for
from tbot_bot.runtime.day_context import DayContext
from tbot_bot.runtime.market_feed import MarketFeed
from tbot_bot.runtime.positions import OpenTrade, open_trades, position_side, round_trips, signal_direction
from tbot_bot.runtime.recovery import reconcile_after_reconnect
from tbot_bot.strategy.decisions import EntryDecision, ExitDecision, OpenPosition
from tbot_bot.strategy.live_evaluator import LiveEvaluator
from tbot_bot.strategy.strategy_router import strategy_module
from tbot_bot.trading.instruments import InstrumentChoice, choose_instrument
from tbot_bot.trading.notifier_bot import AlertLevel
from tbot_bot.trading.risk_bot import Denied, Sized

MINUTE = timedelta(minutes=1)


@dataclass
class WindowOutcome:
    strategy: str
    status: WindowStatus
    note: str = ""
    entries: int = 0
    exits: int = 0
    signals: int = 0
    denials: dict[str, int] = field(default_factory=dict)


class WindowRunner:
    def __init__(self, ctx: DayContext, strategy: str) -> None:
        self.ctx = ctx
        self.name = StrategyName(strategy)
        self.window: Window = window_for(strategy, ctx.session_date, ctx.settings)
        self.strategy = strategy_module(strategy)
        self.outcome = WindowOutcome(strategy, WindowStatus.DONE)
        self.symbols: list[str] = []
        self.feed: MarketFeed | None = None
        self._last_bar_at: datetime | None = None  # run-clock time the feed last delivered a new bar
        # the feed went quiet: no new entries for the rest of the window (signals then are denied, once each)
        self.stale_since: datetime | None = None
        self._denied: set[tuple[str, datetime]] = set()
        self._offered: set[tuple[str, datetime]] = (
            set()
        )  # the signals already put to the window (_offered_once)
        # when the minute loop began: a minute already a minute old then is caught up (a restart resuming the
        # window, or a window that began after the one before it ended), not the supervisor falling behind
        self._began: datetime | None = None

    # ------------------------------------------------------------------ driver
    def run(self) -> WindowOutcome:
        ctx, w = self.ctx, self.window
        day = ctx.day_key
        done = ctx.journal.window(day, self.name)
        if done is not None and done["status"] in (WindowStatus.DONE, WindowStatus.SKIPPED):
            return self._already_finished(done)
        if not w.fits:
            return self._skip(w.reason)
        if ctx.halted_reason:
            return self._skip(f"trading halted: {ctx.halted_reason}", status=WindowStatus.HALTED)
        vix = ctx.vix_at(w.start) if self.name == "close" else None
        if self.name == "close" and vix is None:
            return self._skip_no_vix()
        evaluator = self.strategy.live(w, self.strategy.params_from_settings(ctx.settings), vix_at_start=vix)
        ctx.wait_until(w.start)
        if ctx.stop_requested():
            self.outcome.status = WindowStatus.STOPPED
            return self.outcome
        ctx.journal.set_window(day, self.name, WindowStatus.RUNNING, actual_start=ctx.clock.now().isoformat())
        # a resumed window keeps the start the journal recorded when it first began (restart-true status)
        ctx.status_window(self.name, WindowStatus.RUNNING, actual_start=self._recorded("actual_start"))
        ctx.log.event(
            self.name,
            "window_start",
            window_start=w.start.isoformat(),
            breakout=f"{w.breakout_start:%H:%M}-{w.breakout_end:%H:%M}",
            note=w.reason,
        )
        # status says what runs now (it went on saying "waiting: next window ..." through the window)
        zone = exchange_zone(ctx.settings.MARKET_CALENDAR)
        ctx.status.publish(
            message=f"{self.name} window running: entries in its breakout {both_times(w.breakout_start, zone)} to "
            f"{both_times(w.breakout_end, zone)}, positions held until {both_times(w.monitoring_end, zone)} at most"
        )
        if evaluator.blocked_reason:
            # e.g. CLOSE with VIX at or below STRAT_CLOSE_VIX_THRESHOLD, or no VIX value at all
            ctx.log.event(self.name, "window_blocked", reason=evaluator.blocked_reason, vix=vix)
            self.outcome.denials["vix_gatekeeper"] = 1
            return self._finish("blocked: " + evaluator.blocked_reason)
        screen = ctx.screener.screen(self.name, ctx.universe, now=ctx.clock.now())
        for r in screen.rejections:
            ctx.log.event(self.name, "screen_reject", ticker=r.symbol, filter=r.filter, reason=r.reason)
        if screen.fundamentals_outage is not None:
            # every equity refused for want of fundamentals: said once per window and day, not only per symbol
            ctx.alert_once(
                AlertLevel.CRITICAL, "fundamentals_unavailable",
                f"{self.name.upper()} window: equities without cached fundamentals refused, "
                f"{screen.fundamentals_outage}",
                key=f"fundamentals_unavailable:{self.name}",
            )  # fmt: skip
        self.symbols = screen.symbols
        ctx.log.event(self.name, "candidates", tickers=",".join(self.symbols), count=len(self.symbols))
        self.feed = MarketFeed(
            ctx.broker, w.session_open or w.start, call=ctx.errors.call, until=w.monitoring_end
        )
        # window setup: the session so far is loaded and MID's indicators caught up before the first decision
        self.feed.refresh(self.symbols, ctx.clock.now())
        self._last_bar_at = ctx.clock.now()
        # a stale feed found earlier in this window (before an outage or a restart) still holds
        stale = ctx.journal.get_value(self._stale_key)
        self.stale_since = datetime.fromisoformat(stale) if stale else None
        earlier = ctx.status.market_data
        if earlier and earlier.get("stale") and earlier.get("window") != self.name:
            ctx.status.publish(market_data={**earlier, "stale": False})  # that window's suspension is over
        evaluator.prime(ctx.clock.now(), self.feed.bars(self.symbols))
        ctx.restore_risk_usage(self.name)

        t = max(w.start + MINUTE, ctx.resume_point(self.name) or w.start + MINUTE)
        self._began = ctx.clock.now()
        while t <= w.monitoring_end:
            if not ctx.wait_until(t):
                return self._stop()
            self.tick(t, evaluator)
            ctx.journal.set_value(f"cursor:{day}:{self.name}", t.isoformat())
            if t >= w.breakout_end and not self._busy():
                break
            t += MINUTE
        # no entry outlives its window (DESIGN §7): one still working (IBKR keeps an unfilled market order, a halted
        # symbol fills later) or awaiting confirmation is cancelled; what it filled meanwhile is closed below (a
        # fill after the window had no window to manage it, no stop, and was held until the next window's cron)
        for i in ctx.journal.intents(day, self.name):
            if i.purpose == Purpose.ENTRY and i.status.is_open:
                ctx.orders.cancel(i, "the window ended before the entry filled")
        # nothing outlives its window: whatever is still held now is closed before the window is booked
        for tr in open_trades(ctx.journal.intents()):
            if tr.entry.strategy == self.name and tr.exit is None:
                ctx.place_exit(tr.entry, ExitReason.WINDOW_END, ctx.clock.now())
        self._settle()
        return self._finish(w.reason)

    def _already_finished(self, row: sqlite3.Row) -> WindowOutcome:
        """A restart or a re-replay of a day whose window already ran: report it as it was, run nothing."""
        o = self.outcome
        o.status, o.note = WindowStatus(row["status"]), row["note"] or ""
        o.signals, o.entries, o.exits = (int(row[k] or 0) for k in ("signals", "entries", "exits"))
        o.denials = json.loads(row["denials"]) if row["denials"] else {}
        start, end = (
            datetime.fromisoformat(row[k]) if row[k] else None for k in ("actual_start", "actual_end")
        )
        self.ctx.status_window(self.name, o.status, actual_start=start, actual_end=end, note=row["note"])
        return o

    def _counts(self) -> dict[str, int]:
        mine = self.ctx.journal.intents(self.ctx.day_key, self.name)
        entries = sum(1 for i in mine if i.purpose == "entry" and i.filled_qty)
        exits = sum(1 for tr in round_trips(mine) if tr.entry.strategy == self.name)
        self.outcome.entries, self.outcome.exits = entries, exits
        return {"signals": self.outcome.signals, "entries": entries, "exits": exits}

    def _skip(self, reason: str, status: WindowStatus = WindowStatus.SKIPPED) -> WindowOutcome:
        row = self.ctx.journal.window(self.ctx.day_key, self.name)
        if row is not None and row["actual_start"]:
            # it ran before a restart found trading halted (a flatten, the kill switch): it ends now, with its
            # real start and its counts, never "skipped"
            return self._halted_after_start(row, reason, status)
        self.ctx.log.event(self.name, "window_skipped", reason=reason)
        self.ctx.journal.set_window(
            self.ctx.day_key,
            self.name,
            status,
            note=reason,
            counts=self._counts(),
            denials=self.outcome.denials,
        )
        self.ctx.status_window(self.name, status, note=reason)  # halted reads halted, as the journal says
        self.outcome.status, self.outcome.note = status, reason
        return self.outcome

    def _halted_after_start(self, row: sqlite3.Row, reason: str, status: WindowStatus) -> WindowOutcome:
        ctx = self.ctx
        now = ctx.clock.now()
        self.outcome.signals = int(row["signals"] or 0)
        self.outcome.denials = json.loads(row["denials"]) if row["denials"] else self.outcome.denials
        ctx.log.event(self.name, "window_ended", reason=reason, at=now.isoformat())
        ctx.journal.set_window(
            ctx.day_key, self.name, status, actual_end=now.isoformat(), note=reason, counts=self._counts(),
            denials=self.outcome.denials,
        )  # fmt: skip
        ctx.status_window(
            self.name,
            status,
            actual_start=datetime.fromisoformat(row["actual_start"]),
            actual_end=now,
            note=reason,
        )
        self.outcome.status, self.outcome.note = status, reason
        return self.outcome

    def _skip_no_vix(self) -> WindowOutcome:
        """CLOSE without the previous session's VIX close: skipped with reason no_vix, alerted once a day."""
        ctx = self.ctx
        reason = (
            f"{NO_VIX}: no VIX close for the session before {ctx.day_key}; "
            "run `tbot data vix` (the supervisor retries before each session)"
        )
        key = f"alerted:{NO_VIX}:{ctx.day_key}"
        if not ctx.journal.get_value(key):
            ctx.notifier.send(
                "critical",
                "failure",
                timestamp=ctx.clock.now(),
                trigger=NO_VIX,
                message=reason,
                strategy=self.name,
            )
            ctx.journal.set_value(key, ctx.clock.now().isoformat())
        self.outcome.denials[NO_VIX] = 1
        return self._skip(reason)

    def _stop(self) -> WindowOutcome:
        """A stop inside the window: it reads `stopped` with the time (its exits are the stop path's)."""
        ctx = self.ctx
        now = ctx.clock.now()
        ctx.journal.set_window(ctx.day_key, self.name, WindowStatus.STOPPED, actual_end=now.isoformat())
        ctx.status_window(self.name, WindowStatus.STOPPED, actual_end=now, note="stopped by request")
        ctx.log.event(self.name, "window_stopped", at=now.isoformat())
        self.outcome.status = WindowStatus.STOPPED
        return self.outcome

    def _recorded(self, column: str) -> datetime | None:
        row = self.ctx.journal.window(self.ctx.day_key, self.name)
        return datetime.fromisoformat(row[column]) if row is not None and row[column] else None

    def _finish(self, note: str) -> WindowOutcome:
        ctx = self.ctx
        # the window's end is when its trading ended, kept before booking: a kill while booking does not move it
        key = f"ended:{ctx.day_key}:{self.name}"
        ended = ctx.journal.get_value(key)
        if ended is None:
            ended = ctx.clock.now().isoformat()
            ctx.journal.set_value(key, ended)
        ctx.book_day()
        ctx.drop_settled_confirmations()
        ctx.journal.set_window(
            ctx.day_key, self.name, WindowStatus.DONE, actual_end=ended, note=note,
            counts=self._counts(), denials=self.outcome.denials,
        )  # fmt: skip
        ctx.status_window(self.name, WindowStatus.DONE, actual_end=datetime.fromisoformat(ended), note=note)
        ctx.log.event(self.name, "window_end", note=note)
        return self.outcome

    def _busy(self) -> bool:
        mine = [i for i in self.ctx.journal.intents(self.ctx.day_key, self.name)]
        return any(i.status.is_open for i in mine) or bool(open_trades(mine))

    def _settle(self) -> None:
        """After the last minute: wait (a few bars at most) for exit orders still working, then sync."""
        ctx = self.ctx
        for _ in range(5):
            ctx.orders.sync()
            if not any(i.status.is_open for i in ctx.journal.intents(ctx.day_key, self.name)):
                return
            ctx.wait_until(ctx.clock.now() + MINUTE)
        for i in ctx.journal.intents(ctx.day_key, self.name):
            if i.status.is_open:
                ctx.log.unresolved(
                    self.name,
                    event="order_unresolved_at_window_end",
                    ticker=i.symbol,
                    client_order_id=i.client_order_id,
                    error_code="stale",
                    reason=f"still {i.status} after the window",
                )

    # ------------------------------------------------------------------ one minute
    def tick(self, t: datetime, evaluator: LiveEvaluator) -> None:
        ctx = self.ctx
        if ctx.broker_reconnected():
            # the adapter reconnected inside a call (IBKR: a drop, the nightly restart): reconcile before any entry
            reconcile_after_reconnect(ctx, after="reconnect")
        ctx.check_rebalance()  # every REBALANCE_CHECK_INTERVAL; a breach pauses entries before this minute's
        ctx.check_operator_pause()  # `tbot pause` / `tbot resume` take effect from this minute
        blocked = ctx.risk.entry_block()
        for pending in ctx.journal.intents(ctx.day_key, self.name):
            # journaled before a restart but not yet at the broker, or waiting for `tbot confirm`
            if pending.status in (IntentStatus.INTENT, IntentStatus.AWAITING_CONFIRMATION):
                if blocked is not None and pending.purpose == Purpose.ENTRY:
                    # a pause or halt taken after it was decided: a confirmation given since never sends it
                    ctx.orders.abandon(pending, f"not sent: entries {blocked}")
                    ctx.log.event(self.name, "entry_abandoned", ticker=pending.symbol, reason=f"entries {blocked}",
                                  client_order_id=pending.client_order_id)  # fmt: skip
                    continue
                placed = ctx.orders.place(pending, confirm_until=self.window.breakout_end)
                if placed.status is IntentStatus.AWAITING_CONFIRMATION and not ctx.is_listed_pending(placed):
                    ctx.pending_confirmation(placed, self.window.breakout_end)  # e.g. after a restart
        ctx.drop_settled_confirmations()  # confirmed, expired or abandoned: no longer offered
        self._collect_fills()
        assert self.feed is not None
        trades = open_trades(ctx.journal.intents(ctx.day_key, self.name))
        instruments = sorted(
            {tr.entry.symbol for tr in trades if tr.entry.instrument == "equity"} - set(self.symbols)
        )
        added = self.feed.refresh(self.symbols + instruments, t)
        self._watch_feed(added, bool(self.symbols or instruments))
        bars = self.feed.bars(self.symbols)
        positions = [
            OpenPosition(
                tr.entry.signal_ticker,
                Direction.BULLISH if tr.entry.direction == "long" else Direction.BEARISH,
                # the entry bar's start: a live fill lands a moment after the minute; the deadline counts from the bar
                datetime.fromisoformat(tr.entry.filled_at or tr.entry.created_at).replace(
                    second=0, microsecond=0
                ),
            )
            for tr in trades
            if tr.exit is None
        ]
        if positions:
            crashpoint("monitoring")
        decisions = evaluator.evaluate(t, bars, positions)
        by_signal = {tr.entry.signal_ticker: tr for tr in trades if tr.exit is None}
        # placed in instrument order: fills of one bar are booked in journal order (created_at, then client order
        # id), so a bar's exits feed the kill switch in the order the backtest books them (SessionState.settle)
        exiting = sorted(
            ((by_signal[ex.symbol], ex) for ex in decisions.exits if ex.symbol in by_signal),
            key=lambda pair: pair[0].entry.client_order_id,
        )
        for trade, ex in exiting:
            self._exit(trade, ex)
        # entries only from bars inside the breakout window, only while risk is ACTIVE, never on a stale feed, and
        # only on time: a minute caught up late (the window started after the one before it had ended, or the
        # supervisor fell behind) would fill a bar or more after the next bar's open the signal is due at
        # (signals entered before a restart are passed over first: they were acted on, whatever this minute is)
        fresh = self._fresh(decisions.entries) if self.window.in_breakout(t - MINUTE) else []
        fresh = self._offered_once(fresh, t)
        if fresh:
            now = ctx.clock.now()
            if self.stale_since is not None:
                since = self.stale_since.isoformat()
                self._deny_once(fresh, "market_data_stale", f"market data stale since {since}")
            elif now - t >= MINUTE:
                late = (
                    f"the minute {t:%H:%M}Z was processed at {now:%H:%M:%S}Z: an entry now would not fill at the "
                    "open of the bar after its signal"
                )
                self._deny_once(fresh, "signal_late", late)
                if self._began is not None and t + MINUTE <= self._began:
                    # a minute caught up (a restart, a window begun late): expected, so said, not paged
                    ctx.alert_once(
                        AlertLevel.ROUTINE, "signal_late",
                        f"{self.name.upper()} window: the minutes before {self._began:%H:%M:%S}Z were caught up "
                        f"(a restart, or a window begun after the one before it ended); their entries denied, {late}",
                        key=f"signal_late_caught_up:{self.name}",
                    )  # fmt: skip
                else:
                    # the supervisor is behind its clock: said once per window and session, not only in the log
                    ctx.alert_once(
                        AlertLevel.CRITICAL, "signal_late", f"{self.name.upper()} window: entries denied, {late}",
                        key=f"signal_late:{self.name}",
                    )  # fmt: skip
            else:
                self._enter(fresh, t)
            self._sync_signal_count()
        self._collect_fills()
        ctx.publish_positions(self.feed)

    def _collect_fills(self) -> None:
        self.ctx.orders.sync()

    def _offered_once(self, entries: list[EntryDecision], t: datetime) -> list[EntryDecision]:
        """Each signal is offered once, in the minute after its bar. A symbol with no bar in the minute just closed
        (IEX: no trade, no bar) reports its last bar's signal again, and a signal refused once (risk, instrument)
        came back a minute later to be counted again or entered late; a signal whose bar arrived after its minute
        is denied as late (an entry now would not fill at the open of the bar after it)."""
        new = [e for e in entries if (e.symbol, e.signal_time) not in self._offered]
        self._offered.update((e.symbol, e.signal_time) for e in new)
        overdue = [e for e in new if e.signal_time < t - MINUTE]
        if overdue:
            self._deny_once(
                overdue, "signal_late",
                f"its bar arrived after the minute it closed ({t - MINUTE:%H:%M}Z is the bar due now): an entry "
                "now would not fill at the open of the bar after its signal",
            )  # fmt: skip
        return [e for e in new if e.signal_time >= t - MINUTE]

    def _deny_once(self, entries: list[EntryDecision], code: str, reason: str) -> None:
        """Signals that may not be entered (a stale feed, a late minute): recorded as denied, once each."""
        for e in entries:
            seen = (e.symbol, e.signal_time)
            if seen in self._denied:
                continue
            self._denied.add(seen)
            self.outcome.signals += 1
            self._deny(e, code, reason)

    @property
    def _stale_key(self) -> str:
        return f"feed_stale:{self.ctx.day_key}:{self.name}"

    def _watch_feed(self, added: int, asked: bool) -> None:
        """A feed that delivers no new bar for MARKET_DATA_STALE_SECONDS (on the run's clock) suspends new
        entries for the rest of this window: logged, alerted once, shown in status; exits are still managed."""
        ctx, now = self.ctx, self.ctx.clock.now()
        if added or self._last_bar_at is None:
            self._last_bar_at = now
            return
        quiet = (now - self._last_bar_at).total_seconds()
        # MARKET_DATA_STALE_SECONDS: this long without a new bar means the feed stopped, not a quiet market
        if not asked or self.stale_since is not None or quiet < ctx.settings.MARKET_DATA_STALE_SECONDS:
            return
        self.stale_since = now
        ctx.journal.set_value(self._stale_key, now.isoformat())
        message = (
            f"market data stale: no new bar for {quiet:.0f} s (since {self._last_bar_at.isoformat()}) in the "
            f"{self.name} window; new entries suspended for the rest of it, exits still managed"
        )
        ctx.log.event(
            "supervisor", "market_data_stale", window=self.name, last_bar_at=self._last_bar_at.isoformat(),
            since=now.isoformat(), quiet_seconds=round(quiet),
        )  # fmt: skip
        ctx.alert_operator(AlertLevel.CRITICAL, "market_data_stale", message)
        ctx.status.publish(
            market_data={"stale": True, "window": self.name, "since": now.isoformat(),
                         "last_bar_at": self._last_bar_at.isoformat()},
            message=message,
        )  # fmt: skip

    # ------------------------------------------------------------------ entries
    def _fresh(self, entries: list[EntryDecision]) -> list[EntryDecision]:
        """The signals not acted on yet: a minute processed again after a restart finds its entries journaled."""
        ctx = self.ctx
        known = {
            (i.signal_ticker, i.signal_time)
            for i in ctx.journal.intents(ctx.day_key, self.name)
            if i.purpose == "entry"
        }
        return [e for e in entries if (e.symbol, e.signal_time.isoformat()) not in known]

    def _enter(self, fresh: list[EntryDecision], t: datetime) -> None:
        ctx = self.ctx
        choices: list[tuple[EntryDecision, InstrumentChoice]] = []
        for e in fresh:
            self.outcome.signals += 1
            ctx.log.event(
                self.name,
                "signal",
                ticker=e.symbol,
                direction=e.direction.value,
                strength=round(e.strength, 6),
                signal_time=e.signal_time.isoformat(),
                signal_close=e.signal_close,
                kind=e.kind,
            )
            short_type = ctx.settings.short_type(self.name)
            choice = choose_instrument(ctx, self.name, e, short_type)
            if choice.denial is None and ctx.imbalance is not None and self.name == StrategyName.CLOSE:
                # IBKR: a strong closing-auction imbalance against the signal blocks the CLOSE entry
                gate = ctx.imbalance.check(self.name, e.symbol, _position(e.direction), ctx.clock.now())
                if not gate.allowed:
                    choice = choice.denied(DenialCode.IMBALANCE, gate.reason)
            if choice.denial is None:
                block = ctx.blocklist.check(choice.symbol)
                if not block.allowed:
                    choice = choice.denied(DenialCode.TICKER_BLOCKLIST, block.reason)
                elif any(c.symbol == choice.symbol for _, c in choices):
                    # two signals this minute map to one instrument (e.g. both to SH): one trade per ticker per day
                    choice = choice.denied(
                        DenialCode.TICKER_BLOCKLIST,
                        f"{choice.symbol} already taken by a stronger signal this minute",
                    )
            if choice.denial is not None:
                self._deny(e, choice.denial[0], choice.denial[1])
                continue
            choices.append((e, choice))
        if not choices:
            return
        decisions = ctx.risk.size_signals(
            self.name, [c.candidate for _, c in choices], ctx.open_position_count()
        )
        by_candidate = {id(d.candidate): d for d in decisions}
        intents: list[Intent] = []
        for e, c in choices:
            d = by_candidate[id(c.candidate)]
            if isinstance(d, Denied):
                self._deny(e, f"risk:{d.code}", d.reason)
                continue
            assert isinstance(d, Sized)
            intents.append(self._entry_intent(e, c, d))
        ctx.journal.record_intents(intents)
        for intent in intents:
            ctx.blocklist.record(intent.symbol, self.name, intent.client_order_id)
            ctx.journal.record_signal(
                ctx.day_key,
                self.name,
                intent.signal_ticker,
                datetime.fromisoformat(intent.signal_time or t.isoformat()),
                intent.direction,
                0.0,
                f"entered:{intent.client_order_id}",
            )
            placed = ctx.orders.place(intent, confirm_until=self.window.breakout_end)
            ctx.log.event(
                self.name,
                "entry_order",
                ticker=placed.symbol,
                signal_ticker=placed.signal_ticker,
                side=position_side(placed),  # the position held: an inverse ETF is long on a bearish signal
                direction=signal_direction(placed),
                size=str(placed.qty),
                client_order_id=placed.client_order_id,
                status=placed.status.value,
                tag=placed.tag,
            )
            if placed.status is IntentStatus.AWAITING_CONFIRMATION:
                ctx.pending_confirmation(placed, self.window.breakout_end)

    def _sync_signal_count(self) -> None:
        ctx = self.ctx
        ctx.status.counts.setdefault(self.name, {"signaled": 0, "entered": 0, "exited": 0})["signaled"] = (
            ctx.journal.signal_counts(ctx.day_key).get(self.name, 0)
        )

    def _deny(self, e: EntryDecision, code: str, reason: str) -> None:
        ctx = self.ctx
        self.outcome.denials[code] = self.outcome.denials.get(code, 0) + 1
        ctx.count_denial(self.name, code)
        ctx.journal.record_signal(
            ctx.day_key,
            self.name,
            e.symbol,
            e.signal_time,
            _position(e.direction),
            e.strength,
            f"denied:{code}",
        )
        ctx.log.event(
            self.name,
            "signal_denied",
            ticker=e.symbol,
            filter=code,
            reason=reason,
            direction=e.direction.value,
        )

    def _entry_intent(self, e: EntryDecision, c: InstrumentChoice, d: Sized) -> Intent:
        ctx = self.ctx
        seq = ctx.journal.next_seq(ctx.day_key, self.name, c.symbol)
        return Intent(
            client_order_id=client_order_id(ctx.bot_id, ctx.day_key, self.name, c.symbol, seq),
            session_date=ctx.day_key,
            strategy=self.name,
            purpose=Purpose.ENTRY,
            symbol=c.symbol,
            signal_ticker=e.symbol,
            direction=_position(e.direction),
            order_side=c.entry_side,
            instrument=c.instrument,
            qty=d.qty,
            notional=d.notional,
            status=IntentStatus.INTENT,
            created_at=ctx.clock.now().isoformat(),
            tag=c.tag,
            leverage=c.leverage,
            option_json=c.option_json,
            signal_time=e.signal_time.isoformat(),
            defense_mode=ctx.risk.defense_mode,
        )

    # ------------------------------------------------------------------ exits
    def _exit(self, trade: OpenTrade, ex: ExitDecision) -> None:
        self.ctx.place_exit(trade.entry, ex.reason, ex.trigger_time or ex.decided_at)


def _position(direction: Direction) -> PositionSide:
    """The journal's `direction` column: the side a bullish/bearish signal takes on the signal ticker."""
    return PositionSide.LONG if direction is Direction.BULLISH else PositionSide.SHORT
