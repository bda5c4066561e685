"""Schema migrations: a file written by an older eddic is upgraded in place and keeps working."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pg_server
import pytest
import sqlite_utils
from freezegun import freeze_time

from eddic import App, WorkflowContext, activity, workflow
from eddic.clock import to_text
from eddic.kernel import Sleep
from eddic.storage import StepWrite, StorageError, open_store
from eddic.storage.postgres import schema as pg_schema
from eddic.storage.postgres.url import parse_postgres_url
from eddic.storage.sqlite.schema import (
    MIGRATIONS,
    POS_BITS,
    SCHEMA_VERSION,
    _create_v1,
)

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
    v1_columns = set(db.table("instances").columns_dict)
    for row in instances:
        # the columns of version 1 only (ikey came in 2, the lifecycle columns in 4, ...)
        db.table("instances").insert({k: v for k, v in row.items() if k in v1_columns})
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


# -- attempts.details (SQLite v3, PostgreSQL v4): heartbeat details of the attempt in progress --

_RETRY_AT = T0 + timedelta(seconds=30)
_OLD_ATTEMPTS = [  # (seq, started, failures, next_at, last_failure), as an older eddic wrote them
    (2, 1, 1, _RETRY_AT, '"boom"'),
    (3, 1, 0, None, None),
]


def _old_instance(at: Any, until: Any) -> dict[str, Any]:
    """An instance leased by w1 at epoch 1 until ``until`` (times as the backend stores them)."""
    return {
        "instance_id": "old-1",
        "workflow_name": "mig_flow",
        "status": "running",
        "input_data": "1",
        "created_at": at,
        "updated_at": at,
        "started_at": at,
        "service_name": "old",
        "lock_timeout_seconds": 60.0,
        "lock_owner": "w1",
        "lock_epoch": 1,
        "lock_expires_at": until,
    }


def _gained_details_and_kept_rows(url: str) -> None:
    """The migrated database: the old attempt rows as they were, no details; heartbeats and
    the steps after them work on it."""
    store = open_store(url)
    store.open()
    try:
        stored = store.stored("old-1")
        assert stored.attempts == {
            2: (1, 1, to_text(_RETRY_AT), '"boom"', None),
            3: (1, 0, None, None, None),
        }
        assert [h[3] for h in stored.history] == ["scheduled"]
        assert store.heartbeat("old-1", "w1", 1, 3, 1, '{"page": 4}', T0)
        step = StepWrite("old-1", "w1", 1, key=int(stored.row["ikey"]))
        step.attempts = [(2, 2, 1, None, None)]
        store.commit_step(step, T0)
        assert store.heartbeat("old-1", "w1", 1, 2, 2, '{"page": 1}', T0)
        assert store.stored("old-1").attempts == {
            2: (2, 1, None, None, '{"page": 1}'),
            3: (1, 0, None, None, '{"page": 4}'),
        }
    finally:
        store.close()


def _write_v2(path: Path) -> None:
    """A file as eddic wrote it at schema version 2: one leased instance with attempt rows."""
    db = sqlite_utils.Database(path)
    MIGRATIONS[1](db)
    MIGRATIONS[2](db)
    db.table("eddic_meta").insert({"key": "schema_version", "value": "2"})
    instance = _old_instance(to_text(T0), to_text(T0 + timedelta(seconds=60)))
    db.table("instances").insert({"ikey": 1, **instance})
    db.execute(
        "INSERT INTO history (id, instance_id, pos, seq, record, kind, name, args, at) "
        "VALUES (?, 'old-1', 1, 1, 'scheduled', 'activity', 'mig_step', '[1]', ?)",
        [1 << POS_BITS | 1, to_text(T0)],
    )
    for seq, started, failures, next_at, last in _OLD_ATTEMPTS:
        db.execute(
            "INSERT INTO attempts VALUES ('old-1', ?, ?, ?, ?, ?)",
            [seq, started, failures, to_text(next_at), last],
        )
    db.conn.commit()
    db.close()


def test_a_version_2_file_gains_heartbeat_details_and_keeps_its_attempts(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    _write_v2(path)
    assert "details" not in {r["name"] for r in _rows(path, "PRAGMA table_info(attempts)")}
    _gained_details_and_kept_rows(f"sqlite:///{path}")
    version = _rows(path, "SELECT value FROM eddic_meta WHERE key = 'schema_version'")
    assert version == [{"value": str(SCHEMA_VERSION)}]
    columns = {r["name"]: r["type"] for r in _rows(path, "PRAGMA table_info(attempts)")}
    assert columns["details"] == "TEXT"


def test_a_file_one_version_newer_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    _write_v2(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "UPDATE eddic_meta SET value = ? WHERE key = 'schema_version'",
            [str(SCHEMA_VERSION + 1)],
        )
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StorageError, match="newer"):
        open_store(f"sqlite:///{path}").open()
    assert path.read_bytes() == before


def test_a_postgres_schema_at_version_3_gains_heartbeat_details_and_keeps_its_attempts(
    postgres_server: pg_server.Server, postgres_schema_url: str
) -> None:
    schema = parse_postgres_url(postgres_schema_url).schema
    with postgres_server.admin(postgres_schema_url) as conn:
        conn.execute(f"CREATE SCHEMA {pg_schema.quote_ident(schema)}")
        conn.execute(f"SET search_path TO {pg_schema.quote_ident(schema)}")
        for version in (1, 2, 3):
            pg_schema.MIGRATIONS[version](conn)
        conn.execute("INSERT INTO eddic_meta VALUES ('schema_version', '3')")
        instance = _old_instance(T0, T0 + timedelta(seconds=60))
        conn.execute(
            f"INSERT INTO instances ({', '.join(instance)}) "
            f"VALUES ({', '.join(['%s'] * len(instance))})",
            list(instance.values()),
        )
        conn.execute(
            "INSERT INTO history (instance_id, pos, seq, record, kind, name, args, at) "
            "VALUES ('old-1', 1, 1, 'scheduled', 'activity', 'mig_step', '[1]', %s)",
            [T0],
        )
        for row in _OLD_ATTEMPTS:
            conn.execute("INSERT INTO attempts VALUES ('old-1', %s, %s, %s, %s, %s)", row)
    _gained_details_and_kept_rows(postgres_schema_url)
    with postgres_server.admin(postgres_schema_url) as conn:
        version = conn.execute(
            f"SELECT value FROM {pg_schema.quote_ident(schema)}.eddic_meta "
            "WHERE key = 'schema_version'"
        ).fetchone()
        details = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'attempts' AND column_name = 'details'",
            [schema],
        ).fetchone()
    assert version == (str(pg_schema.SCHEMA_VERSION),) and details == ("text",)
