"""The order workflow the CLI tests record, inspect and replay (``--import dbg_workflows``).

Every kind of command in one workflow: an activity with a compensation, a timer, an event wait
with a timeout, a publish, an ``All`` and a ``First``.
"""

from __future__ import annotations

from typing import Any

from dbg_activities import DbgOrder, dbg_charge, dbg_reserve, dbg_ship

from eddic import All, First, Publish, Sleep, WaitEvent, WorkflowContext, workflow


@workflow
def dbg_order(ctx: WorkflowContext, order: DbgOrder) -> dict[str, Any]:
    reservation = yield dbg_reserve(order.order_id)
    yield Sleep(30)
    paid = yield WaitEvent("payment.confirmed", timeout=3600)
    receipt = yield dbg_charge(order.order_id, paid.data["amount"])
    yield Publish("order.charged", data={"order_id": order.order_id, "receipt": receipt})
    parcels = yield All(dbg_ship(order.order_id, 1), dbg_ship(order.order_id, 2))
    winner, _ = yield First(WaitEvent("order.cancelled"), Sleep(60))
    return {"code": reservation.code, "parcels": parcels, "cancelled": winner == 0}
