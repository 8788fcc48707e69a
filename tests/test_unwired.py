"""Nothing public in the product is reached only by tests (issue 20 point 5).

A public function, class or method of the product (tbot_bot, rigd_tbot, tbot_web, the top-level scripts,
support/) counts as used when another product file names it (a call, an attribute, an import, a string in a
registry) or its own file names it more than once. Names are matched as words, so a method a library calls by
its name (a framework hook) looks unused: those, and only those, are listed in ALLOWLIST with the reason.
Decorated functions are registered by their decorator (routes, commands) and are not checked; neither are
dunders, private names and the entry points every module may have (self_check, main, run, setup, teardown).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tbot_bot", "rigd_tbot", "tbot_web")
ENTRY_POINTS = {"self_check", "main", "run", "setup", "teardown"}
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# "path::name" (methods as "path::Class.method") -> why nothing in the product names it
ALLOWLIST: dict[str, str] = {
    "tbot_web/py/portal_web.py::SegmentConverter.to_url": (
        "werkzeug BaseConverter hook: url_for calls it to encode a <segment:...> route argument"
    ),
}


def product_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    files = [p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]
    files += sorted(root.glob("*.py"))
    files += sorted((root / "support").rglob("*.py"))
    return files


def public_definitions(path: Path) -> Iterator[tuple[str, str]]:
    """(qualified name, bare name) of each checked definition: module-level functions and classes, and the
    methods of module-level classes; decorated functions are skipped (their decorator registers them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and not node.decorator_list:
            yield node.name, node.name
        elif isinstance(node, ast.ClassDef):
            yield node.name, node.name
            for sub in node.body:
                if isinstance(sub, functions) and not sub.decorator_list:
                    yield f"{node.name}.{sub.name}", sub.name


def checked(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return not (name.startswith("_") or dunder or name in ENTRY_POINTS or name.startswith("test"))


def scan(root: Path, packages: tuple[str, ...] = PACKAGES) -> tuple[set[str], set[str]]:
    """(every checked definition, those no other product file names and their own file names only once),
    each as 'relative/path.py::qualified.name'."""
    files = product_files(root, packages)
    counts = {p: Counter(WORD.findall(p.read_text(encoding="utf-8", errors="replace"))) for p in files}
    defined: set[str] = set()
    unused: set[str] = set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        for qualified, name in public_definitions(path):
            if not checked(name):
                continue
            key = f"{rel}::{qualified}"
            defined.add(key)
            named_elsewhere = any(name in words for p, words in counts.items() if p != path)
            if not named_elsewhere and counts[path][name] <= 1:
                unused.add(key)
    return defined, unused


@cache
def repo_scan() -> tuple[set[str], set[str]]:
    return scan(ROOT)


def test_every_public_name_is_used_by_the_product_or_allowlisted() -> None:
    _, unused = repo_scan()
    unexpected = sorted(unused - set(ALLOWLIST))
    assert unexpected == [], (
        "only tests (or nothing) use these; wire them into the product or remove them "
        "(ALLOWLIST is for framework hooks a library calls by name):\n  " + "\n  ".join(unexpected)
    )
    assert sorted(unused) == sorted(ALLOWLIST)


def test_allowlisted_names_still_exist() -> None:
    defined, _ = repo_scan()
    assert sorted(set(ALLOWLIST) - defined) == []
    assert all(reason.strip() for reason in ALLOWLIST.values())


def test_scanner_flags_an_unused_function(tmp_path: Path) -> None:
    pkg = tmp_path / "tbot_bot"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "import functools\n\n"
        "def used(): ...\n"
        "def unused(): ...\n"
        "def _private(): ...\n"
        "def self_check(): ...\n"
        "def local(): ...\n"
        "local()\n"
        "@functools.cache\n"
        "def registered(): ...\n"
        "class Thing:\n"
        "    def called(self): ...\n"
        "    def ghost(self): ...\n"
        "    def __repr__(self): return ''\n"
    )
    (pkg / "b.py").write_text("from tbot_bot.a import Thing, used\n\nused()\nThing().called()\n")
    (tmp_path / "tests").mkdir()  # a test naming it does not count: tests are not product
    (tmp_path / "tests" / "test_a.py").write_text("from tbot_bot.a import unused\n\nunused()\n")
    defined, unused = scan(tmp_path, ("tbot_bot",))
    assert unused == {"tbot_bot/a.py::unused", "tbot_bot/a.py::Thing.ghost"}
    assert "tbot_bot/a.py::used" in defined and "tbot_bot/a.py::registered" not in defined
