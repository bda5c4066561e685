"""The seed saga end to end: typed results, reverse-order compensation, failure reporting."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from pydantic import BaseModel

from eddic import (
    ActivityContext,
    App,
    Sleep,
    WorkflowContext,
    WorkflowFailed,
    activity,
    compensation,
    on_failure,
    workflow,
)

pytestmark = pytest.mark.both_backends

calls: list[str] = []


class Item(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    order_id: str
    items: list[Item]
    fail_at: str | None = None


class Receipt(BaseModel):
    order_id: str
    total: int


@compensation
def saga_release(ctx: ActivityContext, order_id: str, items: list[Item]) -> None:
    assert all(isinstance(i, Item) for i in items)
    calls.append(f"release:{order_id}")


@compensation
def saga_refund(order_id: str, amount: int, result: dict[str, int]) -> None:
    calls.append(f"refund:{order_id}:{amount}:{result['charged']}")


@activity
@on_failure(saga_release)
def saga_reserve(ctx: ActivityContext, order_id: str, items: list[Item]) -> Receipt:
    calls.append(f"reserve:{order_id}")
    return Receipt(order_id=order_id, total=sum(i.quantity for i in items))


@activity
@on_failure(saga_refund)
def saga_charge(order_id: str, amount: int, fail: bool = False) -> dict[str, int]:
    calls.append(f"charge:{order_id}")
    return {"charged": amount}


@activity
def saga_ship(order_id: str, fail: bool) -> str:
    calls.append(f"ship:{order_id}")
    if fail:
        raise RuntimeError("carrier down")
    return f"TRACK-{order_id}"


@workflow
def saga_order(ctx: WorkflowContext, order: Order) -> Receipt:
    receipt = yield saga_reserve(order.order_id, order.items)
    assert isinstance(receipt, Receipt)
    yield saga_charge(order.order_id, receipt.total)
    yield saga_ship(order.order_id, order.fail_at == "ship")
    return receipt


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def order(fail_at: str | None = None) -> dict[str, object]:
    return {"order_id": "A1", "items": [{"sku": "x", "quantity": 2}], "fail_at": fail_at}


def test_a_completed_saga_returns_its_result_as_the_declared_model(app: App) -> None:
    iid = app.start(saga_order, input=order())
    info = app.get_instance(iid)
    assert info["status"] == "completed"
    assert info["output_data"] == {"order_id": "A1", "total": 2}
    assert info["error"] is None
    assert info["created_at"].tzinfo is not None
    assert app.result(iid) == Receipt(order_id="A1", total=2)
    assert calls == ["reserve:A1", "charge:A1", "ship:A1"]


def test_a_failed_step_compensates_completed_steps_in_reverse_order_once(app: App) -> None:
    iid = app.start(saga_order, input=order("ship"))
    assert calls == ["reserve:A1", "charge:A1", "ship:A1", "refund:A1:2:2", "release:A1"]
    info = app.get_instance(iid)
    assert info["status"] == "failed"
    assert info["error"]["type"].endswith("ActivityFailed")
    assert "carrier down" in info["error"]["message"]
    assert "Traceback" in info["error"]["traceback"]
    with pytest.raises(WorkflowFailed, match="carrier down"):
        app.result(iid)
    app.run_due()  # nothing left to do: no compensation runs twice
    assert calls.count("refund:A1:2:2") == 1


def test_the_history_records_each_command_and_compensation_as_a_pair(app: App) -> None:
    iid = app.start(saga_order, input=order("ship"))
    history = app.history(iid)
    scheduled = [(r["seq"], r["kind"], r["name"]) for r in history if r["record"] == "scheduled"]
    assert scheduled == [
        (1, "activity", "saga_reserve"),
        (2, "activity", "saga_charge"),
        (3, "activity", "saga_ship"),
        (4, "compensation", "saga_refund"),
        (5, "compensation", "saga_release"),
    ]
    resolved = [r["seq"] for r in history if r["record"] == "resolved"]
    assert resolved == [1, 2, 3, 4, 5]
    assert history[0]["args"] == {"order_id": "A1", "items": [{"sku": "x", "quantity": 2}]}


def test_starting_twice_with_one_instance_id_runs_once(app: App) -> None:
    first = app.start(saga_order, input=order(), instance_id="order-1")
    second = app.start(saga_order, input=order(), instance_id="order-1")
    assert first == second == "order-1"
    assert calls.count("reserve:A1") == 1


def test_a_model_instance_is_accepted_as_input(app: App) -> None:
    iid = app.start(saga_order, input=Order(order_id="B2", items=[Item(sku="y", quantity=1)]))
    assert app.result(iid).order_id == "B2"


def test_the_workflow_can_be_started_by_its_registered_name(app: App) -> None:
    iid = app.start("saga_order", input=order())
    assert app.get_instance(iid)["workflow_name"] == "saga_order"


entered: list[str] = []


@workflow
def saga_counted(ctx: WorkflowContext, order: Order) -> str:
    entered.append(order.order_id)  # code before the first yield; normally pure
    yield Sleep(60)
    return order.order_id


def test_starting_again_with_a_taken_id_runs_no_workflow_code(app: App) -> None:
    entered.clear()
    app.start(saga_counted, input=order(), instance_id="counted-1")
    app.start(saga_counted, input=order(), instance_id="counted-1")
    assert entered == ["A1"]


def test_a_drawn_id_that_is_already_taken_fails_the_start_and_leaves_the_first_alone(
    app: App, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # A start without an id skips the "is this id taken" read: a uuid4 never repeats in
    # practice, and if it did, nothing is written. SQLite's insert fails on the unique id;
    # PostgreSQL's insert reports the taken id (ON CONFLICT), so start returns it unrun.
    first = app.start(saga_order, input=order())
    monkeypatch.setattr("eddic.runtime.app.uuid.uuid4", lambda: uuid.UUID(first))
    calls.clear()
    if backend == "sqlite":
        with pytest.raises(sqlite3.IntegrityError, match="instance_id"):
            app.start(saga_order, input=order(fail_at="ship"))
    else:
        assert app.start(saga_order, input=order(fail_at="ship")) == first
    assert calls == []  # the second workflow's activities never ran
    assert [i["instance_id"] for i in app.list_instances()] == [first]
    assert app.get_instance(first)["status"] == "completed"
    assert [r["seq"] for r in app.history(first) if r["record"] == "resolved"] == [1, 2, 3]
