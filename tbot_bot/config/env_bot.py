"""Every `.env_bot` key, declared once: type, allowed values or range, meaning (DESIGN §4).

`validate_settings(mapping)` returns a frozen `BotSettings` or raises one `ConfigError` listing every
problem at once (key, value found, what is allowed, "did you mean ..." for unknown keys). A missing key is
an error even when its feature is off: DISABLED is a value, OMITTED is a mistake.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import re
import textwrap
import unicodedata
from datetime import time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from tbot_bot.config.template import template_lines
from tbot_bot.errors import ConfigError
from tbot_bot.support.utils_bot import HTTP_URL_PATTERN


class ShortType(StrEnum):
    INVERSE_ETF = "InverseETF"
    LONG_PUT = "LongPut"
    SHORT_SELL = "ShortSell"
    DISABLED = "disabled"


STRATEGIES = ("open", "mid", "close")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BROKERS = ("ALPACA", "IBKR", "TRADIER", "SIM")


def _bool(v: Any) -> Any:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "false"):
            return s == "true"
        raise ValueError("must be true or false")
    return v


def _csv(v: Any) -> Any:
    if isinstance(v, str):
        if not v.strip():
            return ()  # the key's own length rule says what is needed
        parts = tuple(p.strip() for p in v.split(","))
        if not all(parts):
            # a doubled or trailing comma is a typo whose meaning cannot be guessed (a missing value?)
            raise ValueError(
                "has an empty element (two commas in a row, or a comma at the start or end); "
                "separate the values by single commas"
            )
        return parts
    return v


# Plain ASCII decimal notation, optionally with a short exponent: no inf, nan, hex, underscores, 300-digit
# numbers, and no other script's digits (re.ASCII: `𝟒` or `０.０２` are not numbers here, though float() reads them).
_NUMBER = re.compile(r"^[+-]?(\d{1,20}(\.\d{0,20})?|\.\d{1,20})([eE][+-]?\d{1,3})?$", re.ASCII)
_INTEGER = re.compile(r"^[+-]?\d{1,18}$", re.ASCII)
_NOT_A_NUMBER = "must be a finite number written in ASCII digits like 0.5, 30 or 2.5e-3"


def _number_text(v: str) -> str:
    s = v.strip()
    if not _NUMBER.match(s):
        raise ValueError(_NOT_A_NUMBER)
    return s


def _float(v: Any) -> Any:
    if isinstance(v, str):
        s = _number_text(v)
        f = float(s)
        if not math.isfinite(f):
            raise ValueError(_NOT_A_NUMBER)
        if f == 0 and re.search(r"[1-9]", s.lower().partition("e")[0]):
            raise ValueError("is too small to represent (it would become 0); write 0 or a larger value")
        return f
    return v


def _int(v: Any) -> Any:
    if isinstance(v, str):
        s = v.strip()
        if re.fullmatch(r"[+-]?\d{19,}", s, re.ASCII):
            raise ValueError("is far too large a number")
        if not _INTEGER.match(s):
            raise ValueError(
                "must be a whole number (integer) in ASCII digits like 14 (no decimal point, exponent or separators)"
            )
        return int(s)
    return v


def _decimal(v: Any) -> Any:
    if isinstance(v, str):
        try:
            d = Decimal(_number_text(v))
        except InvalidOperation:
            raise ValueError(_NOT_A_NUMBER) from None
        if not d.is_finite():
            raise ValueError(_NOT_A_NUMBER)
        return d
    return v


def _decimal_list(v: Any) -> Any:
    v = _csv(v)
    if isinstance(v, tuple):
        return tuple(_decimal(x) for x in v)
    return v


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$", re.ASCII)


def _hhmm(v: Any) -> Any:
    if isinstance(v, str):
        m = _HHMM.match(v.strip())
        if not m:
            raise ValueError("must be a time HH:MM (00:00-23:59), read in WINDOW_TIMEZONE")
        return time(int(m.group(1)), int(m.group(2)))
    return v


TIMEZONE_NAME_MAX = 64  # the longest IANA name is 32 characters
_DURATION = re.compile(r"^(\d{1,6}(?:\.\d{1,6})?)(ms|s|m)$", re.ASCII)


def _timezone(v: Any) -> Any:
    if isinstance(v, str):
        name = v.strip()
        if name == "exchange":
            return name
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            if len(name) > TIMEZONE_NAME_MAX:
                raise ValueError(name)
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name the file system cannot hold
            raise ValueError(
                "must be `exchange` (the MARKET_CALENDAR's time zone), `UTC` or an IANA time zone name "
                "such as America/New_York"
            ) from None
        return name
    return v


MAINTENANCE_ZONE = "America/New_York"  # BROKER_MAINTENANCE_WINDOW times without a zone are read here (ET)
# IB's published daily reset for North America (Sunday-Friday 00:15-01:45 ET, interactivebrokers.com system status
# page): the IBKR default of `auto`
IBKR_NIGHTLY_RESTART = "00:15-01:45 America/New_York"
_MAINTENANCE = re.compile(r"^(\d\d:\d\d)-(\d\d:\d\d)(?:\s+(\S+))?$", re.ASCII)


def _maintenance_window(v: Any) -> Any:
    """`auto`, `none`/empty, or `HH:MM-HH:MM [IANA zone]` (America/New_York when no zone is given)."""
    if not isinstance(v, str):
        return v
    text = " ".join(v.split())
    if text.lower() in ("", "none"):
        return "none"
    if text.lower() == "auto":
        return "auto"
    allowed = (
        f"must be `auto` (IBKR: its daily reset {IBKR_NIGHTLY_RESTART}; other brokers: none), `none` "
        "(or empty) or HH:MM-HH:MM with an optional IANA time zone (New York time when none), e.g. "
        "23:45-00:45 or 05:45-06:45 Europe/Zurich"
    )
    m = _MAINTENANCE.match(text)
    if not m or not (_HHMM.match(m.group(1)) and _HHMM.match(m.group(2))) or m.group(1) == m.group(2):
        raise ValueError(allowed)
    if m.group(3) is not None:
        try:
            _timezone(m.group(3))
        except ValueError:
            raise ValueError(allowed) from None
        if m.group(3) == "exchange":
            raise ValueError(allowed)
    return text


def _duration(v: Any) -> Any:
    if isinstance(v, str):
        m = _DURATION.match(v.strip())
        if not m:
            raise ValueError("must be a duration like 1s, 500ms or 2m")
        n, unit = float(m.group(1)), m.group(2)
        return n / 1000 if unit == "ms" else n * 60 if unit == "m" else n
    return v


def _disabled_or_fraction(v: Any) -> Any:
    if isinstance(v, str) and v.strip().lower() == "disabled":
        return None
    if isinstance(v, str):
        try:
            return _float(v)
        except ValueError:
            raise ValueError("must be 'disabled' or a fraction in 0.0001..1") from None
    return v


def _no_credentials(url: str) -> str:
    """A URL key holds no user name or password: the configuration is shown (`tbot config show`, the dashboard)
    and audited (logs/config_audit.log) in clear."""
    if "@" in urlsplit(url).netloc:
        raise ValueError(
            "holds a user name or password (user:pass@host): the configuration is shown and audited in clear; "
            "use a URL without credentials"
        )
    return url


def _strip(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _empty_none(v: Any) -> Any:
    if isinstance(v, str) and not v.strip():
        return None
    return _strip(v)


RATE_MIN, RATE_MAX = -0.05, 0.5


def _rate_table(v: Any) -> Any:
    if isinstance(v, str):
        table: dict[str, float] = {}
        pairs = [p.strip() for p in v.split(",")]
        if not v.strip() or any(not p for p in pairs):
            raise ValueError("must be comma-separated JURISDICTION:RATE pairs, e.g. USA:0.045,GBR:0.0425")
        for item in pairs:
            code, sep, rate = item.partition(":")
            code = code.strip()
            if not sep or not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(
                    f"{item!r} is not JURISDICTION:RATE with a three-letter upper-case code (e.g. USA:0.045)"
                )
            if code in table:
                raise ValueError(f"jurisdiction {code} appears twice")
            try:
                number = _float(rate)
            except ValueError:
                raise ValueError(f"rate for {code} {_NOT_A_NUMBER}") from None
            if not RATE_MIN <= number <= RATE_MAX:
                raise ValueError(f"rate for {code} must be within {RATE_MIN}..{RATE_MAX}")
            table[code] = number
        return table
    return v


def _weekdays(v: Any) -> Any:
    v = _csv(v)
    if isinstance(v, tuple) and len(set(v)) != len(v):
        raise ValueError("names a weekday more than once; list each day once, e.g. mon,tue,wed,thu,fri")
    return v


def _home_relative_dir(v: Any) -> Any:
    if isinstance(v, str):
        s = v.strip()
        path = PurePosixPath(s)
        if not s or path.is_absolute() or s.startswith("~") or ".." in path.parts or "\\" in s:
            raise ValueError(
                "must be a folder relative to the bot home that stays inside it (no leading /, ~ or ..), "
                "e.g. backtest_results/strategy_tuning/"
            )
    return v


def _calendar(v: Any) -> Any:
    if isinstance(v, str):
        name = v.strip()
        names = calendar_names()
        if name not in names:
            close = difflib.get_close_matches(name.upper(), sorted(names), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"is not an exchange_calendars calendar (e.g. XNYS, XNAS, XTSE){hint}")
        from tbot_bot.market_time import market_calendar

        try:
            market_calendar(name)  # built once per process (cached): every window and session reads it
        except Exception as exc:  # exchange_calendars raises its own errors for a calendar it cannot build
            why = textwrap.shorten(str(exc), 100, placeholder=" ...")
            raise ValueError(
                f"cannot be used: exchange_calendars cannot build its sessions ({why}); choose another calendar "
                "(e.g. XNYS)"
            ) from None
        return name
    return v


@functools.cache
def calendar_names() -> frozenset[str]:
    """Every name `exchange_calendars.get_calendar` accepts (codes and aliases)."""
    import exchange_calendars as xc

    return frozenset(xc.get_calendar_names(include_aliases=True))


Bool = Annotated[bool, BeforeValidator(_bool)]
Int = Annotated[int, BeforeValidator(_int)]
Float = Annotated[float, BeforeValidator(_float)]
Fraction = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=Decimal("0.000001"), le=1)]
FloatFraction = Annotated[Float, Field(ge=0.0001, le=1)]
Pct = Annotated[Float, Field(ge=0.0001, le=0.5)]
Minutes = Annotated[Int, Field(ge=1, le=390)]
WallTime = Annotated[time, BeforeValidator(_hhmm)]  # HH:MM in WINDOW_TIMEZONE
Money = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=Decimal("0.01"), le=1_000_000)]
MarketCap = Annotated[Int, Field(ge=0, le=10**14)]
FeeAmount = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0, le=1000)]  # currency units
FeeRate = Annotated[
    Decimal, BeforeValidator(_decimal), Field(ge=0, le=Decimal("0.05"))
]  # fraction of notional
Short = Annotated[ShortType, BeforeValidator(_strip)]
OptionalFraction = Annotated[
    Annotated[float, Field(ge=0.0001, le=1)] | None, BeforeValidator(_disabled_or_fraction)
]


class BotSettings(BaseModel):
    """The validated, frozen contents of one `.env_bot`. Attribute names are the keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    # General & debugging
    VERSION_TAG: Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+$", description="must equal VERSION.md")]
    BUILD_MODE: Annotated[Literal["debug", "release"], Field(description="internal behaviour and verbosity")]
    DISABLE_ALL_TRADES: Annotated[Bool, Field(description="master switch: signals logged, no order leaves")]
    DEBUG_LOG_LEVEL: Annotated[Literal["quiet", "info", "verbose"], Field(description="logging verbosity")]
    ENABLE_LOGGING: Annotated[
        Bool, Field(description="write log files; must be true (logs are audit artifacts)")
    ]
    LOG_FORMAT: Annotated[Literal["json", "csv"], Field(description="strategy log and trade history format")]
    # Trade execution & risk
    TRADE_CONFIRMATION_REQUIRED: Annotated[Bool, Field(description="orders wait for `tbot confirm`")]
    API_RETRY_LIMIT: Annotated[Int, Field(ge=0, le=10, description="retries of a failed broker call")]
    API_TIMEOUT: Annotated[Float, Field(ge=0.1, le=300, description="seconds before a broker call times out")]
    FRACTIONAL: Annotated[Bool, Field(description="fractional shares when the broker supports them")]
    TOTAL_ALLOCATION: Annotated[Fraction, Field(description="session cap as a fraction of the float")]
    MAX_TRADES: Annotated[Int, Field(ge=1, le=20, description="entries per strategy window")]
    WEIGHTS: Annotated[tuple[Decimal, ...], BeforeValidator(_decimal_list), Field(description="slot weights")]
    DAILY_LOSS_LIMIT: Annotated[
        Fraction, Field(description="halt when realised loss today exceeds float x this")
    ]
    MAX_RISK_PER_TRADE: Annotated[
        Fraction, Field(description="largest notional per trade, fraction of float")
    ]
    MAX_OPEN_POSITIONS: Annotated[Int, Field(ge=1, le=100, description="open positions across strategies")]
    # Price & volume filters
    MIN_PRICE: Annotated[Money, Field(description="lowest price a candidate may have")]
    MAX_PRICE: Annotated[Money, Field(description="highest price a candidate may have")]
    MIN_VOLUME_THRESHOLD: Annotated[Int, Field(ge=0, le=10**12, description="previous session volume floor")]
    ENABLE_FUNNHUB_FUNDAMENTALS_FILTER: Annotated[
        Bool, Field(description="Finnhub fundamentals guard (spec spelling)")
    ]
    MAX_PE_RATIO: Annotated[Float, Field(ge=0.1, le=10000, description="highest normalized P/E")]
    MAX_DEBT_EQUITY: Annotated[Float, Field(ge=0, le=1000, description="highest total debt / total equity")]
    # Strategy routing & broker
    BROKER_NAME: Annotated[
        Literal["ALPACA", "IBKR", "TRADIER", "SIM"],
        BeforeValidator(_strip),
        Field(description="the one broker"),
    ]
    STRATEGY_SEQUENCE: Annotated[
        tuple[Literal["open", "mid", "close"], ...], BeforeValidator(_csv), Field(min_length=1)
    ]
    STRATEGY_OVERRIDE: Annotated[Literal["open", "mid", "close"] | None, BeforeValidator(_empty_none)]
    # Rebalance & failover (the accounting system acts; the bot only notifies)
    REBALANCE_ENABLED: Bool
    REBALANCE_THRESHOLD: FloatFraction
    REBALANCE_CHECK_INTERVAL: Annotated[Int, Field(ge=60, le=86400, description="seconds between checks")]
    REBALANCE_PAUSE_ENTRIES: Bool
    # Global time & polling
    TRADING_DAYS: Annotated[
        tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...],
        BeforeValidator(_weekdays),
        Field(min_length=1),
    ]
    SLEEP_TIME: Annotated[
        float, BeforeValidator(_duration), Field(ge=0.01, le=60, description="seconds between polls")
    ]
    MARKET_DATA_STALE_SECONDS: Annotated[
        Int,
        Field(
            ge=120,  # two one-minute bar intervals: a bar that is merely late is not a stopped feed
            le=3600,
            description="a window's feed with no new bar this long suspends its entries (run clock seconds)",
        ),
    ]
    BROKER_MAINTENANCE_WINDOW: Annotated[
        str,
        BeforeValidator(_maintenance_window),
        Field(description="daily planned broker pause (auto, none or HH:MM-HH:MM [zone])"),
    ]
    # OPEN
    MAX_GAP_PCT_OPEN: FloatFraction
    MIN_MARKET_CAP_OPEN: MarketCap
    MAX_MARKET_CAP_OPEN: MarketCap
    STRAT_OPEN_ENABLED: Bool
    START_TIME_OPEN: WallTime
    OPEN_ANALYSIS_TIME: Minutes
    OPEN_BREAKOUT_TIME: Minutes
    OPEN_MONITORING_TIME: Minutes
    STRAT_OPEN_BUFFER: Annotated[Float, Field(ge=0, le=0.5)]
    SHORT_TYPE_OPEN: Short
    OPEN_TRAILING_STOP_PCT: Pct
    # MID
    MAX_GAP_PCT_MID: FloatFraction
    MIN_MARKET_CAP_MID: MarketCap
    MAX_MARKET_CAP_MID: MarketCap
    STRAT_MID_ENABLED: Bool
    START_TIME_MID: WallTime
    MID_ANALYSIS_TIME: Minutes
    MID_BREAKOUT_TIME: Minutes
    MID_MONITORING_TIME: Minutes
    STRAT_MID_VWAP_THRESHOLD: Pct
    SHORT_TYPE_MID: Short
    MID_STOP_LOSS_PCT: Pct
    ADX_PERIOD: Annotated[Int, Field(ge=2, le=100)]
    ADX_THRESHOLD: Annotated[Float, Field(ge=1, le=100)]
    BOLLINGER_PERIOD: Annotated[Int, Field(ge=2, le=200)]
    BOLLINGER_STD: Annotated[Float, Field(ge=0.1, le=10)]
    # CLOSE
    MAX_GAP_PCT_CLOSE: FloatFraction
    MIN_MARKET_CAP_CLOSE: MarketCap
    MAX_MARKET_CAP_CLOSE: MarketCap
    STRAT_CLOSE_ENABLED: Bool
    START_TIME_CLOSE: WallTime
    CLOSE_ANALYSIS_TIME: Minutes
    CLOSE_BREAKOUT_TIME: Minutes
    CLOSE_MONITORING_TIME: Minutes
    STRAT_CLOSE_VIX_THRESHOLD: Annotated[Float, Field(ge=0, le=200)]
    SHORT_TYPE_CLOSE: Short
    CLOSE_STOP_LOSS_PCT: Pct
    STRAT_CLOSE_MOMENTUM_PCT: Pct
    STRAT_CLOSE_SPIKE_PCT: Pct
    # Candidate filters shared by strategies
    MAX_SPREAD_PCT: Pct
    MIN_MARKET_CAP_FUNDAMENTAL: MarketCap
    # Notifications
    NOTIFY_ON_FILL: Bool
    NOTIFY_ON_EXIT: Bool
    NOTIFY_ON_FAILURE: Bool
    # log = no outside alerts, chosen on purpose (a live start refuses a channel whose secret is missing)
    CRITICAL_ALERT_CHANNEL: Literal["email", "slack", "sms", "pagerduty", "log"]
    ROUTINE_ALERT_CHANNEL: Literal["email", "slack", "log"]
    # Reporting & ledger
    LEDGER_EXPORT_MODE: Literal["auto", "off"]
    CURRENCY_CODE: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    LEDGER_BACKUP_KEEP: Annotated[Int, Field(ge=1, le=10000)]
    LOG_RETENTION_DAYS: Annotated[Int, Field(ge=1, le=3650)]
    MARKET_CALENDAR: Annotated[str, BeforeValidator(_calendar)]
    WINDOW_TIMEZONE: Annotated[str, BeforeValidator(_timezone), Field(min_length=1)]
    # Defense mode
    DEFENSE_MODE_ACTIVE: Bool
    DEFENSE_MODE_TRADE_LIMIT_PCT: Annotated[Int, Field(ge=1, le=100)]
    DEFENSE_MODE_TOTAL_ALLOCATION: Fraction
    DEFENSE_MODE_TRIGGER_DRAWDOWN: OptionalFraction
    DEFENSE_MODE_TRIGGER_WIN_RATE: OptionalFraction
    # Enhancements
    ENABLE_REBALANCE_NOTIFIER: Bool
    REBALANCE_TRIGGER_PCT: Annotated[Float, Field(ge=0.01, le=100)]
    RBAC_ENABLED: Bool
    DEFAULT_USER_ROLE: Literal["admin", "operator", "auditor", "viewer"]
    WEB_IDLE_TIMEOUT_MINUTES: Annotated[
        Int, Field(ge=1, le=1440, description="a dashboard session unused this long ends")
    ]
    ENABLE_STRATEGY_OPTIMIZER: Bool
    # at least two blocks of 20 sessions: the least one walk-forward fold accepts (optimizer/evidence.py)
    OPTIMIZER_BACKTEST_LOOKBACK_DAYS: Annotated[Int, Field(ge=40, le=3650)]
    OPTIMIZER_ALGORITHM: Literal["grid_search", "bayesian", "genetic"]
    OPTIMIZER_OUTPUT_DIR: Annotated[
        str, Field(pattern=r"^[A-Za-z0-9_\-./]+$"), AfterValidator(_home_relative_dir)
    ]
    ENABLE_SLIPPAGE_MODEL: Bool
    SLIPPAGE_SIMULATION_TYPE: Literal["none", "rule_based", "randomized"]
    SLIPPAGE_MEAN_PCT: Annotated[Float, Field(ge=0, le=10, description="percent, 0.15 = 0.15%")]
    SLIPPAGE_STDDEV_PCT: Annotated[Float, Field(ge=0, le=10, description="percent")]
    SIM_FEE_PROFILE: Annotated[
        Literal["alpaca", "ibkr_fixed", "ibkr_tiered", "tradier", "custom"],
        BeforeValidator(_strip),
        Field(
            description="fee schedule of the sim, backtests and the optimizer (custom: the SIM_* fee keys)"
        ),
    ]
    SIM_COMMISSION_PER_SHARE: FeeAmount
    SIM_COMMISSION_PER_ORDER: FeeAmount
    SIM_COMMISSION_MIN: FeeAmount
    SIM_COMMISSION_PCT: FeeRate
    SIM_SEC_FEE_RATE: FeeRate
    SIM_FINRA_TAF_PER_SHARE: FeeAmount
    SIM_FINRA_TAF_MAX: FeeAmount
    ENABLE_BSM_FILTER: Bool
    MAX_BSM_DEVIATION: FloatFraction
    RISK_FREE_RATE: Annotated[Float, Field(ge=-0.05, le=0.5)]
    RISK_FREE_RATE_SOURCE: Literal["static", "dynamic"]
    RISK_FREE_RATE_TABLE: Annotated[dict[str, float], BeforeValidator(_rate_table)]
    FINNHUB_CALLS_PER_MINUTE: Annotated[Int, Field(ge=1, le=6000)]
    # Live inputs: VIX history, trading universe
    VIX_SOURCE: Annotated[Literal["cboe", "broker"], BeforeValidator(_strip)]
    VIX_HISTORY_URL: Annotated[
        str, BeforeValidator(_strip), Field(pattern=HTTP_URL_PATTERN), AfterValidator(_no_credentials)
    ]
    UNIVERSE_EXCHANGES: Annotated[
        tuple[Literal["NYSE", "NASDAQ", "ARCA", "AMEX", "BATS"], ...],
        BeforeValidator(_csv),
        Field(min_length=1),
    ]
    UNIVERSE_MAX_SYMBOLS: Annotated[Int, Field(ge=1, le=20000)]
    # Broker toggles (exactly one true, matching BROKER_NAME)
    ALPACA_ENABLED: Bool
    IBKR_ENABLED: Bool
    TRADIER_ENABLED: Bool
    SIM_ENABLED: Bool

    @model_validator(mode="after")
    def _cross_key_rules(self) -> BotSettings:
        problems = [p for rule in CROSS_KEY_RULES if (p := rule(self))]
        if problems:
            raise ValueError(_RULE_SEP.join(problems))
        return self

    # Convenience views used across the engine
    def short_type(self, strategy: str) -> ShortType:
        return {"open": self.SHORT_TYPE_OPEN, "mid": self.SHORT_TYPE_MID, "close": self.SHORT_TYPE_CLOSE}[
            strategy
        ]

    def strategy_enabled(self, strategy: str) -> bool:
        return {
            "open": self.STRAT_OPEN_ENABLED,
            "mid": self.STRAT_MID_ENABLED,
            "close": self.STRAT_CLOSE_ENABLED,
        }[strategy]


