"""Fernet encryption for the bot's configuration and secrets (DESIGN §4).

One key file per purpose under `storage/keys/`, created 0600 and refused when readable by group or others.
Encrypted files carry a one-line header with the key's fingerprint, so a wrong key and a corrupted file get
different messages, and so key rotation can keep the previous key readable until the file is re-encrypted:
at every instant of `rotate_key` some key on disk decrypts the file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tbot_bot.domain.crashpoints import crashpoint
from tbot_bot.errors import ConfigError
from tbot_bot.support.utils_bot import atomic_write_bytes

HEADER_PREFIX = b"TBOT-FERNET v1 kid="
PREVIOUS_SUFFIX = ".prev"


def key_fingerprint(key: bytes) -> str:
    """A short, non-secret identifier of a key (first 16 hex chars of its SHA-256)."""
    return hashlib.sha256(key.strip()).hexdigest()[:16]


def create_key_file(path: Path) -> bytes:
    """Create a new Fernet key file with mode 0600; refuses to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"key file {path} already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


def check_key_permissions(path: Path) -> None:
    if path.is_dir():  # its mode would be reported as a loose key file's (0755: "run chmod 600")
        raise ConfigError(
            f"key file {path} is a directory, not a key: move it away and put the key file back from your key backup"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"key file {path} is readable by group or others (mode {mode:04o}); "
            f"only the owner may read it: run `chmod 600 {path}`"
        )


def load_key(path: Path) -> bytes:
    """Read a key file, refusing a missing, loosely-permissioned or malformed one."""
    if not path.exists():
        raise ConfigError(f"key file {path} is missing; restore it from your key backup or re-provision")
    check_key_permissions(path)
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ConfigError(
            f"key file {path} does not hold a valid Fernet key (32 url-safe base64 bytes)"
        ) from None
    return key


def encrypt_bytes(key: bytes, plaintext: bytes) -> bytes:
    return HEADER_PREFIX + key_fingerprint(key).encode() + b"\n" + Fernet(key).encrypt(plaintext)


def _split(blob: bytes, path: Path) -> tuple[str | None, bytes]:
    if blob.startswith(HEADER_PREFIX):
        header, sep, token = blob.partition(b"\n")
        if not sep:
            raise ConfigError(f"encrypted file {path} is corrupted: header without content")
        return header[len(HEADER_PREFIX) :].decode("ascii", "replace").strip(), token.strip()
    return None, blob.strip()


def decrypt_bytes(blob: bytes, key_path: Path, *, source: Path) -> bytes:
    """Decrypt a blob with the key at key_path (or the previous key kept during a rotation)."""
    kid, token = _split(blob, source)
    keys = [load_key(key_path)]
    prev = key_path.with_name(key_path.name + PREVIOUS_SUFFIX)
    if prev.exists():
        try:
            keys.append(load_key(prev))
        except (ConfigError, OSError):
            pass  # the previous key vanished: a rotation just finished; the current key is the one to use
    if kid is not None:
        matching = [k for k in keys if key_fingerprint(k) == kid]
        if not matching:
            raise ConfigError(
                f"{source} was encrypted with a different key than {key_path} (wrong key): "
                f"restore the matching key file or re-encrypt the file with this key"
            )
        keys = matching
    for key in keys:
        try:
            return Fernet(key).decrypt(token)
        except InvalidToken:
            continue
    if kid is not None:
        raise ConfigError(
            f"{source} is corrupted: its key matches {key_path} but the content fails authentication"
        )
    raise ConfigError(f"{source} cannot be decrypted with {key_path}: wrong key or corrupted file")


def decrypt_file(path: Path, key_path: Path) -> bytes:
    if not path.exists():
        raise ConfigError(f"encrypted file {path} is missing")
    blob = path.read_bytes()
    for _ in range(3):
        try:
            return decrypt_bytes(blob, key_path, source=path)
        except ConfigError:
            # a rotation may have replaced file and key between our two reads: read again before failing
            fresh = path.read_bytes()
            if fresh == blob:
                raise
            blob = fresh
    return decrypt_bytes(blob, key_path, source=path)


def encrypt_to_file(path: Path, key_path: Path, plaintext: bytes) -> None:
    """Encrypt and write atomically with mode 0600."""
    atomic_write_bytes(path, encrypt_bytes(load_key(key_path), plaintext), mode=0o600)


