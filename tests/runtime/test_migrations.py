"""Schema migrations: a file written by an older eddic is upgraded in place and keeps working."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlite_utils
from freezegun import freeze_time

from eddic import App, WorkflowContext, activity, workflow
from eddic.kernel import Sleep
from eddic.storage.sqlite.schema import POS_BITS, SCHEMA_VERSION, _create_v1

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

_V1_HISTORY = "instance_id, pos, seq, record, kind, name, args, at, deadline, value, failure"


@activity
def mig_step(n: int) -> int:
    return n * 10


@workflow
def mig_flow(ctx: WorkflowContext, n: int) -> list[int]:
    first = yield mig_step(n)
    yield Sleep(60)
    second = yield mig_step(n + 1)
    return [first, second]


def _rows(path: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def _write_v1_copy(source: Path, target: Path) -> None:
    """``target``: the same instances and history, in the v1 layout, marked schema version 1."""
    instances = _rows(source, "SELECT * FROM instances ORDER BY ikey")
    history = _rows(source, f"SELECT {_V1_HISTORY} FROM history ORDER BY id")
    db = sqlite_utils.Database(target)
    _create_v1(db)
    db.table("eddic_meta").insert({"key": "schema_version", "value": "1"})
    for row in instances:
        del row["ikey"]
        db.table("instances").insert(row)
    for row in history:
        db.table("history").insert(row)
    db.close()


def test_a_version_1_file_is_migrated_and_its_waiting_instances_finish(tmp_path: Path) -> None:
    current, old = tmp_path / "current.db", tmp_path / "v1.db"
    with freeze_time(T0) as clock:
        with App(db_url=f"sqlite:///{current}") as app:
            ids = [app.start(mig_flow, input=n) for n in (1, 2, 3)]
            assert {app.get_instance(i)["status"] for i in ids} == {"waiting_for_timer"}
            before = {i: app.history(i) for i in ids}
        _write_v1_copy(current, old)

        with App(db_url=f"sqlite:///{old}") as app:
            assert {i: app.history(i) for i in ids} == before
            clock.tick(timedelta(seconds=61))
            app.run_due()
            assert [app.result(i) for i in ids] == [[10, 20], [20, 30], [30, 40]]
            for i in ids:
                after = app.history(i)
                assert after[: len(before[i])] == before[i]
                assert len(after) == len(before[i]) + 3  # the timer fired; activity 2 in and out

    version = _rows(old, "SELECT value FROM eddic_meta WHERE key = 'schema_version'")
    assert version == [{"value": str(SCHEMA_VERSION)}]
    keys = {r["instance_id"]: r["ikey"] for r in _rows(old, "SELECT * FROM instances")}
    for row in _rows(old, "SELECT id, instance_id, pos FROM history"):
        assert row["id"] == keys[row["instance_id"]] << POS_BITS | row["pos"]


def test_history_ids_keep_each_instance_contiguous_and_in_order(app: App) -> None:
    ids = [app.start(mig_flow, input=n) for n in range(3)]
    rows = _rows(Path(app.storage.path), "SELECT id, instance_id, pos FROM history ORDER BY id")
    runs = [r["instance_id"] for r in rows]
    assert runs == sorted(runs, key=ids.index)  # each instance's rows form one run
    for iid in ids:
        assert [r["pos"] for r in rows if r["instance_id"] == iid] == list(range(1, 4))
