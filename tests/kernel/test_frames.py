"""``Interpreter.frames()``: where the suspended workflow stands, with its local variables."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import pytest

from eddic.kernel import ActivityRef, CallActivity, Frame, Interpreter, Phase, Resolved, Sleep

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
HERE = __file__
LINES = Path(__file__).read_text().splitlines()
FETCH = ActivityRef("fetch")


def line_of(marker: str) -> int:
    """The line of this file that carries ``# <marker>``."""
    (number,) = [i for i, text in enumerate(LINES, 1) if text.endswith(f"# {marker}")]
    return number


def simple(ctx, order_id):
    total = 3
    fetched = yield CallActivity(FETCH, order_id)  # simple-fetch
    total += 1
    yield Sleep(5)  # simple-sleep
    return (fetched, total)


def helper(ctx, n):
    inner = n * 2
    got = yield CallActivity(FETCH, inner)  # helper-fetch
    return got


def delegating(ctx, n):
    outer = n + 1
    got = yield from helper(ctx, outer)  # delegating-yield-from
    yield Sleep(1)  # delegating-sleep
    return got


async def async_helper(n):
    inner = n * 3
    return await CallActivity(FETCH, inner)  # async-helper-await


async def async_workflow(ctx, n):
    outer = n + 1
    got = await async_helper(outer)  # async-workflow-await
    await Sleep(1)  # async-workflow-sleep
    return got


def raising(ctx):
    yield CallActivity(ActivityRef("reserve", compensation="release"))
    raise RuntimeError("stop")


def started(workflow, input=None) -> Interpreter:
    interp = Interpreter(workflow, input, instance_id="i-1", started_at=T0)
    interp.decide()
    return interp


def where(frames: tuple[Frame, ...]) -> list[tuple[str, int]]:
    return [(frame.function, frame.lineno) for frame in frames]


def test_empty_before_the_code_starts():
    interp = Interpreter(simple, "o1", instance_id="i-1", started_at=T0)

    assert interp.frames() == ()


def test_the_locals_at_a_yield_and_then_at_the_next():
    interp = started(simple, "o1")

    (frame,) = interp.frames()
    assert (frame.function, frame.filename, frame.lineno) == (
        "simple",
        HERE,
        line_of("simple-fetch"),
    )
    assert set(frame.locals) == {"ctx", "order_id", "total"}  # `fetched` is not assigned yet
    assert frame.locals["ctx"] is interp.context
    assert (frame.locals["order_id"], frame.locals["total"]) == ("o1", 3)

    interp.feed(Resolved(1, T0, "F"))

    (after,) = interp.frames()
    assert after.lineno == line_of("simple-sleep")
    assert (after.locals["fetched"], after.locals["total"]) == ("F", 4)


def test_the_locals_are_a_snapshot_not_the_live_frame():
    interp = started(simple, "o1")
    (before,) = interp.frames()

    interp.feed(Resolved(1, T0, "F"))
    interp.frames()  # (on CPython < 3.13, reading f_locals again refreshes the frame's dict)

    assert "fetched" not in before.locals
    assert before.locals["total"] == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.lineno = 1  # type: ignore[misc]


def test_a_yield_from_helper_is_a_frame_below_the_workflows():
    interp = started(delegating, 4)

    outer, inner = interp.frames()

    assert where((outer, inner)) == [
        ("delegating", line_of("delegating-yield-from")),
        ("helper", line_of("helper-fetch")),
    ]
    assert outer.locals["outer"] == 5
    assert {k: v for k, v in inner.locals.items() if k != "ctx"} == {"n": 5, "inner": 10}

    interp.feed(Resolved(1, T0, "G"))

    (only,) = interp.frames()  # the helper has returned
    assert where((only,)) == [("delegating", line_of("delegating-sleep"))]
    assert only.locals["got"] == "G"


def test_an_async_workflow_awaiting_a_helper_coroutine_shows_both_and_no_eddic_frame():
    interp = started(async_workflow, 4)

    frames = interp.frames()

    # the innermost await is the command's own __await__ (eddic's code): left out
    assert where(frames) == [
        ("async_workflow", line_of("async-workflow-await")),
        ("async_helper", line_of("async-helper-await")),
    ]
    assert all(frame.filename == HERE for frame in frames)
    assert frames[0].locals["outer"] == 5
    assert frames[1].locals == {"n": 5, "inner": 15}

    interp.feed(Resolved(1, T0, "H"))

    (only,) = interp.frames()
    assert where((only,)) == [("async_workflow", line_of("async-workflow-sleep"))]
    assert only.locals["got"] == "H"


@pytest.mark.parametrize("workflow", [simple, delegating, async_workflow])
def test_empty_once_the_code_has_returned(workflow):
    interp = started(workflow, 1)
    interp.feed(Resolved(1, T0, "x"))
    interp.decide()
    interp.feed(Resolved(2, T0, None))

    assert interp.phase is Phase.COMPLETED
    assert interp.frames() == ()


def test_empty_once_the_code_has_raised_while_its_compensations_run():
    interp = started(raising)
    assert len(interp.frames()) == 1

    interp.feed(Resolved(1, T0, "r"))

    assert interp.phase is Phase.COMPENSATING
    assert interp.frames() == ()
