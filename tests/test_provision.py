"""Provisioning, identity and the ledger binding; `tbot check` and its failure messages (issue 2 'done when')."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tbot_bot.accounting.accounting_config import load_binding, save_injection
from tbot_bot.config.security_bot import encrypt_to_file
from tbot_bot.config.settings_bot import read_env_text
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.provision import ProvisionRequest, provision


def tbot(*args: str, home: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rigd_tbot", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=120)


def _rewrite_config(home: Path, edit) -> None:  # type: ignore[no-untyped-def]
    h = BotHome(home)
    encrypt_to_file(h.env_bot_enc, h.key_file("env"), edit(read_env_text(h)).encode())


def test_check_prints_one_screen_summary(provisioned_home: Path) -> None:
    # a sim home only replays, so `check` (like `start`) needs the day; without it both refuse
    r = tbot("check", "--replay", "2011-01-25", home=provisioned_home)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for fragment in (
        "RGL / USA / account main / bot TB01",
        "broker     SIM",
        "RGL_USA_main_SIM_TB01_BOT_ledger.db",
        "2,500.00 USD",
        "strategies open, mid, close",
        "boot       OK (REPLAY of 2011-01-25)",
        # provision gave the sim home Alpaca's schedule: its smallest order (2,500 x 0.02 x 0.2 = 10) pays 0.02
        "fees       SIM_FEE_PROFILE=alpaca: Alpaca: no commission; SEC fee + FINRA TAF on sells",
    ):
        assert fragment in out
    assert "warning" not in out
    assert len(out.splitlines()) <= 25


def test_check_warns_when_fees_eat_the_smallest_order(provisioned_home: Path) -> None:
    _rewrite_config(
        provisioned_home, lambda t: t.replace("SIM_FEE_PROFILE=alpaca", "SIM_FEE_PROFILE=ibkr_fixed")
    )
    r = tbot("check", "--replay", "2011-01-25", home=provisioned_home)
    assert r.returncode == 0, r.stderr
    # 2 shares at MIN_PRICE 5: 1.00 minimum capped at 1% of 10.00 = 0.10 each way, + 0.01 SEC + 0.01 TAF
    assert "fees       SIM_FEE_PROFILE=ibkr_fixed: IBKR Fixed" in r.stdout
    assert (
        "warning    fees: the smallest order (2 x 5 = 10.00) pays an expected 0.22 in fees buying and selling, "
        "2.20% of its notional (more than 0.5%); pick a cheaper SIM_FEE_PROFILE (e.g. alpaca)"
    ) in r.stdout


def test_missing_key_exits_2_naming_it_without_traceback(provisioned_home: Path) -> None:
    _rewrite_config(provisioned_home, lambda t: re.sub(r"^MAX_TRADES=.*\n", "", t, flags=re.MULTILINE))
    r = tbot("check", home=provisioned_home)
    assert r.returncode == 2
    assert "MAX_TRADES is missing" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_misspelt_key_gets_a_suggestion(provisioned_home: Path) -> None:
    _rewrite_config(provisioned_home, lambda t: t.replace("MAX_TRADES=4", "MAX_TRADE=4"))
    r = tbot("check", home=provisioned_home)
    assert r.returncode == 2
    assert "MAX_TRADE is not a known key; did you mean MAX_TRADES?" in r.stderr
    assert "Traceback" not in r.stderr


def test_loose_key_permissions_name_the_file(provisioned_home: Path) -> None:
    key = provisioned_home / "storage" / "keys" / "env.key"
    os.chmod(key, 0o644)
    r = tbot("check", home=provisioned_home)
    assert r.returncode == 2
    assert f"key file {key} is readable by group or others (mode 0644)" in r.stderr
    assert r.stderr.count("readable by group") == 1
    assert "Traceback" not in r.stderr


def test_provisioning_refuses_an_existing_home_and_never_overwrites_the_ledger(
    provisioned_home: Path,
) -> None:
    home = BotHome(provisioned_home)
    binding = load_binding(home)
    before = binding.ledger_path.read_bytes()
    req = ProvisionRequest(
        broker="sim", entity="RGL", jurisdiction="USA", account="main", bot_id="TB01", float_amount="2500"
    )
    with pytest.raises(ConfigError, match="already provisioned"):
        provision(home, req)
    result = provision(home, replace(req, force=True))
    assert not result.ledger_created
    assert any("never overwritten" in n for n in result.notes)
    assert binding.ledger_path.read_bytes() == before


def test_ledger_name_rule_enforced_at_boot(provisioned_home: Path) -> None:
    home = BotHome(provisioned_home)
    b = load_binding(home)
    wrong = b.ledger_path.with_name("RGL_USA_SIM_TB01_BOT_ledger.db")
    b.ledger_path.rename(wrong)
    save_injection(
        home,
        ledger_path=wrong,
        coa_path=b.coa_path,
        float_ledger_path=b.float_ledger_path,
        backup_dir=b.backup_dir,
        currency_code="USD",
    )
    with pytest.raises(ConfigError, match="breaks the naming rule"):
        load_binding(home)
    r = tbot("check", home=provisioned_home)
    assert r.returncode == 2 and "RGL_USA_main_SIM_TB01_BOT_ledger.db" in r.stderr


def test_injected_path_outside_home_refused(provisioned_home: Path) -> None:
    from tbot_bot.support.decrypt_secrets import load_secret_json, save_secret_json

    home = BotHome(provisioned_home)
    data = load_secret_json(home, "accounting_injection")
    data["ledger_path"] = "../elsewhere/x.db"
    save_secret_json(home, "accounting_injection", data)
    with pytest.raises(ConfigError, match="outside the bot home"):
        load_binding(home)


def test_bad_provision_arguments_are_all_reported(tmp_path: Path) -> None:
    r = tbot(
        "provision",
        "--broker",
        "sim",
        "--entity",
        "rgl",
        "--jurisdiction",
        "USA",
        "--account",
        "a_b",
        "--bot-id",
        "TB01",
        "--float",
        "-5",
        home=tmp_path / "h",
    )
    assert r.returncode == 2
    for fragment in ("--float '-5' must be a positive amount", "--entity='rgl'", "--account='a_b'"):
        assert fragment in r.stderr
    assert not (tmp_path / "h").exists()


def test_cli_shapes(tmp_path: Path) -> None:
    assert tbot("version").stdout.strip().startswith("v")
    help_text = tbot("--help").stdout
    for cmd in ("provision", "check", "config", "rotate-key", "users", "db", "version"):
        assert cmd in help_text
    root = Path(__file__).resolve().parents[1]
    shim = subprocess.run(
        [sys.executable, str(root / "start_bot.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert "usage: tbot start" in shim.stdout


def test_config_set_validates_and_reencrypts(provisioned_home: Path) -> None:
    r = tbot("config", "set", "MAX_TRADES=2", "WEIGHTS=0.6,0.4", home=provisioned_home)
    assert r.returncode == 0, r.stderr
    assert "MAX_TRADES=2" in read_env_text(BotHome(provisioned_home))
    bad = tbot("config", "set", "MAX_TRADES=3", home=provisioned_home)
    assert bad.returncode == 2 and "WEIGHTS has 2 values but MAX_TRADES=3" in bad.stderr
    assert "MAX_TRADES=2" in read_env_text(BotHome(provisioned_home))
    shown = tbot("config", "show", home=provisioned_home)
    assert re.search(r"^MAX_TRADES\s+= 2$", shown.stdout, re.MULTILINE)


def test_config_set_refuses_what_check_would_refuse(provisioned_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`config set` said "saved" of values `tbot check` then refused (exit 2 at the next start): the rules that are
    pure configuration are cross-key rules now, and the keys bound to the identity and ledger are checked at save."""
    from rigd_tbot.cli import main

    home = BotHome(provisioned_home)
    before = home.env_bot_enc.read_bytes()
    refused = {
        (
            "DEFENSE_MODE_TOTAL_ALLOCATION=0.05",
        ): "DEFENSE_MODE_TOTAL_ALLOCATION=0.05 exceeds TOTAL_ALLOCATION=0.02",
        (
            "STRAT_OPEN_ENABLED=false",
            "STRAT_MID_ENABLED=false",
            "STRAT_CLOSE_ENABLED=false",
        ): "no strategy window would run",
        ("CURRENCY_CODE=EUR",): "CURRENCY_CODE=EUR differs from the injected ledger currency USD",
        (
            "BROKER_NAME=ALPACA",
            "ALPACA_ENABLED=true",
            "SIM_ENABLED=false",
        ): "BROKER_NAME=ALPACA differs from the identity's BROKER_CODE SIM",
    }
    for values, message in refused.items():
        assert main(["config", "set", *values, "--home", str(home.root)]) == 2, values
        assert message in capsys.readouterr().err, values
        assert home.env_bot_enc.read_bytes() == before  # nothing saved


