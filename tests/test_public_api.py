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


def test_nothing_is_importable_as_a_bare_kernel_or_stdlib_package() -> None:
    import importlib.util

    for bare in ("stdlib",):
        spec = importlib.util.find_spec(bare)
        assert spec is None or "eddic" not in (spec.origin or ""), bare
    assert eddic.kernel.__name__ == "eddic.kernel"
