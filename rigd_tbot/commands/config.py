"""`tbot config show|edit|set|encrypt|history|rollback`: read and change the encrypted `.env_bot` through the validated config API."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from rigd_tbot.cli import add_home_argument, bot_home, cli_actor, existing_home
from tbot_bot.errors import ConfigError, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show, edit or set .env_bot values (validated, re-encrypted)")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True

    show = csub.add_parser("show", help="print every key with secrets masked")
    add_home_argument(show)
    show.set_defaults(func=run_show)

    edit = csub.add_parser(
        "edit",
        help="decrypt to a private temp file, open $EDITOR, validate, re-encrypt",
        description="An invalid result is refused and nothing is saved; the temp file is removed either way.",
    )
    add_home_argument(edit)
    edit.set_defaults(func=run_edit)

    setp = csub.add_parser("set", help="set KEY=VALUE pairs (validated together, then re-encrypted)")
    add_home_argument(setp)
    setp.add_argument(
        "assignments", nargs="+", metavar="KEY=VALUE", help="one or more .env_bot keys with their new values"
    )
    setp.set_defaults(func=run_set)

    enc = csub.add_parser(
        "encrypt",
        help="validate a plaintext .env_bot in the home, encrypt it to .env_bot.enc and delete the plaintext",
        description="An invalid file is refused and nothing is saved; a replaced .env_bot.enc is kept in env_bot.versioned/.",
    )
    add_home_argument(enc)
    enc.add_argument("--keep-plaintext", action="store_true", help="do not delete the plaintext .env_bot")
    enc.set_defaults(func=run_encrypt)

    hist = csub.add_parser(
        "history", help="list kept versions of .env_bot (env_bot.versioned/) with who changed what"
    )
    add_home_argument(hist)
    hist.set_defaults(func=run_history)

    rb = csub.add_parser(
        "rollback",
        help="make a kept version live again (validated, re-encrypted; the current one is kept too)",
    )
    rb.add_argument("version", metavar="VERSION", help="a version from `tbot config history`")
    add_home_argument(rb)
    rb.set_defaults(func=run_rollback)


def _actor() -> str:
    return cli_actor()


def run_show(args: argparse.Namespace) -> int:
    from tbot_bot.config.settings_bot import config_source, masked_items, read_env_text

    home = existing_home(args.home)
    items = masked_items(read_env_text(home))
    print(f"# {config_source(home)}")
    width = max(len(k) for k, _, _ in items)
    for key, value, _secret in items:
        print(f"{key.ljust(width)} = {value}")
    return 0


def run_set(args: argparse.Namespace) -> int:
    from tbot_bot.config.settings_bot import update_env_values

    updates: dict[str, str] = {}
    bad = []
    for item in args.assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad.append(f"{item!r} is not KEY=VALUE")
        else:
            updates[key.strip()] = value.strip()
    if bad:
        raise ConfigError(bad, source="tbot config set")
    update_env_values(existing_home(args.home), updates, actor=_actor())
    print(f"saved {', '.join(updates)} (validated and re-encrypted)")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from tbot_bot.config.settings_bot import config_version, read_env_text, save_env_text

    home = existing_home(args.home)
    original = read_env_text(home)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="tbot-config-") as tmp:
        os.chmod(tmp, 0o700)
        path = Path(tmp) / ".env_bot"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(original)
        try:
            command = shlex.split(editor)
        except ValueError as exc:
            raise UsageError(f"VISUAL/EDITOR={editor!r} cannot be parsed ({exc})") from None
        if not command:
            raise UsageError("VISUAL/EDITOR is empty; set it to an installed editor, e.g. EDITOR=nano")
        try:
            result = subprocess.run([*command, str(path)], check=False)
        except OSError as exc:
            raise UsageError(
                f"cannot start the editor {command[0]!r} ({exc.strerror or exc}); set VISUAL or EDITOR to an "
                "installed editor, e.g. EDITOR=nano"
            ) from None
        if result.returncode != 0:
            print(f"editor exited with {result.returncode}; nothing saved", file=sys.stderr)
            return 1
        raw = path.read_bytes()
    try:
        edited = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the edited configuration is not UTF-8 text (undecodable byte at offset {exc.start}); "
            "nothing was saved: run `tbot config edit` again and save it as plain text"
        ) from None
    if edited == original:
        print("no changes")
        return 0
    # raises ConfigError (exit 2) and saves nothing when invalid, or when someone else saved while we edited
    save_env_text(home, edited, actor=_actor(), expected_version=config_version(original))
    print("saved (validated and re-encrypted)")
    return 0


def run_encrypt(args: argparse.Namespace) -> int:
    from tbot_bot.config.settings_bot import encrypt_plaintext_file

    home = existing_home(args.home)
    encrypt_plaintext_file(home, home.env_bot_plain, actor=_actor(), remove_plaintext=not args.keep_plaintext)
    kept = " (plaintext kept)" if args.keep_plaintext else " (plaintext deleted)"
    print(f"encrypted {home.env_bot_plain} -> {home.env_bot_enc}{kept}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    from tbot_bot.config.config_versions import history

    versions = history(bot_home(args.home))
    if not versions:
        print("no kept versions (env_bot.versioned/ is empty)")
        return 0
    for v in versions:
        rec = v.replaced_by
        if rec is None:
            # the audit log does not know this replacement: it was written after the archive a restore put back
            print(f"{v.version}  replaced {v.saved_at:%Y-%m-%d %H:%M:%S} UTC (who and which keys: not in "
                  "logs/config_audit.log, e.g. a change made after the archive a restore put back)")  # fmt: skip
            continue
        keys = ", ".join(c["key"] for c in rec.get("changed", [])) or "no key"
        print(
            f"{v.version}  replaced {v.saved_at:%Y-%m-%d %H:%M:%S} UTC by {rec.get('actor', 'unknown')}: {keys}"
        )
    print("restore one with `tbot config rollback VERSION`")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from tbot_bot.config.config_versions import rollback

    changed = rollback(bot_home(args.home), args.version, actor=_actor())
    print(f"rolled back to {args.version}: {', '.join(changed) if changed else 'no key differed'}")
    return 0
