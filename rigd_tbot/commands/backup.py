"""`tbot backup create|list|restore|prune|upload`: encrypted, timestamped archives of a whole bot (ledgers,
journal, core databases, config and its versions, output, logs, state, universe and caches; never keys or
secrets); off-site copies on S3 or an rsync server."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rigd_tbot.cli import add_home_argument, bot_home, bounded_int, existing_home
from tbot_bot.support.path_resolver import BotHome

if TYPE_CHECKING:
    from tbot_bot.reporting.backup_restore import RestoreResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="create, list or restore encrypted backups", description=__doc__)
    actions = p.add_subparsers(dest="backup_action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser(
        "create",
        help="archive the whole bot (ledgers, journal, databases, config, output, logs, data) into backups/; "
        "keys and secrets are never archived",
    )
    add_home_argument(create)
    create.add_argument(
        "--keep",
        type=bounded_int(1, 100000),
        default=None,
        help="then keep only the newest N archives (>= 1)",
    )
    listing = actions.add_parser("list", help="list archives in backups/, oldest first")
    add_home_argument(listing)
    listing.add_argument(
        "--verbose",
        action="store_true",
        help="also print each archive's manifest: every file with its kind, size and SHA-256",
    )
    listing.add_argument(
        "--key-file",
        default=None,
        help="backup key for --verbose (default: storage/keys/backup.key in this home)",
    )
    restore = actions.add_parser(
        "restore",
        help="restore an archive: into an empty home, or into a home of the same bot (what it replaces is archived "
        "first); another bot's home is refused",
    )
    add_home_argument(restore)
    restore.add_argument(
        "--archive",
        required=True,
        help="the .tar.gz.enc archive to restore (a bare name not found here: the one of that name in backups/)",
    )
    restore.add_argument(
        "--key-file", default=None, help="backup key (default: storage/keys/backup.key in this home)"
    )
    restore.add_argument(
        "--new-keys",
        action="store_true",
        help="restore into a home whose env or ledger key is missing by making new ones (the key backup is lost; "
        "the broker secrets must be entered again)",
    )
    restore.add_argument(
        "--accept-unsigned",
        action="store_true",
        help="restore an archive whose ledger heads carry no signature (made before tbot.backup/2, or by a home "
        "without a ledger key): its books cannot be told from a forgery, so only one you made yourself",
    )
    prune = actions.add_parser("prune", help="delete all but the newest N archives in backups/")
    add_home_argument(prune)
    prune.add_argument(
        "--keep",
        type=int,
        default=None,
        help="how many of the newest archives to keep (>= 1; default: BACKUP_KEEP from the home's .env, as the "
        "daily tbot-backup.service runs it)",
    )
    upload = actions.add_parser(
        "upload",
        help="copy archives off-site (S3 or rsync), verify checksums, prune old remote copies",
        description="Targets: s3://bucket/prefix (AWS S3, MinIO, any S3-compatible with --endpoint), "
        "rsync://host[:port]/module/path (rsync daemon) or ssh://[user@]host[:port]/path (rsync over ssh). "
        "Without --to, BACKUP_UPLOAD_TO from the home's .env is used. Credentials: `tbot secrets set backup_upload`.",
    )
    add_home_argument(upload)
    upload.add_argument(
        "--to", default=None, help="target URL (default: BACKUP_UPLOAD_TO in the home's .env)"
    )
    upload.add_argument(
        "--endpoint", default=None, help="S3 endpoint URL, e.g. http://minio:9000 (s3:// only)"
    )
    upload.add_argument(
        "--keep-days",
        type=int,
        default=None,
        help="remote retention in days (default BACKUP_UPLOAD_KEEP_DAYS or 7)",
    )
    for parser in (create, listing, restore, prune, upload):
        parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.reporting.auto_backup import create_backup, list_backups, read_manifest
    from tbot_bot.reporting.backup_restore import restore_backup
    from tbot_bot.support.utils_bot import utc_now

    home = BotHome.resolve(args.home)
    if args.backup_action == "list":
        # a home that lost its config but kept its archives is exactly where one is chosen to restore from
        existing_home(args.home) if home.backups_dir.is_dir() else bot_home(args.home)
        key = Path(args.key_file).expanduser().resolve() if args.key_file else None
        archives = list_backups(home)
        for archive in archives:
            print(f"{archive.name}\t{archive.stat().st_size} bytes")
            if args.verbose:
                _print_manifest(read_manifest(archive, home, key))
        if not archives:
            print(
                f"no backup archives in {home.relative(home.backups_dir)} yet (`tbot backup create` makes one)"
            )
        return 0
    if args.backup_action == "prune":
        bot_home(args.home)
        return _prune(home, args.keep)
    if args.backup_action == "upload":
        with _alert_on_failure(home, "backup_upload_failed", "off-site backup upload failed"):
            return _upload(home, args)
    if args.backup_action == "restore":
        key = Path(args.key_file).expanduser().resolve() if args.key_file else None
        archive = _archive_path(args.archive, home)
        restored = restore_backup(
            archive,
            home,
            key_path=key,
            now=utc_now(),
            new_keys=args.new_keys,
            accept_unsigned=args.accept_unsigned,
        )
        closed_before, closed_after = restored.closed_before, restored.closed_after
        if restored.safety_archive is not None:
            print(f"archived the state it replaces first: {restored.safety_archive}")
        for path in restored.replaced:
            print(f"replaced {home.relative(path)}")
        for path in restored.kept:
            if path == home.env_bot_enc:
                why = "the archive's did not decrypt when it was made: a damaged configuration is not brought back"
            elif path.name.startswith(("SYSTEM_USERS", "PASSWORD_RESET", "USER_ACTIVITY")):
                why = "users, sign-ins and their record are not rolled back"
            else:
                why = "the record of who did what is not rolled back"
            print(f"kept {home.relative(path)} of this home ({why})")
        for path in restored.removed:
            print(f"removed {home.relative(path)} (made after the archive, of days its ledger does not hold)")
        print(f"restored {len(restored)} file(s) into {home.root}; ledgers verify and are re-anchored")
        if closed_before is not None and (closed_after or "") < closed_before:
            # a rollback to before a month's close opens that month again: the accountant must know
            print(
                f"note: the books are now closed through {closed_after or 'no month'} (they were closed through "
                f"{closed_before}): the months closed since the archive are open again"
            )
        elif closed_after != closed_before:
            print(
                f"note: the books are now closed through {closed_after} (they were closed through "
                f"{closed_before or 'no month'}): the archive closed later months than this home had"
            )
        if not home.env_bot_enc.exists() and not (home.root / ".env_bot").exists():
            # an archive made before the whole bot was archived holds the books only: the home cannot start yet
            print(
                "note: the archive holds no configuration (.env_bot.enc): it was made by an older version that "
                "archived the books only; put a configuration in place (`tbot config encrypt`, or provision the "
                "home) before `tbot start`"
            )
        _record_restore(home, archive, restored, closed_before, closed_after)
        from tbot_bot.support.decrypt_secrets import secret_exists

        lacking = [n for n in ("bot_identity", "accounting_injection") if not secret_exists(home, n)]
        if lacking:
            # archives never hold secrets: a home restored without them cannot boot until they are back
            print(
                f"next: {' and '.join(str(home.relative(home.secret_file(n))) for n in lacking)} are not here (archives "
                "never hold secrets): the accounting system writes them (or copy them from the key backup), then "
                f"`tbot check --home {home.root}`"
            )
        return 0
    from tbot_bot.accounting.accounting_config import load_binding

    with _alert_on_failure(home, "backup_failed", "backup failed"):
        binding = load_binding(home, check_files=False)
        ledgers = [p for p in (binding.ledger_path, binding.float_ledger_path) if p.exists()]
        archive = create_backup(
            home,
            ledgers,
            coa_files=[binding.coa_path] if binding.coa_path.exists() else [],
            now=utc_now(),
            keep=args.keep,
            identity=binding.identity.to_json(),
            injected_backup_dirs=[binding.backup_dir],
        )
    print(f"wrote {archive}")
    return 0


@contextmanager
def _alert_on_failure(home: BotHome, trigger: str, what: str) -> Iterator[None]:
    """A backup or upload that fails (tbot-backup.service runs unattended) alerts once, then fails as before."""
    from tbot_bot.errors import TbotError
    from tbot_bot.trading.notifier_bot import alert_from_command

    try:
        yield
    except (TbotError, OSError) as exc:
        print(alert_from_command(home, trigger, f"{what} for {home.root}: {exc}"), file=sys.stderr)
        raise


def _print_manifest(manifest: dict) -> None:  # type: ignore[type-arg]
    files = manifest.get("files") or {}
    total = sum(int(info.get("size", 0)) for info in files.values())
    print(
        f"  created {manifest.get('created_at', '?')}, {len(files)} file(s), {total} bytes before compression"
    )
    for name, info in sorted(files.items()):
        size = info.get("size")
        print(
            f"  {info.get('kind', 'file'):<7} {'?' if size is None else size:>10}  {info.get('sha256', '')}  {name}"
        )


def _archive_path(given: str, home: BotHome) -> Path:
    """--archive as given (against the working folder), or, for a bare name that is not there, the archive of
    that name in the home's backups/ (what `tbot backup list` prints)."""
    path = Path(given).expanduser()
    if not path.exists() and path.name == given and (home.backups_dir / given).exists():
        return (home.backups_dir / given).resolve()
    if not path.exists():
        from tbot_bot.errors import UsageError
        from tbot_bot.reporting.auto_backup import list_backups

        names = [a.name for a in list_backups(home)]
        held = f"; it holds {', '.join(names[-5:])}" if names else "; it holds no archive"
        raise UsageError(
            f"no archive {given!r}: not a file here ({path}) nor in {home.backups_dir}{held} (`tbot backup list`)"
        )
    return path.resolve()


