"""A real ``eddic.App`` on PostgreSQL, chosen from its ``postgresql://`` URL: sagas, timers,
events, the outbox, parking and retry, and several threads at once, as on SQLite."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from eddic import (
    App,
    Event,
    Publish,
    Sleep,
    WaitEvent,
    WorkflowContext,
    WorkflowFailed,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.storage.postgres.store import PostgresStorage

sent: list[Event] = []


@activity
def pg_double(x: int) -> int:
    return 2 * x


@workflow
def pg_flow(ctx: WorkflowContext, x: int) -> dict[str, Any]:
    doubled = yield pg_double(x)
    yield Sleep(0)
    event = yield WaitEvent("pg.go")
    yield Publish("pg.done", data={"doubled": doubled})
    return {"doubled": doubled, "event": event.data}


def _app(url: str, **options: Any) -> App:
    app = App(db_url=url, outbox_enabled=True, outbox_sink=sent.append, **options)
    assert isinstance(app.storage, PostgresStorage)
    return app


def test_an_app_runs_a_workflow_on_postgres(postgres_schema_url: str) -> None:
    sent.clear()
    app = _app(postgres_schema_url)
    app.initialize()
    try:
        iid = app.start(pg_flow, input=3)
        for _ in range(5):
            app.run_due()
        assert app.get_instance(iid)["status"] == "waiting_for_event"
        assert app.send_event("pg.go", data={"ok": True}) == [iid]
        for _ in range(5):
            app.run_due()
        assert app.result(iid) == {"doubled": 6, "event": {"ok": True}}
        assert [e.data for e in sent] == [{"doubled": 6}]
        assert [h["record"] for h in app.history(iid)][:2] == ["scheduled", "resolved"]
    finally:
        app.shutdown()


cancelled: list[str] = []


@compensation
def pg_unreserve(order_id: str) -> None:
    cancelled.append(order_id)


@activity
@on_failure(pg_unreserve)
def pg_reserve(order_id: str) -> str:
    return f"RES-{order_id}"


@activity
def pg_ship(order_id: str) -> str:
    raise RuntimeError(f"cannot ship {order_id}")


@workflow
def pg_saga(ctx: WorkflowContext, order_id: str) -> str:
    reservation = yield pg_reserve(order_id)
    yield pg_ship(order_id)
    return str(reservation)


def test_a_failed_saga_compensates_on_postgres(postgres_schema_url: str) -> None:
    cancelled.clear()
    with _app(postgres_schema_url) as app:
        iid = app.start(pg_saga, input="A", instance_id="saga-A")
        assert app.start(pg_saga, input="A", instance_id="saga-A") == iid  # idempotent
        info = app.get_instance(iid)
        assert info["status"] == "failed" and "cannot ship A" in info["error"]["message"]
        assert cancelled == ["A"]
        with pytest.raises(WorkflowFailed):
            app.result(iid)


@workflow
def pg_sleeper(ctx: WorkflowContext, seconds: float) -> str:
    yield Sleep(seconds)
    return "woke"


def test_a_timer_fires_under_frozen_time_on_postgres(postgres_schema_url: str) -> None:
    with freeze_time("2026-06-01 12:00:00") as clock, _app(postgres_schema_url) as app:
        iid = app.start(pg_sleeper, input=30)
        assert app.get_instance(iid)["status"] == "waiting_for_timer"
        assert app.run_due() == 0
        clock.tick(timedelta(seconds=31))
        assert app.run_due() == 1
        assert app.result(iid) == "woke"


broken = {"yes": False}


@workflow
def pg_fragile(ctx: WorkflowContext, x: int) -> int:
    doubled = yield pg_double(x)
    if broken["yes"]:
        raise SystemExit(1)
    return int(doubled)


def test_a_parked_instance_is_retried_on_postgres(postgres_schema_url: str) -> None:
    broken["yes"] = True
    try:
        with _app(postgres_schema_url) as app:
            iid = app.start(pg_fragile, input=4)
            info = app.get_instance(iid)
            assert info["error"]["parked"] is True and info["retry_after"] is not None
            broken["yes"] = False
            assert app.retry(iid) is True
            assert app.result(iid) == 8
    finally:
        broken["yes"] = False


def test_threads_serve_many_instances_on_postgres(postgres_schema_url: str) -> None:
    with _app(postgres_schema_url, timer_poll_interval=0.05) as app:
        ids = [app.start(pg_sleeper, input=0) for _ in range(3)]
        slow = [app.start(pg_flow, input=i, instance_id=f"flow-{i}") for i in range(8)]
        thread = threading.Thread(target=app.serve, kwargs={"threads": 4}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while any(app.get_instance(i)["status"] != "waiting_for_event" for i in slow):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert sorted(app.send_event("pg.go", data=1)) == sorted(slow)
            while any(app.get_instance(i)["status"] != "completed" for i in [*ids, *slow]):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            app.stop()
            thread.join(10)
        assert [app.result(i)["doubled"] for i in slow] == [2 * i for i in range(8)]


def test_a_serving_worker_hears_work_another_process_created(postgres_schema_url: str) -> None:
    # The server polls every 60 s: only the NOTIFY of the other App's commit can wake it in time
    # to fire the 0.2 s timer of an instance it did not know about when it went to sleep.
    with (
        _app(postgres_schema_url, timer_poll_interval=60, recovery_interval_seconds=60) as server,
        _app(postgres_schema_url) as other,
    ):
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        try:
            time.sleep(0.5)  # its first pass is over: it sleeps up to 60 s
            iid = other.start(pg_sleeper, input=0.2)
            deadline = time.monotonic() + 20
            while other.get_instance(iid)["status"] != "completed":
                assert time.monotonic() < deadline, "the serving worker never heard of the work"
                time.sleep(0.05)
        finally:
            server.stop()
            thread.join(10)
