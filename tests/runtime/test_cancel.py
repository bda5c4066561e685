"""Design §8, cancellation, on both backends: ``App.cancel`` records the request durably, the
instance's current yield throws ``Cancelled``, the compensations of completed activities run
newest first, the instance ends ``cancelled`` and ``result`` raises ``WorkflowCancelled``; a
workflow that catches it cleans up; a cancel asked from another process or while activities
run reaches the worker holding the instance."""

from __future__ import annotations

import threading
import time

import pytest

from eddic import (
    ActivityContext,
    App,
    Cancelled,
    First,
    InstanceNotFound,
    Sleep,
    WaitEvent,
    WorkflowCancelled,
    WorkflowContext,
    WorkflowFailed,
    activity,
    compensation,
    on_failure,
    workflow,
)

pytestmark = pytest.mark.both_backends

ran: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


@compensation
def cx_release(ctx: ActivityContext, item: str) -> None:
    ran.append(f"release {item}")


@on_failure(cx_release)
@activity
def cx_reserve(item: str) -> str:
    ran.append(f"reserve {item}")
    return item


@activity
def cx_note(what: str) -> str:
    ran.append(what)
    return what


@activity
def cx_slow(seconds: float) -> str:
    ran.append("slow begins")
    time.sleep(seconds)
    ran.append("slow ends")
    return "slow"


@workflow
def cx_order(ctx: WorkflowContext, items: list[str]) -> str:
    for item in items:
        yield cx_reserve(item)
    yield Sleep(3600)
    return "shipped"


@workflow
def cx_careful(ctx: WorkflowContext) -> str:
    yield cx_reserve("a")
    try:
        yield WaitEvent("cx.paid")
    except Cancelled as exc:
        yield cx_note(f"clean-up after: {exc.reason}")
        return "cleaned up"
    return "paid"


@workflow
def cx_racing(ctx: WorkflowContext) -> str:
    yield cx_reserve("a")
    yield First(cx_slow(3.0), Sleep(3600))
    return "never"


def test_a_cancel_compensates_newest_first_and_ends_cancelled(app: App) -> None:
    iid = app.start(cx_order, ["a", "b"])
    assert app.get_instance(iid)["status"] == "waiting_for_timer"
    assert app.cancel(iid, reason="customer asked") is True
    info = app.get_instance(iid)
    assert info["status"] == "cancelled"
    assert info["cancel_reason"] == "customer asked"
    assert info["error"]["type"] == "eddic.Cancelled"
    assert info["error"]["reason"] == "customer asked"
    assert ran == ["reserve a", "reserve b", "release b", "release a"]
    with pytest.raises(WorkflowCancelled) as caught:
        app.result(iid)
    assert caught.value.reason == "customer asked"
    assert isinstance(caught.value, WorkflowFailed)
    records = [(h["record"], h.get("kind"), h.get("name")) for h in app.history(iid)]
    assert ("cancel", None, None) in records
    assert records[-2:] == [("scheduled", "compensation", "cx_release"), ("resolved", None, None)]


def test_cancel_is_idempotent_and_false_once_finished(app: App) -> None:
    iid = app.start(cx_order, ["a"])
    assert app.cancel(iid) is True
    assert app.cancel(iid, reason="again") is False  # finished (cancelled) now
    assert app.get_instance(iid)["cancel_reason"] is None  # the first had no reason
    done = app.start(cx_careful)
    app.send_event("cx.paid", instance_id=done)
    assert app.result(done) == "paid"
    assert app.cancel(done) is False
    assert ran.count("release a") == 1
    with pytest.raises(InstanceNotFound):
        app.cancel("no-such-instance")


def test_a_second_cancel_before_the_first_is_seen_records_nothing_more(app: App) -> None:
    iid = app.start(cx_order, ["a"])
    assert app.cancel(iid, reason="first", inline=False) is True
    assert app.cancel(iid, reason="second", inline=False) is True
    assert app.get_instance(iid)["status"] == "waiting_for_timer"  # not run yet
    app.run_due()
    info = app.get_instance(iid)
    assert info["status"] == "cancelled" and info["error"]["reason"] == "first"
    assert [h["record"] for h in app.history(iid)].count("cancel") == 1


def test_a_workflow_that_catches_cancelled_cleans_up_and_completes(app: App) -> None:
    iid = app.start(cx_careful)
    assert app.cancel(iid, reason="shop closed")
    assert app.result(iid) == "cleaned up"
    assert ran == ["reserve a", "clean-up after: shop closed"]  # completed: nothing compensated


def test_a_cancel_abandons_a_running_activity_and_waits_for_it_before_compensating(
    app: App,
) -> None:
    iid = "cx-racing"
    runner = threading.Thread(target=lambda: app.start(cx_racing, instance_id=iid), daemon=True)
    runner.start()
    deadline = time.monotonic() + 10
    while "slow begins" not in ran:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    asked = time.monotonic()
    assert app.cancel(iid, reason="stop", inline=False)
    runner.join(15)
    assert not runner.is_alive()
    assert app.get_instance(iid)["status"] == "cancelled"
    # the abandoned activity ran to its end, then the compensation ran
    assert ran == ["reserve a", "slow begins", "slow ends", "release a"]
    history = app.history(iid)
    cancel_at = next(h["at"] for h in history if h["record"] == "cancel")
    started = app.get_instance(iid)["created_at"]
    assert (cancel_at - started).total_seconds() < 2.5  # seen while the activity ran (3 s)
    assert time.monotonic() - asked < 10


def test_a_cancel_left_to_a_serving_worker_is_run_there(app: App) -> None:
    iid = app.start(cx_order, ["a"])
    worker = threading.Thread(target=app.serve, kwargs={"threads": 2}, daemon=True)
    worker.start()
    try:
        assert app.cancel(iid, inline=False)
        deadline = time.monotonic() + 10
        while app.get_instance(iid)["status"] != "cancelled":
            assert time.monotonic() < deadline, app.get_instance(iid)
            time.sleep(0.02)
    finally:
        app.stop()
        worker.join(10)
    assert ran == ["reserve a", "release a"]


def test_a_bad_reason_is_refused_before_anything_is_recorded(app: App) -> None:
    iid = app.start(cx_order, ["a"])
    with pytest.raises(TypeError):
        app.cancel(iid, reason=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        app.cancel("")
    assert app.get_instance(iid)["cancel_requested"] is False


def test_eddic_show_tells_a_cancel_and_its_reason(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    from eddic.cli import main

    iid = app.start(cx_order, ["a"], instance_id="shown-cancel")
    app.cancel(iid, reason="changed my mind")
    capsys.readouterr()
    assert main(["show", iid, "--db", app.storage.db_url]) == 0
    fields = {line[:10].strip(): line[10:] for line in capsys.readouterr().out.splitlines()}
    assert fields["cancel"] == "asked: changed my mind"
    assert fields["status"] == "cancelled"


def test_wait_raises_workflow_cancelled_for_a_cancelled_instance(app: App) -> None:
    iid = app.submit(cx_order, ["a"])
    app.run_due()
    app.cancel(iid, reason="late", inline=False)
    app.run_due()
    with pytest.raises(WorkflowCancelled, match="late"):
        app.wait(iid, timeout=5)
