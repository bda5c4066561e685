"""Durable timers under frozen time: exact deadlines, long sleeps, replay in another App."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from eddic import App, Sleep, SleepUntil, WorkflowContext, activity, workflow

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ran: list[str] = []


class Box(BaseModel):
    label: str


@activity
def timer_make_box(label: str) -> Box:
    ran.append(label)
    return Box(label=label)


@workflow
def timer_nap(ctx: WorkflowContext, seconds: float) -> dict[str, object]:
    before = ctx.now()
    box = yield timer_make_box("before")
    yield Sleep(seconds)
    assert isinstance(box, Box), type(box)  # rebuilt as the model after a replay too
    after = yield timer_make_box("after")
    return {"slept": (ctx.now() - before).total_seconds(), "labels": [box.label, after.label]}


@workflow
def timer_until(ctx: WorkflowContext, when: datetime) -> str:
    yield SleepUntil(when)
    return ctx.now().isoformat()


def test_a_timer_fires_at_its_deadline_and_not_a_second_before(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(timer_nap, input=30)
        info = app.get_instance(iid)
        assert info["status"] == "waiting_for_timer"
        assert info["wake_at"] == T0 + timedelta(seconds=30)
        clock.tick(29)
        assert app.run_due() == 0
        assert app.get_instance(iid)["status"] == "waiting_for_timer"
        clock.tick(1)
        assert app.run_due() == 1
        assert app.result(iid) == {"slept": 30.0, "labels": ["before", "after"]}


def test_a_thirty_day_sleep_passes_in_no_real_time(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(timer_nap, input=timedelta(days=30).total_seconds())
        clock.tick(timedelta(days=30))
        app.run_due()
    assert app.get_instance(iid)["status"] == "completed"


def test_a_timer_created_by_one_app_fires_in_another_that_replays(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    ran.clear()
    with freeze_time(T0) as clock:
        with App(db_url=url) as first:
            iid = first.start(timer_nap, input=60)
        clock.tick(61)
        with App(db_url=url) as second:
            assert second.run_due() == 1
            assert second.get_instance(iid)["status"] == "completed"
    assert ran == ["before", "after"]  # the first activity was replayed, not run again


def test_sleep_until_an_aware_datetime(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(timer_until, input=T0 + timedelta(hours=2))
        clock.tick(timedelta(hours=2))
        app.run_due()
        assert app.result(iid) == (T0 + timedelta(hours=2)).isoformat()
