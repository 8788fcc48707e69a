"""The .env_bot schema: every key required, types, ranges, cross-key rules, template completeness, version."""

from __future__ import annotations

import re

import pytest
from helpers import make_settings, template_text, with_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbot_bot.config.env_bot import KEYS, ShortType, parse_env_text, settings_from_text
from tbot_bot.config.version import read_version_tag
from tbot_bot.errors import ConfigError


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_text(text, source="test")
    return info.value.problems


def _without(text: str, key: str) -> str:
    return re.sub(rf"^{key}=.*\n", "", text, flags=re.MULTILINE)


def test_template_is_valid_and_frozen() -> None:
    s = make_settings()
    assert s.MAX_TRADES == 4
    with pytest.raises(Exception, match="frozen"):
        s.MAX_TRADES = 3  # type: ignore[misc]


@pytest.mark.parametrize("key", KEYS)
def test_each_missing_key_is_named(key: str) -> None:
    problems = _errors(_without(template_text(), key))
    assert any(p.startswith(f"{key} is missing") for p in problems), problems


def test_template_has_every_key_once_with_an_inline_comment() -> None:
    text = template_text()
    values, problems = parse_env_text(text)
    assert problems == []
    assert set(values) == set(KEYS)
    for line in text.splitlines():
        if re.match(r"^[A-Z_]+=", line):
            assert re.search(r"\s#\s*\S", line), f"no inline comment: {line}"


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("MAX_TRADES", "four", "integer"),
        ("MAX_TRADES", "0", "greater than or equal to 1"),
        ("TOTAL_ALLOCATION", "1.5", "less than or equal to 1"),
        ("DAILY_LOSS_LIMIT", "-0.1", "greater than or equal to 0.000001"),
        ("LOG_FORMAT", "xml", "'json' or 'csv'"),
        ("FRACTIONAL", "yes", "true or false"),
        ("START_TIME_OPEN", "9:30", "HH:MM"),
        ("START_TIME_MID", "25:00", "HH:MM"),
        ("SLEEP_TIME", "fast", "duration"),
        ("SHORT_TYPE_MID", "Puts", "InverseETF"),
        ("TRADING_DAYS", "mon,funday", "'mon'"),
        ("STRATEGY_SEQUENCE", "open,lunch", "'open'"),
        ("DEFENSE_MODE_TRIGGER_DRAWDOWN", "sometimes", "disabled"),
        ("CURRENCY_CODE", "usd", "pattern"),
    ],
)
def test_wrong_type_or_range_names_key_value_and_what_is_allowed(key: str, value: str, fragment: str) -> None:
    problems = _errors(with_values(template_text(), **{key: value}))
    mine = [p for p in problems if p.startswith(f"{key}=")]
    assert mine, problems
    assert repr(value) in mine[0]
    assert fragment in mine[0]


def test_unknown_key_suggests_the_close_one() -> None:
    text = template_text().replace("LOG_FORMAT=json", "LOG_FORMT=json")
    problems = _errors(text)
    assert "LOG_FORMT is not a known key; did you mean LOG_FORMAT?" in problems
    assert any(p.startswith("LOG_FORMAT is missing") for p in problems)
    # nothing close: where the keys are listed (a CLI review: "FOO is not a known key" and no more)
    assert "FOO is not a known key; `tbot config show` lists every key" in _errors(
        template_text() + "FOO=1\n"
    )


def test_all_problems_reported_at_once() -> None:
    text = _without(with_values(template_text(), MIN_PRICE="abc", BUILD_MODE="fast"), "MAX_TRADES")
    problems = _errors(text)
    assert any(p.startswith("MIN_PRICE='abc' is not allowed: must be a finite number") for p in problems)
    assert any(p.startswith("BUILD_MODE='fast' is not allowed") for p in problems)
    assert any(p.startswith("MAX_TRADES is missing") for p in problems)
    assert len(problems) == 3, problems


def test_duplicate_key_is_an_error() -> None:
    problems = _errors(template_text() + "\nMAX_TRADES=4\n")
    assert any("MAX_TRADES appears twice" in p for p in problems)


def test_disabled_is_not_omitted() -> None:
    s = make_settings(SHORT_TYPE_OPEN="disabled", DEFENSE_MODE_TRIGGER_WIN_RATE="disabled")
    assert s.SHORT_TYPE_OPEN is ShortType.DISABLED
    assert s.DEFENSE_MODE_TRIGGER_WIN_RATE is None
    assert any(
        "SHORT_TYPE_OPEN is missing" in p for p in _errors(_without(template_text(), "SHORT_TYPE_OPEN"))
    )


