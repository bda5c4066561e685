"""Design §7: the activities pending at one yield run at once, races resolve at the time they
are decided (a timer at its deadline, the first activity to finish), attempts are bounded by
``timeout`` and ``heartbeat_timeout``, and heartbeat details reach the next attempt — on both
backends, in real time (generous margins: the machines are noisy)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import Any

import pytest

from eddic import (
    ActivityContext,
    ActivityFailed,
    ActivityTimeout,
    All,
    App,
    EventTimeout,
    First,
    RetryPolicy,
    Sleep,
    WaitEvent,
    WorkflowContext,
    WorkflowFailed,
    activity,
    workflow,
)

pytestmark = pytest.mark.both_backends

marks: list[tuple[str, float]] = []
lock = threading.Lock()


def mark(what: str) -> None:
    with lock:
        marks.append((what, time.monotonic()))


@pytest.fixture(autouse=True)
def _clear() -> None:
    marks.clear()


@activity
def pa_sleep(name: str, seconds: float) -> str:
    mark(f"begin {name}")
    time.sleep(seconds)
    mark(f"end {name}")
    return name


@activity
async def pa_async_sleep(name: str, seconds: float) -> str:
    mark(f"begin {name}")
    await asyncio.sleep(seconds)
    mark(f"end {name}")
    return name


@activity
def pa_note(what: str) -> str:
    mark(what)
    return what


@workflow
def pa_fan_out(ctx: WorkflowContext, seconds: float) -> list[str]:
    got = yield All(pa_sleep("a", seconds), pa_sleep("b", seconds), pa_sleep("c", seconds))
    return list(got)


@workflow
def pa_async_fan_out(ctx: WorkflowContext, seconds: float) -> list[str]:
    calls = [pa_async_sleep(n, seconds) for n in "abc"]
    return list((yield All(*calls)))


@workflow
def pa_race_timer(ctx: WorkflowContext) -> list[Any]:
    index, _value = yield First(pa_sleep("slow", 3.0), Sleep(1))
    yield pa_note("after race")
    return [index, ctx.now().isoformat()]


@workflow
def pa_race_two(ctx: WorkflowContext, slow_first: bool) -> list[Any]:
    slow, fast = pa_sleep("slow", 2.0), pa_sleep("fast", 0.2)
    index, value = yield (First(slow, fast) if slow_first else First(fast, slow))
    yield pa_note("after race")
    return [index, value]


@workflow
def pa_race_event(ctx: WorkflowContext, timeout: float | None) -> list[Any]:
    try:
        index, value = yield First(pa_sleep("slow", 3.0), WaitEvent("pa.go", timeout=timeout))
    except EventTimeout:
        yield pa_note("timed out")
        return ["timeout"]
    yield pa_note("after race")
    return [index, value.data]


def _elapsed(start: float, what: str) -> float:
    return next(t for w, t in marks if w == what) - start


def test_all_of_three_activities_runs_them_at_once(app: App) -> None:
    begun = time.monotonic()
    iid = app.start(pa_fan_out, 0.6)
    took = time.monotonic() - begun
    assert app.result(iid) == ["a", "b", "c"]
    assert took < 1.4, f"three 0.6 s activities took {took:.2f} s"
    begins = sorted(t for w, t in marks if w.startswith("begin"))
    assert begins[-1] - begins[0] < 0.4  # all three began together, not one after another


def test_async_activities_run_at_once_on_the_event_loop(app: App) -> None:
    begun = time.monotonic()
    iid = app.start(pa_async_fan_out, 0.6)
    assert time.monotonic() - begun < 1.4
    assert app.result(iid) == ["a", "b", "c"]


def test_each_completion_is_committed_as_it_arrives(app: App) -> None:
    @activity(name="pa_staggered")
    def staggered(n: int) -> int:
        time.sleep(0.3 * n)
        return n

    @workflow(name="pa_staggered_flow")
    def flow(ctx: WorkflowContext) -> list[int]:
        return list((yield All(staggered(3), staggered(1), staggered(2))))

    iid = app.start(flow)
    assert app.result(iid) == [3, 1, 2]  # in argument order
    resolved = [r["seq"] for r in app.history(iid) if r["record"] == "resolved"]
    assert resolved == [2, 3, 1]  # committed in the order they finished


def test_a_timer_wins_a_race_against_a_slower_activity_at_its_deadline(app: App) -> None:
    begun = time.monotonic()
    iid = app.start(pa_race_timer)
    index, at = app.result(iid)
    assert index == 1  # the Sleep
    after = _elapsed(begun, "after race")
    assert 0.9 < after < 2.2, f"the workflow went on {after:.2f} s after starting"
    assert after < _elapsed(begun, "end slow")  # while the abandoned activity still ran
    history = app.history(iid)
    resolved = [r["seq"] for r in history if r["record"] == "resolved"]
    assert resolved[0] == 2  # the timer's outcome first; the activity's later, and ignored
    assert 1 in resolved  # the abandoned activity's outcome is recorded all the same
    started = app.get_instance(iid)["created_at"]
    waited = (datetime.fromisoformat(at) - started).total_seconds()
    assert 0.9 < waited < 2.2  # ctx.now() after the race: the timer's deadline, not the end


@pytest.mark.parametrize("slow_first", [True, False])
def test_the_first_activity_to_finish_wins_whatever_its_position(
    app: App, slow_first: bool
) -> None:
    begun = time.monotonic()
    iid = app.start(pa_race_two, slow_first)
    index, value = app.result(iid)
    assert value == "fast"
    assert index == (1 if slow_first else 0)
    assert _elapsed(begun, "after race") < 1.5  # it did not wait for the slow one


def test_an_event_wait_times_out_at_its_deadline_while_an_activity_runs(app: App) -> None:
    begun = time.monotonic()
    iid = app.start(pa_race_event, 1.0)
    assert app.result(iid) == ["timeout"]
    assert 0.9 < _elapsed(begun, "timed out") < 2.2


def test_an_event_arriving_while_an_activity_runs_wins_the_race(app: App) -> None:
    iid = "pa-event-race"
    begun = time.monotonic()
    # start() blocks while the activity runs; send from here once the instance waits.
    starter = threading.Thread(
        target=lambda: app.start(pa_race_event, None, instance_id=iid), daemon=True
    )
    starter.start()
    while not any(w == "begin slow" for w, _t in marks):
        assert time.monotonic() - begun < 10
        time.sleep(0.01)
    sent = time.monotonic()
    assert app.send_event("pa.go", {"n": 1}, instance_id=iid) == [iid]
    starter.join(10)
    assert app.result(iid) == [1, {"n": 1}]
    went_on = _elapsed(sent, "after race")
    assert went_on < 1.0, f"the event was seen {went_on:.2f} s after it was sent"
    assert went_on < _elapsed(sent, "end slow")


attempts_seen: list[int] = []


@activity(name="pa_overruns", timeout=0.5, retry=RetryPolicy(max_attempts=3, initial_interval=0))
def pa_overruns(ctx: ActivityContext, fast_from: int) -> str:
    attempts_seen.append(ctx.attempt)
    if ctx.attempt < fast_from:
        time.sleep(1.5)  # overruns: its result is discarded
        return f"late {ctx.attempt}"
    return f"on time {ctx.attempt}"


@workflow
def pa_timeout_flow(ctx: WorkflowContext, fast_from: int) -> str:
    try:
        return str((yield pa_overruns(fast_from)))
    except ActivityFailed as exc:
        return f"{exc.type} after {exc.attempts}"


def test_a_timeout_fails_the_attempt_and_a_retry_follows(app: App) -> None:
    attempts_seen.clear()
    begun = time.monotonic()
    iid = app.start(pa_timeout_flow, 2)
    assert app.result(iid) == "on time 2"
    assert time.monotonic() - begun < 1.4  # attempt 1 given up at 0.5 s, not waited for
    assert attempts_seen == [1, 2]
    time.sleep(1.2)  # attempt 1's body returns now, into nothing
    resolved = [r for r in app.history(iid) if r["record"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["value"] == "on time 2"


def test_timeouts_spend_the_attempts_and_the_workflow_sees_activity_timeout(app: App) -> None:
    attempts_seen.clear()
    begun = time.monotonic()
    iid = app.start(pa_timeout_flow, 99)
    assert app.result(iid) == "eddic.ActivityTimeout after 3"
    assert time.monotonic() - begun < 3.0
    assert attempts_seen == [1, 2, 3]


@activity(name="pa_async_overruns", timeout=0.3)
async def pa_async_overruns() -> str:
    mark("async begin")
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        mark("async cancelled")
        raise
    return "late"


@workflow
def pa_async_timeout_flow(ctx: WorkflowContext) -> str:
    try:
        return str((yield pa_async_overruns()))
    except ActivityFailed as exc:
        return exc.type


def test_an_async_body_that_overruns_is_cancelled(app: App) -> None:
    iid = app.start(pa_async_timeout_flow)
    assert app.result(iid) == "eddic.ActivityTimeout"
    deadline = time.monotonic() + 5
    while not any(w == "async cancelled" for w, _t in marks):
        assert time.monotonic() < deadline, "the overrunning task was never cancelled"
        time.sleep(0.02)


beats: list[tuple[int, Any]] = []


@activity(
    name="pa_beating",
    heartbeat_timeout=0.5,
    retry=RetryPolicy(max_attempts=2, initial_interval=0),
)
def pa_beating(ctx: ActivityContext, steps: int) -> str:
    beats.append((ctx.attempt, ctx.heartbeat_details))
    done = 0 if ctx.heartbeat_details is None else int(ctx.heartbeat_details["done"])
    for step in range(done + 1, steps + 1):
        time.sleep(0.05)
        ctx.heartbeat({"done": step})
        if ctx.attempt == 1 and step == 3:
            time.sleep(3)  # goes silent: its heartbeat timeout fails the attempt
            try:
                ctx.heartbeat({"done": 99})  # the attempt has timed out: this raises
            except ActivityTimeout:
                mark("late heartbeat refused")
                raise
    return f"attempt {ctx.attempt} finished from {done}"


@workflow
def pa_heartbeat_flow(ctx: WorkflowContext, steps: int) -> str:
    return str((yield pa_beating(steps)))


def test_a_silent_activity_fails_its_heartbeat_timeout_and_the_next_attempt_resumes(
    app: App,
) -> None:
    beats.clear()
    begun = time.monotonic()
    iid = app.start(pa_heartbeat_flow, 6)
    assert app.result(iid) == "attempt 2 finished from 3"
    assert time.monotonic() - begun < 2.5  # not the 3 s the silent attempt slept
    assert beats == [(1, None), (2, {"done": 3})]
    deadline = time.monotonic() + 6
    while not any(w == "late heartbeat refused" for w, _t in marks):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_heartbeat_details_are_stored_durably(app: App) -> None:
    seen: list[Any] = []
    proceed = threading.Event()

    @activity(name="pa_durable_beats")
    def durable(ctx: ActivityContext) -> str:
        ctx.heartbeat({"page": 7})
        seen.append("beat")
        proceed.wait(10)
        return "done"

    @workflow(name="pa_durable_beats_flow")
    def flow(ctx: WorkflowContext) -> str:
        return str((yield durable()))

    iid = "pa-durable"
    runner = threading.Thread(target=lambda: app.start(flow, instance_id=iid), daemon=True)
    runner.start()
    while not seen:
        time.sleep(0.01)
    attempts = app.storage.stored(iid).attempts
    assert attempts[1][0] == 1  # attempt 1 of seq 1
    assert attempts[1][4] == '{"page":7}'
    proceed.set()
    runner.join(10)
    assert app.result(iid) == "done"
    assert app.storage.stored(iid).attempts == {}  # done with the call: the row is gone


def test_bad_timeouts_are_refused_at_decoration() -> None:
    for bad in (-1, 0, float("nan"), float("inf"), "5"):
        with pytest.raises((TypeError, ValueError), match="timeout"):
            activity(name=f"pa_bad_{bad!r}", timeout=bad)(lambda: None)  # type: ignore[arg-type]
        with pytest.raises((TypeError, ValueError), match="heartbeat_timeout"):
            activity(name=f"pa_bad_hb_{bad!r}", heartbeat_timeout=bad)(  # type: ignore[arg-type]
                lambda: None
            )


def test_heartbeat_details_that_cannot_be_recorded_raise_type_error_at_the_call(
    app: App,
) -> None:
    @activity(name="pa_bad_beat")
    def bad_beat(ctx: ActivityContext) -> str:
        try:
            ctx.heartbeat(object())
        except TypeError as exc:
            return f"refused: {'heartbeat' in str(exc)}"
        return "accepted"

    @workflow(name="pa_bad_beat_flow")
    def flow(ctx: WorkflowContext) -> str:
        return str((yield bad_beat()))

    assert app.result(app.start(flow)) == "refused: True"


def test_a_failed_fan_out_branch_fails_the_all_once_the_others_are_recorded(app: App) -> None:
    @activity(name="pa_boom")
    def boom() -> str:
        time.sleep(0.1)
        raise RuntimeError("boom")

    @workflow(name="pa_boom_flow")
    def flow(ctx: WorkflowContext) -> str:
        yield All(pa_sleep("a", 0.5), boom())
        return "no"

    iid = app.start(flow)
    with pytest.raises(WorkflowFailed):
        app.result(iid)
    resolved = sorted(r["seq"] for r in app.history(iid) if r["record"] == "resolved")
    assert resolved == [1, 2]  # the still-running branch's outcome is recorded too


@workflow
def pa_then_wait(ctx: WorkflowContext) -> list:
    return list((yield All(pa_sleep("a", 0.2), WaitEvent("pa.never"))))


def test_the_outcome_that_leaves_the_instance_waiting_releases_it_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    # The activity runs among the others (an event wait is pending too); its outcome's step
    # releases the lease, and the driver must not release it a second time.
    with caplog.at_level("WARNING", logger="eddic"):
        iid = app.start(pa_then_wait)
    assert app.get_instance(iid)["status"] == "waiting_for_event"
    assert not [r for r in caplog.records if "lost its lease" in r.getMessage()]


def test_serve_with_more_threads_than_activity_threads_raises_the_bound(app: App) -> None:
    assert app._worker._bodies.size == 16
    worker = threading.Thread(target=app.serve, kwargs={"threads": 20}, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while app._worker._bodies.size != 20:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        app.stop()
        worker.join(10)