def test_config_edit_refuses_invalid_and_saves_valid(provisioned_home: Path, tmp_path: Path) -> None:
    editor = tmp_path / "ed.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/^MAX_OPEN_POSITIONS=5/MAX_OPEN_POSITIONS=banana/" "$1"\n')
    editor.chmod(0o755)
    before = (provisioned_home / ".env_bot.enc").read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "config", "edit", "--home", str(provisioned_home)],
        capture_output=True,
        text=True,
        env={**os.environ, "EDITOR": str(editor)},
        timeout=60,
    )
    assert r.returncode == 2 and "MAX_OPEN_POSITIONS='banana'" in r.stderr
    assert (provisioned_home / ".env_bot.enc").read_bytes() == before
    editor.write_text('#!/bin/sh\nsed -i "s/^MAX_OPEN_POSITIONS=5/MAX_OPEN_POSITIONS=3/" "$1"\n')
    r = subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "config", "edit", "--home", str(provisioned_home)],
        capture_output=True,
        text=True,
        env={**os.environ, "EDITOR": str(editor)},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "MAX_OPEN_POSITIONS=3" in read_env_text(BotHome(provisioned_home))
    assert not (provisioned_home / ".env_bot").exists()


def test_config_encrypt_validates_then_replaces_the_plaintext(provisioned_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from rigd_tbot.cli import main

    home = BotHome(provisioned_home)
    before = home.env_bot_enc.read_bytes()
    assert main(["config", "encrypt", "--home", str(home.root)]) == 2
    assert "there is no plaintext" in capsys.readouterr().err
    text = read_env_text(home)
    home.env_bot_plain.write_text(text.replace("MAX_OPEN_POSITIONS=5", "MAX_OPEN_POSITIONS=banana"))
    assert main(["config", "encrypt", "--home", str(home.root)]) == 2
    err = capsys.readouterr().err
    assert "MAX_OPEN_POSITIONS='banana'" in err
    # an edited plaintext beside the encrypted config is not what runs: said once, not silently passed over
    from tbot_bot.config import settings_bot

    settings_bot._warn_plaintext_ignored.cache_clear()
    assert main(["config", "show", "--home", str(home.root)]) == 0
    shown = capsys.readouterr()
    assert f"warning: {home.env_bot_plain} is ignored: {home.env_bot_enc} is the configuration" in shown.err
    assert re.search(r"^MAX_OPEN_POSITIONS +=  *5$", shown.out, re.M)
    assert home.env_bot_enc.read_bytes() == before and home.env_bot_plain.exists()  # nothing lost
    home.env_bot_plain.write_text(text.replace("MAX_OPEN_POSITIONS=5", "MAX_OPEN_POSITIONS=3"))
    assert main(["config", "encrypt", "--home", str(home.root)]) == 0
    assert "plaintext deleted" in capsys.readouterr().out
    assert not home.env_bot_plain.exists() and "MAX_OPEN_POSITIONS=3" in read_env_text(home)
    assert any(home.versioned_env_dir.iterdir())  # the replaced encrypted file is kept
    # the tool the error messages used to name is the same command
    home.env_bot_plain.write_text(text)
    tool = Path(__file__).resolve().parents[1] / "tools" / "encrypt_env_bot.py"
    r = subprocess.run(
        [sys.executable, str(tool), "--home", str(home.root), "--keep-plaintext"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert home.env_bot_plain.exists() and "MAX_OPEN_POSITIONS=5" in read_env_text(home)


def test_rotate_key_env_keeps_config_readable(provisioned_home: Path) -> None:
    home = BotHome(provisioned_home)
    before = read_env_text(home)
    old_key = home.key_file("env").read_bytes()
    r = tbot("rotate-key", "env", home=provisioned_home)
    assert r.returncode == 0, r.stderr
    assert home.key_file("env").read_bytes() != old_key
    assert read_env_text(home) == before
    assert tbot("check", "--replay", "2011-01-25", home=provisioned_home).returncode == 0


def test_the_next_step_provision_prints_for_a_sim_home_passes(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Regression: provision told a sim home to run plain `tbot check`, which a sim home always refuses."""
    import shlex

    from rigd_tbot.cli import main as tbot

    home = tmp_path / "h"
    args = ["provision", "--home", str(home), "--broker", "sim", "--entity", "RGL", "--jurisdiction", "USA"]
    assert tbot([*args, "--account", "demo", "--bot-id", "N1", "--float", "2500"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("next: tbot ")]
    assert tbot(shlex.split(line.removeprefix("next: tbot "))) == 0
    assert "status     OK: ready to start" in capsys.readouterr().out
