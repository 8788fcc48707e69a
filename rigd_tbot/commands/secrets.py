"""`tbot secrets set NAME` / `tbot secrets list`: complete a home's encrypted secrets without writing Python.

Values never come from the command line (argv is visible to every user in `ps` and lands in shell history):
`set` reads KEY=VALUE lines or one JSON object from stdin, or with `--from-env` the NAME's keys from the
environment. `list` shows which keys are present with every value masked, except the switches that say paper
or live (ALPACA_PAPER, TRADIER_SANDBOX, IBKR_PORT), shown as they are with the mode they give.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.secret_schema import SPECS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "secrets",
        help="set or list the home's encrypted secrets (broker, screener, smtp, alerts, acct_api, backup_upload)",
        description="Manage storage/secrets/*.json.enc; values come from stdin or the environment, never argv.",
    )
    cmds = p.add_subparsers(dest="secrets_command", metavar="ACTION")
    cmds.required = True
    names = ", ".join(f"{n} ({s.purpose})" for n, s in SPECS.items())
    st = cmds.add_parser(
        "set",
        help="validate and store one secret from stdin or the environment",
        description=(
            "Read KEY=VALUE lines (or one JSON object) from stdin, merge them into the secret NAME, validate "
            f"and encrypt it. An empty value removes a key. NAME: {names}."
        ),
        epilog="example: tbot secrets set screener --home H < screener.env  (a 0600 file: FINNHUB_API_KEY=...)",
    )
    add_home_argument(st)
    st.add_argument("name", choices=list(SPECS), metavar="NAME", help=f"one of {', '.join(SPECS)}")
    st.add_argument(
        "--from-env",
        action="store_true",
        help="take the NAME's keys from environment variables of the same name instead of stdin",
    )
    st.add_argument(
        "--replace", action="store_true", help="replace the whole secret instead of merging into it"
    )
    st.set_defaults(func=run_set)
    ls = cmds.add_parser("list", help="which secrets and keys are present (values masked)")
    add_home_argument(ls)
    ls.set_defaults(func=run_list)


def parse_secret_text(text: str) -> dict[str, Any]:
    """KEY=VALUE lines (blank lines and # comments ignored) or one JSON object of scalars."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"stdin is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(data, dict):
            raise ConfigError("stdin JSON must be one object of KEY: value pairs")
        bad = [k for k, v in data.items() if not isinstance(v, str | int | bool) or v is None]
        if bad:
            raise ConfigError(f"values must be text, numbers or true/false; not for {', '.join(bad)}")
        return {str(k): v for k, v in data.items()}
    values: dict[str, Any] = {}
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"stdin line {n}: expected KEY=VALUE")
        elif key in values:
            problems.append(f"stdin line {n}: {key} given twice")
        else:
            values[key] = value.strip()
    if problems:
        raise ConfigError(problems)
    return values


def _broker_code(home: BotHome) -> str:
    from tbot_bot.accounting.accounting_config import load_identity

    if not home.secret_file("bot_identity").exists():
        raise ConfigError(f"{home.root} is not a provisioned bot home; run `tbot provision` first")
    return load_identity(home).BROKER_CODE


def run_set(args: argparse.Namespace) -> int:
    from tbot_bot.support.decrypt_secrets import set_operator_secret

    home = existing_home(args.home)
    broker_code = _broker_code(home)
    keys = SPECS[args.name].keys
    if args.from_env:
        values: dict[str, Any] = {k: os.environ[k] for k in keys if k in os.environ}
        if not values:
            raise ConfigError(f"--from-env: none of {', '.join(keys)} is set in the environment")
    else:
        if sys.stdin.isatty():
            print(f"enter {args.name} values as KEY=VALUE lines, then Ctrl-D:", file=sys.stderr)
        values = parse_secret_text(sys.stdin.read())
        if not values:
            raise ConfigError(
                f"no values on stdin; pipe KEY=VALUE lines (keys: {', '.join(keys)}) or use --from-env"
            )
    stored = set_operator_secret(home, args.name, values, broker_code=broker_code, replace=args.replace)
    print(f"stored {args.name} ({home.secret_file(SPECS[args.name].file).name}): {', '.join(sorted(stored))}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from tbot_bot.support.decrypt_secrets import operator_secret_status
    from tbot_bot.support.secret_schema import mask, required_secrets, secret_problems
    from tbot_bot.support.trading_mode import MODE_SWITCHES, mode_from_credentials

    home = existing_home(args.home)
    broker_code = _broker_code(home)
    required = required_secrets(broker_code)
    for name, s in SPECS.items():
        present, values, unreadable = operator_secret_status(home, name)
        need = "required" if name in required else "optional"
        if not present:
            print(f"{name:<9} {need:<8} missing   ({s.purpose})")
            continue
        if values is None:
            print(f"{name:<9} {need:<8} UNREADABLE {unreadable}")
            continue
        problems = secret_problems(s, values, broker_code)
        state = "ok" if not problems else "INVALID"
        print(f"{name:<9} {need:<8} {state:<9} {s.file}.json.enc")
        for key in sorted(values):
            # a paper/live switch is not a secret: the operator must see which account the bot trades
            shown = values[key] if key in MODE_SWITCHES else mask(values[key])
            print(f"    {key} = {shown}")
        if s.file == "broker_credentials":
            print(f"    mode: {mode_from_credentials(broker_code, values, replay=False)}")
        for p in problems:
            print(f"    problem: {p}")
    return 0
