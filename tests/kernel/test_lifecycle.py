"""Phases, result and error of an instance, and the input the interpreter accepts."""

from __future__ import annotations

from datetime import datetime

import pytest
from kernel_histories import activity, compensation, done, failed, interpreter, replayed

from eddic.kernel import (
    ActivityRef,
    CallActivity,
    NonDeterminismError,
    Phase,
    Resolved,
    Scheduled,
)


def reserve_then_charge(ctx):
    yield CallActivity(ActivityRef("reserve", compensation="release"))
    receipt = yield CallActivity("charge")
    return {"receipt": receipt}


def test_an_instance_runs_until_its_workflow_returns_and_then_is_completed():
    interp = interpreter(reserve_then_charge)
    assert (interp.phase, interp.finished, interp.last_seq) == (Phase.RUNNING, False, 0)

    interp.decide()
    interp.feed(done(1))
    interp.decide()
    assert (interp.phase, interp.finished, interp.last_seq) == (Phase.RUNNING, False, 2)

    interp.feed(done(2, "r-9"))

    assert interp.phase is Phase.COMPLETED
    assert interp.finished
    assert interp.result == {"receipt": "r-9"}
    assert interp.error is None


def test_an_instance_whose_workflow_raises_compensates_and_then_is_failed():
    interp = replayed(reserve_then_charge, [activity(1, "reserve"), done(1), activity(2, "charge")])
    interp.feed(failed(2, "CardDeclined", "no"))

    assert interp.phase is Phase.COMPENSATING
    assert not interp.finished
    assert interp.decide() == [compensation(3, "release")]

    interp.feed(done(3))

    assert interp.phase is Phase.FAILED
    assert interp.finished
    assert interp.result is None
    assert str(interp.error) == "activity 'charge' failed after 1 attempt: CardDeclined: no"


def test_an_instance_that_met_a_non_determinism_error_is_broken():
    interp = interpreter(reserve_then_charge)
    with pytest.raises(NonDeterminismError):
        interp.replay([activity(1, "charge")])

    assert interp.phase is Phase.BROKEN
    assert not interp.finished


def test_a_workflow_that_is_not_a_generator_completes_with_its_return_value():
    def workflow(ctx, n):
        return n * 2

    interp = interpreter(workflow, 21)

    assert interp.decide() == []
    assert (interp.phase, interp.result) == (Phase.COMPLETED, 42)


def test_a_workflow_without_an_input_parameter_is_called_with_the_context_alone():
    def workflow(ctx):
        return (yield CallActivity("a"))

    interp = replayed(workflow, [activity(1, "a"), done(1, "A")])

    assert interp.result == "A"


def test_a_naive_start_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        interpreter(reserve_then_charge, started_at=datetime(2024, 5, 1, 12, 0))


def test_a_record_with_a_naive_time_is_refused():
    interp = interpreter(reserve_then_charge)

    with pytest.raises(ValueError, match="naive"):
        interp.feed(Scheduled(1, "activity", "reserve", None, datetime(2024, 5, 1, 12, 0)))
    interp.decide()
    with pytest.raises(ValueError, match="naive"):
        interp.feed(Resolved(1, datetime(2024, 5, 1, 12, 0), None))
    assert interp.pending[0].seq == 1  # nothing was taken in


def test_something_that_is_not_a_record_is_refused():
    interp = interpreter(reserve_then_charge)

    with pytest.raises(TypeError, match="not a history record"):
        interp.feed(("activity", "reserve"))  # type: ignore[arg-type]


def test_pending_describes_each_recorded_command_still_awaiting_its_outcome():
    interp = replayed(reserve_then_charge, [activity(1, "reserve", "sku", qty=1)])

    (pending,) = interp.pending

    assert (pending.seq, pending.kind, pending.name, pending.deadline) == (
        1,
        "activity",
        "reserve",
        None,
    )
    assert pending.record == activity(1, "reserve", "sku", qty=1)
    assert pending.command == CallActivity(ActivityRef("reserve", compensation="release"))
    interp.feed(Resolved(1, pending.record.at, None))
    assert [p.name for p in interp.pending] == []  # "charge" is yielded but not yet decided
    assert [r.name for r in interp.decide() if isinstance(r, Scheduled)] == ["charge"]
    assert [p.name for p in interp.pending] == ["charge"]
