"""Issue 11, command line: one top-level handler (category + exit 2 for known errors, exit 1 and a logged
traceback for anything else), and every malformed bar file refused naming the file, the row and the problem."""

from __future__ import annotations

import gzip
import io
import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rigd_tbot import cli
from rigd_tbot.error_report import describe
from tbot_bot.backtest.load_historical_data import load_bars
from tbot_bot.errors import DataError, LedgerError, UsageError
from tbot_bot.support.path_resolver import package_file

HEADER = "timestamp,symbol,open,high,low,close,volume\n"


def _bars(n: int = 5, start: str = "2024-01-02T14:30:00Z") -> str:
    stamps = pd.date_range(start, periods=n, freq="1min")
    rows = [
        f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},SPY,{100 + i},{101 + i},{99 + i},{100.5 + i},{1000 + i}"
        for i, t in enumerate(stamps)
    ]
    return HEADER + "\n".join(rows) + "\n"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- the top-level handler


def test_unexpected_exception_is_one_line_exit_1_and_the_traceback_is_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigd_tbot.commands import check

    def boom(args: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(check, "run", boom)
    code, err = _run(["check", "--home", str(tmp_path)], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "Unexpected error: RuntimeError: disk on fire" in err
    log = tmp_path / "logs" / "cli_errors.log"
    assert "Traceback" not in err and str(log) in err
    assert "Traceback (most recent call last)" in log.read_text() and "disk on fire" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"

    code, err = _run(["--debug", "check", "--home", str(tmp_path)], capsys)
    assert code == 1 and "Traceback (most recent call last)" in err


def test_unexpected_exception_on_an_unwritable_home_still_logs_somewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigd_tbot.commands import check

    monkeypatch.setattr(check, "run", lambda args: 1 / 0)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    code, err = _run(["check", "--home", str(blocked / "home")], capsys)
    assert code == 1 and "ZeroDivisionError" in err
    assert "Traceback" in (tmp_path / "state" / "rigd_tbot" / "cli_errors.log").read_text()


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (
            PermissionError(13, "Permission denied", "/srv/bot/.env_bot.enc"),
            2,
            "Permission error: cannot access /srv/bot/.env_bot.enc",
        ),
        (FileNotFoundError(2, "No such file or directory", "/srv/x"), 2, "File error: /srv/x: No such file"),
        (UsageError("password must be at least 10 characters"), 2, "Invalid input: password must be"),
        (DataError("bars.csv, row 3: open=-1.0 is not a positive price"), 2, "Data error: bars.csv, row 3"),
        (LedgerError("hash chain broken"), 1, "Ledger error: hash chain broken"),
    ],
)
def test_known_errors_carry_their_category(exc: BaseException, code: int, fragment: str) -> None:
    message, exit_code = describe(exc)
    assert exit_code == code and fragment in message


def test_permission_error_inside_a_command_names_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigd_tbot.commands import control

    target = tmp_path / "control" / "control_stop.txt"

    def denied(args: object) -> int:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(control, "run_stop", denied)
    code, err = _run(["stop", "--home", str(tmp_path)], capsys)
    assert code == 2 and f"Permission error: cannot access {target}" in err and "Traceback" not in err


def test_short_password_is_invalid_input_not_a_configuration_error(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, err = _run(
        ["users", "add", "--home", str(provisioned_home), "--username", "ann", "--role", "viewer"], capsys
    )
    assert code == 2 and err.startswith("Invalid input") and "at least 10 characters" in err


def test_missing_editor_is_a_readable_error(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "missing-editor-xyz")
    code, err = _run(["config", "edit", "--home", str(provisioned_home)], capsys)
    assert code == 2 and "cannot start the editor 'missing-editor-xyz'" in err


def test_backup_list_on_a_missing_home_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["backup", "list", "--home", str(tmp_path / "nope")], capsys)
    assert code == 2 and "does not exist" in err


