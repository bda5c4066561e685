"""Design §11: what goes wrong inside one instance's step parks that instance and nothing else.

Each test here failed before the worker parked instances: the fault escaped ``start()`` or
``run_due()``, and every recovery ran the finished activity again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from eddic import (
    ActivityContext,
    App,
    RetryPolicy,
    WaitEvent,
    WorkflowContext,
    activity,
    workflow,
)

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
runs: list[str] = []
poison: dict[str, BaseException | None] = {"after_step": None}


@pytest.fixture(autouse=True)
def _clean() -> Any:
    runs.clear()
    poison["after_step"] = None
    yield
    poison["after_step"] = None


class Custom(BaseException):
    """A BaseException of the user's own."""


@activity
def fi_charge(order_id: str) -> str:
    runs.append(f"charge {order_id}")
    return f"TXN-{order_id}"


@workflow
def fi_after_activity(ctx: WorkflowContext, order_id: str) -> str:
    txn = yield fi_charge(order_id)
    fault = poison["after_step"]
    if fault is not None:
        raise fault  # the workflow's own code, after the activity finished
    return str(txn)


def _history_kinds(app: App, iid: str) -> list[tuple[str, int]]:
    return [(h["record"], h["seq"]) for h in app.history(iid)]


@pytest.mark.parametrize(
    "fault",
    [SystemExit(0), SystemExit(3), asyncio.CancelledError(), GeneratorExit(), Custom()],
    ids=lambda e: type(e).__name__,
)
def test_a_fault_after_an_activity_records_its_result_and_parks_the_instance(
    app: App, fault: BaseException
) -> None:
    poison["after_step"] = fault
    with freeze_time(T0) as clock:
        iid = app.start(fi_after_activity, input="A")  # does not raise
        info = app.get_instance(iid)
        assert info["status"] == "running"
        assert info["error"]["parked"] is True
        assert info["error"]["type"].endswith(type(fault).__name__)
        assert info["retry_after"] == T0 + timedelta(seconds=app.recovery_interval_seconds)
        # the result is recorded: the activity's outcome is in history, not lost
        assert _history_kinds(app, iid) == [("scheduled", 1), ("resolved", 1)]
        assert app.run_due() == 0  # parked: not before its retry time
        clock.tick(timedelta(seconds=app.recovery_interval_seconds + 1))
        assert app.run_due() == 1  # retried: the fault is still there, parked again
        assert app.get_instance(iid)["error"]["parked"] is True
        poison["after_step"] = None  # the code is fixed
        assert app.retry(iid) is True
        assert app.result(iid) == "TXN-A"
        assert app.get_instance(iid)["error"] is None
    assert runs == ["charge A"]  # the finished activity never ran again


@workflow
def fi_exits_before_any_command(ctx: WorkflowContext, order_id: str) -> str:
    if poison["after_step"] is not None:
        raise poison["after_step"]
    txn = yield fi_charge(order_id)
    return str(txn)


def test_a_fault_before_the_first_command_records_the_instance_parked(app: App) -> None:
    poison["after_step"] = SystemExit(1)
    iid = app.start(fi_exits_before_any_command, input="B")
    info = app.get_instance(iid)
    assert info["status"] == "running" and info["error"]["type"] == "SystemExit"
    assert app.history(iid) == []
    poison["after_step"] = None
    assert app.retry(iid) is True
    assert app.result(iid) == "TXN-B"


attempts_seen: list[int] = []


@activity(retry=RetryPolicy(max_attempts=2, initial_interval=0))
async def fi_cancelled_async(ctx: ActivityContext) -> str:
    attempts_seen.append(ctx.attempt)
    raise asyncio.CancelledError()


@workflow
def fi_cancelled_flow(ctx: WorkflowContext) -> str:
    try:
        return str((yield fi_cancelled_async()))
    except Exception as exc:
        return f"caught {type(exc).__name__}: {exc}"