def test_short_type_spaces_are_stripped() -> None:
    assert make_settings(SHORT_TYPE_CLOSE=" InverseETF ").SHORT_TYPE_CLOSE is ShortType.INVERSE_ETF


# ---- cross-key rules


def test_weights_must_match_max_trades() -> None:
    problems = _errors(with_values(template_text(), MAX_TRADES=3))
    assert any("WEIGHTS has 4 values but MAX_TRADES=3" in p for p in problems)


def test_weights_must_sum_to_one() -> None:
    problems = _errors(with_values(template_text(), WEIGHTS="0.5,0.2,0.2,0.2"))
    assert any("WEIGHTS sum to 1.1" in p for p in problems)


def test_weights_must_be_fractions() -> None:
    problems = _errors(with_values(template_text(), MAX_TRADES=2, WEIGHTS="1.5,-0.5"))
    assert any("outside (0, 1]" in p for p in problems)


def test_min_price_below_max_price() -> None:
    problems = _errors(with_values(template_text(), MIN_PRICE=300))
    assert any("MIN_PRICE=300 must be below MAX_PRICE=200" in p for p in problems)


def test_market_cap_ranges() -> None:
    problems = _errors(with_values(template_text(), MIN_MARKET_CAP_MID="20000000000"))
    assert any("MIN_MARKET_CAP_MID=20000000000 must be below MAX_MARKET_CAP_MID" in p for p in problems)


@pytest.mark.parametrize(
    "flags",
    [
        {"SIM_ENABLED": "false"},
        {"ALPACA_ENABLED": "true"},
        {"BROKER_NAME": "IBKR"},
    ],
)
def test_exactly_one_broker_enabled_matching_broker_name(flags: dict[str, str]) -> None:
    problems = _errors(with_values(template_text(), **flags))
    assert any(
        "exactly one of ALPACA_ENABLED, IBKR_ENABLED, TRADIER_ENABLED, SIM_ENABLED" in p for p in problems
    )


def test_short_type_must_be_supported_by_the_broker() -> None:
    text = with_values(
        template_text(),
        BROKER_NAME="TRADIER",
        TRADIER_ENABLED="true",
        SIM_ENABLED="false",
        SHORT_TYPE_MID="ShortSell",
    )
    problems = _errors(text)
    assert any("SHORT_TYPE_MID=ShortSell but broker TRADIER does not short sell" in p for p in problems)
    # every broker places option orders now (Alpaca and Tradier since issue 24): LongPut passes for each
    for broker in ("ALPACA", "IBKR", "TRADIER"):
        ok = with_values(
            template_text(),
            BROKER_NAME=broker,
            **{f"{broker}_ENABLED": "true"},
            SIM_ENABLED="false",
            SHORT_TYPE_MID="LongPut",
        )
        assert settings_from_text(ok).SHORT_TYPE_MID is ShortType.LONG_PUT


def test_strategy_override_empty_or_one_strategy() -> None:
    assert make_settings(STRATEGY_OVERRIDE="").STRATEGY_OVERRIDE is None
    assert make_settings(STRATEGY_OVERRIDE="close").STRATEGY_OVERRIDE == "close"
    assert _errors(with_values(template_text(), STRATEGY_OVERRIDE="lunch"))


def test_sleep_time_units() -> None:
    assert make_settings(SLEEP_TIME="500ms").SLEEP_TIME == 0.5
    assert make_settings(SLEEP_TIME="2s").SLEEP_TIME == 2.0


def test_sequence_must_not_repeat() -> None:
    assert any("repeats" in p for p in _errors(with_values(template_text(), STRATEGY_SEQUENCE="open,open")))


