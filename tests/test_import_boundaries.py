"""tbot_bot/ never imports flask or tbot_web (an AST scan, so a lazy import inside a function is caught too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("flask", "tbot_web", "flask_limiter", "flask_wtf", "werkzeug", "waitress")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_engine_never_imports_web() -> None:
    offenders = []
    files = sorted((ROOT / "tbot_bot").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_scanner_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from flask import Flask\n    return Flask\n")
    assert "flask" in _imports(bad)
