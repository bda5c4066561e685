"""Cancellation in the kernel, from hand-written histories: a ``Cancel`` record throws
``Cancelled`` in at the current yield of every kind (activity, timer, event, ``All``, ``First``),
abandons what that yield waited on, runs the compensations of completed activities newest first
when it propagates, lets a workflow that catches it clean up, and changes nothing once the code
has finished or while it compensates; a replay throws it at the same point."""

from __future__ import annotations

from typing import Any

import pytest
from kernel_histories import (
    activity,
    at,
    compensation,
    done,
    event,
    failed,
    kinds_and_names,
    pending_seqs,
    replayed,
    timer,
)

from eddic.kernel import (
    ActivityRef,
    All,
    CallActivity,
    Cancel,
    Cancelled,
    First,
    Interpreter,
    NonDeterminismError,
    Phase,
    Record,
    Resolved,
    Scheduled,
    Sleep,
    WaitEvent,
)

RESERVE = ActivityRef("reserve", compensation="release")
CHARGE = ActivityRef("charge", compensation="refund")
SHIP = ActivityRef("ship")


def saga(ctx: Any) -> Any:
    yield CallActivity(RESERVE, "o1")
    yield CallActivity(CHARGE, "o1")
    yield Sleep(60)
    yield WaitEvent("shipped")
    yield All(CallActivity(SHIP, "a"), CallActivity(SHIP, "b"))
    yield First(CallActivity(SHIP, "c"), Sleep(5))
    return "done"


UP_TO_THE_TIMER = [
    activity(1, "reserve", "o1"),
    done(1, "r", t=1),
    activity(2, "charge", "o1", t=1),
    done(2, "c", t=2),
    timer(3, 60, t=2),
]


def cancelled_at(
    history: list[Record], t: float = 10, reason: str = "customer asked"
) -> Interpreter:
    interp = replayed(saga, history)
    interp.feed(Cancel(at(t), reason))
    return interp


def resolve_compensations(interp: Interpreter, t: float = 20) -> list[str]:
    names = []
    while not interp.finished:
        decided = [r for r in interp.decide() if isinstance(r, Scheduled)]
        assert decided, interp.phase
        for record in decided:
            names.append(record.name)
            interp.feed(Resolved(record.seq, at(t)))
    return names


@pytest.mark.parametrize(
    ("history", "compensations"),
    [
        pytest.param(UP_TO_THE_TIMER, ["refund", "release"], id="at-a-timer"),
        pytest.param(
            [*UP_TO_THE_TIMER, done(3, t=62), event(4, "shipped", t=62)],
            ["refund", "release"],
            id="at-an-event",
        ),
        pytest.param(UP_TO_THE_TIMER[:3], ["release"], id="at-the-second-activity"),
    ],
)
def test_a_cancel_that_propagates_compensates_newest_first_and_ends_cancelled(
    history: list[Record], compensations: list[str]
) -> None:
    interp = cancelled_at(history)
    assert interp.cancel == Cancel(at(10), "customer asked")
    if history[-1].kind == "activity":  # type: ignore[union-attr]
        interp.feed(failed(history[-1].seq, t=11))  # the abandoned call ends: failed, ignored
    assert resolve_compensations(interp) == compensations
    assert interp.phase is Phase.CANCELLED
    assert isinstance(interp.error, Cancelled) and interp.error.reason == "customer asked"


def test_cancel_at_an_activity_waits_for_the_abandoned_activity_then_ends_cancelled() -> None:
    interp = cancelled_at(UP_TO_THE_TIMER[:1])
    assert interp.phase is Phase.RUNNING  # the abandoned activity still runs
    assert pending_seqs(interp) == [1]
    assert interp.decide() == []
    interp.feed(done(1, "r", t=11))  # its outcome: recorded, not sent in; its compensation runs
    assert resolve_compensations(interp) == ["release"]
    assert interp.phase is Phase.CANCELLED
    assert isinstance(interp.error, Cancelled) and interp.error.reason == "customer asked"


def test_cancel_at_a_timer_cancels_the_timer() -> None:
    interp = cancelled_at(UP_TO_THE_TIMER)
    assert 3 not in pending_seqs(interp)  # the timer is gone
    decided = interp.decide()
    assert [(r.kind, r.name) for r in decided if isinstance(r, Scheduled)] == [
        ("compensation", "refund")
    ]


def test_cancel_at_all_abandons_both_activities_and_waits_for_them() -> None:
    history = [
        *UP_TO_THE_TIMER,
        done(3, t=62),
        event(4, "shipped", t=62),
        Resolved(4, at(63), {"id": "e"}),
        activity(5, "ship", "a", t=63),
        activity(6, "ship", "b", t=63),
        done(5, t=64),
    ]
    interp = cancelled_at(history, t=65)
    assert pending_seqs(interp) == [6]  # the unfinished branch runs on
    assert interp.decide() == []  # no compensation while an activity is outstanding
    interp.feed(done(6, t=66))
    assert resolve_compensations(interp) == ["refund", "release"]
    assert interp.phase is Phase.CANCELLED


