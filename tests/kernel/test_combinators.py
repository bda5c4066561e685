"""``All`` and ``First`` with outcomes arriving in any order."""

from __future__ import annotations

import pytest
from kernel_histories import (
    activity,
    at,
    done,
    event,
    failed,
    interpreter,
    pending_seqs,
    replayed,
    timer,
)

from eddic.kernel import (
    ActivityFailed,
    All,
    CallActivity,
    EddicError,
    Event,
    First,
    Phase,
    Resolved,
    Scheduled,
    Sleep,
    WaitEvent,
)


def fan_out(ctx):
    values = yield All(CallActivity("a"), CallActivity("b"), CallActivity("c"))
    return values


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 1, 2), (2, 3, 1), (3, 2, 1)])
def test_all_sends_in_values_in_argument_order_whatever_the_completion_order(order):
    interp = interpreter(fan_out)
    interp.decide()

    for n, seq in enumerate(order):
        assert interp.phase is Phase.RUNNING
        interp.feed(done(seq, "abc"[seq - 1].upper(), t=n + 1))
        assert interp.decide() == []

    assert interp.result == ["A", "B", "C"]
    assert interp.now == at(3)


def test_all_waits_for_every_child_and_pending_shrinks_as_they_finish():
    interp = interpreter(fan_out)
    interp.decide()

    interp.feed(done(2, "B"))
    assert pending_seqs(interp) == [1, 3]
    interp.feed(done(3, "C"))
    assert pending_seqs(interp) == [1]
    assert interp.phase is Phase.RUNNING


def test_all_throws_the_first_failure_at_once_and_ignores_the_later_outcomes():
    seen = []

    def workflow(ctx):
        try:
            yield All(CallActivity("a"), CallActivity("b"), CallActivity("c"))
        except ActivityFailed as error:
            seen.append(error.activity)
        return (yield CallActivity("d"))

    interp = interpreter(workflow)
    interp.decide()

    interp.feed(failed(2, "ValueError", "b broke", t=1))

    assert seen == ["b"]
    assert interp.decide() == [Scheduled(4, "activity", "d", {"args": (), "kwargs": {}}, at(1))]
    assert pending_seqs(interp) == [1, 3, 4]  # the others still run to completion

    interp.feed(done(1, "A", t=2))
    interp.feed(failed(3, "ValueError", "c broke too", t=3))
    assert interp.decide() == []
    assert seen == ["b"]
    assert pending_seqs(interp) == [4]

    interp.feed(done(4, "D", t=4))
    assert (interp.phase, interp.result) == (Phase.COMPLETED, "D")


def test_first_returns_the_index_and_value_of_the_first_outcome():
    approved = Event("e-1", "approved", "crm", at(30))

    def workflow(ctx):
        return (yield First(CallActivity("a"), Sleep(60), WaitEvent("approved")))

    interp = replayed(workflow, [activity(1, "a"), timer(2, 60), event(3, "approved")])

    interp.feed(Resolved(3, at(30), approved))

    assert interp.result == (2, approved)


def test_first_throws_the_first_outcome_when_it_is_a_failure():
    def workflow(ctx):
        yield First(CallActivity("a"), Sleep(60))

    interp = replayed(workflow, [activity(1, "a"), timer(2, 60), failed(1, "OSError", "down")])

    assert isinstance(interp.error, ActivityFailed)
    assert interp.error.activity == "a"


def test_an_abandoned_timer_or_event_leaves_pending_while_an_abandoned_activity_stays():
    def workflow(ctx):
        yield First(CallActivity("slow"), Sleep(60), WaitEvent("cancel"), CallActivity("fast"))
        return (yield WaitEvent("next"))

    interp = replayed(
        workflow,
        [activity(1, "slow"), timer(2, 60), event(3, "cancel"), activity(4, "fast")],
    )
    assert pending_seqs(interp) == [1, 2, 3, 4]

    interp.feed(done(4, "F", t=1))

    assert [r.seq for r in interp.decide()] == [5]
    assert pending_seqs(interp) == [1, 5]


def test_a_late_outcome_of_an_abandoned_command_is_ignored():
    def workflow(ctx):
        won = yield First(CallActivity("slow"), Sleep(60), WaitEvent("cancel"))
        nxt = yield CallActivity("next")
        return (won, nxt)

    interp = replayed(workflow, [activity(1, "slow"), timer(2, 60), event(3, "cancel")])
    interp.feed(done(2, t=60))
    interp.decide()

    interp.feed(done(1, "late", t=61))  # the abandoned activity finishes
    interp.feed(done(3, "stray", t=62))  # a cancelled event wait: kept in history, ignored
    assert interp.decide() == []
    assert pending_seqs(interp) == [4]

    interp.feed(done(4, "N", t=63))
    assert interp.result == ((1, None), "N")


def test_a_history_with_late_outcomes_of_abandoned_commands_replays_the_same():
    def workflow(ctx):
        won = yield First(CallActivity("slow"), Sleep(60))
        nxt = yield CallActivity("next")
        return (won, nxt)

    history = [
        activity(1, "slow"),
        timer(2, 60),
        done(2, t=60),
        activity(3, "next", t=60),
        done(1, "late", t=61),
        done(3, "N", t=62),
    ]

    interp = replayed(workflow, history)

    assert interp.result == ((1, None), "N")
    assert interp.phase is Phase.COMPLETED


def test_a_nested_first_cancels_its_losing_timer_and_event_before_the_outer_all_is_done():
    def workflow(ctx):
        return (
            yield All(
                First(WaitEvent("approved"), Sleep(5), CallActivity("ask")), CallActivity("b")
            )
        )

    interp = replayed(
        workflow, [event(1, "approved"), timer(2, 5), activity(3, "ask"), activity(4, "b")]
    )

    interp.feed(done(2, t=5))

    # the First is settled: its event wait must not consume an "approved" event any more
    assert [(p.seq, p.kind) for p in interp.pending] == [(3, "activity"), (4, "activity")]
    interp.feed(done(4, "B", t=6))
    assert interp.result == [(1, None), "B"]
    assert pending_seqs(interp) == [3]


def test_a_failure_in_a_nested_all_is_thrown_at_the_root():
    def workflow(ctx):
        yield First(All(CallActivity("a"), CallActivity("b")), Sleep(60))

    interp = replayed(
        workflow, [activity(1, "a"), activity(2, "b"), timer(3, 60), failed(2, "OSError", "b")]
    )

    assert isinstance(interp.error, ActivityFailed) and interp.error.activity == "b"
    assert pending_seqs(interp) == [1]  # the timer is cancelled, "a" runs on


def test_first_of_one_command_is_that_command_with_index_zero():
    def workflow(ctx):
        return (yield First(CallActivity("only")))

    assert replayed(workflow, [activity(1, "only"), done(1, "X")]).result == (0, "X")


def test_first_needs_at_least_one_command():
    with pytest.raises(ValueError, match="at least one"):
        First()


def test_a_resolution_for_a_seq_that_was_never_scheduled_is_an_error():
    interp = interpreter(fan_out)
    interp.decide()

    with pytest.raises(EddicError, match="seq 9, which was never scheduled"):
        interp.feed(done(9))
    with pytest.raises(EddicError, match="seq 0, which was never scheduled"):
        interp.feed(done(0))


def test_a_second_resolution_of_the_same_seq_is_ignored():
    interp = interpreter(fan_out)
    interp.decide()
    interp.feed(done(1, "A"))

    interp.feed(done(1, "A again"))
    interp.feed(done(2, "B"))
    interp.feed(done(3, "C"))

    assert interp.result == ["A", "B", "C"]