KEYS: tuple[str, ...] = tuple(BotSettings.model_fields)


WEIGHTS_SUM_TOLERANCE = Decimal("0.000000001")  # stated in the template's WEIGHTS comment
_RULE_SEP = "\x1f"  # joins cross-key problems inside one pydantic error


# Cross-key rules: small named functions, each returns a problem message or None.
# keys that configure how a bot runs, not what it trades: logging, alerts, the dashboard, retries and polling,
# rebalance notices, the optimizer's schedule, data downloads, the broker switches BROKER_NAME already says. No
# backtest or optimizer trial reads them (tests/test_optimizer.py checks the evaluation code for each), so an
# optimizer study's evidence does not depend on them (its fingerprint and a proposal's base leave them out)
OPERATIONS_KEYS = frozenset(
    {
        "VERSION_TAG", "BUILD_MODE", "DEBUG_LOG_LEVEL", "ENABLE_LOGGING", "LOG_FORMAT", "TRADE_CONFIRMATION_REQUIRED",
        "API_RETRY_LIMIT", "API_TIMEOUT", "REBALANCE_ENABLED", "REBALANCE_THRESHOLD", "REBALANCE_CHECK_INTERVAL",
        "REBALANCE_PAUSE_ENTRIES", "SLEEP_TIME", "MARKET_DATA_STALE_SECONDS", "BROKER_MAINTENANCE_WINDOW",
        "NOTIFY_ON_FILL", "NOTIFY_ON_EXIT", "NOTIFY_ON_FAILURE", "CRITICAL_ALERT_CHANNEL", "ROUTINE_ALERT_CHANNEL",
        "LEDGER_EXPORT_MODE", "CURRENCY_CODE", "LEDGER_BACKUP_KEEP", "LOG_RETENTION_DAYS", "ENABLE_REBALANCE_NOTIFIER",
        "REBALANCE_TRIGGER_PCT", "RBAC_ENABLED", "DEFAULT_USER_ROLE", "WEB_IDLE_TIMEOUT_MINUTES",
        "ENABLE_STRATEGY_OPTIMIZER", "OPTIMIZER_BACKTEST_LOOKBACK_DAYS", "OPTIMIZER_ALGORITHM", "OPTIMIZER_OUTPUT_DIR",
        "FINNHUB_CALLS_PER_MINUTE", "VIX_SOURCE", "VIX_HISTORY_URL", "UNIVERSE_EXCHANGES", "UNIVERSE_MAX_SYMBOLS",
        "ALPACA_ENABLED", "IBKR_ENABLED", "TRADIER_ENABLED", "SIM_ENABLED",
    }
)  # fmt: skip


