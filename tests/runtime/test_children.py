"""Design §8, child workflows, on both backends: ``CallWorkflow`` creates the child in the
parent's commit under a derived (or given) id, any worker runs it, its outcome reaches the parent
through the mailbox typed by the child's return annotation, a failed or cancelled child throws
``ChildWorkflowFailed``, fan-out under ``All`` and ``First`` (the loser cancelled), and a
cancelled parent cancels its running children."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import BaseModel

from eddic import (
    All,
    App,
    CallWorkflow,
    ChildWorkflowFailed,
    First,
    Sleep,
    WaitEvent,
    WorkflowContext,
    activity,
    workflow,
)

pytestmark = pytest.mark.both_backends


class Parcel(BaseModel):
    name: str
    grams: int


@activity(name="ch_weigh")
def ch_weigh(name: str) -> int:
    return 100 * len(name)


@workflow(name="ch_pack")
def ch_pack(ctx: WorkflowContext, name: str) -> Parcel:
    grams = yield ch_weigh(name)
    return Parcel(name=name, grams=grams)


@workflow(name="ch_broken")
def ch_broken(ctx: WorkflowContext, name: str) -> str:
    yield ch_weigh(name)
    raise ValueError(f"cannot pack {name}")


@workflow(name="ch_slow")
def ch_slow(ctx: WorkflowContext, seconds: float) -> str:
    yield Sleep(seconds)
    return "slow done"


@workflow(name="ch_waits")
def ch_waits(ctx: WorkflowContext) -> str:
    yield WaitEvent("ch.never")
    return "never"


@workflow(name="ch_order")
def ch_order(ctx: WorkflowContext, names: list[str]) -> list[str]:
    parcels = yield All(*[CallWorkflow(ch_pack, n) for n in names])
    assert all(isinstance(p, Parcel) for p in parcels)  # typed by the child's annotation
    return [f"{p.name}:{p.grams}" for p in parcels]


@workflow(name="ch_one")
def ch_one(ctx: WorkflowContext, name: str) -> str:
    try:
        parcel = yield CallWorkflow("ch_broken", name, instance_id=f"broken-{name}")
    except ChildWorkflowFailed as exc:
        return f"{exc.instance_id} {exc.workflow} {exc.type}: {exc.message}"
    return str(parcel)


@workflow(name="ch_race")
def ch_race(ctx: WorkflowContext) -> list:
    index, value = yield First(CallWorkflow(ch_waits), CallWorkflow(ch_pack, "tea"))
    return [index, value.grams]


@workflow(name="ch_parent_of_waiter")
def ch_parent_of_waiter(ctx: WorkflowContext) -> str:
    yield CallWorkflow(ch_waits)
    return "never"


def drain(app: App, *ids: str, timeout: float = 20) -> None:
    """Run due work until every id has finished (children are created due, not run inline)."""
    deadline = time.monotonic() + timeout
    while True:
        app.run_due()
        if all(app.get_instance(i)["status"] in ("completed", "failed", "cancelled") for i in ids):
            return
        assert time.monotonic() < deadline, [app.get_instance(i)["status"] for i in ids]
        time.sleep(0.01)


def test_children_fan_out_under_all_and_return_typed_results(app: App) -> None:
    iid = app.start(ch_order, ["tea", "mugs"], instance_id="order-1")
    info = app.get_instance(iid)
    assert info["status"] == "waiting_for_child"
    children = ["order-1/1", "order-1/2"]  # derived from the parent's id and seqs
    for child in children:
        assert app.get_instance(child)["parent_id"] == "order-1"
    drain(app, iid)
    assert app.result(iid) == ["tea:300", "mugs:400"]
    assert [app.get_instance(c)["status"] for c in children] == ["completed", "completed"]
    kinds = [(h["kind"], h["name"]) for h in app.history(iid) if h["record"] == "scheduled"]
    assert kinds == [("child", "ch_pack"), ("child", "ch_pack")]


def test_a_failed_child_throws_child_workflow_failed_into_the_parent(app: App) -> None:
    iid = app.start(ch_one, "box")
    drain(app, iid)
    assert app.result(iid) == "broken-box ch_broken ValueError: cannot pack box"
    assert app.get_instance("broken-box")["status"] == "failed"


def test_first_over_children_cancels_the_loser(app: App) -> None:
    iid = app.start(ch_race, instance_id="race-1")
    drain(app, iid)
    assert app.result(iid) == [1, 300]
    loser = app.get_instance("race-1/1")
    assert loser["status"] == "cancelled"
    assert "no longer waits" in (loser["cancel_reason"] or "")


def test_cancelling_a_parent_cancels_its_running_child(app: App) -> None:
    iid = app.start(ch_parent_of_waiter, instance_id="p-1")
    app.run_due()  # the child runs to its WaitEvent
    assert app.get_instance("p-1/1")["status"] == "waiting_for_event"
    assert app.cancel(iid, reason="stop all")
    drain(app, "p-1/1")
    assert app.get_instance(iid)["status"] == "cancelled"
    assert app.get_instance("p-1/1")["status"] == "cancelled"


def test_a_cancelled_child_fails_its_parent_with_child_workflow_failed(app: App) -> None:
    iid = app.start(ch_parent_of_waiter, instance_id="p-2")
    app.run_due()
    assert app.cancel("p-2/1", reason="not needed")
    drain(app, iid)
    info = app.get_instance(iid)
    assert info["status"] == "failed"
    assert info["error"]["type"] == "eddic.kernel.errors.ChildWorkflowFailed"
    assert "eddic.Cancelled: not needed" in info["error"]["message"]


def test_a_serving_worker_runs_children_and_wakes_the_parent(app: App) -> None:
    worker = threading.Thread(target=app.serve, kwargs={"threads": 4}, daemon=True)
    worker.start()
    try:
        iid = app.submit(ch_order, ["a", "bb", "ccc"])
        assert app.wait(iid, timeout=20) == ["a:100", "bb:200", "ccc:300"]
    finally:
        app.stop()
        worker.join(10)


def test_reserved_event_types_are_refused_to_senders(app: App) -> None:
    with pytest.raises(ValueError, match="eddic's own"):
        app.send_event("eddic.child.1", {"status": "completed"})


def test_eddic_show_names_the_parent_and_the_children_with_their_results(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    from eddic.cli import main

    iid = app.start(ch_order, ["tea"], instance_id="shown")
    drain(app, iid)
    capsys.readouterr()
    assert main(["show", "shown/1", "--db", app.storage.db_url]) == 0
    fields = {line[:10].strip(): line[10:] for line in capsys.readouterr().out.splitlines()}
    assert fields["parent"] == "shown"
    assert main(["show", "shown", "--db", app.storage.db_url]) == 0
    out = capsys.readouterr().out
    assert 'ch_pack("tea") as "shown/1"' in out and "completed" in out
    assert '-> {"name": "tea", "grams": 300}' in out


def test_a_fan_in_takes_the_outcomes_that_are_in_in_one_step(app: App) -> None:
    iid = app.start(ch_order, [f"n{i}" for i in range(20)], instance_id="fan-in")
    children = [f"fan-in/{seq}" for seq in range(1, 21)]
    for child in children:  # every child finishes first (they are claimed oldest first)
        app.retry(child)
    assert {app.get_instance(c)["status"] for c in children} == {"completed"}
    steps: list[int] = []
    real = app.storage.commit_step

    def counted(step, now):  # type: ignore[no-untyped-def]
        if step.instance_id == iid:
            steps.append(len(step.history))
        return real(step, now)

    app.storage.commit_step = counted  # type: ignore[method-assign]
    try:
        drain(app, iid)
    finally:
        app.storage.commit_step = real  # type: ignore[method-assign]
    assert app.result(iid)[:2] == ["n0:200", "n1:200"]
    assert steps == [20], steps  # all 20 outcomes in one commit, not 20 commits
