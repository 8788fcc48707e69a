"""Where the dashboard's own files live (templates, assets, robots.txt, favicon)."""

from __future__ import annotations

from pathlib import Path

WEB_ROOT = Path(__file__).resolve().parents[1]
