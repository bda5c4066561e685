"""Property tests: random workflow programs, driven live by random outcomes, then replayed.

A *program* is a list of steps (an activity call, a sleep, an event wait, a publish, an All or a
First over a few of those, or a try/except around one of them) and whether the workflow raises
at the end. Hypothesis picks the program, and then, step by step, which pending command to resolve
next and how (success or failure, event or timeout). The live run records the full history; the
properties are that replay reproduces the live run exactly, at every point and every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_histories import T0, in_style

from eddic.kernel import (
    ActivityRef,
    All,
    CallActivity,
    Command,
    EddicError,
    Event,
    Failure,
    First,
    Interpreter,
    Pending,
    Phase,
    Publish,
    Record,
    Resolved,
    Scheduled,
    Sleep,
    WaitEvent,
)

INSTANCE = "prop-1"

# -- programs -------------------------------------------------------------------------------------
#
# Steps are plain tuples, so that Hypothesis prints and shrinks them readably:
#   ("act", name, compensated)  ("sleep", seconds)  ("wait", event_type, timeout | None)
#   ("publish", event_type)     ("all", [steps])    ("first", [steps])    ("try", step)

leaves = st.one_of(
    st.tuples(st.just("act"), st.sampled_from(["a", "b", "c"]), st.booleans()),
    st.tuples(st.just("sleep"), st.sampled_from([0, 5, 60])),
    st.tuples(st.just("wait"), st.sampled_from(["x", "y"]), st.sampled_from([None, 10, 300])),
    st.tuples(st.just("publish"), st.sampled_from(["p", "q"])),
)
combinators = st.sampled_from(["all", "first"])
groups = st.tuples(combinators, st.lists(leaves, min_size=1, max_size=3))
nested = st.tuples(combinators, st.lists(leaves | groups, min_size=1, max_size=3))
nodes = st.one_of(leaves, groups, nested, st.just(("all", [])))
steps = st.one_of(nodes, st.tuples(st.just("try"), nodes))
programs = st.tuples(st.lists(steps, max_size=8), st.booleans())


def to_command(node: tuple[Any, ...], path: str) -> Command:
    """The command for one program node; ``path`` makes every activity call's argument unique."""
    kind = node[0]
    if kind == "act":
        name, compensated = node[1], node[2]
        if compensated:
            return CallActivity(ActivityRef(f"{name}_c", compensation=f"undo_{name}_c"), path)
        return CallActivity(ActivityRef(name), path)
    if kind == "sleep":
        return Sleep(node[1])
    if kind == "wait":
        return WaitEvent(node[1], timeout=node[2])
    if kind == "publish":
        return Publish(node[1], {"at": path})
    children = [to_command(child, f"{path}.{i}") for i, child in enumerate(node[1])]
    return All(*children) if kind == "all" else First(*children)


def make_workflow(program: tuple[list[Any], bool], trace: list[Any]) -> Any:
    """A workflow running ``program``; it appends what it sees to ``trace``."""
    program_steps, raise_at_end = program

    def workflow(ctx: Any) -> Any:
        trace.append(("start", ctx.now(), ctx.uuid()))
        results = []
        for i, step in enumerate(program_steps):
            if step[0] == "try":
                try:
                    value = yield to_command(step[1], f"s{i}")
                except EddicError as error:
                    trace.append(("caught", i, type(error).__name__, str(error), ctx.now()))
                    continue
            else:
                value = yield to_command(step, f"s{i}")
            trace.append(("value", i, value, ctx.now(), ctx.uuid(), ctx.uuid()))
            results.append(value)
        if raise_at_end:
            raise RuntimeError("the program ends by raising")
        return results

    return workflow


def new_interpreter(program: tuple[list[Any], bool], trace: list[Any]) -> Interpreter:
    workflow = in_style(make_workflow(program, trace))  # as written, or its async def twin
    return Interpreter(workflow, instance_id=INSTANCE, started_at=T0)


# -- observing an interpreter ---------------------------------------------------------------------


def state(interp: Interpreter, trace: list[Any]) -> tuple[Any, ...]:
    """Everything observable about an interpreter and what its workflow has seen so far."""
    error = interp.error
    return (
        interp.phase,
        [(p.seq, p.kind, p.name, p.deadline, p.record) for p in interp.pending],
        interp.result,
        None if error is None else (type(error).__name__, str(error)),
        list(interp.compensation_errors),
        interp.now,
        interp.last_seq,
        tuple(trace),
    )


# -- the live run ---------------------------------------------------------------------------------


@dataclass
class LiveRun:
    history: list[Record] = field(default_factory=list)
    #: (records fed before this decide(), what decide() returned, state just after)
    points: list[tuple[int, list[Record], tuple[Any, ...]]] = field(default_factory=list)
    final: tuple[Any, ...] = ()


