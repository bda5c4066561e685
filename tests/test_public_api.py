"""The public names of ``eddic`` are a contract: this pins them."""

from __future__ import annotations

import eddic
import eddic.kernel

EXPECTED = {
    "App",
    "workflow",
    "activity",
    "compensation",
    "on_failure",
    "RetryPolicy",
    "WorkflowContext",
    "ActivityContext",
    "CallActivity",
    "Sleep",
    "SleepUntil",
    "WaitEvent",
    "Publish",
    "All",
    "First",
    "Event",
    "EddicError",
    "ActivityFailed",
    "ActivityTimeout",
    "Cancelled",
    "WorkflowCancelled",
    "CallWorkflow",
    "ChildWorkflowFailed",
    "ContinueAsNew",
    "AsyncApp",
    "WorkflowFailed",
    "EventTimeout",
    "NonDeterminismError",
    "InstanceNotFound",
    "InstanceExists",
    "UnknownWorkflow",
}


def test_eddic_exports_exactly_the_contracted_names() -> None:
    assert set(eddic.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(eddic, name) is not None


def test_commands_events_and_errors_are_the_kernels_own_objects() -> None:
    for name in ("CallActivity", "Sleep", "WaitEvent", "Publish", "All", "First", "Event"):
        assert getattr(eddic, name) is getattr(eddic.kernel, name)
    for name in ("EddicError", "ActivityFailed", "NonDeterminismError", "UnknownWorkflow"):
        assert getattr(eddic, name) is getattr(eddic.kernel, name)


def test_every_error_derives_from_eddic_error() -> None:
    for name in EXPECTED:
        obj = getattr(eddic, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, eddic.EddicError), name


def test_no_source_imports_the_folders_as_top_level_packages() -> None:
    """``kernel`` and ``stdlib`` are folders mapped onto ``eddic``, never packages of their own."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in [*root.glob("kernel/*.py"), *root.glob("stdlib/*.py"), *root.glob("examples/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("kernel", "stdlib")
            ]
    assert offenders == []


def test_cancelled_is_a_base_exception_that_except_exception_does_not_catch() -> None:
    assert issubclass(eddic.Cancelled, BaseException)
    assert not issubclass(eddic.Cancelled, Exception)
    assert issubclass(eddic.WorkflowCancelled, eddic.WorkflowFailed)
    assert eddic.Cancelled is eddic.kernel.Cancelled


def test_every_package_folder_is_listed_in_the_distribution() -> None:
    """A package folder missing from pyproject's ``packages`` works in an editable install and
    is missing from a real one (eddic.compat was, once). (Read without tomllib: Python 3.10.)"""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M)
    assert block is not None
    listed = set(re.findall(r'"([^"]+)"', block.group(1)))
    found = {"eddic.kernel"}
    for init in (root / "stdlib").rglob("__init__.py"):
        parts = init.parent.relative_to(root / "stdlib").parts
        found.add(".".join(("eddic", *parts)))
    assert found == listed, (found - listed, listed - found)


def test_the_kernel_exports_its_introspection_types() -> None:
    """What a viewer or debugger reads of a live interpreter: ``Interpreter.frames()`` gives
    ``Frame``s, ``Interpreter.pending`` gives ``Pending``s."""
    import dataclasses

    from eddic.kernel.frames import Frame

    for name in ("Frame", "Interpreter", "Pending", "Phase"):
        assert name in eddic.kernel.__all__, name
    assert eddic.kernel.Frame is Frame
    assert [f.name for f in dataclasses.fields(Frame)] == [
        "function",
        "filename",
        "lineno",
        "locals",
    ]
    for name in eddic.kernel.__all__:
        assert getattr(eddic.kernel, name) is not None, name
