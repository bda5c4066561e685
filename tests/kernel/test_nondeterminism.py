"""Every way code and history can disagree, and what the interpreter does after."""

from __future__ import annotations

import pytest
from kernel_histories import activity, done, event, failed, interpreter, replayed, timer

from eddic.kernel import (
    All,
    CallActivity,
    EddicError,
    NonDeterminismError,
    Phase,
    Sleep,
)


def charge_then_ship(ctx):
    yield CallActivity("charge")
    yield CallActivity("ship")
    return "shipped"


def assert_explains(error: NonDeterminismError, *fragments: str) -> None:
    message = str(error)
    for fragment in (*fragments, "Likely cause", "code changed under a running instance"):
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_a_different_kind_at_the_same_seq_is_a_non_determinism_error():
    def workflow(ctx):
        yield CallActivity("charge")
        yield Sleep(60)  # history recorded an activity here

    history = [activity(1, "charge"), done(1), activity(2, "ship")]

    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, history)

    error = caught.value
    assert error.seq == 2
    assert "activity 'ship'" in error.recorded
    assert "timer 'sleep'" in error.current
    assert_explains(error, "seq 2", "history recorded activity 'ship'", "yields timer 'sleep'")


def test_a_different_name_at_the_same_seq_is_a_non_determinism_error():
    def workflow(ctx):
        yield CallActivity("charge")
        yield CallActivity("refund")

    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, [activity(1, "charge"), done(1), activity(2, "ship")])

    assert caught.value.seq == 2
    assert_explains(caught.value, "seq 2", "activity 'ship'", "activity 'refund'")


def test_a_different_event_type_is_a_non_determinism_error():
    def workflow(ctx):
        from eddic.kernel import WaitEvent

        yield WaitEvent("rejected")

    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, [event(1, "approved")])

    assert_explains(caught.value, "seq 1", "event 'approved'", "event 'rejected'")


def test_a_command_the_code_yields_where_history_went_on_with_an_outcome_is_an_error():
    def workflow(ctx):
        yield All(CallActivity("charge"), CallActivity("ship"))  # history has only "charge"

    history = [activity(1, "charge"), done(1, "receipt")]

    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, history)

    error = caught.value
    assert error.seq == 2
    assert "activity 'ship'" in error.current
    assert_explains(
        error, "seq 2", "activity 'ship'", "history recorded no command", "outcome for seq 1"
    )


def test_history_left_over_after_the_workflow_returned_is_an_error():
    def workflow(ctx):
        yield CallActivity("charge")
        return "done early"

    history = [activity(1, "charge"), done(1), activity(2, "ship"), done(2)]

    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, history)

    assert caught.value.seq == 2
    assert_explains(caught.value, "seq 2", "activity 'ship'", "has returned")


def test_history_left_over_after_the_workflow_raised_is_an_error():
    def workflow(ctx):
        yield CallActivity("charge")
        raise RuntimeError("gave up")

    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, [activity(1, "charge"), done(1), timer(2, 5)])

    assert_explains(caught.value, "seq 2", "timer 'sleep'", "has raised RuntimeError")


def test_a_recorded_command_the_code_is_not_ready_to_yield_is_an_error():
    def workflow(ctx):
        yield CallActivity("charge")
        yield CallActivity("ship")

    # "ship" was recorded before "charge" resolved: this code cannot have written that.
    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, [activity(1, "charge"), activity(2, "ship")])

    assert_explains(caught.value, "seq 2", "activity 'ship'", "still waiting on activity 'charge'")


def test_a_failure_that_takes_the_code_down_another_branch_is_detected_on_the_next_record():
    def workflow(ctx):
        try:
            yield CallActivity("charge")
        except EddicError:
            yield CallActivity("notify_failure")
            return "failed"
        yield CallActivity("ship")

    # recorded when "charge" succeeded; now the history says it failed
    history = [activity(1, "charge"), failed(1), activity(2, "ship")]

    with pytest.raises(NonDeterminismError) as caught:
        replayed(workflow, history)

    assert_explains(caught.value, "seq 2", "activity 'ship'", "activity 'notify_failure'")


def test_after_a_non_determinism_error_the_interpreter_refuses_feed_and_decide():
    interp = interpreter(charge_then_ship)
    with pytest.raises(NonDeterminismError):
        interp.replay([activity(1, "refund")])

    assert interp.phase is Phase.BROKEN
    assert not interp.is_replaying
    with pytest.raises(EddicError, match="stopped at a non-determinism error") as on_feed:
        interp.feed(done(1))
    with pytest.raises(EddicError, match="stopped at a non-determinism error") as on_decide:
        interp.decide()
    assert not isinstance(on_feed.value, NonDeterminismError)
    assert not isinstance(on_decide.value, NonDeterminismError)


def test_a_matching_history_replays_without_error():
    interp = replayed(
        charge_then_ship, [activity(1, "charge"), done(1, t=1), activity(2, "ship"), done(2, t=2)]
    )

    assert interp.phase is Phase.COMPLETED
    assert interp.result == "shipped"
