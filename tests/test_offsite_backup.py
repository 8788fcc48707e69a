"""Off-site backups against a real S3 API (moto's server on 127.0.0.1) and a local rsync daemon (issue 14)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rigd_tbot.cli import main
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.errors import ConfigError
from tbot_bot.reporting.auto_backup import create_backup, list_backups
from tbot_bot.reporting.offsite_backup import parse_target, upload_backups
from tbot_bot.support.decrypt_secrets import save_secret_json
from tbot_bot.support.path_resolver import BotHome

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC).replace(microsecond=0)
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.skip("moto_server not installed (moto[server] is in requirements.txt)")
    port = _free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def rsync_target(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    rsync = shutil.which("rsync")
    if rsync is None:
        pytest.skip("rsync is not installed (`make test` installs it as root via apt-get)")
    remote = tmp_path / "remote" / "tb01"
    remote.mkdir(parents=True)
    secrets = tmp_path / "rsyncd.secrets"
    secrets.write_text("tbot:s3cret\n")
    secrets.chmod(0o600)
    ident = "uid = root\n    gid = root\n" if os.getuid() == 0 else ""
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(
        f"pid file = {tmp_path}/rsyncd.pid\nuse chroot = no\n[backups]\n    path = {tmp_path}/remote\n"
        f"    read only = no\n    {ident}    auth users = tbot\n    secrets file = {secrets}\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [rsync, "--daemon", "--no-detach", "--address=127.0.0.1", f"--port={port}", f"--config={conf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, "rsync daemon")
        yield f"rsync://tbot@127.0.0.1:{port}/backups/tb01", remote
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _archives(home: BotHome, ages_days: list[float]) -> list[Path]:
    binding = load_binding(home)
    for age in ages_days:
        create_backup(home, [binding.ledger_path], now=NOW - timedelta(days=age))
    return list_backups(home)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_s3_upload_verifies_prunes_only_old_archives_and_is_idempotent(
    provisioned_home: Path, s3_endpoint: str
) -> None:
    import boto3

    home = BotHome(provisioned_home)
    old, recent1, recent2 = _archives(home, [10, 2, 0.01])
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="firm-backups")
    stale = f"tbot_backup_{(NOW - timedelta(days=12)):%Y%m%dT%H%M%S}Z.tar.gz.enc"
    s3.put_object(Bucket="firm-backups", Key=f"tb01/{stale}", Body=b"old")
    s3.put_object(Bucket="firm-backups", Key="tb01/README.txt", Body=b"not ours")
    url = "s3://firm-backups/tb01"
    first = upload_backups(home, url, keep_days=7, now=NOW, endpoint=s3_endpoint, credentials=CREDS)
    assert first.uploaded == [recent1.name, recent2.name]  # the 10-day-old one would be pruned at once
    assert first.pruned == [stale]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="firm-backups")["Contents"])
    assert keys == sorted(["tb01/README.txt", f"tb01/{recent1.name}", f"tb01/{recent2.name}"])
    body = s3.get_object(Bucket="firm-backups", Key=f"tb01/{recent1.name}")["Body"].read()
    assert _sha(body) == _sha(recent1.read_bytes())
    again = upload_backups(home, url, keep_days=7, now=NOW, endpoint=s3_endpoint, credentials=CREDS)
    assert (again.uploaded, again.already_there, again.pruned) == ([], [recent1.name, recent2.name], [])
    # a damaged remote copy (different digest) is uploaded again
    s3.put_object(
        Bucket="firm-backups", Key=f"tb01/{recent2.name}", Body=b"damaged", Metadata={"sha256": "0" * 64}
    )
    third = upload_backups(home, url, keep_days=7, now=NOW, endpoint=s3_endpoint, credentials=CREDS)
    assert third.uploaded == [recent2.name]
    assert old.exists()  # local archives are pruned by `tbot backup prune`, never by upload
    # ten days on with no new archive: every copy is past the retention, yet the newest stays (the prune emptied
    # the target: a backup review)
    later = upload_backups(
        home, url, keep_days=7, now=NOW + timedelta(days=10), endpoint=s3_endpoint, credentials=CREDS
    )
    assert later.pruned == [recent1.name]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="firm-backups")["Contents"])
    assert keys == sorted(["tb01/README.txt", f"tb01/{recent2.name}"])


def test_cli_upload_to_s3_with_stored_credentials(
    provisioned_home: Path, s3_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    home = BotHome(provisioned_home)
    _archives(home, [0.01])
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="cli-bucket")  # fmt: skip
    save_secret_json(home, "backup_upload_credentials", CREDS)
    argv = [
        "backup",
        "upload",
        "--home",
        str(provisioned_home),
        "--to",
        "s3://cli-bucket/x",
        "--endpoint",
        s3_endpoint,
    ]
    assert main(argv) == 0
    assert "1 uploaded, 0 already there, 0 pruned" in capsys.readouterr().out
    assert main([*argv[:-4], "--to", "ftp://nowhere/x"]) == 2
    assert "is not a supported target" in capsys.readouterr().err
    assert main([*argv, "--keep-days", "0"]) == 2


def test_rsync_daemon_target_upload_verify_prune(
    provisioned_home: Path, rsync_target: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, remote = rsync_target
    home = BotHome(provisioned_home)
    _, recent = _archives(home, [9, 1])
    stale = remote / f"tbot_backup_{(NOW - timedelta(days=20)):%Y%m%dT%H%M%S}Z.tar.gz.enc"
    stale.write_bytes(b"old")
    (remote / "notes.txt").write_text("not ours")
    save_secret_json(home, "backup_upload_credentials", {"RSYNC_PASSWORD": "s3cret"})
    assert main(["backup", "upload", "--home", str(provisioned_home), "--to", url, "--keep-days", "7"]) == 0
    out = capsys.readouterr().out
    assert "1 uploaded, 0 already there, 1 pruned" in out
    assert sorted(p.name for p in remote.iterdir()) == sorted([recent.name, "notes.txt"])
    assert _sha((remote / recent.name).read_bytes()) == _sha(recent.read_bytes())
    # the shell wrapper (what tbot-backup.service runs) with the target from the home's .env
    dotenv = provisioned_home / ".env"
    dotenv.write_text(dotenv.read_text().replace('BACKUP_UPLOAD_TO=""', f'BACKUP_UPLOAD_TO="{url}"'))
    env = {**os.environ, "TBOT": str(Path(sys.executable).with_name("tbot"))}
    done = subprocess.run(
        [str(ROOT / "support" / "upload_backups_to_cloud.sh"), "--home", str(provisioned_home)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 uploaded, 1 already there, 0 pruned" in done.stdout
    # a wrong password is a readable refusal, exit 2 (a restart will not fix it), not a traceback
    save_secret_json(home, "backup_upload_credentials", {"RSYNC_PASSWORD": "wrong"})
    assert main(["backup", "upload", "--home", str(provisioned_home), "--to", url]) == 2
    err = capsys.readouterr().err
    assert "rsync to rsync://" in err and "failed" in err and "Traceback" not in err


def test_wrapper_without_a_target_says_so_and_succeeds(provisioned_home: Path) -> None:
    env = {**os.environ, "TBOT": str(Path(sys.executable).with_name("tbot"))}
    done = subprocess.run(
        [str(ROOT / "support" / "upload_backups_to_cloud.sh"), "--home", str(provisioned_home)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and "nothing to upload" in done.stdout


def test_target_parsing() -> None:
    t = parse_target("s3://bucket-1/a/b/")
    assert (t.bucket, t.prefix) == ("bucket-1", "a/b/")
    assert parse_target("s3://bucket-1").prefix == ""
    ssh = parse_target("ssh://backup@vault.example.com:2222/srv/tbot")
    assert (ssh.rsync_dest, ssh.ssh_port) == ("backup@vault.example.com:/srv/tbot/", 2222)
    for bad in ("s3://Bad_Bucket/x", "rsync://host", "ssh://host", "/local/dir", "http://x/y"):
        with pytest.raises(ConfigError):
            parse_target(bad)


def test_backup_prune_keeps_the_newest(provisioned_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = BotHome(provisioned_home)
    archives = _archives(home, [3, 2, 1])
    assert main(["backup", "prune", "--home", str(provisioned_home), "--keep", "1"]) == 0
    assert list_backups(home) == [archives[-1]]
    assert main(["backup", "prune", "--home", str(provisioned_home), "--keep", "0"]) == 2
    assert "--keep 0 must be at least 1" in capsys.readouterr().err


def test_systemd_units_wait_for_the_network_properly_and_backup_prunes_and_uploads() -> None:
    units = sorted((ROOT / "deploy" / "systemd").iterdir())
    for unit in units:
        text = unit.read_text()
        if "After=network-online.target" in text:
            assert "Wants=network-online.target" in text, unit.name
        if "@" not in unit.name:
            assert "%i" not in text, unit.name
    backup = (ROOT / "deploy" / "systemd" / "tbot-backup.service").read_text()
    steps = [line for line in backup.splitlines() if line.startswith("ExecStart=")]
    assert len(steps) == 3
    assert steps[0].endswith("/tbot backup create") and steps[1].endswith("/tbot backup prune")
    assert "/support/upload_backups_to_cloud.sh --home " in steps[2]


def test_every_scpignore_keeps_keys_secrets_configs_homes_and_ledgers_out(tmp_path: Path) -> None:
    rsync = shutil.which("rsync")
    if rsync is None:
        pytest.skip("rsync is not installed (`make test` installs it as root via apt-get)")
    src = tmp_path / "src"
    sensitive = [
        ".env", ".env.local", ".env_bot", ".env_bot.enc", "storage/keys/env.key", "storage/keys/env.key.prev",
        "storage/secrets/broker_credentials.json.enc", "entities/RGL_USA/ledgers/bot/X_BOT_ledger.db",
        "entities/RGL_USA/ledgers/bot/X_BOT_ledger.db-wal", "env_bot.versioned/20261116.enc", "output/s/logs/open.log",
        "backups/tbot_backup_20261116T000000Z.tar.gz.enc", "demo_home/.env_bot.enc", "home/storage/keys/login.key",
        "logs/web/access.log", "control/stop", "data/cache/vix.csv", "LEDGER_STATUS.db",
    ]  # fmt: skip
    shipped = [".env_bot.template-test", "tbot_bot/errors.py", "README.md", "deploy/systemd/tbot.service"]
    for rel in sensitive + shipped:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    for rules in sorted(ROOT.glob(".scpignore_*")):
        done = subprocess.run(
            [rsync, "-a", "--dry-run", "--out-format=%n", f"--exclude-from={rules}", f"{src}/", str(tmp_path / "dst")],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        sent = {line.rstrip("/") for line in done.stdout.splitlines()}
        leaked = [rel for rel in sensitive if rel in sent]
        assert leaked == [], f"{rules.name} ships {leaked}"
        assert {".env_bot.template-test", "tbot_bot/errors.py"} <= sent, rules.name


def test_verify_compares_the_ledger_with_the_newest_off_site_manifest(
    provisioned_home: Path, s3_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rolling back the ledger with every local anchor (sidecar, LEDGER_STATUS.db, local archives) is named by
    `tbot ledger verify` from the head in the newest archive off the machine (issue 23)."""
    import boto3
    from test_ledger_fixtures import fill

    from tbot_bot.accounting.account_transaction import entries_for_fill
    from tbot_bot.accounting.accounting_api import LedgerWriter
    from tbot_bot.accounting.ledger_anchor import sidecar_path

    home = BotHome(provisioned_home)
    binding = load_binding(home)
    verify = ["ledger", "verify", "--home", str(home.root)]
    assert main(verify) == 0
    assert "off-site backup manifest not consulted: no BACKUP_UPLOAD_TO" in capsys.readouterr().out
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="anchor-bucket")  # fmt: skip
    save_secret_json(home, "backup_upload_credentials", CREDS)
    import re

    text = home.dotenv.read_text()
    text = re.sub(r"(?m)^BACKUP_UPLOAD_TO=.*$", "BACKUP_UPLOAD_TO=s3://anchor-bucket/tb01", text)
    text = re.sub(r"(?m)^BACKUP_UPLOAD_ENDPOINT=.*$", f"BACKUP_UPLOAD_ENDPOINT={s3_endpoint}", text)
    home.dotenv.write_text(text)
    local = [
        binding.ledger_path,
        sidecar_path(binding.ledger_path, binding.backup_dir),
        home.core_db("LEDGER_STATUS"),
    ]
    saved = tmp_path / "before"
    saved.mkdir()
    for n, path in enumerate(local):
        shutil.copy2(path, saved / str(n))
    writer = LedgerWriter.for_home(home, binding.ledger_path, binding, 5)
    writer.ingest(entries_for_fill(fill("LATER-1", posted_at=datetime(2011, 1, 10, 15, tzinfo=UTC))))
    writer.anchors.close()  # type: ignore[union-attr]
    assert main(["backup", "create", "--home", str(home.root)]) == 0
    assert main(["backup", "upload", "--home", str(home.root)]) == 0
    capsys.readouterr()
    assert main(verify) == 0
    assert "consulted the newest off-site backup" in capsys.readouterr().out

    for n, path in enumerate(local):  # every local anchor rolled back together with the ledger
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        shutil.copy2(saved / str(n), path)
    shutil.rmtree(home.backups_dir)
    assert main(verify) == 1
    out = capsys.readouterr().out
    assert "behind the head recorded in the newest off-site backup tbot_backup_" in out and "LATER-1" in out
    # a damaged newest copy (a truncated upload, another bot's archive) no longer silences the check: the newest
    # readable one still names the rollback
    damaged = f"tbot_backup_{datetime.now(UTC) + timedelta(days=1):%Y%m%dT%H%M%S}Z.tar.gz.enc"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing").put_object(Bucket="anchor-bucket", Key=f"tb01/{damaged}", Body=b"not an archive")  # fmt: skip
    assert main(verify) == 1
    out = capsys.readouterr().out
    assert (
        "off-site backup 1 (newest first) unreadable" in out
        and "behind the head recorded in the newest" in out
    )


