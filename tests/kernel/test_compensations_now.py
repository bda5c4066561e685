"""``Interpreter.compensations``: what a failure would compensate now, in the order it would."""

from __future__ import annotations

from kernel_histories import activity as scheduled_activity
from kernel_histories import at, done, failed, interpreter, replayed
from kernel_histories import compensation as scheduled_compensation

from eddic.kernel import (
    ActivityRef,
    CallActivity,
    Cancel,
    First,
    Interpreter,
    Phase,
    Scheduled,
    Sleep,
    WaitEvent,
)

RESERVE = ActivityRef("reserve", compensation="release")
CHARGE = ActivityRef("charge", compensation="refund")
SHIP = ActivityRef("ship", compensation="recall")
NOTIFY = ActivityRef("notify")  # nothing to undo

RELEASE = CallActivity(ActivityRef("release"), "o1", qty=2)
REFUND = CallActivity(ActivityRef("refund"), "o1", amount=10)
RECALL = CallActivity(ActivityRef("recall"), "o1")


def order(ctx, order_id):
    yield CallActivity(RESERVE, order_id, qty=2)
    yield CallActivity(NOTIFY, order_id)
    yield CallActivity(CHARGE, order_id, amount=10)
    yield CallActivity(SHIP, order_id)
    yield WaitEvent("go")
    raise RuntimeError("customer cancelled")


def names(interp: Interpreter) -> list[str]:
    return [command.name for command in interp.compensations]


def next_command(interp: Interpreter) -> Scheduled:
    (record,) = interp.decide()
    assert isinstance(record, Scheduled)
    return record


def test_empty_before_the_code_starts_and_before_any_compensable_activity_completes():
    interp = interpreter(order, "o1")
    assert interp.compensations == []

    reserve = next_command(interp)

    assert reserve.name == "reserve"
    assert interp.compensations == []  # scheduled is not completed


def test_it_grows_newest_first_as_compensable_activities_complete():
    interp = interpreter(order, "o1")
    seen = []
    for t in range(1, 5):
        record = next_command(interp)
        interp.feed(done(record.seq, f"{record.name}-ok", t=t))
        seen.append(list(interp.compensations))

    assert seen == [[RELEASE], [RELEASE], [REFUND, RELEASE], [RECALL, REFUND, RELEASE]]
    assert interp.phase is Phase.RUNNING


def test_it_shrinks_while_compensating_the_one_in_progress_first_and_is_empty_at_the_end():
    interp = interpreter(order, "o1")
    for t in range(1, 5):
        interp.feed(done(next_command(interp).seq, t=t))
    wait = next_command(interp)
    before = list(interp.compensations)
    interp.feed(done(wait.seq, {"go": True}, t=5))  # the code raises: compensations begin

    assert interp.phase is Phase.COMPENSATING
    run, lists = [], [before, list(interp.compensations)]
    while decisions := interp.decide():
        (record,) = decisions
        assert record.kind == "compensation"
        assert interp.compensations[0].name == record.name  # the one in progress comes first
        run.append(record.name)
        outcome = failed(record.seq, t=6) if record.name == "refund" else done(record.seq, t=6)
        interp.feed(outcome)  # a failed compensation is over too: the rest still run
        lists.append(list(interp.compensations))

    assert run == ["recall", "refund", "release"]  # the very order the property announced
    assert lists == [
        [RECALL, REFUND, RELEASE],
        [RECALL, REFUND, RELEASE],
        [REFUND, RELEASE],
        [RELEASE],
        [],
    ]
    assert interp.phase is Phase.FAILED


def test_a_replay_that_stops_mid_compensation_lists_what_is_still_to_finish():
    history = [
        scheduled_activity(1, "reserve", "o1", qty=2),
        done(1, t=1),
        scheduled_activity(2, "notify", "o1", t=1),
        done(2, t=2),
        scheduled_activity(3, "charge", "o1", amount=10, t=2),
        done(3, t=3),
        Scheduled(4, "activity", "ship", {"args": ("o1",), "kwargs": {}}, at(3)),
        failed(4, t=4),  # ship failed: nothing to recall; the code raises ActivityFailed
        scheduled_compensation(5, "refund", "o1", amount=10, t=4),
    ]

    assert replayed(order, history[:-1], "o1").compensations == [REFUND, RELEASE]
    interp = replayed(order, history, "o1")
    assert interp.phase is Phase.COMPENSATING
    assert interp.compensations == [REFUND, RELEASE]

    interp.feed(done(5, t=5))

    # "release" is in progress (emitted, not recorded yet): listed, not yet pending
    assert interp.compensations == [RELEASE]
    assert interp.pending == []
    assert [record.name for record in interp.decide()] == ["release"]
    assert interp.compensations == [RELEASE]


def test_empty_once_the_code_has_returned_and_once_it_completed():
    def returns(ctx):
        yield CallActivity(RESERVE, "o1", qty=2)
        yield First(CallActivity(CHARGE, "o1", amount=10), Sleep(5))
        return "done"

    interp = interpreter(returns)
    interp.feed(done(next_command(interp).seq, t=1))
    interp.decide()  # charge and the sleep
    assert interp.compensations == [RELEASE]

    interp.feed(done(3, t=5))  # the sleep wins; the code returns, charge is still out
    assert interp.phase is Phase.RUNNING
    assert interp.compensations == []  # nothing can fail any more
    interp.feed(done(2, t=6))  # charge completes late
    assert interp.phase is Phase.COMPLETED
    assert interp.compensations == []


def test_an_abandoned_activity_that_completes_later_comes_first():
    def racing(ctx):
        yield CallActivity(RESERVE, "o1", qty=2)
        yield First(CallActivity(CHARGE, "o1", amount=10), Sleep(5))
        yield WaitEvent("go")
        raise RuntimeError("stop")

    interp = interpreter(racing)
    interp.feed(done(next_command(interp).seq, t=1))
    interp.decide()
    interp.feed(done(3, t=5))  # the sleep wins; charge is abandoned but still runs
    assert [record.name for record in interp.decide()] == ["go"]
    assert interp.compensations == [RELEASE]

    interp.feed(done(2, t=6))

    assert interp.compensations == [REFUND, RELEASE]  # completed last: compensated first


def test_a_cancel_that_propagates_compensates_in_the_announced_order():
    interp = interpreter(order, "o1")
    for t in range(1, 5):
        interp.feed(done(next_command(interp).seq, t=t))
    assert next_command(interp).kind == "event"
    announced = list(interp.compensations)

    interp.feed(Cancel(at(4), "stop"))

    assert interp.phase is Phase.COMPENSATING
    emitted = []
    while decisions := interp.decide():
        emitted.append(interp.compensations[0])
        interp.feed(done(decisions[0].seq, t=5))
    assert announced == emitted == [RECALL, REFUND, RELEASE]
    assert interp.phase is Phase.CANCELLED
    assert interp.compensations == []


def test_the_list_is_a_copy_the_caller_may_change():
    interp = interpreter(order, "o1")
    interp.feed(done(next_command(interp).seq, t=1))

    interp.compensations.clear()

    assert interp.compensations == [RELEASE]
