"""Import boundaries (AST scans, so a lazy import inside a function is caught too): tbot_bot/ never imports flask
or tbot_web; no import cycles; the ground floor (domain/, errors.py, checks.py) and support/ import nothing above
themselves; broker/, strategy/, enhancements/ and accounting/ never import runtime/ (issue 20)."""

from __future__ import annotations

import ast
from functools import cache
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


PKG = ROOT / "tbot_bot"


# ---------------------------------------------------------------- layering
def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """tbot_bot modules imported at run time (module level or inside a function); `if TYPE_CHECKING:` skipped."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(x)
        for n in ast.walk(tree)
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
        for x in ast.walk(n)
    }
    out: set[str] = set()
    for n in ast.walk(tree):
        if id(n) in typing_only:
            continue
        names: list[str] = []
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            names = [f"{n.module}.{a.name}" for a in n.names] + [n.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "tbot_bot":
                out.add(name)
    return out


@cache
def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PKG.rglob("*.py")}
    known = set(files)
    return {m: _runtime_imports(p, known) - {m} for m, p in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


GROUND = ("tbot_bot.domain", "tbot_bot.errors", "tbot_bot.checks")
# support/ sits on the ground floor and may decrypt with the key store; provision.py plays the accounting system
# (it writes ledgers, COA and core databases for a new bot), so it is the one top-floor tool in support/
SUPPORT_MAY_USE = (*GROUND, "tbot_bot.support", "tbot_bot.config.security_bot")
TOP_FLOOR_TOOLS = {"tbot_bot.support.provision"}


def _offenders(prefix: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for module, deps in _graph().items():
        if module != prefix and not module.startswith(prefix + ".") or module in TOP_FLOOR_TOOLS:
            continue
        bad += [f"{module} -> {d}" for d in deps if not d.startswith(allowed)]
    return sorted(bad)


def test_ground_floor_imports_nothing_above_it() -> None:
    assert _offenders("tbot_bot.domain", ("tbot_bot.domain",)) == []
    assert _offenders("tbot_bot.errors", ()) == []
    assert _offenders("tbot_bot.support", SUPPORT_MAY_USE) == []


def test_broker_and_strategy_never_import_runtime() -> None:
    for layer in ("tbot_bot.broker", "tbot_bot.strategy", "tbot_bot.enhancements", "tbot_bot.accounting"):
        graph = _graph()
        bad = [
            f"{m} -> {d}"
            for m, deps in graph.items()
            if m.startswith(layer)
            for d in deps
            if d.startswith("tbot_bot.runtime")
        ]
        assert bad == [], layer


def test_crash_points_live_below_what_they_instrument() -> None:
    assert "tbot_bot.domain.crashpoints" in _graph()
    assert not (PKG / "runtime" / "crashpoints.py").exists()


def test_enhancements_never_import_strategy() -> None:
    # the filters own their rules; strategies call them, never the other way round
    bad = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        if m.startswith("tbot_bot.enhancements")
        for d in deps
        if d.startswith("tbot_bot.strategy")
    ]
    assert bad == []