def outcome(pending: Pending, clock: datetime, data: st.DataObject) -> Resolved:
    """A random, plausible outcome for ``pending`` at ``clock`` (timers fire at their deadline)."""
    if pending.kind in ("activity", "compensation"):
        # one outcome in four is a failure, so that programs get past their first activity
        if data.draw(
            st.sampled_from([False, False, False, True]), label=f"seq {pending.seq} fails"
        ):
            attempts = data.draw(st.integers(1, 3), label="attempts")
            return Resolved(
                pending.seq, clock, failure=Failure("ValueError", f"{pending.name} broke", attempts)
            )
        return Resolved(pending.seq, clock, f"{pending.name}#{pending.seq}")
    deadline = pending.deadline
    if pending.kind == "timer":
        assert deadline is not None
        return Resolved(pending.seq, max(clock, deadline), None)
    assert pending.kind == "event", f"{pending.kind} is never left pending"
    if deadline is not None and data.draw(st.booleans(), label=f"seq {pending.seq} times out"):
        at = max(clock, deadline)
        return Resolved(pending.seq, at, failure=Failure("EventTimeout", "no event in time"))
    received = Event(f"evt-{pending.seq}", pending.name, "prop", clock, {"n": pending.seq})
    return Resolved(pending.seq, clock, received)


def drive_live(program: tuple[list[Any], bool], data: st.DataObject) -> LiveRun:
    """Run ``program`` live: resolve one pending command, decide, record, until it finishes."""
    trace: list[Any] = []
    interp = new_interpreter(program, trace)
    run = LiveRun()
    clock = T0
    for _ in range(500):
        before = len(run.history)
        decisions = interp.decide()
        run.points.append((before, decisions, state(interp, trace)))
        run.history.extend(decisions)
        pending = interp.pending
        # progress: an instance is finished exactly when nothing is left to wait for
        assert interp.finished == (not pending), state(interp, trace)
        if not pending:
            break
        chosen = pending[data.draw(st.integers(0, len(pending) - 1), label="resolve")]
        clock += timedelta(seconds=data.draw(st.sampled_from([0, 1, 30]), label="elapsed"))
        resolved = outcome(chosen, clock, data)
        clock = resolved.at
        interp.feed(resolved)
        run.history.append(resolved)
    else:
        raise AssertionError("the live run did not finish")
    assert interp.phase in (Phase.COMPLETED, Phase.FAILED)
    run.final = state(interp, trace)
    return run


def replay(program: tuple[list[Any], bool], records: list[Record]) -> tuple[Interpreter, list[Any]]:
    trace: list[Any] = []
    interp = new_interpreter(program, trace)
    interp.replay(records)
    return interp, trace


# -- properties -----------------------------------------------------------------------------------

SETTINGS = settings(max_examples=100, deadline=None)


@SETTINGS
@given(programs, st.data())
def test_replaying_any_prefix_of_a_live_history_reproduces_the_live_run_at_that_point(
    program, data
):
    run = drive_live(program, data)

    # at every decision point: a fresh replay of the history so far decides what the live run did
    for before, decisions, live_state in run.points:
        interp, trace = replay(program, run.history[:before])
        assert interp.decide() == decisions
        assert state(interp, trace) == live_state

    # record by record: one interpreter fed a record at a time is, at every prefix, in the state
    # a fresh full replay of that prefix reaches
    step_trace: list[Any] = []
    stepper = new_interpreter(program, step_trace)
    for k, record in enumerate(run.history, start=1):
        stepper.feed(record)
        interp, trace = replay(program, run.history[:k])
        assert state(stepper, step_trace) == state(interp, trace), f"after record {k}"


@SETTINGS
@given(programs, st.data())
def test_replaying_a_whole_history_ten_times_gives_one_trace_and_one_outcome(program, data):
    run = drive_live(program, data)

    finals = []
    for _ in range(10):
        interp, trace = replay(program, run.history)
        assert interp.decide() == []
        finals.append(state(interp, trace))

    assert all(final == run.final for final in finals)


@settings(SETTINGS, max_examples=75)  # compensations only follow failures: a smaller share
@given(programs, st.data())
def test_compensations_undo_the_completed_activities_newest_first_and_only_on_failure(
    program, data
):
    run = drive_live(program, data)
    calls = {r.seq: r for r in run.history if isinstance(r, Scheduled)}

    completed = [  # compensable activities that succeeded, in completion order
        calls[r.seq].args["args"]
        for r in run.history
        if isinstance(r, Resolved)
        and r.failure is None
        and calls[r.seq].kind == "activity"
        and calls[r.seq].name.endswith("_c")
    ]
    compensations = [
        r for r in run.history if isinstance(r, Scheduled) and r.kind == "compensation"
    ]

    failed = run.final[0] is Phase.FAILED
    assert [c.args["args"] for c in compensations] == (completed[::-1] if failed else [])
    assert all(c.name.startswith("undo_") for c in compensations)
