"""Each command kind, decided on a first run and replayed from a hand-written history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kernel_histories import (
    INSTANCE,
    T0,
    activity,
    at,
    done,
    event,
    interpreter,
    pending_seqs,
    replayed,
    timer,
)

from eddic.kernel import (
    ActivityRef,
    All,
    CallActivity,
    Event,
    First,
    Phase,
    Publish,
    Resolved,
    Scheduled,
    Sleep,
    SleepUntil,
    WaitEvent,
    derived_uuid,
)


def charge(ctx):
    receipt = yield CallActivity(ActivityRef("charge"), 10, currency="EUR")
    return receipt


# -- CallActivity ---------------------------------------------------------------------------------


def test_a_new_activity_call_is_decided_as_a_scheduled_record_with_its_arguments():
    interp = interpreter(charge)

    decisions = interp.decide()

    args = {"args": (10,), "kwargs": {"currency": "EUR"}}
    assert decisions == [Scheduled(1, "activity", "charge", args, T0, None)]
    assert pending_seqs(interp) == [1]
    assert interp.pending[0].command == CallActivity(ActivityRef("charge"), 10, currency="EUR")
    assert interp.phase is Phase.RUNNING


def test_the_result_of_a_live_activity_is_sent_into_the_workflow():
    interp = interpreter(charge)
    interp.decide()

    interp.feed(done(1, "receipt-1", t=5))

    assert interp.decide() == []
    assert interp.phase is Phase.COMPLETED
    assert interp.result == "receipt-1"
    assert interp.pending == []


def test_a_recorded_activity_call_is_replayed_and_its_recorded_value_sent_in():
    history = [activity(1, "charge", 10, currency="EUR"), done(1, "receipt-1", t=5)]

    interp = replayed(charge, history)

    assert interp.phase is Phase.COMPLETED
    assert interp.result == "receipt-1"
    assert interp.decide() == []


def test_replay_matches_a_recorded_activity_by_name_not_by_arguments():
    history = [activity(1, "charge", 99, currency="USD"), done(1, "receipt-old")]

    interp = replayed(charge, history)

    assert interp.result == "receipt-old"


def test_an_activity_is_recorded_under_its_name_whether_a_string_a_ref_or_a_function():
    def reserve(sku):
        raise AssertionError("the kernel never runs an activity")

    def workflow(ctx):
        return (
            yield All(
                CallActivity("pack"),
                CallActivity(ActivityRef("ship")),
                CallActivity(reserve, "sku-1"),
            )
        )

    decisions = interpreter(workflow).decide()

    assert [(r.seq, r.kind, r.name) for r in decisions] == [
        (1, "activity", "pack"),
        (2, "activity", "ship"),
        (3, "activity", "reserve"),
    ]


def test_reaching_the_end_of_the_history_is_not_an_error_but_the_next_decision():
    def two_steps(ctx):
        first = yield CallActivity("a")
        second = yield CallActivity("b", first)
        return second

    interp = replayed(two_steps, [activity(1, "a"), done(1, "A", t=3)])

    assert interp.decide() == [
        Scheduled(2, "activity", "b", {"args": ("A",), "kwargs": {}}, at(3), None)
    ]
    assert pending_seqs(interp) == [2]


# -- Sleep / SleepUntil ---------------------------------------------------------------------------


def test_sleep_records_a_timer_whose_deadline_is_now_plus_the_seconds():
    def workflow(ctx):
        yield CallActivity("a")
        yield Sleep(30)
        return "woke"

    interp = replayed(workflow, [activity(1, "a"), done(1, t=7)])

    assert interp.decide() == [Scheduled(2, "timer", "sleep", {"seconds": 30.0}, at(7), at(37))]
    assert interp.pending[0].deadline == at(37)


def test_sleep_accepts_a_timedelta():
    def workflow(ctx):
        yield Sleep(timedelta(minutes=2))

    (record,) = interpreter(workflow).decide()

    assert isinstance(record, Scheduled)
    assert record.args == {"seconds": 120.0}
    assert record.deadline == at(120)


def test_sleep_until_records_its_moment_in_utc_as_the_deadline():
    when = datetime(2024, 5, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))

    def workflow(ctx):
        yield SleepUntil(when)

    (record,) = interpreter(workflow).decide()

    assert isinstance(record, Scheduled)
    assert (record.kind, record.name) == ("timer", "sleep")
    assert record.deadline == when
    assert record.deadline is not None and record.deadline.utcoffset() == timedelta(0)
    assert record.args == {"until": "2024-05-02T07:30:00+00:00"}


def test_a_fired_timer_is_replayed_and_the_workflow_goes_on_with_none():
    def workflow(ctx):
        woke = yield Sleep(60)
        return ("woke", woke)

    interp = replayed(workflow, [timer(1, 60), done(1, t=60)])

    assert interp.phase is Phase.COMPLETED
    assert interp.result == ("woke", None)


def test_a_replayed_timer_keeps_its_recorded_deadline():
    def workflow(ctx):
        yield Sleep(60)

    recorded = Scheduled(1, "timer", "sleep", {"seconds": 45.0}, T0, at(45))

    interp = replayed(workflow, [recorded])

    assert interp.pending[0].deadline == at(45)


# -- WaitEvent ------------------------------------------------------------------------------------


def test_wait_event_without_timeout_records_no_deadline():
    def workflow(ctx):
        return (yield WaitEvent("payment.received"))

    assert interpreter(workflow).decide() == [
        Scheduled(1, "event", "payment.received", {"timeout": None}, T0, None)
    ]


def test_wait_event_with_timeout_records_its_deadline():
    def workflow(ctx):
        yield CallActivity("a")
        return (yield WaitEvent("payment.received", timeout=timedelta(hours=1)))

    interp = replayed(workflow, [activity(1, "a"), done(1, t=10)])

    assert interp.decide() == [
        Scheduled(2, "event", "payment.received", {"timeout": 3600.0}, at(10), at(3610))
    ]


def test_replay_keeps_the_recorded_event_deadline_even_when_the_code_now_computes_another():
    def workflow(ctx):
        return (yield WaitEvent("approved", timeout=60))

    interp = replayed(workflow, [event(1, "approved", timeout=3600)])

    assert interp.pending[0].deadline == at(3600)


def test_a_received_event_is_the_value_of_wait_event_on_first_run_and_on_replay():
    def workflow(ctx):
        return (yield WaitEvent("approved", timeout=60))

    received = Event("evt-1", "approved", "crm", at(20), {"by": "alice"})
    live = interpreter(workflow)
    history = live.decide()
    live.feed(Resolved(1, at(20), received))
    history.append(Resolved(1, at(20), received))

    assert live.result == received
    assert replayed(workflow, history).result == received


# -- Publish --------------------------------------------------------------------------------------


def test_publish_resolves_itself_with_a_derived_event_id_in_the_same_decision():
    seen = []

    def workflow(ctx):
        event_id = yield Publish("order.placed", {"id": 1}, source="shop")
        seen.append(event_id)
        yield CallActivity("notify", event_id)

    interp = interpreter(workflow)

    decisions = interp.decide()

    event_id = str(derived_uuid(INSTANCE, 1))
    assert decisions == [
        Scheduled(1, "publish", "order.placed", {"data": {"id": 1}, "source": "shop"}, T0, None),
        Resolved(1, T0, event_id),
        Scheduled(2, "activity", "notify", {"args": (event_id,), "kwargs": {}}, T0, None),
    ]
    assert seen == [event_id]
    assert pending_seqs(interp) == [2]


def test_the_event_id_of_a_publish_depends_on_instance_and_seq():
    def workflow(ctx):
        yield CallActivity("a")
        return (yield Publish("done"))

    results = []
    for instance_id in ("one", "two"):
        interp = replayed(workflow, [activity(1, "a"), done(1)], instance_id=instance_id)
        interp.decide()
        results.append(interp.result)

    assert results == [str(derived_uuid("one", 2)), str(derived_uuid("two", 2))]
    assert results[0] != results[1]


def test_a_replayed_publish_sends_in_the_recorded_event_id():
    def workflow(ctx):
        return (yield Publish("order.placed"))

    history = [
        Scheduled(1, "publish", "order.placed", {"data": None, "source": None}, T0),
        done(1, "recorded-id"),
    ]

    interp = replayed(workflow, history)

    assert interp.result == "recorded-id"
    assert interp.decide() == []


# -- All / First ----------------------------------------------------------------------------------


def test_all_records_one_seq_per_child_and_sends_in_the_results_in_argument_order():
    def workflow(ctx):
        return (yield All(CallActivity("a"), Sleep(5), CallActivity("c")))

    history = [
        activity(1, "a"),
        timer(2, 5),
        activity(3, "c"),
        done(3, "C", t=1),
        done(1, "A", t=2),
        done(2, t=5),
    ]

    interp = replayed(workflow, history)

    assert interp.result == ["A", None, "C"]


def test_first_sends_in_the_index_and_value_of_the_first_to_finish():
    def workflow(ctx):
        return (yield First(WaitEvent("approved"), Sleep(60)))

    interp = replayed(workflow, [event(1, "approved"), timer(2, 60), done(2, t=60)])

    assert interp.result == (1, None)


def test_nested_all_and_first_settle_from_the_inside_out():
    def workflow(ctx):
        return (yield All(First(CallActivity("fast"), Sleep(10)), All(CallActivity("b"), Sleep(1))))

    history = [
        activity(1, "fast"),
        timer(2, 10),
        activity(3, "b"),
        timer(4, 1),
        done(4, t=1),
        done(1, "F", t=2),
        done(3, "B", t=3),
    ]

    interp = replayed(workflow, history)

    assert interp.result == [(0, "F"), ["B", None]]
    assert interp.now == at(3)


def test_an_empty_all_is_an_empty_list_without_any_record():
    def workflow(ctx):
        nothing = yield All()
        yield CallActivity("a", nothing)

    assert interpreter(workflow).decide() == [
        Scheduled(1, "activity", "a", {"args": ([],), "kwargs": {}}, T0, None)
    ]


def test_an_empty_all_nested_in_an_all_is_an_empty_list_in_its_place():
    def workflow(ctx):
        return (yield All(All(), CallActivity("a"), All(All())))

    interp = interpreter(workflow)
    assert [r.seq for r in interp.decide()] == [1]

    interp.feed(done(1, "A"))

    assert interp.phase is Phase.COMPLETED
    assert interp.result == [[], "A", [[]]]


def test_a_first_over_an_empty_all_wins_at_once_and_cancels_its_other_branches():
    def workflow(ctx):
        won = yield First(All(), WaitEvent("never"))
        more = yield CallActivity("after", won)
        return more

    interp = interpreter(workflow)
    decisions = interp.decide()

    assert decisions[-1] == Scheduled(
        2, "activity", "after", {"args": ((0, []),), "kwargs": {}}, T0
    )
    assert pending_seqs(interp) == [2]  # the event wait of seq 1 is cancelled
    assert replayed(workflow, decisions).decide() == []
