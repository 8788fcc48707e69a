"""The `tbot` command line. Each sub-command lives in its own module under `rigd_tbot/commands/`.

A command module exposes `register(subparsers)`; it adds its parser and sets `func=handler` where
`handler(args) -> int`. Every command takes `--home DIR` (else $TBOT_HOME, else the current directory).
Every error becomes a readable message and an exit code, never a traceback (see error_report.py):
known categories (ConfigError, UsageError, DataError, PermissionError on a path) exit 2, a failed check or
service exits 1, an unexpected exception exits 1 with its traceback in the error log (`--debug` prints it).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tbot_bot.errors import ConfigError, UsageError
from tbot_bot.support.path_resolver import BotHome

from . import commands
from .error_report import report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tbot",
        description="RIGD TradeBot: headless intraday trading daemon, its books, backtests and tools.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=bool(os.environ.get("TBOT_DEBUG")),
        help="print the full traceback of an unexpected error (also TBOT_DEBUG=1)",
    )
    parser.add_argument(
        "--version", action="version", version=f"tbot {_version()}", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _version() -> str:
    from tbot_bot.config.version import read_version_tag
    from tbot_bot.errors import TbotError

    try:
        return read_version_tag()
    except (OSError, ValueError, TbotError):
        return "unknown (VERSION.md unreadable)"


def bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a whole number in lo..hi, else a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({lo}..{hi})") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    return parse


def cli_user() -> str:
    """Who runs this command, for audit records: the login name (getpass: $LOGNAME, $USER, ..., then the
    password database, so cron and systemd units without $USER are named too), else the numeric uid."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a uid without a passwd entry (some containers)
        return f"uid{os.getuid()}"


def cli_actor() -> str:
    """The actor a command records: `cli:<user>`."""
    return f"cli:{cli_user()}"


def add_home_argument(
    parser: argparse.ArgumentParser,
    help: str = "bot home directory (default: $TBOT_HOME, else the current directory)",  # noqa: A002
) -> None:
    """The shared --home option; commands call this so every one of them takes it."""
    parser.add_argument("--home", metavar="DIR", default=None, help=help)


def replaceable_output(
    path: Path, kind: str, is_ours: Callable[[bytes], bool], example: str, *, folder_must_exist: bool = True
) -> Path:
    """--out as `kind` ("an OFX statement") may be written there: over nothing, or over an earlier one
    (`is_ours` of its first 512 bytes: a re-run replaces it), never over another file (a mistyped path once
    replaced a ledger with a chart). A folder is refused, naming `example` in it."""
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder; name the file, e.g. {path / example}")
    if folder_must_exist and not path.parent.is_dir():
        raise UsageError(f"--out {path}: the folder {path.parent} does not exist; create it first")
    if path.exists() or path.is_symlink():
        try:
            with path.open("rb") as fh:
                head = fh.read(512)
        except OSError as exc:
            raise UsageError(
                f"--out {path} cannot be read to check what it is ({exc.strerror or exc})"
            ) from None
        if not is_ours(head):
            raise UsageError(
                f"--out {path} exists and is not {kind}; refusing to replace it: name a new file (an earlier one "
                "is replaced)"
            )
    return path


def existing_home(explicit: str | None) -> BotHome:
    """The bot home of a command that only reads one: a missing or non-directory home is a UsageError."""
    home = BotHome.resolve(explicit)
    if not home.root.is_dir():
        raise UsageError(
            f"bot home {home.root} does not exist or is not a directory; pass --home DIR or set TBOT_HOME"
        )
    return home


def bot_home(explicit: str | None) -> BotHome:
    """The bot home of a command that works on one: a folder that is not a bot home (no .env_bot.enc: missing,
    empty, mistyped) is a UsageError, never an empty answer that reads as "nothing to report"."""
    home = existing_home(explicit)
    if not (home.env_bot_enc.exists() or home.env_bot_plain.exists()):
        raise UsageError(f"{home.root} is not a bot home (no .env_bot.enc); pass --home DIR or set TBOT_HOME")
    return home


# what may run in a home whose restore did not finish: the restore itself, and commands that only read
_WHILE_RESTORING = {
    ("backup", "restore"), ("backup", "list"), ("check", None), ("status", None), ("version", None),
    ("logs", "summary"), ("logs", "tail"), ("ledger", "verify"), ("ledger", "float"), ("config", "show"),
    ("config", "history"), ("summary", None), ("db", "verify"), ("data", "list"), ("optimize", "list"),
    ("optimize", "show"), ("secrets", "list"), ("tune", "report"), ("broker-check", None), ("backtest", None),
    # control requests (control/ is never archived): a supervisor may be asked to stop or pause meanwhile
    ("stop", None), ("pause", None), ("resume", None),
}  # fmt: skip
# options that make a reading command write (`trades --rebuild`, `positions --adopt ...`)
_WRITING_OPTIONS = ("rebuild", "adopt", "close", "ignore", "ignore_order", "rebuild_journal")


def refuse_during_restore(args: argparse.Namespace) -> None:
    """A home whose restore was cut off is a mix of the archive and what it replaced: a command that writes there
    (a user, a config change, a backup of the mix, a rotation) would be lost or kept by chance when the restore is
    run again, so only the commands of _WHILE_RESTORING run until it is."""
    command = getattr(args, "command", None)
    if command is None or "home" not in vars(args):
        return
    action = next(
        (v for k, v in vars(args).items() if k.startswith(f"{command}_") and isinstance(v, str)), None
    )
    writes = any(getattr(args, option, None) for option in _WRITING_OPTIONS)
    if (command, action) in _WHILE_RESTORING or (command in ("trades", "positions") and not writes):
        return
    home = BotHome.resolve(args.home)
    if home.restore_marker.exists():
        from tbot_bot.reporting.backup_restore import restore_problems

        named = " ".join(x for x in ("tbot", command, action) if x)
        problems = restore_problems(home)
        raise ConfigError(f"`{named}` refused: {problems[0] if problems else 'a restore did not finish'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    # what the bot writes (ledgers, journal, logs, reports, folders) is its user's alone, whatever the shell's umask
    # (systemd's units set UMask=0077; a hand-run provision or demo at 022 left them readable by every local user)
    os.umask(0o077)
    try:
        refuse_during_restore(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`tbot config show | head`): stop quietly, as Unix tools do
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe until exit
        except OSError:
            pass
        return 0
    except Exception as exc:  # the one top-level handler: a readable line, never a traceback
        return report(exc, args, debug=bool(getattr(args, "debug", False)))


if __name__ == "__main__":
    sys.exit(main())
