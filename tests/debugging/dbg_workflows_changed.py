"""``dbg_order`` after a careless code change: it now charges before the 30-second sleep.

Imported only by the ``eddic`` subprocesses of the CLI tests (never beside ``dbg_workflows``,
which registers the same workflow name), to play the code that is about to be deployed.
"""

from __future__ import annotations

from typing import Any

from dbg_activities import DbgOrder, dbg_charge, dbg_reserve, dbg_ship

from eddic import All, First, Publish, Sleep, WaitEvent, WorkflowContext, workflow


@workflow
def dbg_order(ctx: WorkflowContext, order: DbgOrder) -> dict[str, Any]:
    reservation = yield dbg_reserve(order.order_id)
    receipt = yield dbg_charge(order.order_id, order.amount)  # moved up: seq 2 is now an activity
    yield Sleep(30)
    yield WaitEvent("payment.confirmed", timeout=3600)
    yield Publish("order.charged", data={"order_id": order.order_id, "receipt": receipt})
    parcels = yield All(dbg_ship(order.order_id, 1), dbg_ship(order.order_id, 2))
    winner, _ = yield First(WaitEvent("order.cancelled"), Sleep(60))
    return {"code": reservation.code, "parcels": parcels, "cancelled": winner == 0}