def test_a_base_exception_from_an_activity_spends_its_attempt_and_parks(app: App) -> None:
    attempts_seen.clear()
    with freeze_time(T0) as clock:
        iid = app.start(fi_cancelled_flow)
        info = app.get_instance(iid)
        assert info["error"]["type"].endswith("CancelledError")
        assert "attempt 1" in info["error"]["where"]
        clock.tick(timedelta(seconds=app.recovery_interval_seconds + 1))
        assert app.run_due() == 1  # attempt 2, parked again
        clock.tick(timedelta(seconds=app.recovery_interval_seconds + 1))
        assert app.run_due() == 1  # no attempt 3: the activity fails, the workflow goes on
        result = app.result(iid)
    assert attempts_seen == [1, 2]
    assert result.startswith("caught ActivityFailed") and "eddic.AttemptLost" in result


class OrderV1(BaseModel):
    order_id: str


class OrderV2(BaseModel):
    order_id: str
    currency: str  # a required field added by a redeploy


@workflow
def fi_redeployed(ctx: WorkflowContext, order: OrderV1) -> str:
    yield WaitEvent("go")
    return order.order_id


def test_input_that_no_longer_validates_after_a_redeploy_parks_on_replay(app: App) -> None:
    iid = app.start(fi_redeployed, input={"order_id": "C"})
    app._cache.clear()  # a fresh process: the instance is replayed from its history
    wf = fi_redeployed
    original = wf.input_adapter
    from pydantic import TypeAdapter

    wf.input_adapter = TypeAdapter(OrderV2)  # type: ignore[misc]
    try:
        assert app.send_event("go", instance_id=iid) == [iid]  # does not raise
        info = app.get_instance(iid)
        assert info["status"] == "waiting_for_event"
        assert info["error"]["where"] == "replaying its history"
        assert "currency" in info["error"]["message"]
    finally:
        wf.input_adapter = original  # type: ignore[misc]
    assert app.retry(iid) is True
    assert app.result(iid) == "C"


def test_send_event_never_raises_once_the_event_is_stored(app: App) -> None:
    @workflow(name="fi_event_then_exit")
    def flow(ctx: WorkflowContext) -> str:
        event = yield WaitEvent("paid")
        if poison["after_step"] is not None:
            raise poison["after_step"]
        return str(event.data)

    iid = app.start(flow)
    poison["after_step"] = SystemExit(0)
    assert app.send_event("paid", data="10", id="evt-1", instance_id=iid) == [iid]
    assert app.get_instance(iid)["error"]["type"] == "SystemExit"
    # a caller that retries the same id stores nothing twice
    assert app.send_event("paid", data="10", id="evt-1", instance_id=iid) == []
    poison["after_step"] = None
    assert app.retry(iid) is True
    assert app.result(iid) == "10"
    received = [h["value"]["id"] for h in app.history(iid) if h["record"] == "resolved"]
    assert received == ["evt-1"]  # received once, though sent twice


@pytest.mark.parametrize("instance_id", ["", 0, None.__class__])
def test_an_empty_or_non_string_instance_id_is_refused_before_anything_is_written(
    app: App, instance_id: Any
) -> None:
    with pytest.raises((ValueError, TypeError), match="instance_id"):
        app.start(fi_after_activity, input="D", instance_id=instance_id)
    assert app.list_instances() == []
    assert runs == []


@pytest.mark.parametrize("timeout", [-5, 0, float("nan"), float("inf"), "10"])
def test_bad_lock_timeouts_are_refused_at_the_call(app: App, timeout: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="lock_timeout_seconds"):
        app.start(fi_after_activity, input="E", lock_timeout_seconds=timeout)
    with pytest.raises((ValueError, TypeError), match="default_lock_timeout_seconds"):
        App(db_url="sqlite:///:memory:", default_lock_timeout_seconds=timeout)
    assert app.list_instances() == []


