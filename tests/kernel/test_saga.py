"""Saga: completed activities' compensations run newest first when the workflow fails."""

from __future__ import annotations

import pytest
from kernel_histories import (
    activity,
    compensation,
    done,
    failed,
    kinds_and_names,
    pending_seqs,
    replayed,
    timer,
)

from eddic.kernel import (
    ActivityFailed,
    ActivityRef,
    All,
    CallActivity,
    Failure,
    First,
    Interpreter,
    NonDeterminismError,
    Phase,
    Record,
    Resolved,
    Scheduled,
    Sleep,
)

RESERVE = ActivityRef("reserve", compensation="release")
CHARGE = ActivityRef("charge", compensation="refund")
SHIP = ActivityRef("ship", compensation="recall")
NOTIFY = ActivityRef("notify")  # nothing to undo


def order(ctx, order_id):
    yield CallActivity(RESERVE, order_id, qty=2)
    yield CallActivity(NOTIFY, order_id)
    yield CallActivity(CHARGE, order_id, amount=10)
    yield CallActivity(SHIP, order_id)
    raise RuntimeError("customer cancelled")


ALL_DONE = [
    activity(1, "reserve", "o1", qty=2),
    done(1, "r-1", t=1),
    activity(2, "notify", "o1", t=1),
    done(2, t=2),
    activity(3, "charge", "o1", amount=10, t=2),
    done(3, "c-3", t=3),
    activity(4, "ship", "o1", t=3),
    done(4, "s-4", t=4),
]


def run_compensations(interp: Interpreter, failing: frozenset[str] = frozenset()) -> list[str]:
    """Resolve the compensations the interpreter emits, one decision at a time, in order."""
    names = []
    while True:
        decisions = interp.decide()
        if not decisions:
            return names
        assert len(decisions) == 1, "compensations are emitted one at a time"
        (record,) = decisions
        assert isinstance(record, Scheduled) and record.kind == "compensation"
        assert interp.phase is Phase.COMPENSATING
        assert pending_seqs(interp) == [record.seq]
        names.append(record.name)
        if record.name in failing:
            interp.feed(failed(record.seq, "OSError", f"{record.name} failed", attempts=5))
        else:
            interp.feed(done(record.seq))


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param([*ALL_DONE[:1], failed(1)], [], id="none-completed"),
        pytest.param([*ALL_DONE[:5], failed(3)], ["release"], id="one-completed"),
        pytest.param(ALL_DONE, ["recall", "refund", "release"], id="three-completed"),
    ],
)
def test_compensations_run_one_at_a_time_newest_first(history, expected):
    interp = replayed(order, history, "o1")

    assert run_compensations(interp) == expected
    assert interp.phase is Phase.FAILED
    assert interp.compensation_errors == []


def test_the_workflow_error_is_kept_while_compensations_run():
    interp = replayed(order, ALL_DONE, "o1")
    interp.decide()

    assert interp.phase is Phase.COMPENSATING
    assert isinstance(interp.error, RuntimeError)
    run_compensations(interp)
    assert isinstance(interp.error, RuntimeError)
    assert str(interp.error) == "customer cancelled"


def test_a_compensation_is_recorded_with_the_arguments_of_the_call_it_undoes():
    interp = replayed(order, ALL_DONE, "o1")

    emitted = []
    for _ in range(3):
        (record,) = interp.decide()
        emitted.append(record)
        interp.feed(done(record.seq, t=4))

    assert emitted == [
        compensation(5, "recall", "o1", t=4),
        compensation(6, "refund", "o1", amount=10, t=4),
        compensation(7, "release", "o1", qty=2, t=4),
    ]


def test_compensations_follow_completion_order_not_yield_order():
    def workflow(ctx):
        yield All(CallActivity(RESERVE, "o1"), CallActivity(CHARGE, "o1"))
        raise RuntimeError("stop")

    history = [activity(1, "reserve", "o1"), activity(2, "charge", "o1"), done(2), done(1)]

    assert run_compensations(replayed(workflow, history)) == ["release", "refund"]


def full_compensated_history(failing: frozenset[str] = frozenset()) -> list[Record]:
    interp = replayed(order, ALL_DONE, "o1")
    history: list[Record] = list(ALL_DONE)
    while decisions := interp.decide():
        history.extend(decisions)
        (record,) = decisions
        outcome = (
            failed(record.seq, "OSError", "no") if record.name in failing else done(record.seq)
        )
        interp.feed(outcome)
        history.append(outcome)
    return history


def test_a_history_cut_after_a_finished_compensation_resumes_with_the_next_one():
    history = full_compensated_history()
    cut = history[: len(ALL_DONE) + 2]  # "recall" scheduled and resolved
    assert kinds_and_names(cut[-2:]) == [("compensation", "recall"), ("resolved", 5)]

    interp = replayed(order, cut, "o1")

    assert run_compensations(interp) == ["refund", "release"]
    assert interp.phase is Phase.FAILED


