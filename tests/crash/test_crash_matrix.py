"""The crash matrix: the order saga killed (SIGKILL) at every interesting point, then recovered.

A worker process starts one order and kills itself at the chosen point; a second process, with
the clock moved past the lease, recovers it with ``app.run_due()``. Whatever the point, the order
must end as if nothing happened (completed, or failed with both compensations run), every step
recorded exactly once, every event published once and delivered at least once, and the only body
that ran more than once is the one the crash interrupted.

Step writes of one order, numbered as ``write:N`` counts them in the start process:
1 = the start, then one per body in saga order (reserve, pay, ship[, refund, cancel]), each
committing that body's outcome together with the next scheduled command.

Every case runs on SQLite (a file) and on PostgreSQL (a database of the test's own, ids prefixed
``postgres-``); the write points mean the same on both (see ``worker.py``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from crash_harness import (
    BACKENDS,
    Database,
    Workers,
    check_bodies_are_consistent,
    check_deliveries,
    check_order_finished_with_everything_recorded_once,
    crash_and_recover,
    events_of,
    on_both_backends,
    read_store,
    steps_of,
)

ORDER = "ORD-1"


def crash_points(fails: bool) -> list[str]:
    steps = steps_of(fails)
    points = [f"body:{step}:{when}" for step in steps for when in ("before", "inside", "after")]
    for n in range(1, len(steps) + 2):
        points += [f"write:{n}:{when}" for when in ("before", "uncommitted", "committed")]
    points += [f"relay:{n}" for n in range(1, len(events_of(fails)) + 1)]
    return points


def describe(point: str, fails: bool) -> str:
    """A readable test id: where the process was killed."""
    kind, *rest = point.split(":")
    if kind == "body":
        step, when = rest
        text = {
            "before": f"before the {step} body",
            "inside": f"inside the {step} body",
            "after": f"after the {step} body before its commit",
        }[when]
    elif kind == "write":
        n, when = int(rest[0]), rest[1]
        what = "the start" if n == 1 else f"the {steps_of(fails)[n - 2]} outcome"
        text = {
            "before": f"before {what} is written",
            "uncommitted": f"with {what} written but not committed",
            "committed": f"right after {what} is committed",
        }[when]
        if fails and point == "write:5:committed":
            text += " between the two compensations"
    else:
        text = f"in the relay after receiving {events_of(fails)[int(rest[0]) - 1]}"
    path = "failing" if fails else "happy"
    return f"{path}-path-killed-{text}".replace(" ", "-")


def rerun_step(point: str, fails: bool) -> tuple[str | None, bool]:
    """The body a crash at ``point`` interrupts, and whether its rerun repeats the finished body."""
    kind, *rest = point.split(":")
    if kind == "body" and rest[1] != "before":
        return rest[0], rest[1] == "after"
    if kind == "write" and rest[1] != "committed" and int(rest[0]) > 1:
        return steps_of(fails)[int(rest[0]) - 2], True
    return None, False


MATRIX = on_both_backends(
    [
        pytest.param(fails, point, id=describe(point, fails))
        for fails in (False, True)
        for point in crash_points(fails)
    ]
)


@pytest.mark.parametrize(("backend", "fails", "point"), MATRIX)
def test_a_killed_saga_recovers_with_each_step_recorded_once_and_run_at_most_twice(
    workers: Workers,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
    fails: bool,
    point: str,
) -> None:
    fail_shipping = "always" if fails else "never"
    database = Database.open(request, backend, tmp_path / "saga.db")
    story = crash_and_recover(workers, database, fail_shipping=fail_shipping, crashes=[point])
    assert story.runs[0].killed, f"the crash point was never reached\n{story}"
    assert story.runs[-1].returncode == 0, f"recovery failed\n{story}"
    store = read_store(story.database)

    check_order_finished_with_everything_recorded_once(store, ORDER, fails)
    check_bodies_are_consistent(store, ORDER, fails)

    interrupted, finished_twice = rerun_step(point, fails)
    for step in steps_of(fails):
        expected = (2, 2 if finished_twice else 1) if step == interrupted else (1, 1)
        ran = (store.runs(ORDER, step, "start"), store.runs(ORDER, step, "end"))
        assert ran == expected, f"{step} body (starts, ends) = {ran}, expected {expected}"

    delivered = check_deliveries(store, ORDER)
    expected_deliveries = Counter({r["event_id"]: 1 for r in store.outbox[f"crash-{ORDER}"]})
    if point.startswith("relay:"):
        resent = store.outbox[f"crash-{ORDER}"][int(point.split(":")[1]) - 1]["event_id"]
        expected_deliveries[resent] = 2  # at least once: the interrupted delivery is repeated
    assert delivered == expected_deliveries


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_saga_that_is_never_killed_runs_each_body_once(
    workers: Workers, request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    database = Database.open(request, backend, tmp_path / "saga.db")
    story = crash_and_recover(workers, database, fail_shipping="always", crashes=[])
    assert [run.returncode for run in story.runs] == [0, 0], str(story)
    store = read_store(story.database)
    check_order_finished_with_everything_recorded_once(store, ORDER, fails=True)
    for step in steps_of(True):
        assert store.runs(ORDER, step, "start") == store.runs(ORDER, step, "end") == 1
    assert set(check_deliveries(store, ORDER).values()) == {1}


# Killed once while starting, then again while recovering: (path, crash points, body runs that
# differ from (1 start, 1 end), extra deliveries by event index).
KILLED_TWICE = on_both_backends(
    [
        pytest.param(
            True,
            ["body:refund:inside", "body:refund:inside"],
            {"refund": (3, 1)},
            {},
            id="inside-the-refund-body-twice",
        ),
        pytest.param(
            True,
            ["body:ship:inside", "write:1:committed"],
            {"ship": (2, 1)},
            {},
            id="inside-shipping-then-right-after-recovery-counted-the-next-attempt",
        ),
        pytest.param(
            False,
            ["write:3:uncommitted", "write:2:uncommitted"],
            {"pay": (3, 3)},
            {},
            id="with-the-payment-outcome-uncommitted-twice",
        ),
        pytest.param(
            True,
            ["relay:2", "relay:1"],
            {},
            {2: 3},
            id="in-the-relay-on-the-same-event-twice",
        ),
    ]
)


@pytest.mark.parametrize(("backend", "fails", "crashes", "body_runs", "deliveries"), KILLED_TWICE)
def test_a_saga_killed_again_during_recovery_still_records_each_step_once(
    workers: Workers,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
    fails: bool,
    crashes: list[str],
    body_runs: dict[str, tuple[int, int]],
    deliveries: dict[int, int],
) -> None:
    fail_shipping = "always" if fails else "never"
    database = Database.open(request, backend, tmp_path / "saga.db")
    story = crash_and_recover(workers, database, fail_shipping=fail_shipping, crashes=crashes)
    assert [run.killed for run in story.runs] == [True, True, False], str(story)
    assert story.runs[-1].returncode == 0, str(story)
    store = read_store(story.database)

    check_order_finished_with_everything_recorded_once(store, ORDER, fails)
    check_bodies_are_consistent(store, ORDER, fails)
    for step in steps_of(fails):
        ran = (store.runs(ORDER, step, "start"), store.runs(ORDER, step, "end"))
        assert ran == body_runs.get(step, (1, 1)), f"{step} body (starts, ends) = {ran}"
    delivered = check_deliveries(store, ORDER)
    rows = store.outbox[f"crash-{ORDER}"]
    assert [delivered[r["event_id"]] for r in rows] == [
        deliveries.get(i, 1) for i in range(1, len(rows) + 1)
    ]
