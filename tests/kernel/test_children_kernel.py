"""Child workflows in the kernel, from hand-written histories: a ``CallWorkflow`` is a leaf of
kind ``child`` under a derived (or given) id; its recorded value is the yield's value; a
recorded failure throws ``ChildWorkflowFailed`` naming the child; a child abandoned by ``First``
or by the parent's cancel is handed to the host to cancel (``Interpreter.abandoned``)."""

from __future__ import annotations

from typing import Any

from kernel_histories import at, done, failed, interpreter, replayed, timer

from eddic.kernel import (
    CallWorkflow,
    Cancel,
    ChildWorkflowFailed,
    First,
    Phase,
    Scheduled,
    Sleep,
)


def child(seq: int, name: str, input: Any, child_id: str, t: float = 0) -> Scheduled:
    return Scheduled(seq, "child", name, {"input": input, "instance_id": child_id}, at(t))


def parent(ctx: Any) -> Any:
    try:
        value = yield CallWorkflow("pack", {"item": "tea"})
    except ChildWorkflowFailed as exc:
        return ["failed", exc.instance_id, exc.workflow, exc.type, exc.message]
    return ["ok", value]


def test_a_child_call_is_recorded_under_a_derived_id() -> None:
    interp = interpreter(parent, instance_id="order-1")
    (record,) = interp.decide()
    assert (record.seq, record.kind, record.name) == (1, "child", "pack")  # type: ignore[union-attr]
    assert record.args == {"input": {"item": "tea"}, "instance_id": "order-1/1"}  # type: ignore[union-attr]


def test_a_given_id_is_recorded_as_given() -> None:
    def named(ctx: Any) -> Any:
        return (yield CallWorkflow("pack", None, instance_id="pack-tea"))

    (record,) = interpreter(named).decide()
    assert record.args["instance_id"] == "pack-tea"  # type: ignore[union-attr]


def test_the_recorded_value_is_the_yields_value() -> None:
    history = [child(1, "pack", {"item": "tea"}, "order-42/1"), done(1, "parcel", t=5)]
    interp = replayed(parent, history)
    assert interp.phase is Phase.COMPLETED and interp.result == ["ok", "parcel"]


def test_a_recorded_failure_throws_child_workflow_failed_naming_the_child() -> None:
    history = [
        child(1, "pack", {"item": "tea"}, "order-42/1"),
        failed(1, "eddic.Cancelled", "not needed", t=5),
    ]
    assert replayed(parent, history).result == [
        "failed",
        "order-42/1",
        "pack",
        "eddic.Cancelled",
        "not needed",
    ]


def test_a_child_losing_a_first_is_handed_to_the_host_to_cancel() -> None:
    def racing(ctx: Any) -> Any:
        index, _ = yield First(CallWorkflow("slow"), Sleep(10))
        return index

    history = [child(1, "slow", None, "order-42/1"), timer(2, 10), done(2, t=10)]
    interp = replayed(racing, history)
    assert interp.result == 1
    assert [(p.seq, p.record.args["instance_id"]) for p in interp.abandoned] == [(1, "order-42/1")]


def test_cancelling_the_parent_hands_its_running_child_to_the_host() -> None:
    interp = replayed(parent, [child(1, "pack", {"item": "tea"}, "order-42/1")])
    interp.feed(Cancel(at(3), "stop"))
    assert interp.phase is Phase.CANCELLED
    assert [p.seq for p in interp.abandoned] == [1]
