"""The kernel imports only pure standard-library modules, and nothing of eddic outside itself."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[2] / "kernel"

ALLOWED = frozenset(
    {
        "__future__",
        "dataclasses",
        "typing",
        "enum",
        "collections",
        "collections.abc",
        "functools",
        "itertools",
        "datetime",
        "uuid",
        "hashlib",
        "json",
        "inspect",
        "traceback",
    }
)

FORBIDDEN_AT_RUNTIME = (
    "sqlite3",
    "asyncio",
    "threading",
    "socket",
    "logging",
    "pydantic",
    "sqlite_utils",
)


def disallowed_imports(source: str) -> list[str]:
    """Every import in ``source`` (at any depth, TYPE_CHECKING blocks included) not allowed."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            bad += [alias.name for alias in node.names if alias.name not in ALLOWED]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module not in ALLOWED:
                bad.append(str(node.module))
            elif node.level > 1:  # ``from ..x import y`` would reach eddic outside the kernel
                bad.append("." * node.level + (node.module or ""))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            bad.append("__import__(...)")
    return bad


def test_the_import_scan_flags_what_it_must():
    source = (
        "import os\nimport json\nfrom sqlite3 import connect\nfrom . import history\n"
        "from ..runtime import App\nfrom collections.abc import Mapping\n"
        "def f():\n    import logging\n    __import__('socket')\n"
    )

    assert disallowed_imports(source) == [
        "os",
        "sqlite3",
        "..runtime",
        "logging",
        "__import__(...)",
    ]


def test_every_kernel_module_imports_only_allowed_standard_library_modules():
    sources = sorted(KERNEL.glob("*.py"))
    assert {p.name for p in sources} >= {
        "__init__.py",
        "commands.py",
        "context.py",
        "errors.py",
        "history.py",
        "handlers.py",
        "interpreter.py",
        "waits.py",
    }

    found = {p.name: disallowed_imports(p.read_text(encoding="utf-8")) for p in sources}

    assert found == {p.name: [] for p in sources}


# The subprocess installs a stub parent package, so that importing ``eddic.kernel`` does not run
# ``eddic/__init__.py`` (the standard library around the kernel, which may import anything).
PROBE = """
import importlib.util, json, sys, types

spec = importlib.util.find_spec("eddic")
stub = types.ModuleType("eddic")
stub.__path__ = list(spec.submodule_search_locations)
before = set(sys.modules)
sys.modules["eddic"] = stub

import eddic.kernel

for name in sys.argv[1:]:  # a control: modules the caller wants seen as newly loaded
    __import__(name)
new = sorted(set(sys.modules) - before)
print(json.dumps({"new": new, "stub_kept": sys.modules["eddic"] is stub}))
"""


def newly_loaded(*also_import: str) -> tuple[list[str], bool]:
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, *also_import],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    return report["new"], report["stub_kept"]


def forbidden(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(FORBIDDEN_AT_RUNTIME))


def test_importing_the_kernel_loads_no_io_concurrency_logging_or_third_party_module():
    new, stub_kept = newly_loaded()

    assert "eddic.kernel" in new
    assert "eddic.kernel.interpreter" in new
    assert stub_kept
    assert [m for m in new if m.startswith("eddic.") and not m.startswith("eddic.kernel")] == []
    assert forbidden(new) == []


def test_the_import_probe_sees_a_forbidden_module_when_one_is_loaded():
    new, _ = newly_loaded("logging", "sqlite3")

    # What else these pull in depends on what the interpreter preloaded (``logging`` loads
    # ``threading`` where nothing loaded it before), so only the two asked for are pinned.
    assert {"logging", "sqlite3"} <= set(forbidden(new))


def test_the_filter_reports_forbidden_packages_by_their_root_and_nothing_allowed():
    loaded = ["json", "logging.handlers", "sqlite3.dbapi2", "eddic.kernel", "datetime", "uuid"]

    assert forbidden(loaded) == ["logging", "sqlite3"]
