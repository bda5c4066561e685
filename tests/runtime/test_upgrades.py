"""Versioning (design §9) on both backends: instances recorded by the old code, the code changed
under them, ``eddic check`` naming the seq and proposing the ``ctx.patched`` guard, the guarded
code deployed (old instances take the old path, new ones the new), then the guard removed
under ``ctx.deprecate_patch``."""

from __future__ import annotations

import pytest

from eddic import App, WaitEvent, WorkflowContext, activity, workflow
from eddic.cli import main

pytestmark = pytest.mark.both_backends

sent: list[str] = []


@activity(name="vr_charge")
def vr_charge(order: str) -> str:
    sent.append(f"charge {order}")
    return order


@activity(name="vr_receipt")
def vr_receipt(order: str) -> str:
    sent.append(f"receipt {order}")
    return order


@activity(name="vr_ship")
def vr_ship(order: str) -> str:
    sent.append(f"ship {order}")
    return order


def test_a_guarded_change_keeps_old_instances_on_their_path(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    sent.clear()

    @workflow(name="vr_fulfil")
    def fulfil(ctx: WorkflowContext, order: str) -> str:  # version 1
        yield vr_charge(order)
        yield WaitEvent("vr.packed")
        yield vr_ship(order)
        return "v1"

    old = app.start(fulfil, "old", instance_id="vr-old")
    assert app.get_instance(old)["status"] == "waiting_for_event"

    @workflow(name="vr_fulfil")
    def fulfil(ctx: WorkflowContext, order: str) -> str:
        yield vr_charge(order)
        yield vr_receipt(order)
        yield WaitEvent("vr.packed")
        yield vr_ship(order)
        return "v2"

    capsys.readouterr()
    assert main(["check", old, "--db", app.storage.db_url]) == 1  # a divergence
    report = capsys.readouterr().out
    assert "diverges at seq 2" in report and "ctx.patched('vr_receipt-v2')" in report

    @workflow(name="vr_fulfil")
    def fulfil(ctx: WorkflowContext, order: str) -> str:
        yield vr_charge(order)
        if ctx.patched("send-receipt"):
            yield vr_receipt(order)
        yield WaitEvent("vr.packed")
        yield vr_ship(order)
        return "v2"

    assert main(["check", old, "--db", app.storage.db_url]) == 0
    app._cache.clear()  # a deploy: a new process, which replays the old instance with the new code
    new = app.start(fulfil, "new", instance_id="vr-new")
    for iid in (old, new):
        app.send_event("vr.packed", instance_id=iid)
        assert app.result(iid) == "v2"
    assert sent == ["charge old", "charge new", "receipt new", "ship old", "ship new"]
    markers = [h for h in app.history(new) if h["kind"] == "marker"]
    assert [(m["seq"], m["name"]) for m in markers] == [(0, "send-receipt")]

    @workflow(name="vr_fulfil")
    def fulfil(ctx: WorkflowContext, order: str) -> str:
        ctx.deprecate_patch("send-receipt")
        yield vr_charge(order)
        yield vr_receipt(order)
        yield WaitEvent("vr.packed")
        yield vr_ship(order)
        return "v3"

    replay = app.replay(new)
    replay.steps()
    assert replay.divergence is None  # its marker is skipped
