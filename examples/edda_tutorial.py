"""Edda's tutorial "Your First Workflow", Steps 1-4, verbatim, running on eddic.

    python examples/edda_tutorial.py                  # Step 5: the happy path
    python examples/edda_tutorial.py --fail-shipping  # Step 6: shipping fails, refund, cancel

Between the `# ===== Step N` markers is the tutorial's code, byte for byte, except its four
import lines, each of which imports from `eddic.compat.edda` instead of `edda` (and says so in a
comment on the line):

    from edda import activity, on_failure, compensation, WorkflowContext        (Step 2)
    from edda.outbox.transactional import send_event_transactional              (Step 2)
    from edda import workflow                                                   (Step 3)
    from edda import EddaApp                                                    (Step 4)

Not the tutorial's: this docstring, the pragmas and `import sys` below, the marker comments,
and the `--fail-shipping` block after Step 2, which is Step 6's modified `ship_order` (the
tutorial's lines, indented one level under the switch). Like the tutorial, it writes
`orders.db` in the working directory; with `--fail-shipping` it ends with the workflow's
exception and its traceback (exit status 1), as the tutorial's Step 6 shows.
"""

# The tutorial's code is kept as the tutorial wrote it: not reformatted, not linted for style.
# fmt: off
# ruff: noqa: E402, E501, F541, I001

import sys

# ===== Step 1: Define Data Models ===============================================================

from pydantic import BaseModel, Field

class OrderItem(BaseModel):
    """A single item in an order"""
    product_id: str
    quantity: int = Field(..., ge=1)  # At least 1
    unit_price: float = Field(..., gt=0)  # Positive price

class ShippingAddress(BaseModel):
    """Customer shipping address"""
    street: str
    city: str
    postal_code: str
    country: str

class OrderInput(BaseModel):
    """Input for order processing workflow"""
    order_id: str = Field(..., pattern=r"^ORD-\d+$")  # e.g., ORD-123
    customer_email: str = Field(..., pattern=r"^[^@]+@[^@]+\.[^@]+$")
    items: list[OrderItem]
    shipping_address: ShippingAddress

class OrderResult(BaseModel):
    """Result of order processing"""
    order_id: str
    status: str
    total_amount: float
    confirmation_number: str

# ===== Step 2: Create Activities ================================================================

from eddic.compat.edda import activity, on_failure, compensation, WorkflowContext  # changed: was `from edda import ...`
from eddic.compat.edda import send_event_transactional  # changed: was `from edda.outbox.transactional import ...`

# Compensation functions
@compensation
async def cancel_inventory_reservation(
    ctx: WorkflowContext,
    order_id: str,
    items: list[OrderItem]
) -> dict:
    """Compensation: Release reserved inventory"""
    print(f"❌ Cancelling inventory reservation for {order_id}")

    await send_event_transactional(
        ctx,
        event_type="inventory.cancelled",
        event_source="order-service",
        event_data={"order_id": order_id}
    )

    return {"cancelled": True}

@compensation
async def refund_payment(
    ctx: WorkflowContext,
    order_id: str,
    amount: float,
    customer_email: str
) -> dict:
    """Compensation: Refund payment"""
    print(f"❌ Refunding payment for {order_id}: ${amount:.2f}")

    await send_event_transactional(
        ctx,
        event_type="payment.refunded",
        event_source="order-service",
        event_data={
            "order_id": order_id,
            "amount": amount
        }
    )

    return {"refunded": True}

# Activities with compensation links
@activity
@on_failure(cancel_inventory_reservation)
async def reserve_inventory(
    ctx: WorkflowContext,
    order_id: str,
    items: list[OrderItem]
) -> dict:
    """Reserve inventory for all items"""
    total = sum(item.quantity * item.unit_price for item in items)

    print(f"📦 Reserving inventory for {order_id}: ${total:.2f}")

    # Publish event
    await send_event_transactional(
        ctx,
        event_type="inventory.reserved",
        event_source="order-service",
        event_data={
            "order_id": order_id,
            "total_amount": total,
            "item_count": len(items)
        }
    )

    return {
        "reservation_id": f"RES-{order_id}",
        "total_amount": total
    }

