"""``ctx.set_status`` (design §9), on both backends: the last value set is instance state
(``get_instance()["custom_status"]``, ``eddic show``), stored with the next step and never in
history; it survives a replay in another App; a value that cannot be stored is refused at the
call."""

from __future__ import annotations

import pytest

from eddic import App, WaitEvent, WorkflowContext, activity, workflow

pytestmark = pytest.mark.both_backends


@activity(name="st_pack")
def st_pack(order: str) -> str:
    return f"parcel of {order}"


@workflow(name="st_order")
def st_order(ctx: WorkflowContext, order: str) -> str:
    ctx.set_status({"stage": "packing", "order": order})
    parcel = yield st_pack(order)
    ctx.set_status({"stage": "awaiting pickup"})
    yield WaitEvent("st.picked")
    ctx.set_status("shipped")
    return parcel


def test_the_last_status_set_is_stored_with_the_next_step_and_not_in_history(app: App) -> None:
    iid = app.start(st_order, "A1")
    assert app.get_instance(iid)["custom_status"] == {"stage": "awaiting pickup"}
    assert all("status" not in str(h["args"]) for h in app.history(iid))
    with App(db_url=app.storage.db_url, service_name="tests") as other:  # replays, then goes on
        other.send_event("st.picked", instance_id=iid)
        assert other.result(iid) == "parcel of A1"
        assert other.get_instance(iid)["custom_status"] == "shipped"


def test_eddic_show_prints_the_custom_status(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    from eddic.cli import main

    iid = app.start(st_order, "B2", instance_id="st-shown")
    capsys.readouterr()
    assert main(["show", iid, "--db", app.storage.db_url]) == 0
    fields = {line[:10].strip(): line[10:] for line in capsys.readouterr().out.splitlines()}
    assert fields["custom"] == '{"stage": "awaiting pickup"}'


@workflow(name="st_bad")
def st_bad(ctx: WorkflowContext) -> str:
    try:
        ctx.set_status(object())
    except TypeError as exc:
        return f"refused: {'set_status' in str(exc)}"
    return "stored"
    yield  # a generator


def test_a_status_that_cannot_be_stored_is_refused_at_the_call(app: App) -> None:
    iid = app.start(st_bad)
    assert app.result(iid) == "refused: True"
    assert app.get_instance(iid)["custom_status"] is None
