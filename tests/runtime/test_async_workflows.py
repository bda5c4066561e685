"""``async def`` workflows in the runtime, on both backends: activities (sync and async), timers,
events, a saga's compensation, a child, recovery by replay in another App, ``app.replay`` and
``eddic check``, and the testing environment — as for generator workflows."""

from __future__ import annotations

import pytest

from eddic import (
    ActivityContext,
    ActivityFailed,
    All,
    App,
    CallWorkflow,
    Sleep,
    WaitEvent,
    WorkflowContext,
    WorkflowFailed,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.testing import WorkflowEnvironment

pytestmark = pytest.mark.both_backends

undone: list[str] = []


@compensation(name="aw_unreserve")
def aw_unreserve(ctx: ActivityContext, item: str) -> None:
    undone.append(item)


@on_failure(aw_unreserve)
@activity(name="aw_reserve")
def aw_reserve(item: str) -> str:
    return f"R-{item}"


@activity(name="aw_price")
async def aw_price(item: str) -> int:
    return len(item) * 10


@activity(name="aw_ship")
def aw_ship(item: str) -> str:
    if item == "broken":
        raise RuntimeError("cannot ship")
    return f"S-{item}"


@workflow(name="aw_child")
async def aw_child(ctx: WorkflowContext, item: str) -> int:
    return await aw_price(item)


@workflow(name="aw_order")
async def aw_order(ctx: WorkflowContext, item: str) -> dict:
    reservation = await aw_reserve(item)
    prices = await All(aw_price(item), CallWorkflow(aw_child, item * 2))
    await Sleep(0)
    paid = await WaitEvent("aw.paid", timeout=3600)
    try:
        shipment = await aw_ship(item)
    except ActivityFailed:
        raise RuntimeError(f"{item} could not ship") from None
    return {"r": reservation, "prices": prices, "paid": paid.data, "s": shipment}


def finish(app: App, iid: str) -> None:
    for _ in range(20):
        app.run_due()
        if app.get_instance(iid)["status"] == "waiting_for_event":
            return
    raise AssertionError(app.get_instance(iid))


def test_an_async_workflow_runs_every_kind_of_command(app: App) -> None:
    undone.clear()
    iid = app.start(aw_order, "tea")
    finish(app, iid)
    app.send_event("aw.paid", {"amount": 30}, instance_id=iid)
    assert app.result(iid) == {
        "r": "R-tea",
        "prices": [30, 60],
        "paid": {"amount": 30},
        "s": "S-tea",
    }
    assert undone == []
    steps = app.replay(iid).steps()
    assert [s.kind for s in steps][:3] == ["activity", "activity", "child"]


def test_an_async_saga_compensates_when_it_raises(app: App) -> None:
    undone.clear()
    iid = app.start(aw_order, "broken")
    finish(app, iid)
    app.send_event("aw.paid", None, instance_id=iid)
    with pytest.raises(WorkflowFailed, match="could not ship"):
        app.result(iid)
    assert undone == ["broken"]


def test_an_async_workflow_is_recovered_by_replay_in_another_app(app: App) -> None:
    iid = app.start(aw_order, "mug")
    finish(app, iid)
    with App(db_url=app.storage.db_url, service_name="tests") as other:  # no live interpreter
        other.send_event("aw.paid", {"n": 1}, instance_id=iid)
        assert other.result(iid)["s"] == "S-mug"


def test_the_testing_environment_runs_async_workflows_under_frozen_time() -> None:
    with WorkflowEnvironment() as env:
        iid = env.start(aw_order, "pen")
        env.run_due()  # the child runs; the parent takes its result and waits for the event
        env.run_due()
        assert env.status(iid) == "waiting_for_event"
        env.advance(3600)  # the event's timeout
        with pytest.raises(WorkflowFailed, match="EventTimeout"):
            env.result(iid)
