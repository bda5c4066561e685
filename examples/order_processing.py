"""The order-processing saga of the tutorial "Your First Workflow", in eddic.

    python examples/order_processing.py                  # happy path
    python examples/order_processing.py --fail-shipping  # shipping fails: refund, then cancel

Reserve inventory, process the payment, ship the order, publishing an event at each step through
the transactional outbox; when shipping fails, the payment is refunded and the reservation
cancelled, in reverse order, automatically.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from pydantic import BaseModel, Field

from eddic import (
    ActivityContext,
    ActivityFailed,
    App,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)

FAIL_SHIPPING = False  # set by --fail-shipping


# -- Step 1: data models ---------------------------------------------------------------------------


class OrderItem(BaseModel):
    """A single item in an order"""

    product_id: str
    quantity: int = Field(..., ge=1)
    unit_price: float = Field(..., gt=0)


class ShippingAddress(BaseModel):
    """Customer shipping address"""

    street: str
    city: str
    postal_code: str
    country: str


class OrderInput(BaseModel):
    """Input for order processing workflow"""

    order_id: str = Field(..., pattern=r"^ORD-\d+$")
    customer_email: str = Field(..., pattern=r"^[^@]+@[^@]+\.[^@]+$")
    items: list[OrderItem]
    shipping_address: ShippingAddress


class OrderResult(BaseModel):
    """Result of order processing"""

    order_id: str
    status: str
    total_amount: float
    confirmation_number: str


# -- Step 2: activities and their compensations ----------------------------------------------------


@compensation
def cancel_inventory_reservation(
    ctx: ActivityContext, order_id: str, items: list[OrderItem]
) -> dict[str, bool]:
    """Compensation: release reserved inventory"""
    print(f"❌ Cancelling inventory reservation for {order_id}")
    ctx.publish("inventory.cancelled", data={"order_id": order_id})
    return {"cancelled": True}


@compensation
def refund_payment(
    ctx: ActivityContext, order_id: str, amount: float, customer_email: str
) -> dict[str, bool]:
    """Compensation: refund payment"""
    print(f"❌ Refunding payment for {order_id}: ${amount:.2f}")
    ctx.publish("payment.refunded", data={"order_id": order_id, "amount": amount})
    return {"refunded": True}


@activity
@on_failure(cancel_inventory_reservation)
def reserve_inventory(
    ctx: ActivityContext, order_id: str, items: list[OrderItem]
) -> dict[str, object]:
    """Reserve inventory for all items"""
    total = sum(item.quantity * item.unit_price for item in items)
    print(f"📦 Reserving inventory for {order_id}: ${total:.2f}")
    ctx.publish(
        "inventory.reserved",
        data={"order_id": order_id, "total_amount": total, "item_count": len(items)},
    )
    return {"reservation_id": f"RES-{order_id}", "total_amount": total}


@activity
@on_failure(refund_payment)
def process_payment(
    ctx: ActivityContext, order_id: str, amount: float, customer_email: str
) -> dict[str, object]:
    """Process customer payment (pass ctx.idempotency_key to a real payment API)"""
    print(f"💳 Processing payment for {order_id}: ${amount:.2f}")
    ctx.publish(
        "payment.processed",
        data={"order_id": order_id, "amount": amount, "customer_email": customer_email},
    )
    return {"transaction_id": f"TXN-{order_id}", "amount": amount, "status": "completed"}


@activity
def ship_order(ctx: ActivityContext, order_id: str, address: ShippingAddress) -> dict[str, str]:
    """Ship order to customer"""
    print(f"🚚 Shipping {order_id} to {address.city}, {address.country}")
    if FAIL_SHIPPING:
        raise Exception("Shipping service unavailable!")
    ctx.publish(
        "order.shipped",
        data={"order_id": order_id, "destination": f"{address.city}, {address.country}"},
    )
    return {"tracking_number": f"TRACK-{order_id}", "status": "shipped"}


# -- Step 3: the workflow --------------------------------------------------------------------------


@workflow
def order_processing_workflow(ctx: WorkflowContext, input: OrderInput):  # type: ignore[no-untyped-def]
    """Reserve, pay, ship. If a step fails, the completed ones are compensated in reverse order."""
    reservation = yield reserve_inventory(input.order_id, input.items)
    payment = yield process_payment(
        input.order_id, reservation["total_amount"], input.customer_email
    )
    try:
        shipment = yield ship_order(input.order_id, input.shipping_address)
    except ActivityFailed as failure:
        if not ctx.is_replaying:
            print(f"💥 {failure.type}: {failure.message}")
        raise
    return OrderResult(
        order_id=input.order_id,
        status="completed",
        total_amount=payment["amount"],
        confirmation_number=shipment["tracking_number"],
    )


# -- Step 4: run it --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global FAIL_SHIPPING
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail-shipping", action="store_true", help="make shipping fail")
    parser.add_argument("--db", default=None, help="database URL (default: a fresh temporary file)")
    args = parser.parse_args(argv)
    FAIL_SHIPPING = args.fail_shipping

    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.db or f"sqlite:///{os.path.join(tmp, 'orders.db')}"
        with App(db_url=db_url, service_name="order-service", outbox_enabled=True) as app:
            order = OrderInput(
                order_id="ORD-12345",
                customer_email="customer@example.com",
                items=[
                    OrderItem(product_id="PROD-1", quantity=2, unit_price=29.99),
                    OrderItem(product_id="PROD-2", quantity=1, unit_price=49.99),
                ],
                shipping_address=ShippingAddress(
                    street="1-2-3 Dogenzaka",
                    city="Shibuya",
                    postal_code="150-0001",
                    country="Japan",
                ),
            )
            print("Starting order processing workflow...")
            instance_id = app.start(order_processing_workflow, input=order)
            instance = app.storage.get_instance(instance_id)
            if instance["status"] == "completed":
                print(f"\n✅ Workflow started: {instance_id}")
                result = instance["output_data"]
                print("📊 Order completed:")
                print(f" - Order ID: {result['order_id']}")
                print(f" - Total: ${result['total_amount']:.2f}")
                print(f" - Tracking: {result['confirmation_number']}")
                return 0
            print(instance["error"]["traceback"], end="", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
