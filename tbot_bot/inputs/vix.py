"""Daily VIX history in the home's cache (`data/cache/vix.csv`): download, validate, merge, and the value a
CLOSE window uses.

Source: Cboe's public daily history CSV (`DATE,OPEN,HIGH,LOW,CLOSE`, dates MM/DD/YYYY; no key), or with
BROKER_NAME=IBKR the broker's own daily bars of the index. A download is validated as a whole before anything
is written: every row needs a real date and a finite, positive close; an HTML page, a truncated file or an
empty one is refused and the cache stays as it was. Good rows are merged into the cache (the new file wins on a
date both hold), so a shorter download never loses history.

Live rule (DESIGN §7): the CLOSE window of session S uses the VIX close of the session before S. When the cache
has no close for exactly that session it is stale, and CLOSE is skipped with reason `no_vix`.
"""

from __future__ import annotations

import csv
import http.client
import io
import math
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbot_bot.enhancements.vix_gatekeeper import VIX_MAX
from tbot_bot.errors import ConfigError, DataError, NetworkError, UsageError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import HTTP_URL_PATTERN, atomic_write_text

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

CBOE_VIX_URL = "https://cdn.cboe.com/api/global/us_indices/daily_prices/VIX_History.csv"
CACHE_COLUMNS = ("date", "open", "high", "low", "close")
NO_VIX = "no_vix"  # the skip reason of a CLOSE window without a fresh VIX close


class VixSourceError(NetworkError):
    """The VIX source could not be reached or failed on its side: no answer, HTTP 5xx, an HTML error page, an
    empty or truncated body (a retry may help: exit 75); nothing was written."""


class VixDataError(DataError):
    """The VIX source answered with something that is not the VIX history (a wrong URL, a page, a bad row), or
    the cache is damaged: a person must fix the URL or the file; nothing was written."""


@dataclass(frozen=True, slots=True)
class VixDay:
    day: date
    open: float | None
    high: float | None
    low: float | None
    close: float


@dataclass(frozen=True, slots=True)
class VixReading:
    """What a CLOSE window of `session` will use: the close of `needed` (the previous session), if held."""

    session: date
    needed: date
    value: float | None
    newest: date | None  # the newest close in the cache (tells how stale it is)

    @property
    def fresh(self) -> bool:
        return self.value is not None

    def describe(self) -> str:
        if self.value is not None:
            return f"VIX {self.value:.2f} (close of {self.needed}) for the CLOSE window of {self.session}"
        held = f"newest close {self.newest}" if self.newest else "no VIX history cached"
        return (
            f"{NO_VIX}: no VIX close for {self.needed} ({held}); CLOSE on {self.session} will be skipped "
            "unless `tbot data vix` refreshes it"
        )


def cache_path(home: BotHome) -> Path:
    return home.cache_dir / "vix.csv"


def _number(raw: str, field: str, line: int) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise VixDataError(f"line {line}: {field} {raw!r} is not a number") from None
    if not math.isfinite(value) or not 0 < value <= VIX_MAX:
        raise VixDataError(
            f"line {line}: {field} {raw!r} is not a VIX level (a number above 0, at most {VIX_MAX:g})"
        )
    return value


def _today() -> date:
    """Today in UTC, a day after New York's at most: no close can be dated later (a replay reads 2011's)."""
    return datetime.now(UTC).date()


def _day(raw: str, line: int) -> date:
    text = raw.strip()
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date, no time of day
        except ValueError:
            continue
    raise VixDataError(f"line {line}: date {raw!r} is not MM/DD/YYYY")


DOWNLOAD_DEADLINE = 45.0  # seconds for the whole history download: under the watchdog's 60 s without a beat
# the rows whose close must lie in their own LOW..HIGH (the gate reads these)
RANGE_CHECKED = timedelta(days=31)
OLD_ROW_SLACK = 0.05  # older rows: a close within 5% beyond its range is history's rounding, not a feed error