def trading_values(settings: BotSettings) -> dict[str, Any]:
    """The settings as JSON values, but OPERATIONS_KEYS: what a backtest or an optimizer trial can depend on."""
    return {k: v for k, v in settings.model_dump(mode="json").items() if k not in OPERATIONS_KEYS}


def rule_weights_match_max_trades(s: BotSettings) -> str | None:
    if len(s.WEIGHTS) != s.MAX_TRADES:
        return f"WEIGHTS has {len(s.WEIGHTS)} values but MAX_TRADES={s.MAX_TRADES}; give exactly one weight per trade slot"
    return None


def rule_weights_are_fractions_summing_to_one(s: BotSettings) -> str | None:
    bad = [str(w) for w in s.WEIGHTS if not (0 < w <= 1)]
    if bad:
        return f"WEIGHTS values {', '.join(bad)} are outside (0, 1]"
    total = sum(s.WEIGHTS, Decimal(0))
    if abs(total - 1) > WEIGHTS_SUM_TOLERANCE:
        return f"WEIGHTS sum to {total}; they must sum to 1 (within {WEIGHTS_SUM_TOLERANCE:f})"
    return None


def rule_price_range(s: BotSettings) -> str | None:
    if not s.MIN_PRICE < s.MAX_PRICE:
        return f"MIN_PRICE={s.MIN_PRICE} must be below MAX_PRICE={s.MAX_PRICE}"
    return None


