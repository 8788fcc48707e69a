"""`tbot users add|list|set-role|disable|enable|reset-token`: dashboard accounts in SYSTEM_USERS.db."""

from __future__ import annotations

import argparse
import getpass
import sys

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.core import login_guard, users
from tbot_bot.core.audit import log_done_event
from tbot_bot.core.reset_tokens import issue_reset_token
from tbot_bot.errors import ConfigError, UsageError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="manage dashboard users (bcrypt hashes in SYSTEM_USERS.db)")
    actions = p.add_subparsers(dest="users_action", metavar="ACTION")
    actions.required = True

    add = actions.add_parser(
        "add",
        help="create a user; the password is read from stdin when it is not a terminal, else prompted twice",
    )
    add_home_argument(add)
    add.add_argument("--username", required=True, help="2-32 characters: letters, digits, '.', '_', '-'")
    add.add_argument(
        "--role",
        default=None,
        help="admin, operator, auditor or viewer (default: DEFAULT_USER_ROLE from the bot config)",
    )
    add.set_defaults(func=run)

    lst = actions.add_parser("list", help="list users with role, state and last login")
    add_home_argument(lst)
    lst.set_defaults(func=run)

    role = actions.add_parser("set-role", help="change a user's role")
    add_home_argument(role)
    role.add_argument("--username", required=True, help="the user whose role changes")
    role.add_argument("--role", required=True, help="viewer, auditor, operator or admin")
    role.set_defaults(func=run)

    for name, text in (
        ("disable", "block a user from signing in"),
        ("enable", "allow a disabled user again"),
    ):
        q = actions.add_parser(name, help=text)
        add_home_argument(q)
        q.add_argument("--username", required=True, help="the user to change")
        q.set_defaults(func=run)

    unlock = actions.add_parser(
        "unlock", help="lift a user's sign-in lockouts on every client (after too many failed attempts)"
    )
    add_home_argument(unlock)
    unlock.add_argument("--username", required=True, help="the user whose lockouts end now")
    unlock.set_defaults(func=run)

    tok = actions.add_parser("reset-token", help="issue a one-time password-reset token (printed once)")
    add_home_argument(tok)
    tok.add_argument("--username", required=True, help="the user who may set a new password with the token")
    tok.set_defaults(func=run)


def _read_password() -> str:
    if not sys.stdin.isatty():
        try:
            line = sys.stdin.readline().rstrip("\r\n")
            line.encode("utf-8")  # bytes that are not UTF-8 arrive as lone surrogates (surrogateescape)
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise UsageError(
                "the password read from standard input is not UTF-8 text; nothing was saved. "
                "Send it as UTF-8, or run the command in a terminal to be prompted"
            ) from None
        return line
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise ConfigError("the two passwords differ; nothing was saved")
    return first


def _default_role(home: BotHome) -> str:
    try:
        from tbot_bot.config.settings_bot import load_settings

        return str(load_settings(home).DEFAULT_USER_ROLE)
    except (ImportError, ConfigError) as exc:
        raise ConfigError(
            f"--role was not given and DEFAULT_USER_ROLE could not be read ({exc}); pass --role"
        ) from exc


def run(args: argparse.Namespace) -> int:
    home = existing_home(args.home)
    action = args.users_action
    if action == "add":
        role = args.role or _default_role(home)
        users.parse_role(role)
        users.validate_username(args.username)
        user = users.add_user(home, args.username, _read_password(), role, created_by="cli")
        print(f"user {user.username} created with role {user.role}")
        _record(home, "user_added", f"{user.username} ({user.role})")
    elif action == "list":
        for u in users.list_users(home):
            state = "active" if u.is_active else "disabled"
            locked = login_guard.locked_clients(home, u.username, utc_now())
            lock = (
                "; LOCKED OUT from " + ", ".join(f"{c} until {t:%Y-%m-%d %H:%M}Z" for c, t in locked)
                + f" (`tbot users unlock {u.username}`)"
                if locked
                else ""
            )  # fmt: skip
            print(
                f"{u.username:<24} {u.role.value:<9} {state:<8} last login: {u.last_login_at or 'never'}{lock}"
            )
    elif action == "set-role":
        user = users.set_role(home, args.username, args.role)
        print(f"{user.username} is now {user.role}")
        _record(home, "user_role_changed", f"{user.username} -> {user.role}")
    elif action in ("disable", "enable"):
        user = users.set_active(home, args.username, action == "enable")
        print(f"{user.username} {action}d")
        _record(home, f"user_{action}d", user.username)
    elif action == "unlock":
        user = users.get_user(home, args.username)
        if user is None:
            raise UsageError(f"no user named {args.username!r}")
        cleared = login_guard.clear_failures(home, user.username)
        print(f"{user.username}: sign-in lockouts lifted ({cleared} client(s))")
        _record(home, "user_unlocked", user.username)
    elif action == "reset-token":
        token = issue_reset_token(home, args.username, issued_by="cli")
        print(f"one-time reset token for {args.username} (valid 24 h, shown once): {token}")
        _record(home, "reset_token_issued", args.username)
    return 0


def _record(home: BotHome, event: str, detail: str) -> None:
    """The system-log row of a change already made: one the log cannot take is a warning, not a failure (the change
    stands; a re-run would be refused as already done)."""
    unrecorded = log_done_event(home, source="cli", event=event, actor="cli", detail=detail)
    if unrecorded:
        print(f"warning: {unrecorded}", file=sys.stderr)
