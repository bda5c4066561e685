"""Property tests for the lifecycle commands: random programs of activities, timers, event
waits, children (``CallWorkflow``) and combinators over them, driven live with random outcomes
and a cancel at a random point (or none); the history, cancel included, then replays to the same
trace and outcome at every prefix and every time. Built on the programs of test_properties."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from kernel_histories import T0, in_style
from test_properties import LiveRun, leaves, outcome, state, to_command

from eddic.kernel import (
    All,
    CallWorkflow,
    Cancel,
    Cancelled,
    Command,
    EddicError,
    Failure,
    First,
    Interpreter,
    Pending,
    Phase,
    Record,
    Resolved,
)

INSTANCE = "life-1"

children = st.tuples(st.just("child"), st.sampled_from(["k1", "k2"]))
lifecycle_leaves = leaves | children
groups = st.tuples(
    st.sampled_from(["all", "first"]), st.lists(lifecycle_leaves, min_size=1, max_size=3)
)
nodes = st.one_of(lifecycle_leaves, groups)
steps = st.one_of(nodes, st.tuples(st.just("try"), nodes), st.tuples(st.just("cleanup"), nodes))
programs = st.tuples(st.lists(steps, max_size=7), st.booleans())


def command_of(node: tuple[Any, ...], path: str) -> Command:
    if node[0] == "child":
        return CallWorkflow(node[1], {"at": path})
    if node[0] in ("all", "first"):
        kids = [command_of(child, f"{path}.{i}") for i, child in enumerate(node[1])]
        return All(*kids) if node[0] == "all" else First(*kids)
    return to_command(node, path)


def make_workflow(program: tuple[list[Any], bool], trace: list[Any]) -> Any:
    program_steps, raise_at_end = program

    def workflow(ctx: Any) -> Any:
        trace.append(("start", ctx.now(), ctx.uuid()))
        for i, step in enumerate(program_steps):
            try:
                value = yield command_of(
                    step[1] if step[0] in ("try", "cleanup") else step, f"s{i}"
                )
            except EddicError as error:
                if step[0] != "try":
                    raise
                trace.append(("caught", i, type(error).__name__, str(error), ctx.now()))
                continue
            except Cancelled as cancel:
                if step[0] != "cleanup":
                    raise
                trace.append(("cancelled", i, cancel.reason, ctx.now()))
                yield command_of(("act", "tidy", False), f"tidy{i}")
                return "cleaned up"
            trace.append(("value", i, value, ctx.now(), ctx.uuid()))
        if raise_at_end:
            raise RuntimeError("the program ends by raising")
        return "done"

    return workflow


def new_interpreter(program: tuple[list[Any], bool], trace: list[Any]) -> Interpreter:
    workflow = in_style(make_workflow(program, trace))  # as written, or its async def twin
    return Interpreter(workflow, instance_id=INSTANCE, started_at=T0)


def child_outcome(pending: Pending, clock: Any, data: st.DataObject) -> Resolved:
    if data.draw(st.booleans(), label=f"child {pending.seq} fails"):
        return Resolved(pending.seq, clock, failure=Failure("ValueError", "the child broke"))
    return Resolved(pending.seq, clock, f"{pending.name}#{pending.seq}")


def drive_live(program: tuple[list[Any], bool], data: st.DataObject) -> tuple[LiveRun, list[int]]:
    trace: list[Any] = []
    interp = new_interpreter(program, trace)
    run = LiveRun()
    clock = T0
    cancel_at = data.draw(st.sampled_from([None, 0, 1, 2, 3, 5, 8]), label="cancel after")
    abandoned: list[int] = []
    for step in range(500):
        before = len(run.history)
        decisions = interp.decide()
        run.points.append((before, decisions, state(interp, trace)))
        run.history.extend(decisions)
        abandoned += [p.seq for p in interp.abandoned]
        interp.abandoned.clear()
        pending = interp.pending
        if not pending:
            break
        clock += timedelta(seconds=data.draw(st.sampled_from([0, 1, 30]), label="elapsed"))
        if step == cancel_at:
            record: Record = Cancel(clock, "a random cancel")
        else:
            chosen = pending[data.draw(st.integers(0, len(pending) - 1), label="resolve")]
            record = (
                child_outcome(chosen, clock, data)
                if chosen.kind == "child"
                else outcome(chosen, clock, data)
            )
            clock = record.at
        interp.feed(record)
        run.history.append(record)
    else:
        raise AssertionError("the live run did not finish")
    assert interp.phase in (Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED)
    run.final = state(interp, trace)
    return run, abandoned


def replay(program: tuple[list[Any], bool], records: list[Record]) -> tuple[Interpreter, list[Any]]:
    trace: list[Any] = []
    interp = new_interpreter(program, trace)
    interp.replay(records)
    return interp, trace


SETTINGS = settings(max_examples=100, deadline=None)


@SETTINGS
@given(programs, st.data())
def test_any_prefix_of_a_lifecycle_history_replays_to_the_live_state(program, data):
    run, _abandoned = drive_live(program, data)
    for before, decisions, live_state in run.points:
        interp, trace = replay(program, run.history[:before])
        assert interp.decide() == decisions
        assert state(interp, trace) == live_state


@SETTINGS
@given(programs, st.data())
def test_a_lifecycle_history_replays_ten_times_to_one_trace(program, data):
    run, abandoned = drive_live(program, data)
    event(f"ended {run.final[0].value}, {len(abandoned)} abandoned children")
    for _ in range(10):
        interp, trace = replay(program, run.history)
        assert interp.decide() == []
        assert state(interp, trace) == run.final
        # a replay lists the same abandoned children the live run handed to its host
        assert [p.seq for p in interp.abandoned] == abandoned
