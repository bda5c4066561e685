"""ContinueAsNew in the kernel, from hand-written histories: the command is recorded and ends
the run (the code closed, the saga stack dropped, ``CONTINUED``), never inside ``All``/``First``;
an abandoned activity still running holds the end until its outcome is in; a later run derives
its ids from ``run_key``, so no two runs share an event id, a uuid or a child id."""

from __future__ import annotations

from typing import Any

import pytest
from kernel_histories import activity, at, done, replayed, timer

from eddic.kernel import (
    ActivityRef,
    CallActivity,
    CallWorkflow,
    ContinueAsNew,
    First,
    Interpreter,
    Phase,
    Publish,
    Resolved,
    Scheduled,
    Sleep,
    run_key,
)

UNDO = ActivityRef("reserve", compensation="release")


def looping(ctx: Any, n: int) -> Any:
    yield CallActivity(UNDO, n)
    yield ContinueAsNew(n + 1)
    raise AssertionError("never resumed")


def test_continue_as_new_is_recorded_and_ends_the_run_without_compensating() -> None:
    interp = replayed(looping, [activity(1, "reserve", 1), done(1, "r", t=1)], input=1)
    decided = interp.decide()
    assert [(r.kind, r.name, r.args) for r in decided if isinstance(r, Scheduled)] == [
        ("continue", "continue_as_new", {"input": 2})
    ]
    assert interp.phase is Phase.CONTINUED and interp.finished
    assert interp.continue_input == 2
    assert interp.pending == []  # nothing left to run: no compensation, no waits


def test_a_replay_matches_the_recorded_continue() -> None:
    history = [
        activity(1, "reserve", 1),
        done(1, "r", t=1),
        Scheduled(2, "continue", "continue_as_new", {"input": 2}, at(1)),
    ]
    interp = replayed(looping, history, input=1)
    assert interp.phase is Phase.CONTINUED
    assert interp.decide() == []


def test_an_abandoned_activity_holds_the_end_of_the_run_until_it_is_in() -> None:
    def racing(ctx: Any) -> Any:
        yield First(CallActivity(ActivityRef("slow")), Sleep(1))
        yield ContinueAsNew("next")

    history = [
        activity(1, "slow"),
        timer(2, 1),
        Resolved(2, at(1)),
    ]
    interp = replayed(racing, history)
    assert [r.kind for r in interp.decide() if isinstance(r, Scheduled)] == ["continue"]
    assert interp.phase is Phase.RUNNING  # the slow activity is outstanding
    interp.feed(done(1, "late", t=5))
    assert interp.phase is Phase.CONTINUED


def test_continue_as_new_inside_first_is_thrown_in_as_a_type_error() -> None:
    def nested(ctx: Any) -> Any:
        try:
            yield First(Sleep(1), ContinueAsNew(None))
        except TypeError as exc:
            return str(exc)
        return "no"

    interp = Interpreter(nested, instance_id="i", started_at=at(0))
    interp.decide()
    assert interp.phase is Phase.COMPLETED and "yield it alone" in interp.result


def test_later_runs_derive_other_ids() -> None:
    def ids(ctx: Any) -> Any:
        event_id = yield Publish("tick")
        yield CallWorkflow("child")
        return [event_id, str(ctx.uuid())]

    def run(n: int) -> tuple[list[Any], Any]:
        interp = Interpreter(ids, instance_id="loop", started_at=at(0), run=n)
        records = interp.decide()
        child = next(r for r in records if isinstance(r, Scheduled) and r.kind == "child")
        interp.feed(Resolved(child.seq, at(1), "ok"))
        return interp.result, child.args["instance_id"]

    (first_ids, first_child), (second_ids, second_child) = run(1), run(2)
    assert first_child == "loop/2" and second_child == f"{run_key('loop', 2)}/2"
    assert first_ids[0] != second_ids[0] and first_ids[1] != second_ids[1]
    assert run(2) == (second_ids, second_child)  # and each run's are deterministic


@pytest.mark.parametrize("value", [None, 0, {"k": [1, 2]}])
def test_the_input_of_continue_as_new_is_recorded_as_given(value: Any) -> None:
    def once(ctx: Any) -> Any:
        yield ContinueAsNew(value)

    interp = Interpreter(once, instance_id="i", started_at=at(0))
    (record,) = interp.decide()
    assert isinstance(record, Scheduled) and record.args == {"input": value}
