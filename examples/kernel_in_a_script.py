"""Drive the eddic kernel alone: no database, no runtime, no clock, a hand-written history.

The kernel is sans-IO: you feed an ``Interpreter`` the recorded history of one workflow instance,
ask it what the workflow decides next, and do every piece of I/O yourself (run the activity,
arm the timer, wait for the event, store the records). This script plays all those parts by hand:

1. it replays a recorded history (the workflow code runs again; recorded outcomes are sent in),
2. it asks for the next decision and goes on live, feeding outcomes one at a time,
3. it replays the same history against changed code and gets a ``NonDeterminismError``,
4. it shows a failed payment thrown into the workflow, and the saga compensation that follows.

Run it with ``python examples/kernel_in_a_script.py``.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone

from eddic.kernel import (
    ActivityRef,
    CallActivity,
    EddicError,
    Event,
    Failure,
    Interpreter,
    NonDeterminismError,
    Record,
    Resolved,
    Scheduled,
    WaitEvent,
)

# Activities are named; the kernel never runs them, it only records that the workflow asked for
# them. ``compensation`` names the activity that undoes this one if the workflow later fails.
RESERVE = ActivityRef("reserve_stock", compensation="release_stock")
CHARGE = ActivityRef("charge_card", compensation="refund_card")
SHIP = ActivityRef("ship_parcel")


def order_workflow(ctx, order):
    """A workflow is a generator: it yields commands and receives their outcomes."""
    reservation = yield CallActivity(RESERVE, order["sku"], qty=order["qty"])
    receipt = yield CallActivity(CHARGE, order["customer"], amount=order["amount"])
    packed = yield WaitEvent("warehouse.packed", timeout=timedelta(hours=4))
    tracking = yield CallActivity(SHIP, packed.data["parcel"])
    return {"reservation": reservation, "receipt": receipt, "tracking": tracking}


def order_workflow_v2(ctx, order):
    """The same workflow after an edit that charges before reserving (never do this in place)."""
    receipt = yield CallActivity(CHARGE, order["customer"], amount=order["amount"])
    reservation = yield CallActivity(RESERVE, order["sku"], qty=order["qty"])
    return {"reservation": reservation, "receipt": receipt}


START = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
ORDER = {"sku": "MUG-1", "qty": 2, "customer": "cus_17", "amount": 24.0}


def t(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


# What a store would hold for this instance after two activities: each command the workflow
# yielded (Scheduled) and each outcome (Resolved), in the order they were appended.
HISTORY: list[Record] = [
    Scheduled(1, "activity", "reserve_stock", {"args": ("MUG-1",), "kwargs": {"qty": 2}}, t(0)),
    Resolved(1, t(1), "res-881"),
    Scheduled(
        2, "activity", "charge_card", {"args": ("cus_17",), "kwargs": {"amount": 24.0}}, t(1)
    ),
    Resolved(2, t(2), "ch_3PqX"),
]


def show(record: Record) -> str:
    if isinstance(record, Scheduled):
        deadline = f", deadline {record.deadline:%H:%M}" if record.deadline else ""
        return f"#{record.seq} scheduled {record.kind} {record.name!r} {record.args}{deadline}"
    if record.failure is not None:
        return f"#{record.seq} failed: {record.failure.type}: {record.failure.message}"
    value = record.value
    text = f"event {value.type!r} {value.data}" if isinstance(value, Event) else repr(value)
    return f"#{record.seq} resolved at {record.at:%H:%M} -> {text}"


def new_interpreter(workflow=order_workflow) -> Interpreter:
    return Interpreter(workflow, ORDER, instance_id="order-1001", started_at=START)


def replay_and_decide() -> None:
    print("== 1. Replaying a recorded history")
    interp = new_interpreter()
    for record in HISTORY:
        print("   ", show(record))
    interp.replay(HISTORY)
    print(
        f"    replayed {len(HISTORY)} records: phase={interp.phase.value}, now={interp.now:%H:%M}"
    )

    print("\n== 2. A new decision, then live outcomes")
    decisions = interp.decide()
    for record in decisions:
        print("    decided:", show(record))
    (waiting,) = interp.pending
    print(f"    the workflow now waits for {waiting.name!r} until {waiting.deadline:%H:%M}")

    # Live: the caller records each outcome, feeds it, and asks for the decisions it leads to.
    packed = Event("evt-51", "warehouse.packed", "warehouse", t(30), {"parcel": "PCL-9"})
    shipped = Resolved(4, t(35), "TRACK-123")  # the outcome of ship_parcel, decided below
    for outcome in (Resolved(3, t(30), packed), shipped):
        print("    fed:    ", show(outcome))
        interp.feed(outcome)
        for record in interp.decide():
            print("    decided:", show(record))
    print(f"    phase={interp.phase.value}, result={interp.result}")


def non_determinism() -> None:
    print("\n== 3. A non-determinism error: the code changed under a running instance")
    interp = new_interpreter(order_workflow_v2)
    try:
        interp.replay(HISTORY)
    except NonDeterminismError as error:
        print(f"    NonDeterminismError at seq {error.seq}:")
        print(f"      history recorded: {error.recorded}")
        print(f"      code yields now:  {error.current}")
        print(textwrap.fill(str(error), 96, initial_indent="      ", subsequent_indent="      "))
    try:
        interp.decide()
    except EddicError as refused:
        print(f"    phase={interp.phase.value}; decide() now refuses: {str(refused)[:50]}...")


def saga() -> None:
    print("\n== 4. A failed payment, thrown into the workflow, and its compensation")
    interp = new_interpreter()
    interp.replay(HISTORY[:3])  # reserve_stock done, charge_card scheduled
    declined = Resolved(2, t(2), failure=Failure("stripe.CardError", "card declined", attempts=3))
    print("    fed:    ", show(declined))
    interp.feed(declined)
    print(f"    the workflow raised {interp.error!r}")
    for record in interp.decide():
        print("    decided:", show(record), f"(phase={interp.phase.value})")
    interp.feed(Resolved(3, t(3), None))
    print(f"    release_stock done: phase={interp.phase.value}, nothing left: {interp.decide()}")


if __name__ == "__main__":
    replay_and_decide()
    non_determinism()
    saga()