def test_cancel_at_first_cancels_its_timer_and_abandons_its_activity() -> None:
    history = [
        *UP_TO_THE_TIMER,
        done(3, t=62),
        event(4, "shipped", t=62),
        Resolved(4, at(63), {"id": "e"}),
        activity(5, "ship", "a", t=63),
        activity(6, "ship", "b", t=63),
        done(5, t=64),
        done(6, t=64),
        activity(7, "ship", "c", t=64),
        timer(8, 5, t=64),
    ]
    interp = cancelled_at(history, t=65)
    assert pending_seqs(interp) == [7]  # the First's timer is cancelled, its activity runs on
    interp.feed(done(7, t=66))
    assert resolve_compensations(interp) == ["refund", "release"]


def test_a_workflow_that_catches_cancelled_cleans_up_and_ends_as_its_code_says() -> None:
    def careful(ctx: Any) -> Any:
        yield CallActivity(RESERVE, "o1")
        try:
            yield WaitEvent("paid")
        except Cancelled as exc:
            yield CallActivity(SHIP, f"clean-up: {exc.reason}")
            return "cleaned up"
        return "paid"

    history = [activity(1, "reserve", "o1"), done(1, "r", t=1), event(2, "paid", t=1)]
    interp = replayed(careful, history)
    interp.feed(Cancel(at(5), "stop"))
    decided = interp.decide()
    assert kinds_and_names(decided) == [("activity", "ship")]
    assert decided[0].args == {"args": ("clean-up: stop",), "kwargs": {}}  # type: ignore[union-attr]
    interp.feed(done(3, t=6))
    assert interp.phase is Phase.COMPLETED and interp.result == "cleaned up"

    # The same history replayed, cancel included, reaches the same point.
    again = replayed(careful, [*history, Cancel(at(5), "stop"), *decided, done(3, t=6)])
    assert again.phase is Phase.COMPLETED and again.result == "cleaned up"


def test_a_workflow_that_catches_cancelled_and_raises_ends_failed() -> None:
    def stubborn(ctx: Any) -> Any:
        try:
            yield Sleep(10)
        except Cancelled:
            raise RuntimeError("would not stop") from None

    interp = replayed(stubborn, [timer(1, 10)])
    interp.feed(Cancel(at(1)))
    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, RuntimeError)


def test_except_exception_does_not_swallow_cancelled() -> None:
    def broad(ctx: Any) -> Any:
        try:
            yield Sleep(10)
        except Exception:  # written for the workflow's own failures
            return "swallowed"
        return "slept"

    interp = replayed(broad, [timer(1, 10)])
    interp.feed(Cancel(at(1)))
    assert interp.phase is Phase.CANCELLED


def test_a_cancel_after_the_code_finished_changes_nothing() -> None:
    history = [*UP_TO_THE_TIMER]
    interp = replayed(saga, history)

    # mid-compensation: the code failed, its compensations run; a cancel leaves them be
    def failing(ctx: Any) -> Any:
        yield CallActivity(RESERVE, "o1")
        yield CallActivity(CHARGE, "o1")
        raise RuntimeError("out of stock")

    hist = [
        activity(1, "reserve", "o1"),
        done(1, "r", t=1),
        activity(2, "charge", "o1", t=1),
        done(2, "c", t=2),
        compensation(3, "refund", "o1", t=2),
    ]
    interp = replayed(failing, hist)
    assert interp.phase is Phase.COMPENSATING
    interp.feed(Cancel(at(3), "too late"))
    interp.feed(done(3, t=4))
    assert resolve_compensations(interp) == ["release"]
    assert interp.phase is Phase.FAILED and isinstance(interp.error, RuntimeError)


def test_a_second_cancel_changes_nothing() -> None:
    interp = cancelled_at(UP_TO_THE_TIMER, reason="first")
    interp.feed(Cancel(at(11), "second"))
    assert interp.cancel is not None and interp.cancel.reason == "first"
    assert resolve_compensations(interp) == ["refund", "release"]


def test_a_cancel_where_the_code_yielded_an_unrecorded_command_is_a_divergence() -> None:
    def changed(ctx: Any) -> Any:
        yield CallActivity(RESERVE, "o1")
        yield CallActivity(CHARGE, "o1")  # history recorded no command here before the cancel
        yield Sleep(1)

    interp = Interpreter(changed, instance_id="i", started_at=at(0))
    interp.feed(activity(1, "reserve", "o1"))
    interp.feed(done(1, "r", t=1))
    with pytest.raises(NonDeterminismError, match="cancel"):
        interp.feed(Cancel(at(2)))


def test_a_replay_through_a_cancel_matches_the_compensations_recorded_after_it() -> None:
    full = [
        *UP_TO_THE_TIMER,
        Cancel(at(10), "customer asked"),
        compensation(4, "refund", "o1", t=10),
        done(4, t=11),
        compensation(5, "release", "o1", t=11),
        done(5, t=12),
    ]
    interp = replayed(saga, full)
    assert interp.phase is Phase.CANCELLED
    assert interp.decide() == []
