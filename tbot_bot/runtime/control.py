"""Control files: `control/control_start.txt`, `control/control_stop.txt`, and `control/confirm/<id>`.

The CLI (`tbot stop`, `tbot confirm`) and the dashboard write them; the supervisor polls them every SLEEP_TIME.
A processed stop file is renamed with a timestamp suffix so the next run does not stop at once.
"""

from __future__ import annotations

from pathlib import Path

from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_text, utc_now


def _stamp(who: str) -> str:
    return f"{utc_now().isoformat()} {who}\n"


def request_stop(home: BotHome, who: str) -> Path:
    atomic_write_text(home.control_stop, _stamp(who))
    return home.control_stop


def request_start(home: BotHome, who: str) -> Path:
    atomic_write_text(home.control_start, _stamp(who))
    return home.control_start


def confirm_dir(home: BotHome) -> Path:
    return home.control_dir / "confirm"


def confirm_order(home: BotHome, client_order_id: str, who: str) -> Path:
    if not client_order_id or "/" in client_order_id or client_order_id.startswith("."):
        raise ValueError(f"{client_order_id!r} is not a valid order id")
    path = confirm_dir(home) / client_order_id
    atomic_write_text(path, _stamp(who))
    return path


class ControlFiles:
    def __init__(self, home: BotHome) -> None:
        self.home = home

    def stop_requested(self) -> bool:
        return self.home.control_stop.exists()

    def start_requested(self) -> bool:
        return self.home.control_start.exists()

    def consume_stop(self) -> str:
        """Archive the stop file (so a restart is not stopped by it) and return who asked."""
        path = self.home.control_stop
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""
        path.rename(path.with_name(f"control_stop.{utc_now().strftime('%Y%m%dT%H%M%S')}.done"))
        return text

    def consume_start(self) -> str:
        path = self.home.control_start
        try:
            text = path.read_text(encoding="utf-8").strip()
            path.unlink()
        except OSError:
            return ""
        return text

    def is_confirmed(self, client_order_id: str) -> bool:
        return (confirm_dir(self.home) / client_order_id).exists()