def test_the_backup_units_tbot_steps_run_as_written(
    provisioned_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tbot-backup.service runs `tbot backup prune` with no --keep: argparse required it, so the daily unit failed
    there every day, before the off-site copy (a backup review). Each `tbot` step of the unit, as written, with the
    unit's TBOT_HOME, exits 0; prune keeps BACKUP_KEEP (from the home's .env) archives."""
    import shlex

    from rigd_tbot.cli import main
    from tbot_bot.reporting.auto_backup import list_backups

    unit = (ROOT / "deploy" / "systemd" / "tbot-backup.service").read_text()
    steps = [
        shlex.split(line.partition("=")[2]) for line in unit.splitlines() if line.startswith("ExecStart=")
    ]
    tbot_steps = [argv[1:] for argv in steps if argv[0].endswith("/tbot")]
    assert [s[:2] for s in tbot_steps] == [["backup", "create"], ["backup", "prune"]]
    monkeypatch.setenv("TBOT_HOME", str(provisioned_home))
    env = provisioned_home / ".env"
    env.write_text(env.read_text().replace("BACKUP_KEEP=14", "BACKUP_KEEP=2"))
    for _ in range(3):
        for argv in tbot_steps:
            assert main(argv) == 0, (argv, capsys.readouterr().err)
    assert len(list_backups(BotHome(provisioned_home))) == 2


def test_remote_retention_keeps_the_newest_of_two_archives_of_one_second() -> None:
    """Sorted by name, `<stamp>Z.tar.gz.enc` came after `<stamp>Z-1.tar.gz.enc`: the prune kept the older of two
    archives of the same second and deleted the newer (a diff review)."""
    from tbot_bot.reporting.offsite_backup import prunable

    first, second = "tbot_backup_20261125T000000Z.tar.gz.enc", "tbot_backup_20261125T000000Z-1.tar.gz.enc"
    old = "tbot_backup_20251125T000000Z.tar.gz.enc"
    assert prunable({first, second, old}, datetime(2027, 1, 1, tzinfo=UTC)) == sorted([first, old])


def test_a_copy_that_fails_verification_is_removed_and_uploaded_again(
    provisioned_home: Path, s3_endpoint: str
) -> None:
    """A provider that stores other bytes and ignores the checksum header: the verification caught it, but left the
    object, whose sha256 metadata (written by us, not measured) had the next run take it for good, for ever."""
    import boto3

    from tbot_bot.errors import NetworkError
    from tbot_bot.reporting.offsite_backup import s3_client, upload_s3

    home = BotHome(provisioned_home)
    (archive,) = _archives(home, [0.01])
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="verify-bucket")
    real = s3_client(s3_endpoint, CREDS)

    class Mangling:
        def __getattr__(self, item: str) -> object:
            return getattr(real, item)

        def put_object(self, **kw: object) -> object:
            kw.pop("ChecksumAlgorithm", None)  # the provider ignores it
            return real.put_object(**{**kw, "Body": b"TRUNCATED"})

    target = parse_target("s3://verify-bucket/tb01")
    with pytest.raises(NetworkError, match="differs from the local archive"):
        upload_s3(Mangling(), target, [archive], 7, NOW)
    assert "Contents" not in s3.list_objects_v2(Bucket="verify-bucket")  # the bad copy is gone
    again = upload_s3(real, target, [archive], 7, NOW)
    assert again.uploaded == [archive.name] and again.already_there == []


def test_s3_refusals_a_person_must_fix_are_configuration_errors_not_outages() -> None:
    """A HEAD refused has no body, only its 403 (a key without s3:GetObject): it exited 75 ("retry later") every day.
    So did a provider refusing the checksum headers every upload sends (Backblaze B2: 400 InvalidArgument)."""
    from botocore.exceptions import ClientError

    from tbot_bot.errors import NetworkError
    from tbot_bot.reporting.offsite_backup import _s3_error

    def refused(code: str, status: int) -> Exception:
        err = ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadObject"
        )
        return _s3_error(err, "upload to s3://b/p")

    assert isinstance(refused("403", 403), ConfigError)
    checksum = refused("InvalidArgument", 400)
    assert isinstance(checksum, ConfigError) and "checksum headers" in str(checksum)
    assert isinstance(refused("InternalError", 500), NetworkError)
    assert isinstance(refused("SlowDown", 503), NetworkError)


def test_the_newest_off_site_archive_of_one_second_is_the_later_one(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    from tbot_bot.reporting.offsite_backup import fetch_newest

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="order-bucket")
    stamp = f"tbot_backup_{NOW:%Y%m%dT%H%M%S}Z"
    for suffix, body in (("", b"first"), ("-1", b"second"), ("-9", b"tenth?"), ("-10", b"eleventh")):
        s3.put_object(Bucket="order-bucket", Key=f"tb01/{stamp}{suffix}.tar.gz.enc", Body=body)
    got = fetch_newest("s3://order-bucket/tb01", tmp_path, endpoint=s3_endpoint, credentials=CREDS)
    assert got is not None and got.read_bytes() == b"eleventh"  # -10 after -9 after -1 after the first
