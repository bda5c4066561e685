"""``ctx.patched`` / ``ctx.deprecate_patch`` (design §9), from hand-written histories: a new run
records the marker and takes the new code; history recorded before the change (no marker)
replays the old code and records nothing; history with the marker replays the new code; a
marker no ``patched`` expects any more (deprecated) is skipped; markers take no seq."""

from __future__ import annotations

from typing import Any

from kernel_histories import activity, at, done, interpreter, replayed

from eddic.kernel import (
    ActivityRef,
    All,
    CallActivity,
    Phase,
    Scheduled,
)

CHARGE, RECEIPT, SHIP = ActivityRef("charge"), ActivityRef("receipt"), ActivityRef("ship")


def v1(ctx: Any) -> Any:  # before the change
    yield CallActivity(CHARGE)
    yield CallActivity(SHIP)
    return "v1"


def v2(ctx: Any) -> Any:  # the change, guarded: a receipt between charge and ship
    yield CallActivity(CHARGE)
    if ctx.patched("send-receipt"):
        yield CallActivity(RECEIPT)
    yield CallActivity(SHIP)
    return "v2"


def v3(ctx: Any) -> Any:  # every instance has passed the change: the guard goes
    ctx.deprecate_patch("send-receipt")
    yield CallActivity(CHARGE)
    yield CallActivity(RECEIPT)
    yield CallActivity(SHIP)
    return "v3"


def marker(name: str, t: float = 0) -> Scheduled:
    return Scheduled(0, "marker", name, {}, at(t))


OLD = [activity(1, "charge"), done(1, t=1), activity(2, "ship", t=1), done(2, t=2)]
NEW = [
    activity(1, "charge"),
    done(1, t=1),
    marker("send-receipt", t=1),
    activity(2, "receipt", t=1),
    done(2, t=2),
    activity(3, "ship", t=2),
    done(3, t=3),
]


def test_a_new_run_records_the_marker_without_a_seq_and_takes_the_new_code() -> None:
    interp = interpreter(v2)
    assert [r.kind for r in interp.decide()] == ["activity"]
    interp.feed(done(1, t=1))
    decided = interp.decide()
    assert [(r.seq, r.kind, r.name) for r in decided] == [  # type: ignore[union-attr]
        (0, "marker", "send-receipt"),
        (2, "activity", "receipt"),
    ]


def test_history_from_before_the_change_replays_the_old_code() -> None:
    interp = replayed(v2, OLD)
    assert interp.phase is Phase.COMPLETED and interp.result == "v2"
    assert interp.decide() == []  # no marker recorded, no receipt sent


def test_history_that_waits_before_the_change_takes_the_new_code_from_there() -> None:
    interp = replayed(v2, OLD[:2])  # charged under v1, now live at the change
    assert [(r.kind, r.name) for r in interp.decide()] == [  # type: ignore[union-attr]
        ("marker", "send-receipt"),
        ("activity", "receipt"),
    ]


def test_history_with_the_marker_replays_the_new_code() -> None:
    interp = replayed(v2, NEW)
    assert interp.phase is Phase.COMPLETED and interp.decide() == []


def test_a_deprecated_patch_skips_the_marker_and_records_none() -> None:
    assert replayed(v3, NEW).phase is Phase.COMPLETED
    fresh = interpreter(v3)
    fresh.decide()
    fresh.feed(done(1, t=1))
    assert [r.kind for r in fresh.decide()] == ["activity"]  # the receipt, no marker


def test_a_patch_inside_all() -> None:
    def fan(ctx: Any) -> Any:
        calls = [CallActivity(CHARGE)]
        if ctx.patched("ship-too"):
            calls.append(CallActivity(SHIP))
        return list((yield All(*calls)))

    old = [activity(1, "charge"), done(1, "c", t=1)]
    assert replayed(fan, old).result == ["c"]
    new = [
        marker("ship-too"),
        activity(1, "charge"),
        activity(2, "ship"),
        done(2, "s"),
        done(1, "c"),
    ]
    assert replayed(fan, new).result == ["c", "s"]
    live = interpreter(fan)
    assert [(r.seq, r.kind) for r in live.decide()] == [
        (0, "marker"),
        (1, "activity"),
        (2, "activity"),
    ]  # type: ignore[union-attr]


def test_a_change_id_must_be_a_non_empty_string() -> None:
    def bad(ctx: Any) -> Any:
        try:
            ctx.patched("")
        except ValueError as exc:
            return str(exc)
        yield CallActivity(CHARGE)

    interp = interpreter(bad)
    interp.decide()
    assert "change id" in interp.result
