"""Activities shared by the debugging tests' workflow modules (imported by name, via sys.path)."""

from __future__ import annotations

from pydantic import BaseModel

from eddic import ActivityContext, activity, compensation, on_failure

#: What ran in this process, in order: replay must add nothing here.
CALLS: list[str] = []


class Reservation(BaseModel):
    order_id: str
    code: str


class DbgOrder(BaseModel):
    order_id: str
    amount: int = 10


@compensation
def dbg_release(ctx: ActivityContext, order_id: str) -> None:
    CALLS.append(f"release {order_id}")


@activity
@on_failure(dbg_release)
def dbg_reserve(ctx: ActivityContext, order_id: str) -> Reservation:
    CALLS.append(f"reserve {order_id}")
    return Reservation(order_id=order_id, code=f"R-{order_id}")


@activity
def dbg_charge(order_id: str, amount: int) -> str:
    CALLS.append(f"charge {order_id} {amount}")
    if amount < 0:
        raise ValueError(f"card declined for {order_id}")
    return f"receipt-{order_id}"


@activity
def dbg_ship(order_id: str, parcel: int) -> str:
    CALLS.append(f"ship {order_id} #{parcel}")
    return f"{order_id}/{parcel}"