@activity
@on_failure(refund_payment)
async def process_payment(
    ctx: WorkflowContext,
    order_id: str,
    amount: float,
    customer_email: str
) -> dict:
    """Process customer payment"""
    print(f"💳 Processing payment for {order_id}: ${amount:.2f}")

    # Publish event
    await send_event_transactional(
        ctx,
        event_type="payment.processed",
        event_source="order-service",
        event_data={
            "order_id": order_id,
            "amount": amount,
            "customer_email": customer_email
        }
    )

    return {
        "transaction_id": f"TXN-{order_id}",
        "amount": amount,
        "status": "completed"
    }

# Activity 3: Ship Order
@activity
async def ship_order(
    ctx: WorkflowContext,
    order_id: str,
    address: ShippingAddress
) -> dict:
    """Ship order to customer"""
    print(f"🚚 Shipping {order_id} to {address.city}, {address.country}")

    # Publish event
    await send_event_transactional(
        ctx,
        event_type="order.shipped",
        event_source="order-service",
        event_data={
            "order_id": order_id,
            "destination": f"{address.city}, {address.country}"
        }
    )

    return {
        "tracking_number": f"TRACK-{order_id}",
        "status": "shipped"
    }

# ===== not the tutorial's: Step 6 ("Modify ship_order to fail"), with --fail-shipping ===========

if "--fail-shipping" in sys.argv:
    @activity
    async def ship_order(
        ctx: WorkflowContext,
        order_id: str,
        address: ShippingAddress
    ) -> dict:
        """Ship order to customer"""
        print(f"🚚 Shipping {order_id} to {address.city}, {address.country}")

        # Simulate shipping failure
        raise Exception("Shipping service unavailable!")

        # ... rest of the function

# ===== Step 3: Create the Workflow ==============================================================

from eddic.compat.edda import workflow  # changed: was `from edda import workflow`

@workflow
async def order_processing_workflow(
    ctx: WorkflowContext,
    input: OrderInput
) -> OrderResult:
    """
    Complete order processing workflow with Saga pattern.

    Steps:
    1. Reserve inventory (with cancellation compensation)
    2. Process payment (with refund compensation)
    3. Ship order

    If any step fails, all previous steps are automatically compensated
    in reverse order.
    """

    # Step 1: Reserve inventory
    reservation = await reserve_inventory(
        ctx,
        input.order_id,
        input.items
    )

    # Step 2: Process payment
    payment = await process_payment(
        ctx,
        input.order_id,
        reservation["total_amount"],
        input.customer_email
    )

    # Step 3: Ship order
    shipment = await ship_order(
        ctx,
        input.order_id,
        input.shipping_address
    )

    # Success! Return result
    return OrderResult(
        order_id=input.order_id,
        status="completed",
        total_amount=payment["amount"],
        confirmation_number=shipment["tracking_number"]
    )

# ===== Step 4: Run the Workflow =================================================================

import asyncio
from eddic.compat.edda import EddaApp  # changed: was `from edda import EddaApp`

async def main():
    # Create Edda app
    app = EddaApp(
        db_url="sqlite:///orders.db",
        service_name="order-service",
        outbox_enabled=True  # Enable transactional outbox
    )

    # Initialize the app (required before starting workflows)
    await app.initialize()

    try:
        # Create order input
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
                country="Japan"
            )
        )

        # Start workflow
        print("Starting order processing workflow...")
        instance_id = await order_processing_workflow.start(input=order)

        print(f"\n✅ Workflow started: {instance_id}")

        # Get result
        instance = await app.storage.get_instance(instance_id)
        if instance["status"] == "completed":
            result = instance["output_data"]
            print(f"📊 Order completed:")
            print(f"   - Order ID: {result['order_id']}")
            print(f"   - Total: ${result['total_amount']:.2f}")
            print(f"   - Tracking: {result['confirmation_number']}")

    finally:
        await app.shutdown()

if __name__ == "__main__":
    asyncio.run(main())
