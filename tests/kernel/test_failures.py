"""Outcomes at the yield: failures are thrown in, so ``try/except`` around a ``yield`` works."""

from __future__ import annotations

import pytest
from kernel_histories import activity, at, done, event, failed, interpreter, replayed

from eddic.kernel import (
    ActivityFailed,
    All,
    CallActivity,
    EddicError,
    EventTimeout,
    Phase,
    Resolved,
    Scheduled,
    Sleep,
    WaitEvent,
)


def charge_with_fallback(seen):
    def workflow(ctx):
        try:
            receipt = yield CallActivity("charge", 10)
        except ActivityFailed as error:
            seen.append(("caught", error.activity, error.type, error.message, error.attempts))
            receipt = yield CallActivity("charge_backup_card", 10)
        seen.append(("receipt", receipt))
        return receipt

    return workflow


def test_a_failed_activity_is_thrown_into_the_workflow_and_can_be_caught():
    seen: list[tuple[object, ...]] = []
    interp = interpreter(charge_with_fallback(seen))
    interp.decide()

    interp.feed(failed(1, "payments.CardDeclined", "insufficient funds", attempts=3, t=4))

    assert seen == [("caught", "charge", "payments.CardDeclined", "insufficient funds", 3)]
    assert interp.decide() == [
        Scheduled(2, "activity", "charge_backup_card", {"args": (10,), "kwargs": {}}, at(4))
    ]
    assert interp.phase is Phase.RUNNING


def test_a_recorded_failure_takes_the_same_branch_on_replay_as_on_the_first_run():
    first_run: list[tuple[object, ...]] = []
    live = interpreter(charge_with_fallback(first_run))
    history = live.decide()
    outcomes = [
        failed(1, "payments.CardDeclined", "insufficient funds", attempts=3, t=4),
        Resolved(2, at(9), "receipt-2"),
    ]
    for outcome in outcomes:
        live.feed(outcome)
        history.append(outcome)
        history.extend(live.decide())

    replays: list[tuple[object, ...]] = []
    again = replayed(charge_with_fallback(replays), history)

    assert replays == first_run
    assert first_run[0] == ("caught", "charge", "payments.CardDeclined", "insufficient funds", 3)
    assert (
        (again.phase, again.result) == (live.phase, live.result) == (Phase.COMPLETED, "receipt-2")
    )


def test_activity_failed_names_activity_type_message_and_attempts():
    def workflow(ctx):
        yield CallActivity("charge")

    interp = replayed(workflow, [activity(1, "charge"), failed(1, "KeyError", "'sku'", attempts=2)])

    error = interp.error
    assert isinstance(error, ActivityFailed)
    assert isinstance(error, EddicError)
    assert (error.activity, error.type, error.message, error.attempts) == (
        "charge",
        "KeyError",
        "'sku'",
        2,
    )
    assert str(error) == "activity 'charge' failed after 2 attempts: KeyError: 'sku'"


def test_an_uncaught_activity_failure_fails_the_workflow():
    def workflow(ctx):
        yield CallActivity("charge")
        yield CallActivity("ship")

    interp = replayed(workflow, [activity(1, "charge"), failed(1)])

    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, ActivityFailed)
    assert interp.result is None
    assert interp.decide() == []


def test_a_missed_event_deadline_is_thrown_in_as_event_timeout_with_the_recorded_deadline():
    seen = []

    def workflow(ctx):
        try:
            return (yield WaitEvent("approved", timeout=60))
        except EventTimeout as timeout:
            seen.append((timeout.event_type, timeout.deadline))
            return "escalated"

    interp = replayed(
        workflow, [event(1, "approved", timeout=90), failed(1, "EventTimeout", "late", t=90)]
    )

    assert seen == [("approved", at(90))]
    assert interp.result == "escalated"


def test_an_uncaught_event_timeout_fails_the_workflow():
    def workflow(ctx):
        yield WaitEvent("approved", timeout=60)

    interp = replayed(workflow, [event(1, "approved", 60), failed(1, "EventTimeout", "", t=60)])

    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, EventTimeout)
    assert "approved" in str(interp.error)


def test_yielding_a_non_command_throws_a_type_error_naming_it_into_the_workflow():
    seen = []

    def workflow(ctx):
        try:
            yield {"not": "a command"}
        except TypeError as error:
            seen.append(str(error))
        return (yield CallActivity("a"))

    interp = interpreter(workflow)

    assert [(r.seq, r.name) for r in interp.decide() if isinstance(r, Scheduled)] == [(1, "a")]
    assert len(seen) == 1
    assert "{'not': 'a command'}" in seen[0]
    assert "dict" in seen[0]
    assert "CallActivity" in seen[0]  # it says what to yield instead


def test_a_non_command_inside_all_is_named_and_schedules_nothing():
    def workflow(ctx):
        yield All(CallActivity("a"), Sleep(1), 42)

    interp = interpreter(workflow)

    assert interp.decide() == []
    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, TypeError)
    assert "42" in str(interp.error) and "int" in str(interp.error)


def test_an_uncaught_type_error_from_a_non_command_fails_the_workflow():
    def workflow(ctx):
        yield "charge"

    interp = interpreter(workflow)

    assert interp.decide() == []
    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, TypeError)
    assert "'charge'" in str(interp.error)


def test_an_exception_raised_before_the_first_yield_fails_the_workflow():
    def workflow(ctx):
        raise LookupError("no such order")
        yield CallActivity("never")

    interp = interpreter(workflow)

    assert interp.decide() == []
    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, LookupError)


@pytest.mark.parametrize("caught", [True, False])
def test_a_failure_inside_all_is_thrown_at_the_all(caught):
    def workflow(ctx):
        try:
            yield All(CallActivity("a"), CallActivity("b"))
        except ActivityFailed as error:
            if not caught:
                raise
            return f"recovered from {error.activity}"
        return "all fine"

    interp = replayed(
        workflow, [activity(1, "a"), activity(2, "b"), failed(2, "OSError", "disk"), done(1)]
    )

    if caught:
        assert (interp.phase, interp.result) == (Phase.COMPLETED, "recovered from b")
    else:
        assert interp.phase is Phase.FAILED
        assert isinstance(interp.error, ActivityFailed) and interp.error.activity == "b"
