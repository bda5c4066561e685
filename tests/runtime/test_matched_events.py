"""``WaitEvent(..., match={...})`` (design §9), on both backends: a wait takes only an event
whose data holds the matching fields; the others stay in the mailbox for a later wait, first in
first out among the matching; a broadcast reaches only the waiting instances it matches; an
event no wait can take does not wake its instance over and over."""

from __future__ import annotations

import pytest

from eddic import App, WaitEvent, WorkflowContext, workflow

pytestmark = pytest.mark.both_backends


@workflow(name="me_order")
def me_order(ctx: WorkflowContext, order: str) -> list:
    first = yield WaitEvent("me.payment", match={"order": order})
    second = yield WaitEvent("me.payment", match={"order": order})
    other = yield WaitEvent("me.payment")
    return [first.data["n"], second.data["n"], other.data["n"]]


def test_a_targeted_wait_takes_the_matching_events_in_order_and_leaves_the_rest(
    app: App,
) -> None:
    iid = app.start(me_order, "A")
    for n, order in enumerate(["B", "A", "C", "A"], start=1):
        app.send_event("me.payment", {"order": order, "n": n}, instance_id=iid)
    # the two for A, oldest first; then the unmatched wait takes the oldest left (B's)
    assert app.result(iid) == [2, 4, 1]


@workflow(name="me_shipment")
def me_shipment(ctx: WorkflowContext, order: str) -> int:
    event = yield WaitEvent("me.shipped", match={"order": order})
    return int(event.data["parcel"])


def test_a_broadcast_is_taken_only_by_the_instances_it_matches(app: App) -> None:
    a = app.start(me_shipment, "A")
    b = app.start(me_shipment, "B")
    reached = app.send_event("me.shipped", {"order": "B", "parcel": 7})
    assert reached == [b]  # a broadcast does not reach a wait it does not match
    assert app.get_instance(a)["status"] == "waiting_for_event"
    assert app.storage.mailbox(a, ["me.shipped"]) == {}
    assert app.result(b) == 7
    app.send_event("me.shipped", {"order": "A", "parcel": 3})
    assert app.result(a) == 3


def test_an_event_no_wait_can_take_does_not_wake_its_instance_again_and_again(app: App) -> None:
    iid = app.start(me_shipment, "A")
    steps: list[int] = []
    real = app.storage.commit_step

    def counted(step, now):  # type: ignore[no-untyped-def]
        if step.instance_id == iid:
            steps.append(1)
        return real(step, now)

    app.storage.commit_step = counted  # type: ignore[method-assign]
    try:
        app.send_event("me.shipped", {"order": "Z", "parcel": 1}, instance_id=iid)
        for _ in range(3):
            app.run_due()
    finally:
        app.storage.commit_step = real  # type: ignore[method-assign]
    assert app.get_instance(iid)["status"] == "waiting_for_event"
    assert len(steps) <= 2, steps  # looked once (maybe twice), then left waiting


def test_a_bad_match_is_refused_where_the_command_is_made() -> None:
    for bad in ({}, {"": 1}, {1: 2}):
        with pytest.raises(ValueError, match="match"):
            WaitEvent("x", match=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="match"):
        WaitEvent("x", match=[("order", "A")])  # type: ignore[arg-type]