# ---------------------------------------------------------------- bar files


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pd.DataFrame({"a": [1]}).to_parquet(buf)
    return buf.getvalue()


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty.csv", b"", "the file is empty"),
    ("malformed.csv", (HEADER + '2024-01-02T14:30:00Z,SPY,1,2,"3\n').encode(), "malformed CSV"),
    ("zero.csv.gz", b"", "the file is empty"),
    ("truncated.csv.gz", _gz(_bars(50))[:60], "not a complete gzip file"),
    ("plain.csv.gz", _bars().encode(), "not a complete gzip file"),
    (
        "random.parquet",
        bytes(np.random.default_rng(7).integers(0, 256, 300, dtype=np.uint8)),
        "cannot be read as bars",
    ),
    ("empty.parquet", b"", "cannot be read as bars"),
    ("wrongcols.parquet", _parquet_bytes(), "missing columns"),
    ("utf16.csv", _bars().encode("utf-16"), "not UTF-8 text"),
    (
        "baddate.csv",
        _bars(3).replace("2024-01-02T14:31:00Z", "2024-02-30T14:31:00Z").encode(),
        "row 3: timestamp '2024-02-30T14:31:00Z' is not a valid date",
    ),
    (
        "naive.csv",
        _bars(3).replace("Z,", ",").encode(),
        "row 2: timestamp '2024-01-02T14:30:00' has no time zone",
    ),
    (
        "unsorted.csv",
        (HEADER + "\n".join(_bars(3).splitlines()[1:][::-1]) + "\n").encode(),
        "row 3: SPY bar at",
    ),
    (
        "negative.csv",
        _bars(3).replace(",101,", ",-101,", 1).encode(),
        "row 2: high=-101.0 is not a positive price",
    ),
    (
        "zero_price.csv",
        _bars(3).replace(",100.5,", ",0,", 1).encode(),
        "row 2: close=0.0 is not a positive price",
    ),
    ("infvol.csv", _bars(3).replace(",1001\n", ",inf\n").encode(), "row 3: volume=inf is not finite"),
    ("textprice.csv", _bars(3).replace(",99,", ",abc,", 1).encode(), "row 2: low='abc' is not a number"),
    (
        "conflict.csv",
        (_bars(2) + _bars(1).splitlines()[1].replace(",100.5,", ",100.7,") + "\n").encode(),
        "row 4: SPY at 2024-01-02 14:30:00+00:00 appears again with different values (first at row 2)",
    ),
]


@pytest.mark.parametrize(("name", "content", "fragment"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_bar_file_exits_2_naming_file_row_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, fragment: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    argv = [
        "backtest",
        "--home",
        str(tmp_path),
        "--strategy",
        "open",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-02",
        "--data-source",
        str(path),
    ]
    code, err = _run(argv, capsys)
    assert code == 2, err
    assert "Data error: " in err and str(path) in err and fragment in err, err
    assert "Traceback" not in err


def test_identical_repeats_are_dropped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(_bars(3) + _bars(2).split("\n", 1)[1])
    frame = load_bars(path)
    assert len(frame) == 3
    assert "dropped 2 repeated bar(s) with identical values (first at row 5)" in capsys.readouterr().err


def test_end_before_start_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(_bars())
    argv = [
        "backtest",
        "--home",
        str(tmp_path),
        "--strategy",
        "open",
        "--start",
        "2024-01-03",
        "--end",
        "2024-01-02",
        "--data-source",
        str(path),
    ]
    code, err = _run(argv, capsys)
    assert code == 2 and "Invalid input: --end 2024-01-02 is before --start 2024-01-03" in err


_GOOD = _bars(6)


@st.composite
def damaged_bar_file(draw: st.DrawFn) -> tuple[str, bytes]:
    lines = _GOOD.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        cells = lines[i].split(",")
        j = draw(st.integers(0, len(cells) - 1))
        cells[j] = draw(
            st.one_of(
                st.text(max_size=12),
                st.sampled_from(["nan", "inf", "-1", "0", "", "1e400", "2024-13-01T00:00:00Z"]),
            )
        )
        lines[i] = ",".join(cells)
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), lines[draw(st.integers(0, len(lines) - 1))])
    raw = "\n".join(lines).encode(draw(st.sampled_from(["utf-8", "utf-16", "latin-1"])), errors="replace")
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    name = draw(st.sampled_from(["bars.csv", "bars.csv.gz", "bars.parquet", "bars.txt"]))
    if name.endswith(".gz") and draw(st.booleans()):
        raw = gzip.compress(raw)
    return name, raw


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=damaged_bar_file())
def test_fuzzed_bar_files_load_or_raise_a_data_error(tmp_path: Path, case: tuple[str, bytes]) -> None:
    name, raw = case
    path = tmp_path / "fuzz" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(raw)
    try:
        frame = load_bars(path)
    except DataError as exc:
        assert str(path) in str(exc) or "no bars" in str(exc)
    else:
        assert frame["timestamp"].is_monotonic_increasing
        assert (frame[["open", "high", "low", "close"]] > 0).all().all()
        assert np.isfinite(frame["volume"]).all()
    finally:
        os.remove(path)


