"""Off-site copies of the encrypted backup archives (spec upload_backups_to_cloud.sh): S3 or rsync.

Targets: `s3://bucket/prefix` (AWS S3, MinIO, any S3-compatible API via `--endpoint`), with boto3; or
`rsync://host[:port]/module/path` (an rsync daemon) and `ssh://[user@]host[:port]/path` (rsync over ssh) with the
system rsync. Only archives already encrypted by `tbot backup create` leave the machine.

Every local archive within the retention (`--keep-days`, by the UTC time in its name) that the target does not
hold with the same SHA-256 is uploaded, then verified: S3 must report the SHA-256 it computed itself (upload with
ChecksumAlgorithm=SHA256; an endpoint that does not compute one is read back and hashed); rsync transfers with
`--checksum` and a dry run with `--checksum` must then find nothing left to send. Remote archives older than the
retention are deleted — only names matching the archive pattern, nothing else under the prefix is touched.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tbot_bot.errors import ConfigError, NetworkError
from tbot_bot.reporting.auto_backup import ARCHIVE_PREFIX, ARCHIVE_SUFFIX, archive_order, list_backups
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import HTTP_URL_PATTERN, sha256_file

_ARCHIVE_RE = re.compile(
    rf"^{re.escape(ARCHIVE_PREFIX)}(?P<stamp>\d{{8}}T\d{{6}})Z(?:-\d+)?{re.escape(ARCHIVE_SUFFIX)}$"
)
RSYNC_TIMEOUT = 600


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str  # s3 | rsync | ssh
    url: str
    bucket: str = ""  # s3
    prefix: str = ""  # s3: "" or "a/b/" (always ends with "/")
    rsync_dest: str = ""  # rsync/ssh: what rsync is given, ending with "/"
    ssh_port: int | None = None


@dataclass(slots=True)
class UploadResult:
    uploaded: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


def archive_time(name: str) -> datetime | None:
    m = _ARCHIVE_RE.match(name)
    return datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC) if m else None


def parse_target(url: str) -> Target:
    """A --to URL, or ConfigError saying which forms are allowed."""
    allowed = "s3://bucket[/prefix], rsync://host[:port]/module[/path] or ssh://[user@]host[:port]/path"
    parts = urlsplit(url.strip())
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket or ""):
            raise ConfigError(f"--to {url!r}: {bucket!r} is not an S3 bucket name; use {allowed}")
        prefix = parts.path.strip("/")
        return Target("s3", url, bucket=bucket, prefix=f"{prefix}/" if prefix else "")
    if parts.scheme == "rsync":
        if not parts.hostname or len(parts.path.strip("/")) == 0:
            raise ConfigError(f"--to {url!r} needs a host and a module: rsync://host[:port]/module[/path]")
        return Target("rsync", url, rsync_dest=url.rstrip("/") + "/")
    if parts.scheme == "ssh":
        if not parts.hostname or not parts.path.strip("/"):
            raise ConfigError(f"--to {url!r} needs a host and a path: ssh://[user@]host[:port]/path")
        user = f"{parts.username}@" if parts.username else ""
        return Target(
            "ssh", url, rsync_dest=f"{user}{parts.hostname}:{parts.path.rstrip('/')}/", ssh_port=parts.port
        )
    raise ConfigError(f"--to {url!r} is not a supported target; use {allowed}")


def to_upload(home: BotHome, keep_days: int, now: datetime) -> list[Path]:
    """Local archives inside the retention, oldest first (uploading one the prune would delete is pointless)."""
    cutoff = now - timedelta(days=keep_days)
    return [p for p in list_backups(home) if (t := archive_time(p.name)) is not None and t >= cutoff]


# ---------------------------------------------------------------------------------------------------- S3
def s3_client(endpoint: str | None, credentials: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    endpoint_url = endpoint or credentials.get("S3_ENDPOINT_URL") or None
    if endpoint_url is not None and not re.match(HTTP_URL_PATTERN, endpoint_url):
        raise ConfigError(
            f"S3 endpoint {endpoint_url!r} (--endpoint, BACKUP_UPLOAD_ENDPOINT or S3_ENDPOINT_URL) must be an "
            "http:// or https:// address, e.g. http://minio:9000"
        )
    kwargs: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "region_name": credentials.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "config": Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 4, "mode": "standard"},
            signature_version="s3v4",
        ),
    }
    if credentials.get("AWS_ACCESS_KEY_ID"):
        kwargs["aws_access_key_id"] = credentials["AWS_ACCESS_KEY_ID"]
        kwargs["aws_secret_access_key"] = credentials["AWS_SECRET_ACCESS_KEY"]
    return boto3.client("s3", **kwargs)


def _s3_error(exc: Exception, what: str) -> Exception:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ConfigError(
            f"{what}: no S3 credentials; store AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY with "
            "`tbot secrets set backup_upload` (or configure boto3's usual credential chain)"
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if (
            code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket")
            or status == 403
        ):
            # a HEAD has no body: a refusal is only its 403 (no s3:GetObject, or no s3:ListBucket for a 404)
            return ConfigError(f"{what}: S3 refused ({code}, HTTP {status}): {exc}")
        if code in ("InvalidArgument", "NotImplemented"):
            # a provider that refuses what the upload asks (Backblaze B2 and others refuse the SHA-256 checksum
            # headers): a person must change the target, retrying tomorrow will not help
            return ConfigError(
                f"{what}: the S3 endpoint refused the request ({code}): {exc}; it may not support S3's "
                "checksum headers, which every upload here sends and verifies (AWS S3, MinIO, DigitalOcean Spaces "
                "and Wasabi do)"
            )
        return NetworkError(f"{what}: S3 error {code}: {exc}")
    if isinstance(exc, BotoCoreError):
        return NetworkError(f"{what}: {exc}")
    return exc


def upload_s3(
    client: Any, target: Target, archives: list[Path], keep_days: int, now: datetime
) -> UploadResult:
    from botocore.exceptions import BotoCoreError, ClientError

    result = UploadResult()
    try:
        remote = _s3_listing(client, target)
        for path in archives:
            key = target.prefix + path.name
            digest = sha256_file(path)
            if remote.get(path.name) == digest:
                result.already_there.append(path.name)
                continue
            with path.open("rb") as fh:
                client.put_object(
                    Bucket=target.bucket,
                    Key=key,
                    Body=fh,
                    ChecksumAlgorithm="SHA256",
                    Metadata={"sha256": digest},
                )
            try:
                _verify_s3(client, target.bucket, key, digest)
            except NetworkError:
                # a copy that is not the archive is removed: its metadata (written by us, not measured) would
                # have it read as good by the next run, and retention would then delete the older good copies
                client.delete_object(Bucket=target.bucket, Key=key)
                raise
            result.uploaded.append(path.name)
        for name in prunable(set(remote) | {p.name for p in archives}, now - timedelta(days=keep_days)):
            if name in remote:
                client.delete_object(Bucket=target.bucket, Key=target.prefix + name)
                result.pruned.append(name)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, f"upload to {target.url}") from exc
    return result


def _s3_listing(client: Any, target: Target) -> dict[str, str | None]:
    """Archive name -> sha256 recorded in its metadata (None when unknown), directly under the prefix."""
    out: dict[str, str | None] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(target.prefix) :]
            if "/" in name or archive_time(name) is None:
                continue  # not ours: never touched
            head = client.head_object(Bucket=target.bucket, Key=obj["Key"])
            out[name] = head.get("Metadata", {}).get("sha256")
    return out


def _verify_s3(client: Any, bucket: str, key: str, digest: str) -> None:
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    reported = head.get("ChecksumSHA256")
    if reported and "-" not in reported:
        ok = base64.b64decode(reported).hex() == digest
    else:  # the endpoint computed no whole-object SHA-256: read it back
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        ok = hashlib.sha256(body).hexdigest() == digest
    if not ok:
        raise NetworkError(f"s3://{bucket}/{key}: the stored copy's SHA-256 differs from the local archive")


# ---------------------------------------------------------------------------------------------------- rsync
def rsync_binary() -> str:
    path = shutil.which("rsync")
    if path is None:
        raise ConfigError(
            "rsync is not installed: `apt-get install rsync` (needed for rsync:// and ssh:// targets)"
        )
    return path


def _rsync(target: Target, args: list[str], password: str | None) -> subprocess.CompletedProcess[str]:
    cmd = [rsync_binary(), *args]
    env = dict(os.environ)
    if target.scheme == "ssh":
        port = f" -p {target.ssh_port}" if target.ssh_port else ""
        cmd[1:1] = ["-e", f"ssh -o BatchMode=yes{port}"]
    if password:
        env["RSYNC_PASSWORD"] = password  # rsync daemon auth; never on the command line
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RSYNC_TIMEOUT, env=env, check=False)
    if done.returncode != 0:
        err = NetworkError(
            f"rsync to {target.url} failed (exit {done.returncode}): {done.stderr.strip()[:400]}"
        )
        # the daemon answered and refused the credentials: a restart will not fix it (exit 2, not 75)
        err.transient = "auth failed" not in done.stderr
        raise err
    return done


def rsync_listing(target: Target, password: str | None) -> list[str]:
    done = _rsync(target, ["--list-only", target.rsync_dest], password)
    names = [
        line.split()[-1] for line in done.stdout.splitlines() if line.strip() and not line.startswith("d")
    ]
    return [n for n in names if archive_time(n) is not None]


def upload_rsync(
    target: Target, archives: list[Path], keep_days: int, now: datetime, password: str | None
) -> UploadResult:
    result = UploadResult()
    remote_before = set(rsync_listing(target, password))
    if archives:
        base = ["-t", "--checksum", "--chmod=F600", *[str(p) for p in archives], target.rsync_dest]
        sent = _rsync(target, ["--itemize-changes", *base], password)
        changed = {line.split()[-1] for line in sent.stdout.splitlines() if line.startswith("<f")}
        check = _rsync(target, ["--dry-run", "--itemize-changes", *base], password)
        left = [line for line in check.stdout.splitlines() if line.startswith("<f")]
        if left:
            raise NetworkError(f"rsync to {target.url}: copies still differ after upload: {left[:3]}")
        for p in archives:
            (
                result.uploaded if p.name in changed or p.name not in remote_before else result.already_there
            ).append(p.name)
    old = prunable(remote_before | {p.name for p in archives}, now - timedelta(days=keep_days))
    if old:
        with tempfile.TemporaryDirectory() as empty:
            # --delete from an empty source removes exactly the included names; everything else is excluded
            rules = [f"--include=/{n}" for n in old] + ["--exclude=*"]
            _rsync(target, ["-r", "--delete", *rules, f"{empty}/", target.rsync_dest], password)
        result.pruned = old
    return result


def prunable(names: set[str], cutoff: datetime) -> list[str]:
    """The remote archives older than `cutoff`, never the newest one (as local pruning keeps the newest archive:
    a retention shorter than the age of every copy must not leave the target empty)."""
    # oldest first as local archives are ordered (the -n of a second archive of the same second after it)
    dated = sorted(
        ((t, n) for n in names if (t := archive_time(n)) is not None),
        key=lambda tn: archive_order(Path(tn[1])),
    )
    return sorted(n for t, n in dated[:-1] if t < cutoff)


def upload_backups(
    home: BotHome,
    url: str,
    *,
    keep_days: int,
    now: datetime,
    endpoint: str | None = None,
    credentials: dict[str, Any] | None = None,
) -> UploadResult:
    if not 1 <= keep_days <= 3650:
        raise ConfigError(f"--keep-days {keep_days} must be between 1 and 3650")
    target = parse_target(url)
    creds = credentials or {}
    archives = to_upload(home, keep_days, now)
    if target.scheme == "s3":
        return upload_s3(s3_client(endpoint, creds), target, archives, keep_days, now)
    if endpoint:
        raise ConfigError("--endpoint is for s3:// targets only")
    return upload_rsync(target, archives, keep_days, now, creds.get("RSYNC_PASSWORD"))


def configured_target(home: BotHome) -> tuple[str, str | None, dict[str, Any]] | None:
    """(BACKUP_UPLOAD_TO, BACKUP_UPLOAD_ENDPOINT, stored credentials) from the home, None when no target is set."""
    from tbot_bot.config.dotenv import read_dotenv
    from tbot_bot.support.decrypt_secrets import load_secret_json, secret_exists

    dotenv = read_dotenv(home)
    url = dotenv.get("BACKUP_UPLOAD_TO", "").strip()
    if not url:
        return None
    creds = (
        load_secret_json(home, "backup_upload_credentials")
        if secret_exists(home, "backup_upload_credentials")
        else {}
    )
    return url, dotenv.get("BACKUP_UPLOAD_ENDPOINT", "").strip() or None, creds


def fetch_newest(
    url: str,
    into: Path,
    *,
    endpoint: str | None = None,
    credentials: dict[str, Any] | None = None,
    rank: int = 0,
) -> Path | None:
    """Download the newest archive at the target into `into` (None when there is none); `rank` 1 the one before it,
    and so on (None when there are not that many)."""
    target = parse_target(url)
    creds = credentials or {}
    if target.scheme == "s3":
        from botocore.exceptions import BotoCoreError, ClientError

        client = s3_client(endpoint, creds)
        try:
            names = [
                obj["Key"][len(target.prefix) :]
                for page in client.get_paginator("list_objects_v2").paginate(
                    Bucket=target.bucket, Prefix=target.prefix
                )
                for obj in page.get("Contents", [])
            ]
            names = [n for n in names if "/" not in n and archive_time(n) is not None]
            if len(names) <= rank:
                return None
            newest = sorted(names, key=lambda n: archive_order(Path(n)), reverse=True)[rank]
            client.download_file(target.bucket, target.prefix + newest, str(into / newest))
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(exc, f"reading {target.url}") from exc
        return into / newest
    password = creds.get("RSYNC_PASSWORD")
    listed = rsync_listing(target, password)
    if len(listed) <= rank:
        return None
    newest = sorted(listed, key=lambda n: archive_order(Path(n)), reverse=True)[rank]
    _rsync(target, ["-t", target.rsync_dest + newest, f"{into}/"], password)
    return into / newest
