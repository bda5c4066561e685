"""The layering the architecture relies on, pinned: SQL text and database drivers live only
under ``eddic.storage``; the storage package does not reach up into the runtime; the kernel
imports nothing from eddic (``tests/kernel/test_purity.py`` proves the kernel's purity)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

STDLIB = Path(__file__).resolve().parent.parent / "stdlib"
DRIVERS = {"sqlite3", "sqlite_utils", "psycopg", "psycopg_pool"}
# A statement keyword followed, later in the same string, by a clause keyword: SQL, not prose.
SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE TABLE|CREATE INDEX)\b.*"
    r"\b(FROM|INTO|SET|WHERE|VALUES|ON|LIMIT)\b|\bPRAGMA\s+\w+",
    re.S,
)
# What storage may import from the rest of eddic: the leaves below the runtime.
STORAGE_MAY_IMPORT = {"clock", "errors", "kernel", "serde", "storage"}


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    parts = path.relative_to(STDLIB).with_suffix("").parts
    return ".".join(("eddic", *parts)).removesuffix(".__init__")


def _imports(tree: ast.AST, module: str) -> set[str]:
    """Absolute names of everything the module imports (relative imports resolved)."""
    package = module.split(".")
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + (1 if _is_package(module) else 0)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            out.add(name)
    return out


def _is_package(module: str) -> bool:
    return (STDLIB / Path(*module.split(".")[1:]) / "__init__.py").exists()


def _sql_strings(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        if text and SQL.search(text):
            found.append(text.strip()[:60])
    return found


OUTSIDE = [p for p in _modules(STDLIB) if "storage" not in p.relative_to(STDLIB).parts]
INSIDE = [p for p in _modules(STDLIB) if "storage" in p.relative_to(STDLIB).parts]


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: _name(p))
def test_no_driver_and_no_sql_outside_storage(path: Path) -> None:
    tree = ast.parse(path.read_text())
    drivers = {name for name in _imports(tree, _name(path)) if name.split(".")[0] in DRIVERS}
    assert not drivers, f"{_name(path)} imports {sorted(drivers)}: only eddic.storage may"
    assert not _sql_strings(tree), f"{_name(path)} holds SQL: {_sql_strings(tree)}"


# A storage method is one unit of work: callers never open a transaction or hold a handle.
UNIT_OF_WORK_INTERNALS = {
    "reading",
    "transaction",
    "commits",
    "_db",
    "instance_row",
    "history_rows",
}


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: _name(p))
def test_no_transaction_or_connection_crosses_the_storage_interface(path: Path) -> None:
    tree = ast.parse(path.read_text())
    used = sorted(
        {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr in UNIT_OF_WORK_INTERNALS
            and "storage" in ast.unparse(node.value)
        }
    )
    assert not used, f"{_name(path)} uses storage.{', storage.'.join(used)}"


@pytest.mark.parametrize("path", INSIDE, ids=lambda p: _name(p))
def test_storage_does_not_reach_into_the_runtime(path: Path) -> None:
    module = _name(path)
    tree = ast.parse(path.read_text())
    upward = {
        name
        for name in _imports(tree, module)
        if name.startswith("eddic.") and name.split(".")[1] not in STORAGE_MAY_IMPORT
    }
    assert not upward, f"{module} imports {sorted(upward)}, above storage"


def test_the_scan_sees_sql_and_drivers_where_they_are() -> None:
    # The checks above must be able to fail: the storage package itself trips both.
    store = STDLIB / "storage" / "sqlite" / "store.py"
    tree = ast.parse(store.read_text())
    assert "sqlite3" in _imports(tree, _name(store))
    assert _sql_strings(tree)
    assert not SQL.search("Select the instances from the list, then update the one you set.")


def _module_level_imports() -> dict[str, set[str]]:
    """eddic module -> the eddic modules it imports at module level, ``if TYPE_CHECKING:``
    blocks included (a circle there is one for the type checker and for the reader); imports
    inside functions are left out (they run later, and are the way out of a circle)."""
    paths = {_name(p): p for p in _modules(STDLIB)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        body = []
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                body.append(node)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                body.extend(n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))
        found = _imports(ast.Module(body=body, type_ignores=[]), name)
        deps = set()
        for dep in found:
            while dep and dep not in paths:  # `from . import steps` names a module too
                dep = dep.rpartition(".")[0]
            if dep and dep != name and not dep.startswith(f"{name}."):
                deps.add(dep)
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_among_eddic_modules() -> None:
    assert _cycle(_module_level_imports()) is None, " -> ".join(
        _cycle(_module_level_imports()) or []
    )
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # it can fail


def test_every_error_eddic_defines_lives_in_its_errors_modules() -> None:
    """One error root, two homes: the kernel's (``eddic.kernel.errors``, it imports nothing of
    eddic) and the standard library's (``eddic.errors``, which re-exports the kernel's)."""
    import importlib
    import pkgutil

    import eddic
    import eddic.errors

    for info in pkgutil.walk_packages(eddic.__path__, "eddic."):
        if info.name != "eddic.__main__":  # that one runs the CLI
            importlib.import_module(info.name)
    defined = [
        cls
        for module in list(sys.modules.values())
        if getattr(module, "__name__", "").startswith("eddic")
        for cls in vars(module).values()
        if isinstance(cls, type)
        and issubclass(cls, eddic.errors.EddicError)
        and cls.__module__ == module.__name__
    ]
    assert defined, "the scan found no error classes at all"
    homes = {cls.__qualname__: cls.__module__ for cls in defined}
    assert set(homes.values()) <= {"eddic.errors", "eddic.kernel.errors"}, homes
    assert set(homes) <= set(eddic.errors.__all__), set(homes) - set(eddic.errors.__all__)


# eddic.compat re-creates other libraries' APIs on eddic's public one: it may import the package
# `eddic` itself (the names users import), its own modules, the standard library and pydantic,
# and none of eddic's modules below the package (eddic.runtime, eddic.storage, ...).
COMPAT = [p for p in _modules(STDLIB) if p.relative_to(STDLIB).parts[0] == "compat"]


def _beyond_public_api(names: set[str]) -> set[str]:
    return {
        name
        for name in names
        if name != "eddic"
        and name.split(".")[:2] != ["eddic", "compat"]
        and name.split(".")[0] not in (*sys.stdlib_module_names, "pydantic")
    }


@pytest.mark.parametrize("path", COMPAT, ids=lambda p: _name(p))
def test_compat_imports_only_the_public_eddic_package(path: Path) -> None:
    module = _name(path)
    beyond = _beyond_public_api(_imports(ast.parse(path.read_text()), module))
    assert not beyond, (
        f"{module} imports {sorted(beyond)}: only `eddic`, the standard library and pydantic"
    )


def test_the_compat_scan_sees_compat_and_what_it_must_not_import() -> None:
    assert "eddic.compat.edda" in {_name(p) for p in COMPAT}
    tree = ast.parse(
        "from .. import App\nfrom ..runtime import app\nimport pydantic, json, sqlite_utils"
    )
    assert _beyond_public_api(_imports(tree, "eddic.compat.edda")) == {
        "eddic.runtime",
        "sqlite_utils",
    }


# What the viewer may import from eddic: the storage interface (its package, not a backend), the
# debugger, the kernel and the leaves, and the App's public methods; never the runtime's insides.
WEB_MAY_IMPORT = {
    "eddic.clock",
    "eddic.codec",
    "eddic.debug",
    "eddic.decorators",
    "eddic.errors",
    "eddic.kernel",
    "eddic.runtime.app",
    "eddic.runtime.async_app",
    "eddic.serde",
    "eddic.storage",
    "eddic.web",
}
WEB = [p for p in _modules(STDLIB) if p.relative_to(STDLIB).parts[0] == "web"]


def _web_reaches(tree: ast.AST, module: str) -> set[str]:
    """The eddic modules ``module`` imports that the viewer may not (a storage backend's modules
    included: ``eddic.storage`` is allowed, ``eddic.storage.sqlite.store`` is not)."""

    def allowed(name: str) -> bool:
        if name == "eddic.storage":
            return True
        return any(
            name == ok or name.startswith(f"{ok}.") for ok in WEB_MAY_IMPORT - {"eddic.storage"}
        )

    return {n for n in _imports(tree, module) if n.startswith("eddic.") and not allowed(n)}


@pytest.mark.parametrize("path", WEB, ids=lambda p: _name(p))
def test_the_viewer_reads_through_the_storage_interface_only(path: Path) -> None:
    reached = _web_reaches(ast.parse(path.read_text()), _name(path))
    assert not reached, f"{_name(path)} imports {sorted(reached)}, beyond {sorted(WEB_MAY_IMPORT)}"


def test_the_viewer_scan_can_fail() -> None:
    assert len(WEB) >= 5
    fake = "eddic.web.fake"
    tree = ast.parse(
        "from ..storage.sqlite.store import Storage\n"
        "from ..runtime.worker import Worker\n"
        "from ..storage import open_store\n"
        "from ..runtime.app import App\n"
    )
    assert _web_reaches(tree, fake) == {"eddic.storage.sqlite.store", "eddic.runtime.worker"}