def test_retry_of_an_unknown_or_finished_instance(app: App) -> None:
    from eddic import InstanceNotFound

    with pytest.raises(InstanceNotFound):
        app.retry("no-such-instance")
    iid = app.start(fi_after_activity, input="F")
    assert app.retry(iid) is False
    assert runs == ["charge F"]


@workflow(name="fi_unregistered_later")
def fi_unregistered_later(ctx: WorkflowContext) -> str:
    yield WaitEvent("never", timeout=0.01)
    return "done"


def _count_passes(app: App, seconds: float) -> int:
    """How many passes ``serve`` makes in ``seconds`` with nothing it can do."""
    passes = 0
    original = app._run_pass

    def counting(**kw: Any) -> int:
        nonlocal passes
        passes += 1
        return original(**kw)

    app._run_pass = counting  # type: ignore[method-assign]
    thread = threading.Thread(target=app.serve, kwargs={"idle_sleep_max": 5.0})
    thread.start()
    time.sleep(seconds)
    app.stop()
    thread.join(10)
    assert not thread.is_alive()
    return passes


def _set(app: App, iid: str, **columns: Any) -> None:
    """Set instance columns by hand, as another worker or process would have left them
    (SQLite's SQL: these tests run on SQLite only)."""
    names = ", ".join(f"{name} = ?" for name in columns)
    with app.storage.transaction() as db:
        db.execute(f"UPDATE instances SET {names} WHERE instance_id = ?", [*columns.values(), iid])


def test_serve_does_not_spin_on_a_parked_instance(sqlite_app: App) -> None:
    app = sqlite_app
    poison["after_step"] = SystemExit(0)
    iid = app.start(fi_after_activity, input="G")
    assert app.get_instance(iid)["retry_after"] is not None
    # due (its wake time is now) but parked: before, next_wake said "now" and serve spun
    _set(app, iid, wake_at=T0.isoformat())
    assert _count_passes(app, 1.0) <= 3


def test_serve_does_not_spin_on_a_lease_held_by_another_worker(sqlite_app: App) -> None:
    app = sqlite_app
    iid = app.start(fi_unregistered_later)
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    _set(app, iid, lock_owner="someone-else", lock_expires_at=later, wake_at=T0.isoformat())
    assert _count_passes(app, 1.0) <= 3


def test_serve_does_not_spin_on_an_unregistered_workflow(sqlite_app: App) -> None:
    app = sqlite_app
    iid = app.start(fi_unregistered_later)
    _set(app, iid, workflow_name="fi_not_registered_anywhere", wake_at=T0.isoformat())
    assert _count_passes(app, 1.0) <= 3


@workflow
def fi_refused_publish(ctx: WorkflowContext) -> str:
    from eddic import Publish

    try:
        yield Publish("odd", data=object())  # refused at the yield: not JSON
    except TypeError:
        yield Publish("fixed", data={"fixed": True})
    return "published"


def test_a_refused_publish_replays_and_drives_the_same_way_everywhere(app: App) -> None:
    from eddic.testing.kernel_driver import WorkflowDriver

    iid = app.start(fi_refused_publish)
    assert app.result(iid) == "published"
    replay = app.replay(iid)
    steps = list(replay)
    assert replay.divergence is None  # before, the replay diverged: it accepted the Publish
    assert [s.record.seq for s in steps if s.record is not None] == [1]
    driver = WorkflowDriver(fi_refused_publish)
    assert driver.finished and driver.result == "published"


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("cache_size", -1, ValueError),
        ("cache_size", True, TypeError),
        ("outbox_max_attempts", 2.5, TypeError),
        ("outbox_max_attempts", -3, ValueError),
        ("recovery_interval_seconds", 0, ValueError),
        ("timer_poll_interval", float("nan"), ValueError),
        ("busy_timeout_seconds", "30", TypeError),
        ("failover_check_seconds", 0, ValueError),
        ("failover_check_seconds", float("inf"), ValueError),
    ],
)
def test_bad_app_options_are_refused_at_the_call(option: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=option):
        App(db_url="sqlite:///:memory:", **{option: value})