def test_a_history_cut_while_a_compensation_runs_waits_for_it_and_emits_nothing_twice():
    history = full_compensated_history()
    cut = history[: len(ALL_DONE) + 3]  # "refund" scheduled, not resolved
    assert kinds_and_names(cut[-1:]) == [("compensation", "refund")]

    interp = replayed(order, cut, "o1")

    assert interp.decide() == []
    assert [(p.kind, p.name, p.seq) for p in interp.pending] == [("compensation", "refund", 6)]
    interp.feed(done(6))
    assert run_compensations(interp) == ["release"]


def test_a_fully_compensated_history_replays_to_failed_with_nothing_left_to_do():
    interp = replayed(order, full_compensated_history(), "o1")

    assert interp.phase is Phase.FAILED
    assert interp.decide() == []
    assert interp.pending == []


def test_a_recorded_compensation_is_matched_on_replay_like_any_command():
    history = [*ALL_DONE, compensation(5, "refund", "o1")]  # the code emits "recall" first

    with pytest.raises(NonDeterminismError) as caught:
        replayed(order, history, "o1")

    assert "compensation 'refund'" in str(caught.value)
    assert "compensation 'recall'" in str(caught.value)


def test_a_failing_compensation_is_collected_and_the_others_still_run():
    interp = replayed(order, ALL_DONE, "o1")

    assert run_compensations(interp, failing=frozenset({"refund"})) == [
        "recall",
        "refund",
        "release",
    ]
    assert interp.phase is Phase.FAILED
    assert interp.compensation_errors == [Failure("OSError", "refund failed", 5)]
    assert isinstance(interp.error, RuntimeError)


def test_a_failing_compensation_is_collected_again_on_replay():
    interp = replayed(order, full_compensated_history(frozenset({"recall", "release"})), "o1")

    assert interp.phase is Phase.FAILED
    assert [f.message for f in interp.compensation_errors] == ["no", "no"]


def test_a_workflow_that_returns_normally_discards_the_compensation_stack():
    def workflow(ctx):
        yield CallActivity(RESERVE, "o1")
        try:
            yield CallActivity(CHARGE, "o1")
        except ActivityFailed:
            return "reserved, payment pending"

    interp = replayed(
        workflow, [activity(1, "reserve", "o1"), done(1), activity(2, "charge"), failed(2)]
    )

    assert interp.decide() == []
    assert interp.phase is Phase.COMPLETED
    assert interp.result == "reserved, payment pending"


def test_a_failed_activity_pushes_no_compensation():
    def workflow(ctx):
        yield CallActivity(RESERVE, "o1")
        try:
            charged = yield CallActivity(CHARGE, "o1")
        except ActivityFailed:
            charged = None
        raise RuntimeError(f"give up (charged: {charged})")

    interp = replayed(
        workflow, [activity(1, "reserve", "o1"), done(1), activity(2, "charge"), failed(2)]
    )

    assert run_compensations(interp) == ["release"]


def test_an_abandoned_first_branch_that_completes_later_still_pushes_its_compensation():
    def workflow(ctx):
        yield First(CallActivity(RESERVE, "o1"), Sleep(5))
        raise RuntimeError("too slow")

    interp = replayed(workflow, [activity(1, "reserve", "o1"), timer(2, 5), done(2, t=5)])

    # the code has raised, but "reserve" still runs: nothing to compensate yet
    assert interp.decide() == []
    assert pending_seqs(interp) == [1]
    assert not interp.finished

    interp.feed(done(1, t=8))

    assert run_compensations(interp) == ["release"]
    assert interp.phase is Phase.FAILED


def test_an_abandoned_activity_that_fails_leaves_nothing_to_compensate():
    def workflow(ctx):
        yield First(CallActivity(RESERVE, "o1"), Sleep(5))
        raise RuntimeError("too slow")

    interp = replayed(workflow, [activity(1, "reserve", "o1"), timer(2, 5), done(2, t=5)])
    interp.feed(failed(1, t=8))

    assert interp.decide() == []
    assert interp.phase is Phase.FAILED


def test_a_workflow_that_returned_completes_once_its_abandoned_activities_are_done():
    def workflow(ctx):
        yield First(CallActivity(RESERVE, "o1"), Sleep(5))
        return "moved on"

    interp = replayed(workflow, [activity(1, "reserve", "o1"), timer(2, 5), done(2, t=5)])
    assert interp.phase is Phase.RUNNING
    assert interp.result == "moved on"

    interp.feed(done(1, t=8))

    assert interp.decide() == []
    assert interp.phase is Phase.COMPLETED
    assert interp.result == "moved on"


def test_compensations_wait_until_outstanding_activities_are_done():
    def workflow(ctx):
        yield CallActivity(RESERVE, "o1")
        yield All(CallActivity(CHARGE, "o1"), CallActivity(SHIP, "o1"))

    history = [
        activity(1, "reserve", "o1"),
        done(1),
        activity(2, "charge", "o1"),
        activity(3, "ship", "o1"),
        failed(2, "CardDeclined", "no"),
    ]
    interp = replayed(workflow, history)

    assert interp.decide() == []  # "ship" has not finished yet
    assert interp.phase is Phase.COMPENSATING
    assert pending_seqs(interp) == [3]

    interp.feed(Resolved(3, done(3).at, "s-3"))

    assert run_compensations(interp) == ["recall", "release"]