_UNREADABLE_HOME_SCRIPT = """
import contextlib, io, json, os, sys
from rigd_tbot.cli import main
home, commands = sys.argv[1], json.loads(sys.argv[2])
for command in commands:  # once with access, so every module the command imports is loaded
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(command + ["--home", home])
if os.geteuid() == 0:
    os.chmod(home, 0o700)
    os.setgid(65534)
    os.setuid(65534)
else:
    os.chmod(home, 0)
results = []
for command in commands:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(command + ["--home", home])
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_commands_on_a_home_they_cannot_read_name_the_path(provisioned_home: Path) -> None:
    import json
    import subprocess
    import sys

    commands = [
        ["check"],
        ["config", "show"],
        ["backup", "list"],
        ["ledger", "verify"],
        ["stop"],
        ["users", "list"],
    ]
    env = {**os.environ, "HOME": "/tmp", "XDG_STATE_HOME": str(provisioned_home.parent / "state")}
    proc = subprocess.run(
        [sys.executable, "-c", _UNREADABLE_HOME_SCRIPT, str(provisioned_home), json.dumps(commands)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    os.chmod(provisioned_home, 0o755)
    assert proc.returncode == 0, proc.stderr
    for command, (code, err) in zip(commands, json.loads(proc.stdout.strip().splitlines()[-1]), strict=True):
        assert code == 2, (command, err)
        assert "Permission error: cannot access " + str(provisioned_home) in err, (command, err)
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["web", "--port", "70000"],
        ["web", "--threads", "0"],
        ["backup", "create", "--keep", "-1"],
        ["backtest", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-01-04", "--float", "abc"],
        ["backtest", "--strategy", "open", "--start", "2011-13-03", "--end", "2011-01-04"],
        ["start", "--replay", "2011-02-30"],
        ["start", "--replay", "2011-01-04", "--speed", "-3"],
        ["users", "set-role", "--username", "nobody", "--role", "admin"],
        ["confirm", "../../etc"],
        # dates beyond the exchange calendar (exchange_calendars' DateOutOfBounds was "Unexpected error")
        ["check", "--replay", "2200-01-02"],
        ["start", "--replay", "1999-01-04"],
        ["plot", "day", "--date", "2200-01-02", "--symbol", "SPY"],
        # amounts no ledger holds (InvalidOperation, OverflowError before)
        ["backtest", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-01-04", "--float", "1e30"],
        ["ledger", "correct", "--fitid", "X", "--amount", "1e30", "--reason", "typo", "--yes"],
        # requests the ledger refuses are a person's to change (exit 2, not 1)
        ["ledger", "correct", "--fitid", "NO-SUCH-FITID", "--reverse", "--reason", "typo", "--yes"],
        ["ledger", "close", "--period", "2099-01"],
        # one wording for a date that is none, and strategy names as typed
        ["backtest", "--strategy", "open", "--start", "2011-02-30", "--end", "2011-03-02"],
        ["positions", "--strategy", "foo", "--close", "SPY"],
        ["config", "set", "max_open_positions=3"],
    ],
)
def test_bad_command_lines_exit_2_with_a_readable_line(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    try:
        code = cli.main([*argv, "--home", str(provisioned_home)])
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip() and "Traceback" not in err and "Unexpected error" not in err
    assert "fromisoformat" not in err and "StrategyName" not in err, err


@pytest.mark.parametrize(
    "argv",
    [["optimize", "list"], ["rebalance", "status"], ["config", "history"], ["backup", "list"], ["trades"],
     ["pause"]],
)  # fmt: skip
def test_a_folder_that_is_no_bot_home_is_refused_not_answered_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """ "no proposals", "breach none open", "no kept versions" read as facts about a bot; of an empty or mistyped
    folder they are not."""
    code, err = _run([*argv, "--home", str(tmp_path)], capsys)
    assert code == 2 and f"{tmp_path} is not a bot home (no .env_bot.enc)" in err


def test_files_that_are_not_what_they_are_given_as_are_named(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(provisioned_home)]
    assert cli.main(["backup", "create", *home]) == 0
    (archive,) = (provisioned_home / "backups").glob("*.enc")
    not_a_key = tmp_path / "k"
    not_a_key.write_bytes(bytes(range(100)))
    not_a_key.chmod(0o600)
    code, err = _run(["backup", "restore", "--archive", str(archive), "--key-file", str(not_a_key),
                      "--home", str(tmp_path / "new")], capsys)  # fmt: skip
    assert code == 2 and f"--key-file {not_a_key} is not a backup key" in err, err
    for endpoint in ("notaurl", "http:///bucket"):  # no address, or one without a host
        code, err = _run(["backup", "upload", "--to", "s3://bucket/p", "--endpoint", endpoint, *home], capsys)
        assert code == 2 and f"S3 endpoint '{endpoint}'" in err and "must be an http:// or https://" in err, (
            err
        )
    binary = tmp_path / "symbols.bin"
    binary.write_bytes(b"\xff\xfe\x00SPY")
    code, err = _run(["universe", "build", "--symbols-file", str(binary), *home], capsys)
    assert code == 2 and f"--symbols-file {binary} is not UTF-8 text" in err, err
    proposals = provisioned_home / "env_bot.versioned" / "proposals"
    proposals.mkdir(parents=True, exist_ok=True)
    (proposals / "bad.json").write_text("[1, 2]")
    capsys.readouterr()
    assert cli.main(["optimize", "list", *home]) == 0  # a file that is no proposal is passed over
    assert "Unexpected error" not in capsys.readouterr().err


def test_a_file_in_the_way_is_the_one_named_and_nothing_half_made_is_left(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming a folder: the folder is named (not the temporary file written beside it, which was left)."""
    folder = tmp_path / "charts"
    folder.mkdir()
    argv = ["plot", "day", "--date", "2011-01-25", "--symbol", "SPY", "--data-source", str(package_file("data", "sample")),
            "--home", str(provisioned_home)]  # fmt: skip
    code, err = _run([*argv, "--out", str(folder)], capsys)
    assert (
        code == 2
        and f"Invalid input: --out {folder} is a folder; name the file, e.g. {folder}/2011-01-25_SPY.png"
        in err
    )
    # a file that is no chart is never replaced by one (a mistyped --out once replaced the bot's ledger)
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"SQLite format 3\x00" + bytes(100))
    code, err = _run([*argv, "--out", str(ledger)], capsys)
    assert code == 2 and f"--out {ledger} exists and is not a PNG chart; refusing to replace it" in err
    assert ledger.read_bytes() == b"SQLite format 3\x00" + bytes(100)
    ledger.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["charts", "home"] and not list(folder.iterdir())
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    code, err = _run([*argv, "--out", str(a_file / "day.png")], capsys)
    assert code == 2 and f"File error: {a_file} is a file where a directory is expected" in err, err


