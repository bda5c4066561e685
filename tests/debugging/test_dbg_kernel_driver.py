"""Testing workflows on the kernel alone: outcomes fed by hand, no database, no clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from eddic import (
    ActivityFailed,
    All,
    EddicError,
    EventTimeout,
    First,
    Publish,
    Sleep,
    WaitEvent,
    WorkflowContext,
)
from eddic.debug.replay import Replay
from eddic.kernel import ActivityRef, CallActivity, Phase, Resolved, Scheduled
from eddic.testing import DEFAULT_START, WorkflowDriver

T0 = DEFAULT_START
RESERVE = ActivityRef("reserve", compensation="release")
CHARGE = ActivityRef("charge", compensation="refund")
SHIP = ActivityRef("ship")


def order(ctx: WorkflowContext, order_id: str) -> Any:
    """A plain generator function: the kernel needs no decorator."""
    yield CallActivity(RESERVE, order_id)
    yield Sleep(30)
    try:
        paid = yield WaitEvent("paid", timeout=3600)
    except EventTimeout:
        return f"{order_id} expired at {ctx.now().isoformat()}"
    receipt = yield CallActivity(CHARGE, order_id, paid.data["amount"])
    labels = yield All(CallActivity(SHIP, order_id, 1), CallActivity(SHIP, order_id, 2))
    winner, _ = yield First(WaitEvent("cancelled"), Sleep(60))
    yield Publish("order.done", data={"order_id": order_id})
    return {"receipt": receipt, "labels": labels, "cancelled": winner == 0}


def test_a_workflow_runs_on_outcomes_fed_by_the_test() -> None:
    drv = WorkflowDriver(order, input="A1")
    assert drv.waiting_on == ["activity reserve"]
    drv.complete(RESERVE, "R-1")
    assert drv.waiting_on == ["timer sleep"]
    drv.advance(30)
    drv.send_event("paid", data={"amount": 10})
    drv.complete("charge", "receipt-1")
    assert drv.waiting_on == ["activity ship", "activity ship"]
    drv.complete(SHIP, "label-2", seq=6)  # outcomes may arrive out of order
    drv.complete(SHIP, "label-1")
    drv.advance(60)
    assert drv.status == "completed"
    assert drv.result == {
        "receipt": "receipt-1",
        "labels": ["label-1", "label-2"],
        "cancelled": False,
    }


def test_an_event_deadline_passes_at_its_own_time() -> None:
    drv = WorkflowDriver(order, input="A2")
    drv.complete(RESERVE, "R-2")
    drv.advance(timedelta(days=1))  # the 30 s sleep fires at +30 s, the deadline an hour later
    assert drv.result == f"A2 expired at {(T0 + timedelta(seconds=30, hours=1)).isoformat()}"


def test_a_failed_activity_runs_the_compensations_newest_first() -> None:
    drv = WorkflowDriver(order, input="A3")
    drv.complete(RESERVE, "R-3")
    drv.advance(30)
    drv.send_event("paid", data={"amount": 10})
    drv.fail(CHARGE, ValueError("card declined"), attempts=3)
    assert drv.status == "compensating"
    assert drv.waiting_on == ["compensation release"]
    drv.complete("release")
    assert drv.status == "failed"
    assert isinstance(drv.error, ActivityFailed) and drv.error.attempts == 3
    assert drv.error.type == "ValueError"


def test_feeding_an_outcome_nobody_waits_for_is_an_error_naming_what_it_waits_for() -> None:
    drv = WorkflowDriver(order, input="A4")
    with pytest.raises(EddicError, match="not waiting on any activity or compensation 'ship'"):
        drv.complete(SHIP, "too early")
    with pytest.raises(EddicError, match="it waits on: activity reserve"):
        drv.send_event("paid")


def test_the_driver_keeps_the_history_the_runtime_would_store() -> None:
    drv = WorkflowDriver(order, input="A5")
    drv.complete(RESERVE, "R-5")
    assert drv.history == [
        Scheduled(1, "activity", "reserve", {"args": ("A5",), "kwargs": {}}, T0),
        Resolved(1, T0, "R-5"),
        Scheduled(2, "timer", "sleep", {"seconds": 30.0}, T0, T0 + timedelta(seconds=30)),
    ]


def finished_order(order_id: str) -> WorkflowDriver:
    drv = WorkflowDriver(order, input=order_id)
    drv.complete(RESERVE, "R")
    drv.advance(30)
    drv.send_event("paid", data={"amount": 10})
    drv.complete(CHARGE, "C")
    drv.complete(SHIP, "L1")
    drv.complete(SHIP, "L2")
    drv.send_event("cancelled")
    return drv


def test_a_replay_on_the_kernel_alone_steps_through_every_kind_of_command() -> None:
    drv = finished_order("B1")
    replay = Replay(order, "B1", instance_id=drv.instance_id, started_at=T0, records=drv.history)
    steps = list(replay)
    assert [(s.seq, s.kind, s.name, s.state, s.value) for s in steps] == [
        (1, "activity", "reserve", "completed", "R"),
        (2, "timer", "sleep", "completed", None),
        (3, "event", "paid", "completed", steps[2].value),
        (4, "activity", "charge", "completed", "C"),
        (5, "activity", "ship", "completed", "L1"),
        (6, "activity", "ship", "completed", "L2"),
        (7, "event", "cancelled", "completed", steps[6].value),
        (8, "timer", "sleep", "cancelled", None),
        (9, "publish", "order.done", "completed", steps[8].value),
    ]
    assert steps[2].value.data == {"amount": 10}
    assert replay.phase is Phase.COMPLETED and replay.result == drv.result


def test_a_replay_on_the_kernel_alone_steps_through_compensations() -> None:
    drv = WorkflowDriver(order, input="B2")
    drv.complete(RESERVE, "R")
    drv.advance(30)
    drv.send_event("paid", data={"amount": 10})
    drv.fail(CHARGE, "declined")
    drv.complete("release", "released")
    replay = Replay(order, "B2", instance_id=drv.instance_id, started_at=T0, records=drv.history)
    steps = list(replay)
    assert [(s.kind, s.name, s.state) for s in steps[-2:]] == [
        ("activity", "charge", "failed"),
        ("compensation", "release", "completed"),
    ]
    assert steps[-1].command == CallActivity(ActivityRef("release"), "B2")
    assert replay.phase is Phase.FAILED


def test_a_replay_on_the_kernel_alone_finds_a_divergence() -> None:
    drv = finished_order("B3")

    def reordered(ctx: WorkflowContext, order_id: str) -> Any:
        yield CallActivity(RESERVE, order_id)
        yield WaitEvent("paid", timeout=3600)

    replay = Replay(reordered, "B3", instance_id="i", started_at=T0, records=drv.history)
    *_, last = replay
    assert last.divergence is not None and last.seq == 2
    assert last.divergence.recorded is not None and last.divergence.now is not None
    assert (last.divergence.recorded["kind"], last.divergence.now["kind"]) == ("timer", "event")