def rule_market_cap_ranges(s: BotSettings) -> str | None:
    bad = []
    for strat in ("OPEN", "MID", "CLOSE"):
        lo, hi = getattr(s, f"MIN_MARKET_CAP_{strat}"), getattr(s, f"MAX_MARKET_CAP_{strat}")
        if not lo < hi:
            bad.append(f"MIN_MARKET_CAP_{strat}={lo} must be below MAX_MARKET_CAP_{strat}={hi}")
    return "; ".join(bad) or None


def rule_one_broker_enabled(s: BotSettings) -> str | None:
    enabled = [b for b in BROKERS if getattr(s, f"{b}_ENABLED")]
    if enabled != [s.BROKER_NAME]:
        return (
            f"exactly one of ALPACA_ENABLED, IBKR_ENABLED, TRADIER_ENABLED, SIM_ENABLED must be true and match "
            f"BROKER_NAME={s.BROKER_NAME}; enabled now: {', '.join(enabled) or 'none'}"
        )
    return None


def rule_short_types_supported(s: BotSettings) -> str | None:
    from tbot_bot.broker.capabilities import capabilities_for

    caps = capabilities_for(s.BROKER_NAME)
    bad = []
    for strat in STRATEGIES:
        st = s.short_type(strat)
        if st is ShortType.LONG_PUT and not caps.options:
            bad.append(
                f"SHORT_TYPE_{strat.upper()}=LongPut but broker {s.BROKER_NAME} does not trade options"
            )
        if st is ShortType.SHORT_SELL and not caps.short_sell:
            bad.append(f"SHORT_TYPE_{strat.upper()}=ShortSell but broker {s.BROKER_NAME} does not short sell")
    return "; ".join(bad) or None


