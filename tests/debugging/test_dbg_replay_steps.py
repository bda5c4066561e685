"""``app.replay``: one step per command, in seq order, with the values the workflow received."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from eddic import (
    ActivityContext,
    ActivityFailed,
    All,
    CallActivity,
    Event,
    EventTimeout,
    First,
    Publish,
    RetryPolicy,
    Sleep,
    SleepUntil,
    WaitEvent,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.debug.replay import Step
from eddic.kernel import Phase, derived_uuid
from eddic.testing import DEFAULT_START, WorkflowEnvironment

T0 = DEFAULT_START


class Box(BaseModel):
    order_id: str
    weight: int


@activity
def rs_pack(order_id: str) -> Box:
    return Box(order_id=order_id, weight=3)


@activity
def rs_label(order_id: str, n: int) -> str:
    return f"{order_id}-{n}"


@activity
def rs_explode(order_id: str) -> str:
    raise ValueError(f"no stock for {order_id}")


@workflow
def rs_every_kind(ctx: WorkflowContext, order_id: str) -> dict[str, Any]:
    box = yield rs_pack(order_id)
    yield Sleep(30)
    yield SleepUntil(ctx.now() + timedelta(minutes=5))
    paid = yield WaitEvent("rs.paid")
    try:
        yield WaitEvent("rs.never", timeout=60)
        timed_out = False
    except EventTimeout:
        timed_out = True
    event_id = yield Publish("rs.packed", data={"order_id": order_id})
    labels = yield All(rs_label(order_id, 1), rs_label(order_id, 2))
    winner, _ = yield First(WaitEvent("rs.cancel"), Sleep(60))
    try:
        yield rs_explode(order_id)
        failure = None
    except ActivityFailed as exc:
        failure = exc.type
    return {
        "weight": box.weight,
        "paid": paid.data,
        "timed_out": timed_out,
        "event_id": event_id,
        "labels": labels,
        "winner": winner,
        "failure": failure,
    }


def run_every_kind(env: WorkflowEnvironment) -> str:
    iid = env.start(rs_every_kind, input="A1")
    env.advance(30)
    env.advance(timedelta(minutes=5))
    env.send_event("rs.paid", data={"amount": 12}, instance_id=iid)
    env.advance(60)  # rs.never times out; the All runs; the First's sleep starts
    env.advance(60)  # the First's sleep wins; rs_explode fails and is caught
    assert env.status(iid) == "completed"
    return iid


def test_replay_yields_one_step_per_command_in_seq_order_with_what_each_sent_back(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = run_every_kind(eddic_env)
    steps = list(eddic_env.replay(iid))
    assert [(s.seq, s.kind, s.name, s.state) for s in steps] == [
        (1, "activity", "rs_pack", "completed"),
        (2, "timer", "sleep", "completed"),
        (3, "timer", "sleep", "completed"),
        (4, "event", "rs.paid", "completed"),
        (5, "event", "rs.never", "failed"),
        (6, "publish", "rs.packed", "completed"),
        (7, "activity", "rs_label", "completed"),
        (8, "activity", "rs_label", "completed"),
        (9, "event", "rs.cancel", "cancelled"),
        (10, "timer", "sleep", "completed"),
        (11, "activity", "rs_explode", "failed"),
    ]
    assert not any(s.diverged for s in steps)


def test_each_step_carries_the_command_yielded_now_and_the_record_it_matched(
    eddic_env: WorkflowEnvironment,
) -> None:
    steps = list(eddic_env.replay(run_every_kind(eddic_env)))
    pack, sleep, until, paid, never, publish, label1, label2, cancel, nap, explode = steps
    assert pack.command == rs_pack("A1")
    assert pack.record is not None and pack.record.args == {"order_id": "A1"}
    assert sleep.command == Sleep(30)
    assert sleep.record is not None and sleep.record.deadline == T0 + timedelta(seconds=30)
    assert until.command == SleepUntil(T0 + timedelta(seconds=30, minutes=5))
    assert paid.command == WaitEvent("rs.paid")
    assert never.command == WaitEvent("rs.never", timeout=60)
    assert publish.command == Publish("rs.packed", data={"order_id": "A1"})
    assert (label1.command, label2.command) == (rs_label("A1", 1), rs_label("A1", 2))
    assert cancel.command == WaitEvent("rs.cancel") and cancel.outcome is None
    assert nap.command == Sleep(60)
    assert isinstance(explode.command, CallActivity) and explode.record is not None
    assert explode.record.kind == "activity" and explode.record.name == "rs_explode"


def test_values_come_back_as_the_types_the_first_run_saw(eddic_env: WorkflowEnvironment) -> None:
    iid = run_every_kind(eddic_env)
    steps = {s.seq: s for s in eddic_env.replay(iid)}
    assert steps[1].value == Box(order_id="A1", weight=3)
    assert isinstance(steps[4].value, Event) and steps[4].value.data == {"amount": 12}
    assert steps[6].value == str(derived_uuid(iid, 6))
    assert (steps[7].value, steps[8].value) == ("A1-1", "A1-2")
    assert steps[10].value is None and steps[10].outcome is not None


def test_failures_are_the_errors_thrown_into_the_workflow(eddic_env: WorkflowEnvironment) -> None:
    steps = {s.seq: s for s in eddic_env.replay(run_every_kind(eddic_env))}
    assert isinstance(steps[5].error, EventTimeout) and steps[5].error.event_type == "rs.never"
    assert isinstance(steps[11].error, ActivityFailed)
    assert steps[11].error.type == "ValueError" and steps[11].error.message == "no stock for A1"


def test_a_replay_ends_where_the_code_ends(eddic_env: WorkflowEnvironment) -> None:
    iid = run_every_kind(eddic_env)
    replay = eddic_env.replay(iid)
    list(replay)
    assert replay.phase is Phase.COMPLETED and replay.divergence is None
    assert replay.result == eddic_env.result(iid)


def test_a_replay_of_a_waiting_instance_ends_with_the_pending_command(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(rs_every_kind, input="B2")
    eddic_env.advance(30)
    steps = list(eddic_env.replay(iid))
    assert [(s.seq, s.state) for s in steps] == [(1, "completed"), (2, "completed"), (3, "pending")]
    assert steps[-1].outcome is None and steps[-1].value is None


# -- saga --------------------------------------------------------------------------------------


@compensation
def rs_unreserve(order_id: str, result: str) -> str:
    return f"released {result}"


@activity
@on_failure(rs_unreserve)
def rs_reserve(order_id: str) -> str:
    return f"R-{order_id}"


@activity
def rs_charge(order_id: str) -> str:
    raise RuntimeError("card declined")


@workflow
def rs_saga(ctx: WorkflowContext, order_id: str) -> None:
    yield rs_reserve(order_id)
    yield rs_reserve(order_id + "-gift")
    yield rs_charge(order_id)


def test_compensations_replay_as_steps_in_the_order_they_ran(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(rs_saga, input="C3")
    assert eddic_env.status(iid) == "failed"
    replay = eddic_env.replay(iid)
    steps = list(replay)
    assert [(s.seq, s.kind, s.name, s.state) for s in steps] == [
        (1, "activity", "rs_reserve", "completed"),
        (2, "activity", "rs_reserve", "completed"),
        (3, "activity", "rs_charge", "failed"),
        (4, "compensation", "rs_unreserve", "completed"),
        (5, "compensation", "rs_unreserve", "completed"),
    ]
    assert steps[3].command == CallActivity(rs_unreserve, order_id="C3-gift", result="R-C3-gift")
    assert steps[4].value == "released R-C3"
    assert replay.phase is Phase.FAILED and isinstance(replay.error, ActivityFailed)
    assert replay.divergence is None


# -- an abandoned activity ---------------------------------------------------------------------

flaky_attempts: list[int] = []


@activity(retry=RetryPolicy(max_attempts=2, initial_interval=10))
def rs_flaky(ctx: ActivityContext) -> str:
    flaky_attempts.append(ctx.attempt)
    if ctx.attempt == 1:
        raise ConnectionError("warehouse unreachable")
    return "late"


@workflow
def rs_race(ctx: WorkflowContext, _: None = None) -> str:
    index, _value = yield First(rs_flaky(), WaitEvent("rs.go"))
    after = yield rs_label("race", index)
    return after


def test_an_activity_that_lost_a_first_is_abandoned_and_sends_nothing_back(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(rs_race)
    eddic_env.send_event("rs.go", instance_id=iid)  # wins while rs_flaky waits to retry
    eddic_env.run_until_idle()  # the retry runs to completion; its result is ignored
    assert eddic_env.result(iid) == "race-1"
    steps = list(eddic_env.replay(iid))
    assert [(s.seq, s.name, s.state) for s in steps] == [
        (1, "rs_flaky", "abandoned"),
        (2, "rs.go", "completed"),
        (3, "rs_label", "completed"),
    ]
    assert steps[0].value is None and steps[0].error is None


# -- breakpoints -------------------------------------------------------------------------------


@workflow
def rs_paused(ctx: WorkflowContext, order_id: str) -> int:
    box = yield rs_pack(order_id)
    breakpoint()  # the test's breakpointhook records what the debugger would show
    yield Sleep(5)
    return int(box.weight)


def test_a_breakpoint_in_the_workflow_stops_with_the_replayed_values(
    eddic_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Any]] = []

    def hook(*args: Any, **kwargs: Any) -> None:
        frame = sys._getframe(1)  # the workflow's frame, as pdb would see it
        seen.append(("breakpoint", (frame.f_locals["box"], frame.f_locals["ctx"].is_replaying)))

    monkeypatch.setattr(sys, "breakpointhook", hook)
    iid = eddic_env.start(rs_paused, input="D4")
    assert seen == [("breakpoint", (Box(order_id="D4", weight=3), False))]
    seen.clear()

    def on_step(step: Step) -> None:
        seen.append(("step", step.seq))

    eddic_env.replay(iid).run(on_step)
    # The step that feeds the value comes first; then the code runs on to the breakpoint.
    assert seen == [
        ("step", 1),
        ("breakpoint", (Box(order_id="D4", weight=3), True)),
        ("step", 2),
    ]
