"""Workflows the viewer's tests look at: a saga waiting on an event after two compensable steps,
one that fails, and one that publishes to an outbox sink that refuses it."""

from __future__ import annotations

from typing import Any

from eddic import (
    CallWorkflow,
    ContinueAsNew,
    Publish,
    RetryPolicy,
    WaitEvent,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)

HOSTILE_ID = "<script>alert('x')</script>&\x1b[31m\u202e?#/%2F\"'"


@compensation
def view_release(order_id: str, result: Any = None) -> None:
    pass


@compensation
def view_refund(order_id: str, amount: int, result: Any = None) -> None:
    pass


@activity
@on_failure(view_release)
def view_reserve(order_id: str) -> dict[str, str]:
    return {"reservation": f"R-{order_id}"}


@activity
@on_failure(view_refund)
def view_charge(order_id: str, amount: int) -> dict[str, int]:
    return {"charged": amount}


@activity(retry=RetryPolicy(max_attempts=1))
def view_explode(order_id: str) -> None:
    raise RuntimeError(f"carrier down for <b>{order_id}</b>")


@workflow
def view_order(ctx: WorkflowContext, order_id: str) -> str:
    reservation = yield view_reserve(order_id)
    note = "x" * 500  # a long local, truncated when shown
    charge = yield view_charge(order_id, 42)
    ctx.set_status({"step": "awaiting payment", "charged": charge["charged"]})
    payment = yield WaitEvent("payment.confirmed", timeout=3600)
    return f"{reservation['reservation']}:{payment.data}:{len(note)}"


@workflow
def view_failing(ctx: WorkflowContext, order_id: str) -> None:
    yield view_reserve(order_id)
    yield view_explode(order_id)


@workflow
def view_publisher(ctx: WorkflowContext, order_id: str) -> str:
    yield Publish("order.placed", {"order_id": order_id})
    return "published"


@workflow
def view_parent(ctx: WorkflowContext, order_id: str) -> str:
    child = f"{order_id}-child"
    return (yield CallWorkflow(view_order, child, instance_id=child))


class Halt(BaseException):
    """A BaseException of the user's own: the step that raises it parks the instance."""


poison = {"on": False}


@workflow
def view_parks(ctx: WorkflowContext, order_id: str) -> str:
    if poison["on"]:
        raise Halt("a poisoned step")
    yield view_reserve(order_id)
    return "ok"


@workflow
def view_order_changed(ctx: WorkflowContext, order_id: str) -> str:
    """view_order as a later deploy changed it: the charge now comes before the reservation."""
    charge = yield view_charge(order_id, 42)
    reservation = yield view_reserve(order_id)
    payment = yield WaitEvent("payment.confirmed", timeout=3600)
    return f"{reservation['reservation']}:{payment.data}:{charge}"


@workflow
def view_rounds(ctx: WorkflowContext, rounds: int) -> int:
    """Continues as new until ``rounds`` is 0, one activity per run, then waits for an event."""
    if rounds == 0:
        yield WaitEvent("rounds.done", timeout=3600)
        return 0
    yield view_reserve(f"round-{rounds}")
    yield ContinueAsNew(rounds - 1)
    return -1