def rule_sequence_unique(s: BotSettings) -> str | None:
    if len(set(s.STRATEGY_SEQUENCE)) != len(s.STRATEGY_SEQUENCE):
        return f"STRATEGY_SEQUENCE={','.join(s.STRATEGY_SEQUENCE)} repeats a strategy"
    return None


def _starts_of_running_windows(s: BotSettings) -> tuple[dict[str, time], list[str]]:
    """The START_TIME_X of each window that runs (route), and those windows in the order they start."""
    from tbot_bot.strategy.strategy_router import route

    starts = {name: getattr(s, f"START_TIME_{name.upper()}") for name in route(s).run}
    return starts, sorted(starts, key=lambda name: starts[name])


def rule_sequence_follows_the_day(s: BotSettings) -> str | None:
    """The windows that run start in STRATEGY_SEQUENCE order: the supervisor flattens and books the day after
    the sequence's last window, so a later window listed earlier would trade after the day was booked."""
    from tbot_bot.strategy.strategy_router import route

    run = route(s).run
    if len(set(run)) != len(run):
        return None  # rule_sequence_unique names it
    starts, by_time = _starts_of_running_windows(s)
    for first, second in itertools.pairwise(by_time):
        if starts[first] == starts[second]:
            return (
                f"START_TIME_{first.upper()} and START_TIME_{second.upper()} are both {starts[first]:%H:%M}: "
                "two windows that run cannot start together (which one the day ends with would be chance)"
            )
    if list(run) != by_time:
        times = ", ".join(f"{name} {starts[name]:%H:%M}" for name in by_time)
        return (
            f"STRATEGY_SEQUENCE={','.join(s.STRATEGY_SEQUENCE)} does not list the windows in the order they "
            f"start ({times}, WINDOW_TIMEZONE time): the day is flattened and booked after the sequence's last "
            f"window, so list them as {','.join(by_time)}"
        )
    return None


def rule_logging_enabled(s: BotSettings) -> str | None:
    if not s.ENABLE_LOGGING:
        return "ENABLE_LOGGING must be true: strategy logs and trade history are required audit artifacts"
    return None


def rule_windows_fit_the_day(s: BotSettings) -> str | None:
    bad = []
    for strat in STRATEGIES:
        up = strat.upper()
        if window_end_minute(s, strat) > 24 * 60:
            bad.append(
                f"the {strat} window (START_TIME_{up} + analysis + breakout + monitoring) runs past midnight"
                f" ({s.WINDOW_TIMEZONE} time)"
            )
    return "; ".join(bad) or None