def test_a_key_typed_in_lower_case_is_named_in_capitals(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(["config", "set", "max_open_positions=3", "--home", str(provisioned_home)], capsys)
    assert code == 2 and "max_open_positions is not a known key; did you mean MAX_OPEN_POSITIONS?" in err


@pytest.mark.parametrize("argv", [["check", "--replay", "2200-01-02"], ["start", "--replay", "1999-01-04"]])
def test_a_date_beyond_the_calendar_is_named_with_its_range(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, err = _run([*argv, "--home", str(provisioned_home)], capsys)
    assert code == 2 and "is outside the XNYS calendar this build knows (2005-01-03 to " in err, err


def test_a_calendar_that_aged_with_its_process_asks_for_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """exchange_calendars builds to one year after the process started: a daemon up that long asks about days
    past it. That is the process's age (restart: transient), not a person's far date (exit 2)."""
    from datetime import UTC, datetime, timedelta

    from tbot_bot import market_time
    from tbot_bot.errors import MachineFault

    today = datetime.now(UTC).date()
    first = date(2005, 1, 3)
    monkeypatch.setattr(market_time, "calendar_range", lambda name="XNYS": (first, today - timedelta(days=3)))
    aged = market_time.outside_calendar(today + timedelta(days=7))
    assert isinstance(aged, MachineFault) and aged.transient and "restart it" in str(aged)
    far = market_time.outside_calendar(today + timedelta(days=400))
    assert isinstance(far, UsageError) and "choose a date inside it" in str(far)


def test_every_calendar_question_past_an_aged_calendar_asks_for_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The paths a long-running daemon takes first (the previous session for the warm-up, the next session, an
    early close): each says the calendar aged, none answers wrong or raises exchange_calendars' own error."""
    from datetime import UTC, datetime, timedelta

    import exchange_calendars as xc

    from tbot_bot import market_time
    from tbot_bot.errors import MachineFault

    today = datetime.now(UTC).date()
    aged = xc.get_calendar("XNYS", start=str(today - timedelta(days=400)), end=str(today - timedelta(days=5)))
    monkeypatch.setattr(market_time, "market_calendar", lambda name="XNYS": aged)
    soon = today + timedelta(days=3)
    for ask in (
        market_time.previous_session_date,
        market_time.session_on_or_after,
        market_time.is_early_close,
    ):
        with pytest.raises(MachineFault, match="restart it"):
            ask(soon, "AGED")  # a name of its own: nothing cached for the real XNYS is asked or kept


def test_backup_list_still_lists_the_archives_of_a_home_that_lost_its_config(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(provisioned_home)]
    assert cli.main(["backup", "create", *home]) == 0
    (archive,) = (provisioned_home / "backups").glob("*.enc")
    (provisioned_home / ".env_bot.enc").unlink()  # the disaster a restore answers
    capsys.readouterr()
    assert cli.main(["backup", "list", *home]) == 0
    assert archive.name in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["backtest", "--strategy", "open"],
        ["optimize", "run", "--strategy", "open", "--algorithm", "grid_search"],
    ],
)
def test_a_mistyped_home_is_refused_not_run_on_the_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A --home that does not exist ran on the template's settings and a 100,000 float (and was created)."""
    missing = tmp_path / "no_such_home"
    code, err = _run(
        [*command, "--start", "2011-01-03", "--end", "2011-01-31", "--home", str(missing)], capsys
    )
    assert code == 2 and f"--home {missing} does not exist" in err
    assert not missing.exists()


