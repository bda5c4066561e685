"""What the workflow sees: ``ctx.now()``, ``ctx.uuid()``, ``ctx.is_replaying``, ``instance_id``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from kernel_histories import (
    INSTANCE,
    T0,
    activity,
    at,
    done,
    interpreter,
    replayed,
    timer,
)

from eddic.kernel import (
    EDDIC_NAMESPACE,
    All,
    CallActivity,
    First,
    Record,
    Scheduled,
    Sleep,
    derived_uuid,
)


def clock_watcher(seen):
    def workflow(ctx):
        seen.append(("start", ctx.now(), ctx.now()))
        yield CallActivity("a")
        seen.append(("after a", ctx.now(), ctx.now()))
        yield First(CallActivity("slow"), Sleep(10))
        seen.append(("after first", ctx.now(), ctx.now()))
        yield Sleep(5)
        seen.append(("end", ctx.now(), ctx.now()))

    return workflow


HISTORY = [
    activity(1, "a", t=0),
    done(1, t=3),
    activity(2, "slow", t=3),
    timer(3, 10, t=3),
    done(3, t=13),
    timer(4, 5, t=13),
    done(2, "late", t=15),  # an abandoned activity finishing: wakes nobody
    done(4, t=18),
]


def test_now_is_the_start_time_then_the_time_of_the_record_that_woke_the_workflow():
    seen: list[tuple[str, datetime, datetime]] = []

    replayed(clock_watcher(seen), HISTORY)

    assert seen == [
        ("start", T0, T0),
        ("after a", at(3), at(3)),
        ("after first", at(13), at(13)),
        ("end", at(18), at(18)),
    ]


def test_now_does_not_move_for_a_record_that_wakes_nobody():
    interp = replayed(clock_watcher([]), HISTORY[:-1])  # up to the late "slow" outcome at 15

    assert interp.now == at(13)
    assert interp.pending[0].deadline == at(18)


def test_now_is_an_aware_utc_datetime_even_when_started_in_another_zone():
    seen: list[datetime] = []

    def workflow(ctx):
        seen.append(ctx.now())
        yield Sleep(1)

    started = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    interpreter(workflow, started_at=started).decide()

    assert seen == [T0]
    assert seen[0].utcoffset() == timedelta(0)


def test_now_is_the_same_on_the_first_run_and_on_replay():
    live_seen: list[tuple[str, datetime, datetime]] = []
    live = interpreter(clock_watcher(live_seen))
    history: list[Record] = live.decide()
    for outcome in (done(1, t=3), done(3, t=13), done(2, "late", t=15), done(4, t=18)):
        live.feed(outcome)
        history.append(outcome)
        history.extend(live.decide())

    replay_seen: list[tuple[str, datetime, datetime]] = []
    replayed(clock_watcher(replay_seen), history)

    assert replay_seen == live_seen
    assert [r.at for r in history if isinstance(r, Scheduled)] == [at(0), at(3), at(3), at(13)]


def uuid_watcher(seen):
    def workflow(ctx):
        seen.append([ctx.uuid(), ctx.uuid()])
        yield CallActivity("a")
        seen.append([ctx.uuid()])
        yield All(CallActivity("b"), CallActivity("c"))
        seen.append([ctx.uuid(), ctx.uuid(), ctx.uuid()])

    return workflow


UUID_HISTORY = [
    activity(1, "a"),
    done(1),
    activity(2, "b"),
    activity(3, "c"),
    done(3),
    done(2),
]


def test_uuid_is_uuid5_of_instance_seq_of_the_last_command_and_call_count():
    seen: list[list[uuid.UUID]] = []

    replayed(uuid_watcher(seen), UUID_HISTORY)

    def expected(seq: int, k: int) -> uuid.UUID:
        return uuid.uuid5(EDDIC_NAMESPACE, f"{INSTANCE}:{seq}:{k}")

    assert seen == [
        [expected(0, 1), expected(0, 2)],
        [expected(1, 1)],
        [expected(3, 1), expected(3, 2), expected(3, 3)],
    ]
    assert expected(3, 2) == derived_uuid(INSTANCE, 3, 2)
    assert len({u for step in seen for u in step}) == 6


def test_uuid_is_stable_across_replays_and_differs_between_instances():
    runs = []
    for _ in range(3):
        seen: list[list[uuid.UUID]] = []
        replayed(uuid_watcher(seen), UUID_HISTORY)
        runs.append(seen)
    other: list[list[uuid.UUID]] = []
    replayed(uuid_watcher(other), UUID_HISTORY, instance_id="order-43")

    assert runs[0] == runs[1] == runs[2]
    assert not {u for step in other for u in step} & {u for step in runs[0] for u in step}


def test_is_replaying_is_true_only_while_replay_feeds_recorded_history():
    seen = []

    def workflow(ctx):
        seen.append(("start", ctx.is_replaying))
        yield CallActivity("a")
        seen.append(("after a", ctx.is_replaying))
        yield CallActivity("b")
        seen.append(("after b", ctx.is_replaying))

    interp = interpreter(workflow)
    assert not interp.is_replaying
    interp.replay([activity(1, "a"), done(1)])
    assert not interp.is_replaying
    interp.decide()
    interp.feed(done(2))

    assert seen == [("start", True), ("after a", True), ("after b", False)]


def test_the_workflow_sees_its_instance_id_and_input():
    seen = []

    def workflow(ctx, order):
        seen.append((ctx.instance_id, order))
        yield CallActivity("a", order["id"])

    interp = interpreter(workflow, {"id": 7}, instance_id="shop-7")

    assert interp.decide() == [Scheduled(1, "activity", "a", {"args": (7,), "kwargs": {}}, T0)]
    assert seen == [("shop-7", {"id": 7})]
