"""``submit`` records an instance and runs none of its code; ``wait`` blocks until it has
finished; ``send_event(inline=False)`` stores an event and leaves its receivers to a worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pydantic import BaseModel

from eddic import (
    App,
    InstanceExists,
    InstanceNotFound,
    WaitEvent,
    WorkflowContext,
    WorkflowFailed,
    activity,
    workflow,
)

pytestmark = pytest.mark.both_backends

ran: list[str] = []


class Receipt(BaseModel):
    order: str
    total: int


@activity
def submit_charge(order: str) -> int:
    ran.append(order)
    return 42


@workflow
def submit_order(ctx: WorkflowContext, order: str) -> Receipt:
    ran.append(f"workflow {order}")
    total = yield submit_charge(order)
    return Receipt(order=order, total=total)


@workflow
def submit_failing(ctx: WorkflowContext) -> None:
    raise RuntimeError("out of stock")
    yield  # a generator


@workflow
def submit_waiting(ctx: WorkflowContext) -> str:
    event = yield WaitEvent("submit.go")
    ran.append("resumed")
    return str(event.data)


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


@contextmanager
def serving(app: App) -> Iterator[None]:
    thread = threading.Thread(target=app.serve, kwargs={"idle_sleep_max": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        app.stop()
        thread.join(30)
        assert not thread.is_alive()


def test_submit_runs_none_of_the_workflow_and_a_pass_runs_all_of_it(app: App) -> None:
    iid = app.submit(submit_order, input="A-1")
    assert ran == []
    info = app.get_instance(iid)
    assert (info["status"], info["lock_owner"]) == ("running", None)
    assert app.history(iid) == []
    assert app.run_due() == 1
    assert ran == ["workflow A-1", "A-1"]
    assert app.result(iid) == Receipt(order="A-1", total=42)


def test_submit_is_idempotent_by_id_and_checks_the_input_first(app: App) -> None:
    assert app.submit(submit_order, input="A-2", instance_id="order-2") == "order-2"
    assert app.submit(submit_order, input="A-2", instance_id="order-2") == "order-2"
    assert app.start(submit_order, input="A-2", instance_id="order-2") == "order-2"
    assert ran == []  # the repeated start ran nothing either
    with pytest.raises(InstanceExists):
        app.submit(submit_waiting, instance_id="order-2")
    with pytest.raises(ValueError):  # pydantic's ValidationError: nothing recorded
        app.submit(submit_order, input={"not": "a string"}, instance_id="order-3")
    with pytest.raises(InstanceNotFound):
        app.get_instance("order-3")


def test_wait_returns_the_typed_result_a_serving_worker_made(app: App) -> None:
    with serving(app):
        iid = app.submit(submit_order, input="A-4")
        assert app.wait(iid, timeout=30) == Receipt(order="A-4", total=42)
    assert ran.count("A-4") == 1


def test_a_worker_of_another_app_runs_what_this_one_submitted(app: App) -> None:
    with App(db_url=app.storage.db_url, timer_poll_interval=0.05) as other, serving(other):
        iid = app.submit(submit_order, input="A-5")
        assert app.wait(iid, timeout=30) == Receipt(order="A-5", total=42)
    assert ran == ["workflow A-5", "A-5"]


def test_wait_raises_what_result_raises_and_times_out(app: App) -> None:
    failing = app.submit(submit_failing)
    app.run_due()
    with pytest.raises(WorkflowFailed, match="out of stock"):
        app.wait(failing, timeout=5)
    waiting = app.start(submit_waiting)
    with pytest.raises(TimeoutError):
        app.wait(waiting, timeout=0.05)
    with pytest.raises(InstanceNotFound):
        app.wait("no-such-instance", timeout=1)
    with pytest.raises(ValueError):
        app.wait(waiting, timeout=-1)


def test_send_event_inline_false_stores_the_event_and_leaves_the_instance_to_a_worker(
    app: App,
) -> None:
    iid = app.start(submit_waiting)
    assert app.send_event("submit.go", "now", instance_id=iid, inline=False) == [iid]
    assert ran == [] and app.get_instance(iid)["status"] == "waiting_for_event"
    assert app.run_due() == 1
    assert ran == ["resumed"] and app.result(iid) == "now"


@workflow
def submit_napping(ctx: WorkflowContext) -> str:
    yield WaitEvent("submit.never")
    return "never"


def test_a_submitted_instance_that_waits_at_once_is_released_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    # Its first step (run by a worker's claim) releases the lease; the worker must not then
    # try to release it again (that logged a lost lease, and cost a failed write).
    iid = app.submit(submit_napping)
    with caplog.at_level("WARNING", logger="eddic"):
        assert app.run_due() == 1
    assert app.get_instance(iid)["status"] == "waiting_for_event"
    assert not [r for r in caplog.records if "lost its lease" in r.getMessage()]


def test_a_worker_reads_no_history_for_an_instance_never_stepped_and_replays_one_that_was(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submitted instance has no history (its claim says ``last_pos`` 0): the worker runs it
    from the start without reading the instance back. One that has stepped, taken over by a
    worker that did not run it, is read and replayed as before."""
    reads: list[str] = []
    real = type(app.storage).stored

    def counted(self: Any, instance_id: str) -> Any:
        reads.append(instance_id)
        return real(self, instance_id)

    monkeypatch.setattr(type(app.storage), "stored", counted)
    fresh = app.submit(submit_order, input="A-9")
    assert app.run_due() == 1
    assert app.result(fresh) == Receipt(order="A-9", total=42)
    assert reads == []

    waiting = app.start(submit_waiting)  # stepped once, now waits for its event
    assert app.history(waiting)
    with App(db_url=app.storage.db_url) as other:  # nothing of it cached there
        other.send_event("submit.go", data=None, instance_id=waiting)
        assert other.result(waiting) is not None
    assert reads == [waiting]
