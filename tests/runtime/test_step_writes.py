"""How a step is written: many rows in one step, and the lease check of a step that changes
no column on the instance."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eddic import All, App, WaitEvent, WorkflowContext, activity, workflow
from eddic.clock import utcnow
from eddic.storage import LeaseLost, StepWrite


@activity
def sw_square(n: int) -> int:
    return n * n


@workflow
def sw_fan_out(ctx: WorkflowContext, n: int) -> int:
    results = yield All(*[sw_square(i) for i in range(n)])
    return sum(results)


@workflow
def sw_waits(ctx: WorkflowContext, _: None = None) -> None:
    yield WaitEvent("sw.never")


def _history(path: Path, iid: str) -> list[tuple[int, int, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT pos, seq, record FROM history WHERE instance_id = ? ORDER BY id", [iid]
        ).fetchall()
    finally:
        conn.close()


def test_a_step_that_records_hundreds_of_rows_writes_them_all_in_order(tmp_path: Path) -> None:
    path = tmp_path / "fan.db"
    with App(db_url=f"sqlite:///{path}") as app:
        iid = app.start(sw_fan_out, input=450)  # one step schedules 450 activities
        assert app.result(iid) == sum(i * i for i in range(450))
    rows = _history(path, iid)
    assert [pos for pos, _seq, _record in rows] == list(range(1, 901))
    assert [r for r in rows[:450] if r[2] == "scheduled"] == rows[:450]
    assert sorted(seq for _pos, seq, record in rows if record == "resolved") == list(range(1, 451))


def test_a_step_with_no_column_change_still_checks_the_lease(tmp_path: Path) -> None:
    path = tmp_path / "fence.db"
    with App(db_url=f"sqlite:///{path}") as app:
        iid = app.start(sw_waits)
        before = _history(path, iid)
        key = app.storage.get_instance(iid)  # the instance exists, its lease is released
        assert key["status"] == "waiting_for_event"
        stale = StepWrite(iid, "nobody", 99)
        stale.history = [
            (iid, 99, 99, "scheduled", "timer", "sleep", "{}", utcnow(), None, None, None)
        ]
        with pytest.raises(LeaseLost, match="lost its lease"):
            app.storage.commit_step(stale, utcnow())
        empty = StepWrite(iid, "nobody", 99)  # no rows at all: the lease is still checked
        with pytest.raises(LeaseLost):
            app.storage.commit_step(empty, utcnow())
    assert _history(path, iid) == before


def test_a_step_past_the_per_instance_record_limit_writes_nothing(tmp_path: Path) -> None:
    from eddic.kernel import EddicError
    from eddic.storage.sqlite.schema import MAX_POS

    path = tmp_path / "limit.db"
    with App(db_url=f"sqlite:///{path}") as app:
        iid = app.start(sw_waits)
        before = _history(path, iid)
        info = app.storage.get_instance(iid)
        got = app.storage.acquire(iid, "me", utcnow(), 60)
        assert got is not None and info["status"] == "waiting_for_event"
        epoch, row = got
        step = StepWrite(iid, "me", epoch, key=row["ikey"])
        step.history = [
            (iid, MAX_POS + 1, 99, "scheduled", "timer", "sleep", "{}", "t", None, None, None)
        ]
        with pytest.raises(EddicError, match=f"more than {MAX_POS} history records"):
            app.storage.commit_step(step, utcnow())
    assert _history(path, iid) == before