def test_sequence_must_follow_the_windows_start_times() -> None:
    """The day is flattened and booked after the sequence's last window: listed out of the order the windows start,
    CLOSE would trade after the day was booked (the supervisor takes the sequence's last as the day's end)."""
    problems = _errors(with_values(template_text(), STRATEGY_SEQUENCE="close,open,mid"))
    assert any(
        "STRATEGY_SEQUENCE=close,open,mid does not list the windows in the order they start (open 09:30, mid 10:30, "
        "close 14:30, WINDOW_TIMEZONE time)"
        in p
        and p.endswith("so list them as open,mid,close")
        for p in problems
    ), problems
    # the order is the start times', whatever the names: a MID window moved after CLOSE is listed last
    assert make_settings(START_TIME_MID="15:10", STRATEGY_SEQUENCE="open,close,mid").STRATEGY_SEQUENCE == (
        "open",
        "close",
        "mid",
    )
    assert any(
        "so list them as open,close,mid" in p
        for p in _errors(with_values(template_text(), START_TIME_MID="15:10"))
    )
    # only the windows that run are judged: a disabled CLOSE listed first is no contradiction
    assert (
        make_settings(STRATEGY_SEQUENCE="close,open,mid", STRAT_CLOSE_ENABLED="false").STRATEGY_SEQUENCE[0]
        == "close"
    )
    same = _errors(with_values(template_text(), START_TIME_MID="09:30"))
    assert any("START_TIME_OPEN and START_TIME_MID are both 09:30" in p for p in same), same


def test_windows_that_run_may_not_overlap() -> None:
    """The supervisor runs the windows one after another, each until its last position is closed: a window that
    can still hold positions when the next one starts would make that one start late (and screen and trade at
    other moments than the backtest). The template's OPEN ends exactly at MID's start (09:30 + 20 + 10 + 30)."""
    assert make_settings().START_TIME_MID.strftime("%H:%M") == "10:30"
    longer = _errors(with_values(template_text(), OPEN_MONITORING_TIME="45"))
    assert any(
        p.startswith(
            "the open window runs to 10:45 (START_TIME_OPEN + OPEN_ANALYSIS_TIME + OPEN_BREAKOUT_TIME + "
        )
        and "past START_TIME_MID=10:30 (exchange time)" in p
        and p.endswith("start mid at 10:45 or later")
        for p in longer
    ), longer
    assert any(
        "the open window runs to 10:20" in p
        for p in _errors(with_values(template_text(), START_TIME_MID="10:00", OPEN_MONITORING_TIME="20"))
    )
    # only the windows that run are judged: with MID off, OPEN may hold until CLOSE starts
    assert make_settings(OPEN_MONITORING_TIME="45", STRAT_MID_ENABLED="false").OPEN_MONITORING_TIME == 45
    assert make_settings(OPEN_MONITORING_TIME="45", STRATEGY_OVERRIDE="open").OPEN_MONITORING_TIME == 45


def test_enable_logging_must_be_true() -> None:
    assert any(
        "ENABLE_LOGGING must be true" in p
        for p in _errors(with_values(template_text(), ENABLE_LOGGING="false"))
    )


def test_window_past_midnight_is_refused() -> None:
    assert any(
        "runs past midnight" in p for p in _errors(with_values(template_text(), START_TIME_CLOSE="23:50"))
    )


def test_version_tag_must_match_version_md() -> None:
    assert make_settings().VERSION_TAG == read_version_tag()
    problems = _errors(with_values(template_text(), VERSION_TAG="v0.9.9"))
    assert any("does not match VERSION.md" in p for p in problems)


# ---- property: any corruption yields a readable ConfigError, never another exception

_LINES = template_text().splitlines()


@st.composite
def corrupted(draw: st.DrawFn) -> str:
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "garble_value", "garble_key", "junk", "dup"]))
        line = lines[i]
        if action == "drop":
            lines.pop(i)
        elif action == "garble_value" and "=" in line:
            key = line.split("=", 1)[0]
            lines[i] = (
                f"{key}={draw(st.text(max_size=12).filter(lambda s: chr(10) not in s and chr(13) not in s))}"
            )
        elif action == "garble_key" and "=" in line:
            lines[i] = draw(st.text(alphabet="ABCXYZ_", min_size=1, max_size=6)) + line
        elif action == "junk":
            lines.insert(
                i, draw(st.text(max_size=20).filter(lambda s: chr(10) not in s and chr(13) not in s))
            )
        elif action == "dup":
            lines.append(line)
        if not lines:
            break
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_random_corruption_gives_config_error_only(text: str) -> None:
    try:
        settings_from_text(text, source="fuzz")
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        assert "Traceback" not in exc.render()