def ensure_key(path: Path) -> bytes:
    return load_key(path) if path.exists() else create_key_file(path)


def _decrypt_any(blob: bytes, keys: list[bytes], *, source: Path) -> bytes:
    """A headerless (raw Fernet) blob: try each key in turn."""
    for key in keys:
        try:
            return Fernet(key).decrypt(blob)
        except InvalidToken:
            continue
    raise ConfigError(f"{source} cannot be decrypted with the current or the previous key")


def _reencrypt(key_path: Path, files: Sequence[Path], raw_files: Sequence[Path], new_key: bytes) -> None:
    """Re-encrypt each file with new_key (decrypting with the current key or `.prev`), one atomic write each."""
    prev = key_path.with_name(key_path.name + PREVIOUS_SUFFIX)
    keys = [k for k in (new_key, load_key(prev) if prev.exists() else None) if k is not None]
    for p in files:
        if p.exists():
            blob = p.read_bytes()
            kid, _ = _split(blob, p)
            if kid != key_fingerprint(new_key):
                atomic_write_bytes(p, encrypt_bytes(new_key, decrypt_file(p, key_path)), mode=0o600)
            crashpoint("rotate_after_file")
    for p in raw_files:
        if p.exists():
            blob = p.read_bytes()
            try:
                Fernet(new_key).decrypt(blob)
            except InvalidToken:
                atomic_write_bytes(p, Fernet(new_key).encrypt(_decrypt_any(blob, keys, source=p)), mode=0o600)
            crashpoint("rotate_after_file")


def finish_interrupted_rotation(
    key_path: Path,
    files: Sequence[Path],
    raw_files: Sequence[Path] = (),
    on_new_key: Callable[[], None] | None = None,
) -> bool:
    """A `<key>.prev` left by a killed rotation: re-encrypt what still needs it, then drop `.prev`. True if done."""
    prev = key_path.with_name(key_path.name + PREVIOUS_SUFFIX)
    if not prev.exists():
        return False
    _reencrypt(key_path, files, raw_files, load_key(key_path))
    if on_new_key is not None:
        on_new_key()
    prev.unlink()
    return True


def rotate_key(
    key_path: Path,
    encrypted_files: Sequence[Path],
    *,
    raw_files: Sequence[Path] = (),
    on_new_key: Callable[[], None] | None = None,
) -> str:
    """Replace a key and re-encrypt its files, never leaving a moment where no key on disk decrypts them.

    0. a `.prev` left by an interrupted rotation is finished first (overwriting it would lose the only key of
    files not yet re-encrypted); 1. the current key is copied to `<key>.prev`; 2. the new key replaces `<key>`
    atomically (files still decrypt through `.prev`, selected by fingerprint); 3. each file is re-encrypted
    atomically with the new key (`raw_files`: headerless Fernet blobs such as backup archives), then
    `on_new_key` re-signs what the key authenticates; 4. `.prev` is removed. Killed at any point, every file
    still decrypts, and running the rotation again completes it. Returns the new key's fingerprint.
    """
    raws = list(raw_files)
    finish_interrupted_rotation(key_path, encrypted_files, raws, on_new_key)
    old_key = load_key(key_path)
    for p in encrypted_files:
        if p.exists():
            decrypt_file(p, key_path)  # refuse to start when something is already unreadable
    prev = key_path.with_name(key_path.name + PREVIOUS_SUFFIX)
    atomic_write_bytes(prev, old_key + b"\n", mode=0o600)
    crashpoint("rotate_after_prev")
    new_key = Fernet.generate_key()
    atomic_write_bytes(key_path, new_key + b"\n", mode=0o600)
    crashpoint("rotate_after_key")
    _reencrypt(key_path, encrypted_files, raws, new_key)
    if on_new_key is not None:
        on_new_key()
    crashpoint("rotate_before_cleanup")
    prev.unlink()
    return key_fingerprint(new_key)


def self_check(key_path: Path, encrypted_file: Path) -> tuple[bool, str]:
    """Security self-check for boot: the key is private and decrypts the config."""
    try:
        decrypt_file(encrypted_file, key_path)
    except ConfigError as exc:
        return False, str(exc)
    return True, "ok"
