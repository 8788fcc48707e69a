"""The home is the bot's user's alone, whatever the umask of the shell that provisioned or ran it; what weakens it
is said by `tbot check`; a secret's value is never printed whole (a security review)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from rigd_tbot.cli import main
from tbot_bot.support.path_resolver import BotHome


@pytest.fixture()
def open_umask() -> object:
    old = os.umask(0)
    yield
    os.umask(old)


def _open_to_others(root: Path) -> list[str]:
    return [
        f"{p.relative_to(root)} {stat.S_IMODE(p.stat().st_mode):04o}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) & 0o077
    ]


def test_a_home_provisioned_and_used_under_umask_0_is_closed_to_other_users(
    tmp_path: Path, open_umask: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under umask 000 the home, its state, control, logs and ledger folders were 0777 (any local user could
    write a stop request or rename the keys away) and reports, status and the ledger were 0644."""
    home = tmp_path / "home"
    args = ["provision", "--home", str(home), "--broker", "sim", "--entity", "RGL", "--jurisdiction", "USA"]
    assert main([*args, "--account", "main", "--bot-id", "TB01", "--float", "2500"]) == 0
    assert main(["config", "set", "--home", str(home), "MAX_OPEN_POSITIONS=4"]) == 0  # the config audit log
    assert main(["backup", "create", "--home", str(home)]) == 0
    assert (home / "logs" / "config_audit.log").exists()
    assert _open_to_others(home) == []
    capsys.readouterr()


def test_check_warns_of_an_unfinished_rotation_and_an_open_home(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = BotHome(provisioned_home).keys_dir
    (keys / "smtp.key.prev").write_bytes((keys / "smtp.key").read_bytes())  # a rotation killed half-way
    os.chmod(keys / "smtp.key.prev", 0o600)
    os.chmod(provisioned_home, 0o755)
    assert main(["check", "--home", str(provisioned_home), "--replay", "2011-01-26"]) == 0
    out = capsys.readouterr().out
    assert "the rotation of the smtp key was interrupted" in out
    assert f"tbot rotate-key smtp --home {provisioned_home}" in out
    assert f"the home {provisioned_home} is open to other local users (mode 0755)" in out
    os.chmod(provisioned_home, 0o700)
    (keys / "smtp.key.prev").unlink()
    assert main(["check", "--home", str(provisioned_home), "--replay", "2011-01-26"]) == 0
    out = capsys.readouterr().out
    assert "interrupted" not in out and "open to other local users" not in out


def test_a_secret_refused_by_its_check_is_not_printed_whole(
    provisioned_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "hooks.slack.com/services/T0/B0/SLACKSECRETleak456"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"SLACK_WEBHOOK_URL={token}\n"))
    assert main(["secrets", "set", "alerts", "--home", str(provisioned_home)]) == 2
    err = capsys.readouterr().err
    assert "SLACK_WEBHOOK_URL='hook'... (49 characters) is not a URL" in err and "SLACKSECRET" not in err


def test_a_url_key_with_credentials_is_refused_before_it_is_saved_or_audited(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config set VIX_HISTORY_URL=https://user:KEY@host/...` was saved, audited in clear in config_audit.log and
    shown by `config show` and the dashboard."""
    url = "https://user:ALPACAKEYleak@cdn.example.com/vix.csv"
    assert main(["config", "set", "--home", str(provisioned_home), f"VIX_HISTORY_URL={url}"]) == 2
    err = capsys.readouterr().err
    assert (
        "holds a user name or password" in err and "ALPACAKEYleak" not in err and "***@cdn.example.com" in err
    )
    audit = provisioned_home / "logs" / "config_audit.log"
    assert not audit.exists() or "ALPACAKEYleak" not in audit.read_text()
    assert (
        main(
            [
                "config",
                "set",
                "--home",
                str(provisioned_home),
                "VIX_HISTORY_URL=https://cdn.example.com/v.csv",
            ]
        )
        == 0
    )
    # an @ in the query is no user name
    url = "VIX_HISTORY_URL=https://cdn.example.com?a=b@c"
    assert main(["config", "set", "--home", str(provisioned_home), url]) == 0


def test_a_refused_url_is_masked_even_when_it_cannot_be_parsed(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unclosed IPv6 bracket made the masking itself raise: "Unexpected error" and exit 1 (a reread)."""
    for url in ("https://user:secret@[::1/vix.csv", "user:secret@vix.example.com/vix.csv"):
        assert main(["config", "set", "--home", str(provisioned_home), f"VIX_HISTORY_URL={url}"]) == 2
        err = capsys.readouterr().err
        assert "secret" not in err and "Unexpected error" not in err and "***@" in err


def test_check_warns_of_a_nearly_full_disk(
    provisioned_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from tbot_bot.support import machine_faults

    # 25 GiB with 1 GiB free: under 5% (1.25 GiB); at 2 GiB free it is enough
    for free, warned in ((2**30, True), (2 * 2**30, False)):
        usage = shutil._ntuple_diskusage(25 * 2**30, 24 * 2**30, free)  # type: ignore[attr-defined]
        monkeypatch.setattr(machine_faults.shutil, "disk_usage", lambda p, u=usage: u)
        assert main(["check", "--home", str(provisioned_home), "--replay", "2011-01-26"]) == 0
        out = capsys.readouterr().out
        assert (
            "1.00 GiB free of 25.0 GiB (warned under 1.25 GiB)" in out and "stops at its first write" in out
        ) is warned
    # the floor is 5% of the file system, at least 1 GiB and at most 10 GiB: a 2 TB disk with 50 GiB free is fine
    for total, free, warned in ((2000, 50, False), (2000, 9, True), (10, 0.9, True), (10, 1.1, False)):
        usage = shutil._ntuple_diskusage(int(total * 2**30), 0, int(free * 2**30))  # type: ignore[attr-defined]
        monkeypatch.setattr(machine_faults.shutil, "disk_usage", lambda p, u=usage: u)
        assert (machine_faults.disk_space_warning(provisioned_home) is not None) is warned, (total, free)