def test_audit_records_name_the_user_without_user_or_logname(monkeypatch: pytest.MonkeyPatch) -> None:
    """cron and systemd units often run without $USER and $LOGNAME: the password database still names the user
    (config history and optimizer approvals said "cli:unknown" there, while stop/pause named root)."""
    import pwd

    from rigd_tbot.cli import cli_actor

    for var in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(var, raising=False)
    assert cli_actor() == f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert "Unexpected error" not in err and "Internal error" not in err and "Traceback" not in err, err
    return code, err


SAMPLE = package_file("data", "sample")
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on it


@pytest.mark.parametrize(
    ("fundamentals", "said"),
    [
        ('{"SYN1": {"marketCapitalization": "big"}, "SYN2": "x"}', "SYN1: marketCapitalization is 'big'"),
        ('{"SYN2": "x"}', "SYN2: 'x' is not an object of metrics"),
        (
            '{"SYN1": {"marketCapitalization": NaN, "peNormalizedAnnual": 9}}',
            "SYN1: marketCapitalization is nan",
        ),
        (DEEP, "JSON nested too deeply"),
    ],
)
def test_a_damaged_fundamentals_file_beside_the_bars_is_named(
    fundamentals: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("spy_1min.csv.gz", "derived_1min.csv.gz", "vix.csv"):
        (data / name).write_bytes((SAMPLE / name).read_bytes())
    (data / "fundamentals.json").write_text(fundamentals)
    argv = ["backtest", "--strategy", "open", "--start", "2011-01-25", "--end", "2011-01-25", "--data-source",
            str(data), "--out", str(tmp_path / "out"), "--home", str(tmp_path), "--no-plots", "--quiet"]  # fmt: skip
    code, err = _cli(argv, capsys)
    assert code == 2 and "fundamentals.json" in err and said in err, err


@pytest.mark.parametrize(
    "space",
    [
        "[OPEN_MONITORING_TIME]\nvalues = [nan]\n",
        "[OPEN_MONITORING_TIME]\nvalues = [inf, 30]\n",
        "[STRAT_OPEN_BUFFER]\nlow = 0.0\nhigh = inf\nstep = 0.001\n",
        "[STRAT_OPEN_BUFFER]\nlow = 0.0\nhigh = 0.01\nstep = nan\n",
        "[OPEN_MONITORING_TIME]\nvalues = [1e400]\n",
    ],
)
def test_a_search_space_with_nan_or_inf_is_refused_by_name(
    space: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "space.toml"
    path.write_text(space)
    argv = ["optimize", "run", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-03-31",
            "--data-source", str(SAMPLE), "--space", str(path), "--home", str(tmp_path), "--no-progress"]  # fmt: skip
    code, err = _cli(argv, capsys)
    assert code == 2 and "finite number" in err, err


def test_an_env_file_that_is_not_utf8_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "utf16.env_bot"
    env.write_text("MAX_TRADES=3\n", encoding="utf-16")
    argv = ["backtest", "--strategy", "open", "--start", "2011-01-25", "--end", "2011-01-25", "--env-file",
            str(env), "--home", str(tmp_path), "--out", str(tmp_path / "out")]  # fmt: skip
    code, err = _cli(argv, capsys)
    assert code == 2 and f"{env} does not hold UTF-8 text" in err, err


def test_json_nested_too_deeply_is_a_damaged_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status.json and a bar store's manifest nested 100,000 deep: named as damaged, never a RecursionError."""
    home = tmp_path / "home"
    (home / "output").mkdir(parents=True)
    (home / ".env_bot.enc").write_bytes(b"")  # a bot home (`tbot status` names a folder that is none)
    (home / "output" / "status.json").write_text(DEEP)
    code, err = _cli(["status", "--home", str(home)], capsys)
    assert code == 2 and "is not a JSON status file" in err, err
    store = tmp_path / "store"
    store.mkdir()
    (store / "manifest.json").write_text(DEEP)
    code, err = _cli(["data", "list", "--home", str(home), "--store", str(store)], capsys)
    assert code == 2 and "manifest.json is unreadable (JSON nested too deeply" in err, err


@pytest.mark.parametrize("name", ["vix.csv", "fundamentals.json"])
def test_a_folder_in_a_side_inputs_place_is_refused_alike_by_backtest_and_replay(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], provisioned_home: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for f in ("spy_1min.csv.gz", "derived_1min.csv.gz", "vix.csv", "fundamentals.json"):
        (data / f).write_bytes((SAMPLE / f).read_bytes())
    (data / name).unlink()
    (data / name).mkdir()
    backtest = ["backtest", "--strategy", "all", "--start", "2011-01-25", "--end", "2011-01-25", "--data-source",
                str(data), "--out", str(tmp_path / "out"), "--home", str(tmp_path), "--no-plots", "--quiet"]  # fmt: skip
    check = ["check", "--home", str(provisioned_home), "--replay", "2011-01-25", "--data-source", str(data)]
    for argv in (backtest, check):
        code, err = _cli(argv, capsys)
        assert code == 2 and str(data / name) in err and "as bars" not in err, (argv, err)


def test_every_command_takes_home() -> None:
    """README: every command takes --home DIR (scripts pass it to all of them)."""
    import argparse

    from rigd_tbot.cli import build_parser

    lacking = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs and "--home" not in {o for a in parser._actions for o in a.option_strings}:
            lacking.append(" ".join(path))
        for s in subs:
            for name, child in s.choices.items():
                walk(child, [*path, name])

    walk(build_parser(), ["tbot"])
    assert lacking == []


@pytest.mark.parametrize(
    "argv",
    [
        ["trades", "--date", "9999-12-31"],
        ["ledger", "close", "--period", "9999-12"],
        ["ofx", "export", "--date", "9999-12-31", "--out", "x.ofx"],
        ["plot", "day", "--date", "9999-12-31", "--symbol", "SPY"],
        ["optimize", "run", "--strategy", "open", "--end", "2005-01-10", "--no-progress"],
        ["data", "fetch", "--symbols", "SPY", "--start", "2024-01-01", "--end", "9999-12-31"],
        ["logs", "summary", "--until", "9999-12-31"],
    ],
)
def test_a_date_at_the_ends_of_time_is_refused_by_name(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Each of these was an "Unexpected error" (year 10000, a nanosecond overflow, a calendar lookback before
    its first session)."""
    try:
        code, err = _run([*argv, "--home", str(provisioned_home)], capsys)
    except SystemExit as exc:  # argparse's own refusal of an argument (usage line, exit 2)
        code, err = int(exc.code or 0), capsys.readouterr().err
    assert code == 2 and "Unexpected" not in err, err
    assert "outside the" in err or "beyond the XNYS calendar" in err, err


def test_the_api_reference_names_every_command_and_option() -> None:
    """support/API_reference.md's command table against the parser: every command, and each of its options in a
    row naming the command (it had fallen 11 commands and some 25 options behind)."""
    import argparse

    from rigd_tbot.cli import build_parser

    text = (Path(__file__).resolve().parents[1] / "support" / "API_reference.md").read_text(encoding="utf-8")
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| `")]
    missing = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for s in subs:
            for name, child in s.choices.items():
                walk(child, [*path, name])
        if subs:
            return
        mine = [r for r in rows if all(word in r for word in path)]
        if not mine:
            missing.append(" ".join(path))
        for action in parser._actions:
            long = [o for o in action.option_strings if o.startswith("--")]
            if long and long[0] not in ("--home", "--help") and not any(long[0] in r for r in mine):
                missing.append(f"{' '.join(path)} {long[0]}")

    walk(build_parser(), [])
    assert missing == []


def test_a_session_in_a_closed_month_is_refused_before_it_trades(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replay of a closed month's day traded on the sim exchange, then its booking was refused: status showed a
    PnL the books never held. `check` and `start` refuse it now, with the same words."""
    home = ["--home", str(provisioned_home)]
    assert cli.main(["ledger", "close", "--period", "2011-01", *home]) == 0
    for command in ("check", "start"):
        code, err = _run([command, "--replay", "2011-01-26", *home], capsys)
        assert (
            code == 2
            and "the books are closed through 2011-01" in err
            and "replay a day after 2011-01-31" in err
        )
    assert (
        not (provisioned_home / "output" / "status.json").exists()
        or "2011-01-26" not in (provisioned_home / "output" / "status.json").read_text()
    )
    code, _ = _run(["check", "--replay", "2011-03-01", *home], capsys)
    assert code == 0


def test_a_damaged_proposal_file_is_named_not_an_unexpected_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Random bytes in a proposal file gave "Unexpected error: UnicodeDecodeError" to `optimize show|approve|reject`
    (a CLI review)."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from tbot_bot.optimizer.proposals import proposals_dir

    home = provision_demo_home(tmp_path / "home")
    folder = proposals_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_grid_search_x.json").write_bytes(bytes(range(256)) * 4)
    for action in ("show", "approve", "reject"):
        assert main(["optimize", action, "open_grid_search_x", "--home", str(home.root)]) == 2, action
        err = capsys.readouterr().err
        assert "open_grid_search_x.json cannot be read" in err and "Unexpected" not in err, err


def test_a_damaged_ledger_is_named_by_the_commands_that_read_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A float ledger whose first bytes were overwritten: `tbot check` answered "a SQLite database of the bot home
    failed (file is not a database); `tbot check` names the file" (it is `tbot check`, and named none), as did
    `rebalance check` (a CLI review)."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from tbot_bot.accounting.accounting_config import load_binding

    home = provision_demo_home(tmp_path / "home")
    floats = load_binding(home).float_ledger_path
    with floats.open("r+b") as fh:
        fh.write(b"garbage" * 3)
    # check: exit 2 (a person restores or moves the file; under systemd exit 2 is not restarted into a loop)
    for argv, code in ((["check", "--replay", "2011-01-26"], 2), (["rebalance", "check"], 1)):
        assert main([*argv, "--home", str(home.root)]) == code
        err = capsys.readouterr().err
        assert f"{floats} is not a readable SQLite database" in err and "names the file" not in err, err


def test_a_data_command_never_creates_a_mistyped_home(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`tbot data import FILE --home /nonexist` exited 0 and created /nonexist/data/bars (a CLI review)."""
    from rigd_tbot.cli import main

    bars = tmp_path / "bars.csv"
    bars.write_text("timestamp,symbol,open,high,low,close,volume\\n2011-01-03T14:30:00Z,SPY,1,1,1,1,100\\n")
    missing = tmp_path / "no-such-home"
    assert main(["data", "import", str(bars), "--home", str(missing)]) == 2
    assert f"no bot home at {missing} (the folder does not exist)" in capsys.readouterr().err
    assert not missing.exists()


def test_a_key_path_that_is_a_directory_is_said_to_be_one(tmp_path: Path) -> None:
    """`storage/keys/env.key` as a directory was "readable by group or others (mode 0755); run chmod 600" (a CLI
    review)."""
    from tbot_bot.config.security_bot import load_key
    from tbot_bot.errors import ConfigError

    key = tmp_path / "env.key"
    key.mkdir()
    with pytest.raises(ConfigError, match=r"env.key is a directory, not a key: move it away"):
        load_key(key)


def test_a_garbage_dotenv_refuses_check_as_it_refuses_the_other_commands(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A `.env` of random bytes passed `tbot check` and `tbot start`, while `ledger verify`, backups and the
    dashboard refused the home (a CLI review): what check accepts, every command accepts."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main

    home = provision_demo_home(tmp_path / "home")
    home.dotenv.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["check", "--home", str(home.root), "--replay", "2011-01-26"]) == 2
    assert f"{home.dotenv} does not hold UTF-8 text" in capsys.readouterr().err
    assert main(["ledger", "verify", "--home", str(home.root)]) == 2
    assert f"{home.dotenv} does not hold UTF-8 text" in capsys.readouterr().err


def test_db_init_never_widens_the_owners_rights_on_the_databases_folder(tmp_path: Path) -> None:
    """`tbot db init` made a read-only `storage/databases` (0500) writable again (0700) before it failed (a CLI
    review): it only removes group and other bits."""
    import stat as stat_mod

    from tbot_bot.core.databases import init_core_database
    from tbot_bot.support.path_resolver import BotHome

    home = BotHome(tmp_path / "home")
    folder = home.core_db("SYSTEM_LOGS").parent
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:  # root writes anyway; any other user is refused by the file system
        init_core_database(home, "SYSTEM_LOGS")
    except Exception:  # noqa: BLE001 - refused (not root): what matters is the folder's mode after
        pass
    assert stat_mod.S_IMODE(folder.stat().st_mode) == 0o500
    folder.chmod(0o700)


@pytest.mark.parametrize(
    "argv",
    [
        ["status"], ["ledger", "verify"], ["alerts", "test"], ["broker-check"], ["config", "show"],
        ["config", "set", "LOG_LEVEL=info"], ["logs", "summary"], ["logs", "prune"], ["ofx", "export", "--all", "--out", "x.ofx"],
        ["universe", "build"], ["secrets", "list"], ["tune", "report"], ["accounting", "sync"],
        ["users", "list"],
    ],
)  # fmt: skip
def test_a_mistyped_home_is_said_to_be_one(tmp_path: Path, capsys, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    """`tbot status --home /nonexist` said "the bot has not run in this home yet" and `ledger verify` "encrypted
    file .../bot_identity.json.enc is missing" (a CLI review), and every other command that works on a home named
    its config or identity file: the home itself is named as not being one, and nothing is created there."""
    from rigd_tbot.cli import main

    missing = tmp_path / "no-such-home"
    assert main([*argv, "--home", str(missing)]) == 2
    assert f"bot home {missing} does not exist or is not a directory" in capsys.readouterr().err
    assert not missing.exists()


def test_check_while_the_service_runs_checks_the_configuration(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The upgrade procedure runs `tbot check` with the new version before restarting the service; the running
    supervisor holds the run lock a boot takes, so the check refused ("end that process first", which closes every
    position). It checks the configuration, and says what it left for the restart."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from tbot_bot.runtime.control import SupervisorLock

    home = provision_demo_home(tmp_path / "home")
    lock = SupervisorLock.acquire(home, mode="live")
    try:
        assert main(["check", "--home", str(home.root)]) == 0
    finally:
        lock.release()
    out = capsys.readouterr().out
    assert "config     OK for this version; a supervisor runs in" in out and "only the configuration" in out


def test_demo_says_it_never_reads_tbot_home(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Its help said $TBOT_HOME was the default, as every other command's does; a demo must not provision or
    replay into the real bot's home that variable names on a bot's machine, so the help says what it does."""
    from rigd_tbot.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "demo_home/ in the current directory; not $TBOT_HOME" in out and "default: $TBOT_HOME" not in out


def test_start_answers_for_the_supervisor_already_up(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`tbot start --replay D` beside a stopped replay of D resumed nothing (only a live Start did), and `tbot
    start` beside a trading supervisor gave the run lock's "end that process first" (ending it closes every
    position): the one already up is asked to resume, or said to be trading."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from tbot_bot.runtime.control import SupervisorLock, mark_trading_stopped

    home = provision_demo_home(tmp_path / "home")
    lock = SupervisorLock.acquire(home, mode="live")
    try:
        assert main(["start", "--home", str(home.root)]) == 0
        assert "is already trading: there is nothing to start" in capsys.readouterr().out
    finally:
        lock.release()
    lock = SupervisorLock.acquire(home, mode="replay 2011-01-25")
    try:
        mark_trading_stopped(home, "cli:ops (replay 2011-01-25)")
        assert main(["start", "--home", str(home.root), "--replay", "2011-01-25"]) == 0
        assert "Start requested" in capsys.readouterr().out and home.control_start.exists()
    finally:
        lock.release()
