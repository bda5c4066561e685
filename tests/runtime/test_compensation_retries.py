"""Compensations are retried (5 attempts by default); one that still fails is reported."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from freezegun import freeze_time

from eddic import (
    ActivityContext,
    App,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
log: list[str] = []


@compensation
def cr_undo_a(ctx: ActivityContext, fail_undo_a: int) -> None:
    log.append(f"undo_a#{ctx.attempt}")
    if ctx.attempt <= fail_undo_a:
        raise ConnectionError(f"undo_a attempt {ctx.attempt}")


@compensation
def cr_undo_b(ctx: ActivityContext, fail_undo_b: int) -> None:
    log.append(f"undo_b#{ctx.attempt}")
    if ctx.attempt <= fail_undo_b:
        raise ConnectionError(f"undo_b attempt {ctx.attempt}")


@activity
@on_failure(cr_undo_a)
def cr_do_a(fail_undo_a: int) -> None:
    log.append("a")


@activity
@on_failure(cr_undo_b)
def cr_do_b(fail_undo_b: int) -> None:
    log.append("b")


@activity
def cr_boom() -> None:
    raise ValueError("boom")


@workflow
def cr_flow(ctx: WorkflowContext, failures: dict[str, int]) -> None:
    yield cr_do_a(failures.get("a", 0))
    yield cr_do_b(failures.get("b", 0))
    yield cr_boom()


def test_a_failing_compensation_is_retried_with_backoff_until_it_succeeds(app: App) -> None:
    log.clear()
    with freeze_time(T0) as clock:
        iid = app.start(cr_flow, input={"a": 2})
        assert log == ["a", "b", "undo_b#1", "undo_a#1"]
        info = app.get_instance(iid)
        assert info["status"] == "compensating"
        clock.tick(1)
        app.run_due()
        clock.tick(2)
        app.run_due()
    assert log[-2:] == ["undo_a#2", "undo_a#3"]
    info = app.get_instance(iid)
    assert info["status"] == "failed"
    assert "compensation_errors" not in info["error"]


def test_a_compensation_that_exhausts_its_retries_is_listed_and_the_others_still_run(
    app: App,
) -> None:
    log.clear()
    with freeze_time(T0) as clock:
        iid = app.start(cr_flow, input={"b": 99})  # undo_b runs first and never succeeds
        for _ in range(6):
            clock.tick(60)
            app.run_due()
    assert [e for e in log if e.startswith("undo_b")] == [f"undo_b#{n}" for n in range(1, 6)]
    assert log[-1] == "undo_a#1"  # the remaining compensation still ran, once
    error = app.get_instance(iid)["error"]
    assert app.get_instance(iid)["status"] == "failed"
    assert "boom" in error["message"]
    [comp] = error["compensation_errors"]
    assert comp["type"] == "ConnectionError" and comp["attempts"] == 5