def _prune(home: BotHome, keep: int | None) -> int:
    from tbot_bot.config.dotenv import read_dotenv
    from tbot_bot.errors import ConfigError
    from tbot_bot.reporting.auto_backup import list_backups

    given = "--keep"
    if keep is None:
        raw = read_dotenv(home).get("BACKUP_KEEP", "").strip()
        if not raw.isdigit():
            raise ConfigError("pass --keep N (or set BACKUP_KEEP=N in the home's .env)")
        keep, given = int(raw), f"BACKUP_KEEP in {home.dotenv}:"
    if keep < 1:
        raise ConfigError(f"{given} {keep} must be at least 1 (the newest archive is never deleted)")
    old = list_backups(home)[:-keep]
    for archive in old:
        archive.unlink()
        print(f"deleted {archive.name}")
    print(f"backup prune: {len(old)} deleted, {len(list_backups(home))} kept")
    return 0


def _upload(home: BotHome, args: argparse.Namespace) -> int:
    from tbot_bot.config.dotenv import read_dotenv
    from tbot_bot.errors import ConfigError
    from tbot_bot.reporting.offsite_backup import upload_backups
    from tbot_bot.support.decrypt_secrets import load_secret_json, secret_exists
    from tbot_bot.support.utils_bot import utc_now

    existing_home(args.home)
    dotenv = read_dotenv(home)
    url = args.to or dotenv.get("BACKUP_UPLOAD_TO", "").strip()
    if not url:
        raise ConfigError(
            "no upload target: pass --to s3://bucket/prefix (or rsync:// / ssh://) or set BACKUP_UPLOAD_TO in .env"
        )
    raw_days = args.keep_days if args.keep_days is not None else dotenv.get("BACKUP_UPLOAD_KEEP_DAYS", "7")
    try:
        keep_days = int(raw_days)
    except ValueError:
        raise ConfigError(f"BACKUP_UPLOAD_KEEP_DAYS={raw_days!r} must be a whole number of days") from None
    creds = (
        load_secret_json(home, "backup_upload_credentials")
        if secret_exists(home, "backup_upload_credentials")
        else {}
    )
    endpoint = args.endpoint or dotenv.get("BACKUP_UPLOAD_ENDPOINT", "").strip() or None
    result = upload_backups(
        home, url, keep_days=keep_days, now=utc_now(), endpoint=endpoint, credentials=creds
    )
    for name in result.uploaded:
        print(f"uploaded  {name} (checksum verified)")
    for name in result.pruned:
        print(f"pruned    {name} (older than {keep_days} days)")
    print(
        f"backup upload to {url}: {len(result.uploaded)} uploaded, {len(result.already_there)} already there, "
        f"{len(result.pruned)} pruned"
    )
    return 0


def _record_restore(
    home: BotHome, archive: Path, restored: RestoreResult, before: str | None, after: str | None
) -> None:
    """A restore is a deliberate rollback of the books: the system log records who, what and what it reopened."""
    from rigd_tbot.cli import cli_actor
    from tbot_bot.core.audit import log_system_event

    if not home.core_db("SYSTEM_LOGS").exists():
        return
    files, safety = len(restored), restored.safety_archive
    log_system_event(
        home, source="backup", event="restore", actor=cli_actor(), level="warning" if before != after else "info",
        detail=f"{archive.name}: {files} file(s) restored"
        + (f"; the state replaced is in {safety.name}" if safety else "")
        + (f"; closed through {after or 'no month'} (was {before})" if before != after else ""),
    )  # fmt: skip
