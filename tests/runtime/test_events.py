"""External events: targeted mailboxes, broadcast, duplicates, timeouts and races with timers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time

from eddic import (
    App,
    EddicError,
    Event,
    EventTimeout,
    First,
    InstanceNotFound,
    Sleep,
    WaitEvent,
    WorkflowContext,
    workflow,
)

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@workflow
def ev_wait(ctx: WorkflowContext, timeout: float | None) -> dict[str, Any]:
    try:
        event = yield WaitEvent("payment.confirmed", timeout=timeout)
    except EventTimeout:
        return {"timed_out": True}
    assert isinstance(event, Event)
    return {"id": event.id, "data": event.data, "source": event.source, "time": event.time}


@workflow
def ev_twice(ctx: WorkflowContext, _: None = None) -> list[Any]:
    first = yield WaitEvent("tick")
    second = yield WaitEvent("tick")
    return [first.data, second.data]


@workflow
def ev_race(ctx: WorkflowContext, _: None = None) -> str:
    index, _value = yield First(WaitEvent("go"), Sleep(60))
    return "event" if index == 0 else "timer"


def test_a_broadcast_event_reaches_every_waiting_instance(app: App) -> None:
    with freeze_time(T0):
        a = app.start(ev_wait, input=None)
        b = app.start(ev_wait, input=None)
        assert app.get_instance(a)["status"] == "waiting_for_event"
        reached = app.send_event("payment.confirmed", data={"amount": 5}, id="evt-1")
    assert sorted(reached) == sorted([a, b])
    for iid in (a, b):
        result = app.result(iid)
        assert result["id"] == "evt-1"
        assert result["data"] == {"amount": 5}
        assert result["source"] == "tests"


def test_a_broadcast_reaches_no_instance_that_is_not_waiting_yet(app: App) -> None:
    assert app.send_event("payment.confirmed", data=1) == []
    iid = app.start(ev_wait, input=None)
    assert app.get_instance(iid)["status"] == "waiting_for_event"


def test_a_targeted_event_sent_before_the_wait_is_kept_in_the_mailbox(app: App) -> None:
    iid = app.start(ev_twice)
    app.send_event("tick", data=1, instance_id=iid)
    assert app.get_instance(iid)["status"] == "waiting_for_event"
    app.send_event("tick", data=2, instance_id=iid)
    assert app.result(iid) == [1, 2]


def test_targeted_events_are_received_first_in_first_out(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(ev_race)  # busy elsewhere: waiting on "go", not "tick"
        app.send_event("tick", data="a", instance_id=iid)
        clock.tick(1)
        app.send_event("tick", data="b", instance_id=iid)
        two = app.start(ev_twice, instance_id="fifo")
        app.send_event("tick", data="c", instance_id="fifo")
        app.send_event("tick", data="d", instance_id="fifo")
    assert app.result(two) == ["c", "d"]


def test_the_same_event_id_is_received_once(app: App) -> None:
    iid = app.start(ev_twice)
    assert app.send_event("tick", data=1, id="same", instance_id=iid) == [iid]
    assert app.send_event("tick", data=1, id="same", instance_id=iid) == []
    assert app.get_instance(iid)["status"] == "waiting_for_event"


def test_a_missed_deadline_throws_event_timeout_into_the_workflow(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(ev_wait, input=3600)
        clock.tick(3599)
        app.run_due()
        assert app.get_instance(iid)["status"] == "waiting_for_event"
        clock.tick(1)
        app.run_due()
    assert app.result(iid) == {"timed_out": True}


def test_an_event_stamped_before_the_deadline_wins_even_when_processed_after(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(ev_wait, input=60)
        clock.tick(59)
        # stored at 59 s (through the storage, as send_event would) but not run until 179 s
        stamped = T0 + timedelta(seconds=59)
        reached = app.storage.deliver(
            "payment.confirmed", "7", source="tests", event_id="late", now=stamped, instance_id=iid
        )
        assert reached == [(iid, "ev_wait")]
        clock.tick(120)
        app.run_due()
    assert app.result(iid)["data"] == 7


def test_first_of_an_event_and_a_timer_goes_to_the_event_when_it_comes_first(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(ev_race)
        clock.tick(30)
        app.send_event("go", instance_id=iid)
        assert app.result(iid) == "event"
        clock.tick(60)
        app.run_due()  # the abandoned timer is cancelled: nothing fires
        assert app.result(iid) == "event"


def test_first_of_an_event_and_a_timer_goes_to_the_timer_when_it_fires_first(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(ev_race)
        clock.tick(60)
        app.run_due()
        assert app.result(iid) == "timer"
        with pytest.raises(EddicError, match="finished"):
            app.send_event("go", instance_id=iid)


def test_an_event_for_an_unknown_instance_is_refused(app: App) -> None:
    with pytest.raises(InstanceNotFound):
        app.send_event("go", instance_id="nobody")