def window_end_minute(s: BotSettings, strategy: str) -> int:
    """Minutes after midnight (WINDOW_TIMEZONE) at which a window is over: START_TIME_X + analysis + breakout +
    monitoring (a breakout on its last bar is entered at the window's breakout end and held M minutes)."""
    up = strategy.upper()
    start: time = getattr(s, f"START_TIME_{up}")
    return (
        start.hour * 60
        + start.minute
        + getattr(s, f"{up}_ANALYSIS_TIME")
        + getattr(s, f"{up}_BREAKOUT_TIME")
        + getattr(s, f"{up}_MONITORING_TIME")
    )


def rule_windows_run_one_after_another(s: BotSettings) -> str | None:
    """The supervisor runs the day's windows one after another, each until its last position is closed: a window
    that starts before the previous one can have ended would start late, screen and trade at other moments than
    the backtest does, so the windows that run may not overlap."""
    starts, by_time = _starts_of_running_windows(s)
    if len(set(starts.values())) != len(starts):
        return None  # rule_sequence_follows_the_day names two windows starting together
    bad = []
    for first, second in itertools.pairwise(by_time):
        end = window_end_minute(s, first)
        nxt = starts[second]
        if end > nxt.hour * 60 + nxt.minute:
            up = first.upper()
            bad.append(
                f"the {first} window runs to {end // 60:02d}:{end % 60:02d} (START_TIME_{up} + {up}_ANALYSIS_TIME + "
                f"{up}_BREAKOUT_TIME + {up}_MONITORING_TIME), past START_TIME_{second.upper()}={nxt:%H:%M} "
                f"({s.WINDOW_TIMEZONE} time): the windows run one after another, so {second} would start late; "
                f"shorten the {first} window or start {second} at {end // 60:02d}:{end % 60:02d} or later"
            )
    return "; ".join(bad) or None


def rule_defense_mode_reduces_risk(s: BotSettings) -> str | None:
    # DEFENSE_MODE_TOTAL_ALLOCATION replaces TOTAL_ALLOCATION in defense mode: above it, defense would add risk
    if s.DEFENSE_MODE_TOTAL_ALLOCATION > s.TOTAL_ALLOCATION:
        return (
            f"DEFENSE_MODE_TOTAL_ALLOCATION={s.DEFENSE_MODE_TOTAL_ALLOCATION} exceeds TOTAL_ALLOCATION="
            f"{s.TOTAL_ALLOCATION}: defense mode must not size larger than normal trading; set it at most "
            f"{s.TOTAL_ALLOCATION}"
        )
    return None


def rule_a_window_runs(s: BotSettings) -> str | None:
    """Boot refuses a configuration with no window to run (strategy_router.self_check); refused at save too."""
    from tbot_bot.strategy.strategy_router import route

    r = route(s)
    if r.run:
        return None
    why = "; ".join(f"{name}: {reason}" for name, reason in sorted(r.skipped.items()))
    return (
        f"no strategy window would run ({why}): enable one (STRAT_X_ENABLED=true, listed in STRATEGY_SEQUENCE); "
        "to stop trading use DISABLE_ALL_TRADES=true or `tbot stop`"
    )


def rule_windows_on_the_session_date(s: BotSettings) -> str | None:
    """START_TIME_* are read in WINDOW_TIMEZONE on the date there that falls on the session's date at the exchange
    (01:30 Sydney is the New York open of the day before). The windows that run must all fall one way, whatever the
    season: the cron fires on TRADING_DAYS moved by that one shift."""
    from tbot_bot.market_time import SHIFT_SEASONS, window_date_shift
    from tbot_bot.strategy.strategy_router import route

    shifts = {
        (name, day): window_date_shift(s, name, day) for name in route(s).run for day in SHIFT_SEASONS
    }  # fmt: skip
    if len(set(shifts.values())) <= 1:
        return None
    where = ", ".join(
        f"{name} {getattr(s, f'START_TIME_{name.upper()}'):%H:%M} on {day:%b}: "
        + ("the session's date" if n == 0 else f"{abs(n)} day {'after' if n > 0 else 'before'} it")
        for (name, day), n in shifts.items()
    )
    return (
        f"in WINDOW_TIMEZONE={s.WINDOW_TIMEZONE} the day's windows do not all start on one date of the session's "
        f"({where}): a session must lie within one date of that zone; use WINDOW_TIMEZONE=exchange (START_TIME_* "
        "in exchange time) or UTC"
    )