def parse_history(text: str, source: str) -> dict[date, VixDay]:
    """Every row of a Cboe-format (or our cache's) VIX CSV, validated; VixDataError names the first bad row (a
    page, an empty or cut-off body is VixSourceError: what a struggling server sends)."""
    head = text.lstrip()[:200].lower()
    if head.startswith(("<!doctype", "<html", "<?xml", "<")):
        raise VixSourceError(f"{source} sent an HTML/XML page, not the VIX CSV")
    if not text.strip():
        raise VixSourceError(f"{source} sent an empty file")
    if not text.endswith("\n"):
        raise VixSourceError(f"{source} sent a truncated file (the last line is incomplete)")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "date" not in header or "close" not in header:
        raise VixDataError(f"{source}: header {header} lacks DATE and CLOSE columns")
    idx = {name: header.index(name) for name in CACHE_COLUMNS if name in header}
    out: dict[date, VixDay] = {}
    for line, row in enumerate(reader, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise VixDataError(f"{source}: line {line} has {len(row)} fields, expected {len(header)}")
        day = _day(row[idx["date"]], line)
        extra = {
            k: _number(row[idx[k]], k.upper(), line) if k in idx and row[idx[k]].strip() else None
            for k in ("open", "high", "low")
        }
        close = _number(row[idx["close"]], "CLOSE", line)
        # a close the row's own range contradicts, a day not yet traded, a day given twice differently: a feed
        # error the CLOSE gate must not trade on. Exactly on the recent rows the gate reads; within 5% on older
        # ones: Cboe's own history holds a 2006 row whose close lies 3 cents under its low, and refusing the whole
        # file for it left the CLOSE window without a VIX every day
        low, high = extra["low"], extra["high"]
        slack = 0.0 if day >= _today() - RANGE_CHECKED else OLD_ROW_SLACK
        if low is not None and high is not None and not low * (1 - slack) <= close <= high * (1 + slack):
            raise VixDataError(
                f"{source}: line {line}: CLOSE {close:g} is outside its day's LOW..HIGH {low:g}..{high:g}"
            )
        if day > _today():
            raise VixDataError(f"{source}: line {line}: date {day} is after today ({_today()})")
        if day in out and out[day].close != close:
            raise VixDataError(
                f"{source}: line {line}: {day} appears twice, with closes {out[day].close:g} and {close:g}"
            )
        out[day] = VixDay(day, extra["open"], extra["high"], extra["low"], close)
    if not out:
        raise VixDataError(f"{source} holds no VIX rows")
    return out


HTTP_URL = re.compile(HTTP_URL_PATTERN)  # what VIX_HISTORY_URL allows (env_bot.py), and --url too


def download_cboe(url: str, timeout: float) -> dict[date, VixDay]:
    """GET the Cboe history CSV (plain HTTP(S), no key) and validate it."""
    if not HTTP_URL.match(url):  # never a file:// or ftp:// read on the operator's behalf
        raise UsageError(f"--url {url!r}: give the http:// or https:// address of a Cboe-format VIX CSV")
    request = urllib.request.Request(url, headers={"User-Agent": "rigd-tbot (VIX history)"})
    # `timeout` bounds each read; the whole download is bounded too, under the watchdog's minute: a server that
    # trickles a byte a second never trips a per-read timeout and held the supervisor until systemd killed it
    deadline = time.monotonic() + min(DOWNLOAD_DEADLINE, max(timeout, 1.0) * 4)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - http(s) URL from config
            ctype = resp.headers.get("Content-Type", "")
            size = resp.headers.get("Content-Length")
            parts = []
            while chunk := resp.read1(1 << 16):  # what has arrived (read() would wait for the whole amount)
                parts.append(chunk)
                if time.monotonic() > deadline:
                    raise VixSourceError(
                        f"{url} is too slow: the VIX history did not arrive within the deadline"
                    )
            body = b"".join(parts)
            if size is not None and size.isdigit() and len(body) < int(size):
                raise VixSourceError(f"{url} broke off the VIX history: {len(body)} of {size} bytes arrived")
    except urllib.error.HTTPError as e:
        if 400 <= e.code < 500 and e.code not in (408, 429):  # the address is wrong, not the server busy
            raise VixDataError(
                f"{url} answered HTTP {e.code} {e.reason}; check the URL (VIX_HISTORY_URL)"
            ) from e
        raise VixSourceError(f"{url} answered HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise VixSourceError(f"cannot reach {url}: {getattr(e, 'reason', e)}") from e
    except http.client.HTTPException as e:  # a body cut off mid-way (IncompleteRead), a garbled status line
        raise VixSourceError(f"{url} broke off the VIX history: {type(e).__name__}: {e}") from e
    if "html" in ctype.lower():
        raise VixSourceError(f"{url} sent an HTML page ({ctype}), not the VIX CSV")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise VixDataError(f"{url} sent bytes that are not UTF-8 text") from None
    return parse_history(text, url)


def load_cache(home: BotHome) -> dict[date, VixDay]:
    path = cache_path(home)
    if not path.exists():
        return {}
    try:
        return parse_history(path.read_text(encoding="utf-8"), str(path))
    except (VixDataError, VixSourceError) as e:
        raise VixDataError(f"the VIX cache is damaged ({e}); delete {path} and run `tbot data vix`") from e


def closes(history: dict[date, VixDay]) -> dict[date, float]:
    return {d: v.close for d, v in history.items()}


def _fmt(x: float | None) -> str:
    return "" if x is None else repr(x)


def merge_into_cache(home: BotHome, fresh: dict[date, VixDay]) -> tuple[int, int]:
    """Merge validated rows into the cache (fresh rows win); returns (rows added, rows now held)."""
    held = load_cache(home)
    added = sum(1 for d in fresh if d not in held)
    merged = {**held, **fresh}
    lines = [",".join(CACHE_COLUMNS)]
    lines += [
        f"{d.isoformat()},{_fmt(v.open)},{_fmt(v.high)},{_fmt(v.low)},{v.close!r}"
        for d, v in sorted(merged.items())
    ]
    atomic_write_text(cache_path(home), "\n".join(lines) + "\n")
    return added, len(merged)


def reading_for(history: dict[date, float], session: date, calendar: str) -> VixReading:
    """The VIX a CLOSE window on `session` uses: the close of the previous session, or none (stale)."""
    from tbot_bot.market_time import previous_session_date

    needed = previous_session_date(session, calendar)
    newest = max(history) if history else None
    return VixReading(session, needed, history.get(needed), newest)


@dataclass(frozen=True, slots=True)
class VixRefresh:
    source: str
    downloaded: int  # rows in the validated download
    added: int  # dates the cache did not hold before
    held: int  # rows in the cache now
    reading: VixReading


def refresh(
    home: BotHome,
    settings: BotSettings,
    session: date,
    *,
    url: str | None = None,
    broker: Any = None,
) -> VixRefresh:
    """Fetch the VIX history from the configured source, merge it into the cache, and say what `session` gets."""
    # VIX_SOURCE=broker: the broker's daily bars of the index (IBKR); cboe: the Cboe CSV at VIX_HISTORY_URL
    if settings.VIX_SOURCE == "broker" and url is None:
        if broker is None or not hasattr(broker, "get_index_daily_closes"):
            raise ConfigError(
                f"BROKER_NAME={settings.BROKER_NAME} does not serve index data; use VIX_SOURCE=cboe"
            )
        raw = broker.get_index_daily_closes("VIX", "CBOE")
        if not raw:
            raise VixSourceError("the broker returned no VIX daily bars")
        fresh = {d: VixDay(d, None, None, None, c) for d, c in raw.items()}
        source = f"{settings.BROKER_NAME} index VIX"
    else:
        source = url or settings.VIX_HISTORY_URL
        fresh = download_cboe(source, float(settings.API_TIMEOUT))
    added, held = merge_into_cache(home, fresh)
    reading = reading_for(closes(load_cache(home)), session, settings.MARKET_CALENDAR)
    return VixRefresh(source, len(fresh), added, held, reading)


def next_close_session(settings: BotSettings, now: datetime) -> date:
    """The session whose CLOSE window comes next: today's if its window has not started, else the next one."""
    from datetime import timedelta

    from tbot_bot.market_time import session_date_at, session_for, window_for

    day = session_date_at(now, settings.MARKET_CALENDAR)
    for _ in range(15):  # the longest run of non-sessions is far shorter
        if (
            session_for(day, settings.MARKET_CALENDAR) is not None
            and window_for("close", day, settings).start > now
        ):
            return day
        day += timedelta(days=1)
    return day
