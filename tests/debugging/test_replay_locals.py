"""A replay of a stored instance shows the workflow's local variables at each yield, rendered
safely, and what the instance waits on and would compensate at the end of its history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eddic import (
    App,
    First,
    RetryPolicy,
    Sleep,
    WaitEvent,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.debug.replay import FrameView, Replay, Step
from eddic.debug.values import render
from eddic.testing import FrozenClock

LINES = Path(__file__).read_text().splitlines()


def line_of(marker: str) -> int:
    (number,) = [i for i, text in enumerate(LINES, 1) if text.endswith(f"# {marker}")]
    return number


class Hostile:
    """A value whose repr raises; anything else called on it would be recorded."""

    touched: list[str] = []  # noqa: RUF012

    def __repr__(self) -> str:
        raise TypeError("no repr for you")

    def __str__(self) -> str:
        Hostile.touched.append("str")
        return "hostile"

    def __len__(self) -> int:
        Hostile.touched.append("len")
        return 0


@compensation
def rl_release(order_id: str) -> None:
    pass


@activity
@on_failure(rl_release)
def rl_reserve(order_id: str) -> str:
    return f"res-{order_id}"


@compensation
def rl_refund(order_id: str, amount: int) -> None:
    pass


@activity
@on_failure(rl_refund)
def rl_charge(order_id: str, amount: int) -> str:
    return f"paid-{amount}"


def rl_split(order_id: str) -> Any:
    """A ``yield from`` helper."""
    part = order_id.upper()
    receipt = yield rl_charge(part, 7)  # helper-charge
    return receipt


@workflow
def rl_saga(ctx: WorkflowContext, order_id: str) -> str:
    note = "n" * 1000
    hostile = Hostile()
    reservation = yield rl_reserve(order_id)  # saga-reserve
    receipt = yield from rl_split(order_id)  # saga-split
    event = yield WaitEvent("rl.go")  # saga-wait
    return f"{reservation} {receipt} {event.data} {len(note)} {hostile is not None}"


@workflow
async def rl_async_saga(ctx: WorkflowContext, order_id: str) -> str:
    items = list(range(100))
    reservation = await rl_reserve(order_id)  # async-reserve
    receipt = await rl_async_split(order_id)  # async-split
    await Sleep(3600)  # async-sleep
    return f"{reservation} {receipt} {len(items)}"


async def rl_async_split(order_id: str) -> Any:
    part = order_id.upper()
    return await rl_charge(part, 7)  # async-helper-charge


@workflow
def rl_race(ctx: WorkflowContext, order_id: str) -> str:
    waited = 0
    index, event = yield First(WaitEvent("rl.a"), WaitEvent("rl.b"))  # race-first
    waited += 1
    yield WaitEvent("rl.c")  # race-after
    return f"{index} {event.data} {waited}"


attempts: list[str] = []


@compensation(retry=RetryPolicy(max_attempts=3, initial_interval=3600))
def rl_slow_undo(order_id: str) -> None:
    attempts.append(order_id)
    raise OSError("undo service down")


@activity
@on_failure(rl_slow_undo)
def rl_book(order_id: str) -> str:
    return f"book-{order_id}"


@activity
def rl_explode(order_id: str) -> None:
    raise ValueError("out of stock")


@workflow
def rl_failing(ctx: WorkflowContext, order_id: str) -> None:
    yield rl_reserve(order_id)
    yield rl_book(order_id)
    yield rl_explode(order_id)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    with FrozenClock("2026-03-01T00:00:00Z"), App(db_url=f"sqlite:///{tmp_path / 'rl.db'}") as a:
        yield a


def replayed(app: App, instance_id: str) -> tuple[Replay, list[Step]]:
    replay = app.replay(instance_id)
    steps = list(replay)
    assert replay.divergence is None
    return replay, steps


def at(frames: tuple[FrameView, ...]) -> list[tuple[str, int]]:
    return [(f.function, f.lineno) for f in frames]


def test_each_step_holds_the_locals_at_its_yield(app: App) -> None:
    iid = app.start(rl_saga, input="o1")
    assert app.get_instance(iid)["status"] == "waiting_for_event"

    _, steps = replayed(app, iid)

    assert [(s.seq, s.name, s.state) for s in steps] == [
        (1, "rl_reserve", "completed"),
        (2, "rl_charge", "completed"),
        (3, "rl.go", "pending"),
    ]
    first, second, third = (s.frames for s in steps)
    assert at(first) == [("rl_saga", line_of("saga-reserve"))]
    assert [name for name, _ in first[0].locals] == ["ctx", "order_id", "note", "hostile"]
    assert first[0].get("order_id") == "'o1'"
    assert first[0].get("reservation") is None  # the value is sent in after the step
    assert first[0].get("ctx") is not None and "WorkflowContext" in str(first[0].get("ctx"))
    # in the helper, one frame below the workflow's, the value of seq 1 already received
    assert at(second) == [
        ("rl_saga", line_of("saga-split")),
        ("rl_split", line_of("helper-charge")),
    ]
    assert second[0].get("reservation") == "'res-o1'"
    assert second[1].locals == (("order_id", "'o1'"), ("part", "'O1'"))
    assert at(third) == [("rl_saga", line_of("saga-wait"))]
    assert third[0].get("receipt") == "'paid-7'"


def test_values_are_rendered_truncated_and_a_failing_repr_is_shown_not_raised(app: App) -> None:
    iid = app.start(rl_saga, input="o1")
    Hostile.touched.clear()

    _, steps = replayed(app, iid)

    frame = steps[0].frames[0]
    note = frame.get("note")
    assert note is not None and note.startswith("'nnn") and note.endswith("...'")
    assert 150 <= len(note) <= 200
    assert frame.get("hostile") == "<repr failed: TypeError: no repr for you>"
    assert Hostile.touched == []  # nothing but repr was called on it
    assert all(isinstance(text, str) for _, text in frame.locals)


def test_an_async_workflow_shows_its_frames_and_an_awaited_helper(app: App) -> None:
    iid = app.start(rl_async_saga, input="o2")
    assert app.get_instance(iid)["status"] == "waiting_for_timer"

    replay, steps = replayed(app, iid)

    assert [s.state for s in steps] == ["completed", "completed", "pending"]
    assert at(steps[0].frames) == [("rl_async_saga", line_of("async-reserve"))]
    assert steps[0].frames[0].get("items") == render(list(range(100)))
    assert steps[0].frames[0].get("items") == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...]"
    assert at(steps[1].frames) == [  # no frame of eddic's own code (the command's __await__)
        ("rl_async_saga", line_of("async-split")),
        ("rl_async_split", line_of("async-helper-charge")),
    ]
    assert steps[1].frames[1].get("part") == "'O2'"
    assert steps[2].frames[0].get("receipt") == "'paid-7'"
    assert [(w["seq"], w["kind"], w["name"]) for w in replay.waiting] == [(3, "timer", "sleep")]
    assert replay.waiting[0]["deadline"] is not None
    assert [c["name"] for c in replay.compensations] == ["rl_refund", "rl_release"]


def test_a_running_saga_waits_on_its_event_and_would_compensate_newest_first(app: App) -> None:
    iid = app.start(rl_saga, input="o1")

    replay, _ = replayed(app, iid)

    assert replay.waiting == [
        {"seq": 3, "kind": "event", "name": "rl.go", "args": "{'timeout': None}", "deadline": None}
    ]
    assert replay.compensations == [
        {
            "seq": None,
            "kind": "compensation",
            "name": "rl_refund",
            "args": "{'order_id': 'O1', 'amount': 7}",
            "deadline": None,
        },
        {
            "seq": None,
            "kind": "compensation",
            "name": "rl_release",
            "args": "{'order_id': 'o1'}",
            "deadline": None,
        },
    ]


def test_a_compensating_instance_lists_the_compensation_in_progress_first(app: App) -> None:
    attempts.clear()
    iid = app.start(rl_failing, input="o3")
    assert app.get_instance(iid)["status"] == "compensating"  # rl_slow_undo backs off an hour
    assert attempts == ["o3"]

    replay, steps = replayed(app, iid)

    assert [(s.name, s.state) for s in steps][-1] == ("rl_slow_undo", "pending")
    assert steps[-1].frames == ()  # the code has finished: a compensation has no frames
    assert steps[0].frames != ()
    assert [(w["seq"], w["kind"], w["name"]) for w in replay.waiting] == [
        (4, "compensation", "rl_slow_undo")
    ]
    assert [(c["seq"], c["name"]) for c in replay.compensations] == [
        (4, "rl_slow_undo"),  # in progress: emitted, retrying
        (None, "rl_release"),
    ]
    assert replay.compensations[0]["args"] == "{'order_id': 'o3'}"


def test_a_finished_instance_waits_on_nothing_and_would_compensate_nothing(app: App) -> None:
    iid = app.start(rl_saga, input="o4")
    app.send_event("rl.go", data={"ok": 1}, instance_id=iid)
    assert app.get_instance(iid)["status"] == "completed"

    replay, steps = replayed(app, iid)

    assert steps[-1].state == "completed" and steps[-1].frames != ()
    assert replay.waiting == [] and replay.compensations == []


def test_a_step_the_code_never_reached_has_no_frames(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = app.start(rl_saga, input="o5")

    def changed(ctx: WorkflowContext, order_id: str) -> Any:
        yield rl_reserve(order_id)
        yield Sleep(5)  # where history has the charge

    monkeypatch.setattr(rl_saga, "func", changed)
    replay = app.replay(iid)
    steps = list(replay)

    assert steps[0].frames != ()
    assert steps[-1].diverged and steps[-1].frames == ()
    assert replay.waiting == [] and replay.compensations == []


def test_a_step_handed_out_late_still_shows_the_yield_its_value_was_sent_into(app: App) -> None:
    """The winner of a First (seq 2) is handed out only once seq 1 is settled too, after the code
    has moved on to its next yield: its frames are still those of the First's yield."""
    iid = app.start(rl_race, input="o6")
    app.send_event("rl.b", data={"n": 2}, instance_id=iid)

    _, steps = replayed(app, iid)

    assert [(s.seq, s.state) for s in steps] == [(1, "cancelled"), (2, "completed"), (3, "pending")]
    for step in steps[:2]:
        assert at(step.frames) == [("rl_race", line_of("race-first"))]
        assert step.frames[0].get("waited") == "0"
        assert step.frames[0].get("event") is None
    assert at(steps[2].frames) == [("rl_race", line_of("race-after"))]
    assert steps[2].frames[0].get("waited") == "1"


def test_eddic_show_with_the_code_loaded_says_what_it_waits_on_and_would_compensate(
    app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eddic.cli import main

    iid = app.start(rl_saga, input="o7")
    capsys.readouterr()

    assert main(["show", iid, "--db", str(tmp_path / "rl.db")]) == 0  # the code is imported here

    out = capsys.readouterr().out.splitlines()
    start = out.index("waits on now")
    assert out[start:] == [
        "waits on now",
        "  seq 3 event rl.go {'timeout': None}",
        "a failure would compensate",
        "  compensation rl_refund {'order_id': 'O7', 'amount': 7}",
        "  compensation rl_release {'order_id': 'o7'}",
    ]
    assert main(["show", iid, "--db", str(tmp_path / "rl.db"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in data["compensations"]] == ["rl_refund", "rl_release"]
    assert [w["name"] for w in data["waiting"]] == ["rl.go"]
