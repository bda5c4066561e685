"""``async def`` workflows written as such (not twins): every command is awaitable and awaits to
its value, ``try/except`` works around ``await``, combinators and ContinueAsNew are awaited like
any command, anything else awaited is a ``TypeError`` thrown in at the ``await``, and a replay
reaches the same point."""

from __future__ import annotations

import asyncio
from typing import Any

from kernel_histories import activity, at, done, event, failed, replayed, timer

from eddic.kernel import (
    ActivityFailed,
    ActivityRef,
    All,
    CallActivity,
    Cancel,
    Cancelled,
    ContinueAsNew,
    First,
    Interpreter,
    Phase,
    Resolved,
    Scheduled,
    Sleep,
    WaitEvent,
)

CHARGE = ActivityRef("charge", compensation="refund")


async def order(ctx: Any, amount: int) -> Any:
    receipt = await CallActivity(CHARGE, amount)
    try:
        await CallActivity(ActivityRef("ship"), receipt)
    except ActivityFailed as exc:
        return f"not shipped: {exc.message}"
    winner, _ = await First(WaitEvent("paid"), Sleep(60))
    both = await All(CallActivity(ActivityRef("a")), CallActivity(ActivityRef("b")))
    return [receipt, winner, both]


HISTORY = [
    activity(1, "charge", 5),
    done(1, "r-5", t=1),
    activity(2, "ship", "r-5", t=1),
    done(2, t=2),
    event(3, "paid", t=2),
    timer(4, 60, t=2),
    Resolved(4, at(62)),
    activity(5, "a", t=62),
    activity(6, "b", t=62),
    done(6, "B", t=63),
    done(5, "A", t=64),
]


def test_an_async_workflow_replays_to_its_result() -> None:
    interp = replayed(order, HISTORY, input=5)
    assert interp.phase is Phase.COMPLETED
    assert interp.result == ["r-5", 1, ["A", "B"]]


def test_try_except_around_await_catches_a_recorded_failure() -> None:
    history = [*HISTORY[:3], failed(2, message="no stock", t=2)]
    interp = replayed(order, history, input=5)
    assert interp.result == "not shipped: no stock"


def test_awaiting_anything_but_a_command_throws_a_type_error_in_at_the_await() -> None:
    async def impatient(ctx: Any) -> Any:
        try:
            await asyncio.sleep(0)  # an asyncio awaitable: never replayed, refused
        except TypeError as exc:
            return str(exc)
        return "slept"

    interp = Interpreter(impatient, instance_id="i", started_at=at(0))
    assert interp.decide() == []
    assert "not an eddic command" in interp.result and "use Sleep" in interp.result


def test_an_async_workflow_catches_cancelled_and_continues_as_new() -> None:
    async def monitor(ctx: Any, n: int) -> Any:
        try:
            await Sleep(10)
        except Cancelled:
            await ContinueAsNew(n + 1)
        return n

    interp = Interpreter(monitor, 1, instance_id="m", started_at=at(0))
    interp.decide()
    interp.feed(Cancel(at(1), "restart"))
    records = interp.decide()
    assert [r.kind for r in records if isinstance(r, Scheduled)] == ["continue"]
    assert interp.phase is Phase.CONTINUED and interp.continue_input == 2


def test_a_divergence_in_an_async_workflow_names_the_seq() -> None:
    async def changed(ctx: Any, amount: int) -> Any:
        await CallActivity(ActivityRef("refund"), amount)  # history recorded charge here

    interp = Interpreter(changed, 5, instance_id="o", started_at=at(0))
    try:
        interp.replay([activity(1, "charge", 5)])
    except Exception as exc:
        assert "seq 1" in str(exc) and "charge" in str(exc)
    else:
        raise AssertionError("no divergence")