def rule_mid_indicators_ready_in_its_breakout(s: BotSettings) -> str | None:
    """MID's ADX and Bollinger bands start at the session open (no earlier bars): ADX(ADX_PERIOD) has its first value
    on bar 2*ADX_PERIOD, the bands on bar BOLLINGER_PERIOD. A period whose first value comes after MID's last
    breakout bar blocks every entry, every day."""
    from tbot_bot.market_time import SHIFT_SEASONS, exchange_zone, window_for
    from tbot_bot.strategy.strategy_router import route

    if "mid" not in route(s).run:
        return None
    w = min(
        (window_for("mid", day, s) for day in SHIFT_SEASONS),
        key=lambda w: w.breakout_end - (w.session_open or w.breakout_end),
    )
    if w.session_open is None or w.breakout_end <= w.session_open:
        return None  # a window before the open is another rule's problem
    bars = int((w.breakout_end - w.session_open).total_seconds() // 60)
    end = f"{w.breakout_end.astimezone(exchange_zone(s.MARKET_CALENDAR)):%H:%M} exchange time"
    bad = []
    # ADX_PERIOD: ADX's first value needs 2*ADX_PERIOD bars of the session
    if 2 * s.ADX_PERIOD > bars:
        bad.append(
            f"ADX_PERIOD={s.ADX_PERIOD} (its first value needs {2 * s.ADX_PERIOD} bars; at most {bars // 2})"
        )
    # BOLLINGER_PERIOD: the bands need BOLLINGER_PERIOD bars of the session
    if s.BOLLINGER_PERIOD > bars:
        bad.append(f"BOLLINGER_PERIOD={s.BOLLINGER_PERIOD} (needs {s.BOLLINGER_PERIOD} bars; at most {bars})")
    if not bad:
        return None
    return (
        f"MID could never enter: its indicators start at the session open and its breakout ends at {end}, "
        f"{bars} bars in: {'; '.join(bad)}; lower the period or start MID later"
    )


def rule_a_broker_call_ends_before_the_watchdog_gives_up(s: BotSettings) -> str | None:
    """A broker call that times out on every attempt lasts API_TIMEOUT x (API_RETRY_LIMIT + 1) plus the back-off
    (IBKR: each attempt first reconnects as often, with its own back-off); past MAX_EXTERNAL_WAIT the keep-alive
    stops vouching and systemd restarts the bot in the middle of an outage it should ride out."""
    from tbot_bot.config.retry import MAX_EXTERNAL_WAIT, longest_broker_call

    longest = longest_broker_call(s.BROKER_NAME, float(s.API_TIMEOUT), int(s.API_RETRY_LIMIT))
    if longest < MAX_EXTERNAL_WAIT:
        return None
    # the largest API_TIMEOUT that fits, to the hundredth: the duration is linear in it (attempts x it + back-off)
    backoff = longest_broker_call(s.BROKER_NAME, 0.0, int(s.API_RETRY_LIMIT))
    per_second = longest_broker_call(s.BROKER_NAME, 1.0, int(s.API_RETRY_LIMIT)) - backoff
    most = round(math.ceil((MAX_EXTERNAL_WAIT - backoff) / per_second * 100) / 100 - 0.01, 2)
    nested = " (IBKR reconnects inside each attempt as often)" if s.BROKER_NAME == "IBKR" else ""
    return (
        f"API_TIMEOUT={s.API_TIMEOUT:g} s with API_RETRY_LIMIT={s.API_RETRY_LIMIT}{nested}: a broker call that times "
        f"out on every attempt lasts {longest:g} s with its back-off, and the watchdog keep-alive vouches for one call "
        f"for less than {MAX_EXTERNAL_WAIT:g} s: systemd would restart the bot in the outage; "
        + (
            f"set API_TIMEOUT at most {most:g} with this API_RETRY_LIMIT, or retry fewer times"
            if most >= 0.1
            else "retry fewer times"
        )
    )


def rule_trading_days_have_sessions(s: BotSettings) -> str | None:
    # TRADING_DAYS: a weekday on which MARKET_CALENDAR never opens runs nothing; none at all is a bot that never trades
    from tbot_bot.market_time import calendar_weekdays

    open_days = calendar_weekdays(s.MARKET_CALENDAR)
    if set(s.TRADING_DAYS) & set(open_days):
        return None
    return (
        f"TRADING_DAYS={','.join(s.TRADING_DAYS)} names no day {s.MARKET_CALENDAR} has sessions on: no window would "
        f"ever run; use some of {','.join(open_days)}"
    )


def rule_rebalance_thresholds_agree(s: BotSettings) -> str | None:
    # the owner's document names the rebalance band twice (fraction and percent): one setting, two spellings
    if abs(s.REBALANCE_TRIGGER_PCT / 100 - float(s.REBALANCE_THRESHOLD)) > 1e-9:
        return (
            f"REBALANCE_TRIGGER_PCT={s.REBALANCE_TRIGGER_PCT} (percent) and REBALANCE_THRESHOLD="
            f"{s.REBALANCE_THRESHOLD} (fraction) must name the same band, e.g. 10 and 0.10"
        )
    return None


def rule_vix_source_broker_has_it(s: BotSettings) -> str | None:
    # VIX_SOURCE=broker: only the IBKR adapter serves index data
    if s.VIX_SOURCE == "broker" and s.BROKER_NAME != "IBKR":
        return f"VIX_SOURCE=broker needs BROKER_NAME=IBKR (found {s.BROKER_NAME}); use VIX_SOURCE=cboe"
    return None


CROSS_KEY_RULES = (
    rule_vix_source_broker_has_it,
    rule_weights_match_max_trades,
    rule_weights_are_fractions_summing_to_one,
    rule_price_range,
    rule_market_cap_ranges,
    rule_one_broker_enabled,
    rule_short_types_supported,
    rule_sequence_unique,
    rule_sequence_follows_the_day,
    rule_logging_enabled,
    rule_windows_fit_the_day,
    rule_windows_run_one_after_another,
    rule_defense_mode_reduces_risk,
    rule_a_window_runs,
    rule_trading_days_have_sessions,
    rule_a_broker_call_ends_before_the_watchdog_gives_up,
    rule_mid_indicators_ready_in_its_breakout,
    rule_windows_on_the_session_date,
    rule_rebalance_thresholds_agree,
)


# ---------------------------------------------------------------- parsing and validation

_LINE = re.compile(r"^\s*(export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("#"):
        return ""
    if raw[:1] in ('"', "'"):
        q = raw[0]
        end = raw.find(q, 1)
        if end > 0:
            return raw[1:end]
    # an inline comment starts at " #"
    m = re.search(r"\s#", raw)
    if m:
        raw = raw[: m.start()]
    return raw.strip()


def _control_character(line: str) -> str | None:
    """The first control or line-separator character in a line (tab is allowed), if any."""
    for ch in line:
        if ch != "\t" and unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return ch
    return None


def parse_env_text(text: str) -> tuple[dict[str, str], list[str]]:
    """KEY=VALUE lines (comments, quotes, inline comments allowed) -> mapping and syntax problems.

    Lines split on "\n" only (a trailing "\r" is dropped), so a form feed, U+001C or U+0085 inside a value
    is reported with its line number instead of silently cutting the value. A leading UTF-8 BOM is ignored.
    """
    values: dict[str, str] = {}
    first_line: dict[str, int] = {}
    problems: list[str] = []
    for n, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = line.removesuffix("\r")
        bad = _control_character(line)
        if bad is not None:
            m = _LINE.match(line)
            where = f"{m.group('key')} on line {n}" if m else f"line {n}"
            problems.append(
                f"{where} contains the control character U+{ord(bad):04X}; values must be plain one-line text"
            )
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            problems.append(f"line {n}: {line.strip()[:60]!r} is not KEY=VALUE")
            continue
        key = m.group("key")
        if key in first_line:
            problems.append(f"{key} appears twice (lines {first_line[key]} and {n}); keep one")
            continue
        first_line[key] = n
        values[key] = _unquote(m.group("value"))
    return values, problems


# keys an older template had that no longer exist, with what replaces them
REMOVED_KEYS = {
    "FAILOVER_ENABLED": "one broker per bot (DESIGN §9): there is no failover",
    "FAILOVER_LOG_TAG": "one broker per bot (DESIGN §9): no trade is ever rerouted or tagged",
    "SIMULATED_LATENCY_MS": "orders fill at the open of the bar after the signal bar; a latency under a minute "
    "cannot move a fill on 1-minute bars",
}


def _unknown_key_problem(key: str) -> str:
    if key in REMOVED_KEYS:
        return f"{key} was removed ({REMOVED_KEYS[key]}); delete the line with `tbot config edit`"
    # keys are upper case: a key typed in lower case is matched as written in capitals first
    close = (
        [key.upper()]
        if key.upper() in KEYS
        else difflib.get_close_matches(key.upper(), KEYS, n=1, cutoff=0.75)
    )
    hint = f"; did you mean {close[0]}?" if close else "; `tbot config show` lists every key"
    return f"{key} is not a known key{hint}"


def _describe_error(err: dict[str, Any], mapping: dict[str, str]) -> str:
    loc = err.get("loc") or ()
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:
        return msg
    key = str(loc[0])
    if err.get("type") == "missing" and key == "WINDOW_TIMEZONE":
        # a home written before WINDOW_TIMEZONE existed has its START_TIME_* in UTC: no silent reinterpretation
        return (
            "WINDOW_TIMEZONE is missing: add WINDOW_TIMEZONE=UTC to keep START_TIME_* in UTC as before, or "
            "WINDOW_TIMEZONE=exchange with START_TIME_* in exchange time (09:30 = the New York open)"
        )
    if err.get("type") == "missing" and key == "SIM_FEE_PROFILE":
        # a home written before fee profiles charged its SIM_* keys: say how to keep exactly that
        return (
            "SIM_FEE_PROFILE is missing: add SIM_FEE_PROFILE=custom to keep charging the SIM_* fee keys as before, "
            "or the profile of your broker (alpaca, ibkr_fixed, ibkr_tiered or tradier)"
        )
    if err.get("type") == "missing":
        line = template_lines().get(key)
        # a home written before the key existed: name the template's line that keeps today's default
        add = f"; add the template's line {key}={line.value} to keep its default" if line is not None else ""
        return f"{key} is missing (every key must be present, even when its feature is off){add}"
    found = str(mapping.get(key, err.get("input")))
    if "@" in found:
        # a URL's user name and password are never echoed (the refusal says why it was refused); a text, not a
        # parse: a malformed URL (an unclosed IPv6 bracket) is refused with its message, not a traceback
        found = re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/?#@\s]*@", r"\1***@", found)
    shown = found if len(found) <= 60 else f"{found[:40]}... ({len(found)} characters)"
    # pydantic shows Decimal bounds as Decimal('0.0001'); people read 0.0001
    msg = re.sub(r"Decimal\('([^']*)'\)", r"\1", msg)
    if err.get("type") in (
        "greater_than_equal",
        "less_than_equal",
        "greater_than",
        "less_than",
    ) or msg.startswith("is far too large"):
        # a bound: say it in the key's own terms (its unit and allowed range, as the template's comment has them)
        field = BotSettings.model_fields.get(key)
        unit = f" ({field.description})" if field is not None and field.description else ""
        line = template_lines().get(key)
        allowed = re.search(r"range (\S+)", line.comment) if line is not None else None
        msg = (
            msg.replace("Input should be ", "must be ")
            + unit
            + (f"; allowed {allowed.group(1)}" if allowed else "")
        )
    return f"{key}={shown!r} is not allowed: {msg}"


@functools.cache
def _field_adapters() -> dict[str, TypeAdapter[Any]]:
    """One validator per key, so each key is checked on its own and the valid ones survive a bad neighbour."""
    config = ConfigDict(str_strip_whitespace=True, allow_inf_nan=False)
    adapters: dict[str, TypeAdapter[Any]] = {}
    for key, info in BotSettings.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        adapters[key] = TypeAdapter(annotation, config=config)
    return adapters


def parse_known_values(mapping: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Each known key validated on its own: (the values that are individually valid, problems)."""
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for key, adapter in _field_adapters().items():
        if key not in mapping:
            problems.append(_describe_error({"type": "missing", "loc": (key,)}, mapping))
            continue
        try:
            parsed[key] = adapter.validate_python(mapping[key])
        except ValidationError as exc:
            problems += [_describe_error({**err, "loc": (key,)}, mapping) for err in exc.errors()]
        except (OSError, ArithmeticError, TypeError) as exc:
            # a validator's library failing on an odd value: still a problem of this key, named as such
            problems.append(_describe_error({"loc": (key,), "msg": f"cannot be read ({exc})"}, mapping))
    return parsed, problems


def cross_key_problems(values: dict[str, Any]) -> list[str]:
    """Every cross-key rule whose keys are individually valid; a rule needing an invalid key is skipped
    (that key is already reported)."""
    partial = BotSettings.model_construct(**values)
    problems = []
    for rule in CROSS_KEY_RULES:
        try:
            problem = rule(partial)
        except AttributeError:
            continue
        if problem:
            problems.append(problem)
    return problems


def validate_settings(
    mapping: dict[str, str], *, source: str | None = None, version_tag: str | None = None
) -> BotSettings:
    """Validate a parsed mapping; every problem, cross-key rules included, is reported at once in one
    ConfigError whose `known_values` holds the keys that were individually valid (for later checks)."""
    problems = [_unknown_key_problem(k) for k in mapping if k not in KEYS]
    known = {k: v for k, v in mapping.items() if k in KEYS}
    parsed, key_problems = parse_known_values(known)
    problems += key_problems + cross_key_problems(parsed)
    if version_tag is not None and known.get("VERSION_TAG") and known["VERSION_TAG"] != version_tag:
        problems.append(f"VERSION_TAG={known['VERSION_TAG']!r} does not match VERSION.md ({version_tag})")
    if problems:
        raise ConfigError(problems, source=source, known_values=parsed)
    return BotSettings.model_construct(**parsed)


def settings_from_text(text: str, *, source: str | None = None, check_version: bool = True) -> BotSettings:
    from tbot_bot.config.version import read_version_tag

    mapping, problems = parse_env_text(text)
    tag = read_version_tag() if check_version else None
    try:
        settings = validate_settings(mapping, source=source, version_tag=tag)
    except ConfigError as exc:
        # a key whose line was refused for a control character is not "missing" as well
        refused = {m.group(1) for p in problems if (m := re.match(r"(\w+) on line \d+ contains", p))}
        later = [p for p in exc.problems if p.split(" ", 1)[0] not in refused or " is missing " not in p]
        raise ConfigError(problems + later, source=source, known_values=exc.known_values) from None
    if problems:
        raise ConfigError(problems, source=source, known_values=settings.model_dump())
    return settings