# ---------------------------------------------------------------- issue 26: what the config must not accept


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_PE_RATIO", "𝟒"),  # MATHEMATICAL BOLD DIGIT FOUR
        ("MAX_SPREAD_PCT", "０.０２"),  # full-width digits
        ("MAX_TRADES", "٤"),  # Arabic-Indic four
        ("TOTAL_ALLOCATION", "0.0２"),
        ("START_TIME_OPEN", "٠٩:30"),
        ("SLEEP_TIME", "١s"),
        ("RISK_FREE_RATE_TABLE", "USA:0.0４5"),
    ],
)
def test_numbers_are_ascii_decimal_only(key: str, value: str) -> None:
    problems = _errors(with_values(template_text(), **{key: value}))
    assert any(p.startswith(f"{key}=") for p in problems), problems


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WEIGHTS", "0.4,,0.2,0.2,0.2"),
        ("WEIGHTS", "0.4,0.2,0.2,0.2,"),
        ("WEIGHTS", ",0.4,0.2,0.2,0.2"),
        ("TRADING_DAYS", "mon,,tue"),
        ("STRATEGY_SEQUENCE", "open,mid,close,"),
        ("UNIVERSE_EXCHANGES", "NYSE, ,NASDAQ"),
    ],
)
def test_list_keys_refuse_empty_elements(key: str, value: str) -> None:
    problems = _errors(with_values(template_text(), **{key: value}))
    assert [p for p in problems if p.startswith(f"{key}=") and "empty element" in p], problems


@pytest.mark.parametrize("value", ["9" * 300, "A" * 300, "America/" + "x" * 250, "a/" * 120])
def test_overlong_window_timezone_names_the_key(value: str) -> None:
    problems = _errors(with_values(template_text(), WINDOW_TIMEZONE=value))
    assert problems and problems[0].startswith("WINDOW_TIMEZONE=") and "IANA time zone" in problems[0]
    assert "File name too long" not in " ".join(problems)


def test_weights_tolerance_is_the_one_the_template_states() -> None:
    from tbot_bot.config.env_bot import WEIGHTS_SUM_TOLERANCE

    comment = next(line for line in template_text().splitlines() if line.startswith("WEIGHTS="))
    assert f"within {WEIGHTS_SUM_TOLERANCE:f}" in comment
    inside = with_values(template_text(), WEIGHTS="0.4,0.2,0.2,0.2000000009")
    assert settings_from_text(inside, check_version=False).MAX_TRADES == 4
    problems = _errors(with_values(template_text(), WEIGHTS="0.4,0.2,0.2,0.200000002"))
    assert any("within 0.000000001" in p for p in problems), problems


def test_web_idle_timeout_is_a_bounded_key() -> None:
    assert make_settings().WEB_IDLE_TIMEOUT_MINUTES == 30
    for bad in ("0", "1441", "30.5", "３０"):
        problems = _errors(with_values(template_text(), WEB_IDLE_TIMEOUT_MINUTES=bad))
        assert any(p.startswith("WEB_IDLE_TIMEOUT_MINUTES=") for p in problems), (bad, problems)


@pytest.mark.parametrize(
    ("key", "line"), [("MARKET_DATA_STALE_SECONDS", "180"), ("BROKER_MAINTENANCE_WINDOW", "auto")]
)
def test_a_key_added_after_the_home_was_written_names_the_line_to_add(key: str, line: str) -> None:
    problems = _errors(_without(template_text(), key))
    expected = (
        f"{key} is missing (every key must be present, even when its feature is off); add the template's line "
        f"{key}={line} to keep its default"
    )
    assert expected in problems, problems


def test_a_value_holding_a_comment_mark_is_kept_whole() -> None:
    """`config set "VIX_HISTORY_URL=https://example.com/vix.csv #frag"` saved the value cut at " #" (an inline
    comment when read) without a word; it is quoted now, and replaced again later with its comment kept."""
    from tbot_bot.config.env_bot import parse_env_text
    from tbot_bot.config.settings_bot import replace_values

    text = "A=1   # one\nURL=https://x/v.csv   # the url\n"
    marked = replace_values(text, {"URL": "https://x/v.csv #frag"})
    assert parse_env_text(marked)[0]["URL"] == "https://x/v.csv #frag" and marked.endswith("   # the url\n")
    again = replace_values(marked, {"URL": "https://y/v.csv"})
    assert again == "A=1   # one\nURL=https://y/v.csv   # the url\n"
    # every value that a line can hold reads back whole; one it cannot is refused, never cut
    for value in ('say "hi" #x', 'a # "b"', "#lead", " lead space", "trail ", "plain", ""):
        assert parse_env_text(replace_values(text, {"URL": value}))[0]["URL"] == value, value
    with pytest.raises(ConfigError, match="holds both quote characters and a ' #'"):
        replace_values(text, {"URL": 'it\'s "both" #x'})
