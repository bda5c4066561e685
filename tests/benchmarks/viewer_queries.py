"""The web viewer's reads with 100,000 instances, on an SQLite file and on PostgreSQL, timed.

Each backend gets a fresh database holding ``--instances`` instances across 4 workflows and the
statuses running (with a live lease), completed, failed and cancelled, and 100 children of one
of them. Sixteen are made by the store itself (``Store.create``, one per workflow and status);
the rest are copies of those rows with new ids and times, inserted in bulk (one ``executemany``
on SQLite, ``COPY`` on PostgreSQL), oldest first, so that insert order is creation order as in
a real database. PostgreSQL is then ``VACUUM ANALYZE``-d, as autovacuum would have done on a
settled database; SQLite is left as eddic leaves it (no ``ANALYZE``).

Then each read of the storage interface a list or instance page makes is timed, the median of
``--runs`` calls in ms (after one untimed call): one page of 50 newest, a page by status, by
workflow, by both, a page through a ``before`` cursor 90,000 instances deep and one through an
``after`` cursor, searches, the children of an instance, ``status_counts``,
``count_instances`` and ``workflow_names``. With ``--explain`` the statements those calls send,
and the polling queries of the workers and the relay (claim, due, stale, next_wake, the outbox
heads), are shown with their plans (SQLite: ``EXPLAIN QUERY PLAN``; PostgreSQL: ``EXPLAIN
ANALYZE`` with a custom and a generic plan, as in ``pg_idle_fleet``); a full sort of the
instances or a scan of a big table is flagged. Run by hand, prints figures, asserts nothing::

    python tests/benchmarks/viewer_queries.py [--instances 100000] [--runs 5]
        [--backends sqlite,postgres] [--explain] [--dir PATH]

PostgreSQL is the server of ``EDDIC_TEST_POSTGRES_URL`` when set, else an embedded one
(tests/pg_server.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib, pg_idle_fleet

import benchlib
import pg_server

from eddic.clock import to_text
from eddic.storage import StepWrite, Store, open_store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=30)  # after every instance was made; the leases are still live
FAR = T0 + timedelta(days=3650)
WORKFLOWS = [f"viewer_bench_{n}" for n in range(4)]
# (status, share): mostly finished, as a database that has run for a while
STATUSES = [("running", 0.10), ("completed", 0.75), ("failed", 0.10), ("cancelled", 0.05)]
PARENT_CHILDREN = 100
PAGE = 50
SCHEMA = "eddic"


# -- filling ------------------------------------------------------------------------------------


def _template_row(iid: str, workflow: str, status: str) -> tuple[dict[str, Any], StepWrite]:
    row = {
        "instance_id": iid,
        "workflow_name": workflow,
        "status": "running",
        "input_data": '{"order": 1234, "items": ["a", "b"]}',
        "created_at": T0,
        "updated_at": T0,
        "started_at": T0,
        "service_name": "viewer-bench",
        "lock_timeout_seconds": None,
        "lock_owner": "bench-worker",
        "lock_epoch": 1,
        "lock_expires_at": FAR,
    }
    step = StepWrite(iid, "bench-worker", 1)
    step.history = [(iid, 1, 1, "scheduled", "activity", "charge", "[1234]", T0, None, None, None)]
    if status != "running":
        step.release = True
        step.columns = {"status": status, "updated_at": T0}
        if status == "completed":
            step.columns["output_data"] = '{"charged": 1234}'
        elif status == "failed":
            step.columns["error"] = '{"type": "ValueError", "message": "card declined"}'
    return row, step


def make_templates(store: Store) -> dict[tuple[str, str], str]:
    """One instance per (workflow, status), made by the store: the rows the copies copy."""
    ids: dict[tuple[str, str], str] = {}
    for workflow in WORKFLOWS:
        for status, _ in STATUSES:
            iid = f"template-{workflow}-{status}"
            row, step = _template_row(iid, workflow, status)
            taken, _key = store.create(row, step, T0)
            assert taken is None
            ids[workflow, status] = iid
    return ids


def plan_rows(count: int, seed: int = 7) -> list[tuple[str, str, str, datetime]]:
    """``(id, workflow, status, created_at)`` of every copy, oldest first, 1 ms apart."""
    rng = random.Random(seed)
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    out = []
    for n in range(count):
        iid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        out.append(
            (
                iid,
                rng.choice(WORKFLOWS),
                rng.choices(statuses, weights)[0],
                T0 + timedelta(milliseconds=n),
            )
        )
    return out


def _copy(template: dict[str, Any], iid: str, created: Any, parent: str | None) -> dict[str, Any]:
    row = dict(template)
    row.pop("ikey", None)
    row.update(instance_id=iid, created_at=created, started_at=created, parent_id=parent)
    row["updated_at"] = created
    return row


def fill_sqlite(path: str, store: Store, count: int) -> list[str]:
    templates = make_templates(store)
    plan = plan_rows(count - len(templates))
    conn = benchlib.connect_like_eddic(path, "NORMAL")
    conn.row_factory = sqlite3.Row
    rows = {
        key: dict(conn.execute("SELECT * FROM instances WHERE instance_id = ?", [iid]).fetchone())
        for key, iid in templates.items()
    }
    parent = plan[0][0]
    columns = [c for c in next(iter(rows.values())) if c != "ikey"]
    sql = f"INSERT INTO instances ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"

    def values(n: int, iid: str, workflow: str, status: str, created: datetime) -> list[Any]:
        child = 0 < n <= PARENT_CHILDREN
        row = _copy(rows[workflow, status], iid, to_text(created), parent if child else None)
        return [row[c] for c in columns]

    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, (values(n, *planned) for n, planned in enumerate(plan)))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return [p[0] for p in plan]


def fill_postgres(url: str, store: Store, count: int) -> list[str]:
    import psycopg

    templates = make_templates(store)
    plan = plan_rows(count - len(templates))
    parent = plan[0][0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {SCHEMA}")
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        rows = {}
        for key, iid in templates.items():
            cur.execute("SELECT * FROM instances WHERE instance_id = %s", [iid])
            rows[key] = cur.fetchone()
        columns = [c for c in next(iter(rows.values())) if c != "ikey"]
        with (
            conn.transaction(),
            cur.copy(f"COPY instances ({', '.join(columns)}) FROM STDIN") as cp,
        ):
            for n, (iid, wf, status, created) in enumerate(plan):
                row = _copy(
                    rows[wf, status], iid, created, parent if 0 < n <= PARENT_CHILDREN else None
                )
                cp.write_row([row[c] for c in columns])
        conn.execute("VACUUM ANALYZE instances")
    return [p[0] for p in plan]


# -- timing -------------------------------------------------------------------------------------


def calls(store: Store, ids: list[str]) -> dict[str, Callable[[], Any]]:
    """The reads a list page and an instance page make, by name. ``ids`` oldest first."""
    newest_first = ids[::-1]
    deep = newest_first[90_000] if len(ids) > 90_000 else newest_first[len(ids) * 9 // 10]
    middle = newest_first[len(ids) // 2]
    parent = ids[0]
    old = ids[5]  # one of the oldest: a search for it reads nearly every row
    return {
        "page of 50 newest": lambda: store.list_instances(limit=PAGE),
        "page, status=failed": lambda: store.list_instances(status="failed", limit=PAGE),
        "page, status=running": lambda: store.list_instances(status=["running"], limit=PAGE),
        "page, workflow": lambda: store.list_instances(workflow=WORKFLOWS[2], limit=PAGE),
        "page, workflow+status": lambda: store.list_instances(
            workflow=WORKFLOWS[1], status="cancelled", limit=PAGE
        ),
        "page, before 90,000 deep": lambda: store.list_instances(before=deep, limit=PAGE),
        "page, before deep + status": lambda: store.list_instances(
            before=deep, status="failed", limit=PAGE
        ),
        "page, after (middle)": lambda: store.list_instances(after=middle, limit=PAGE),
        "search, many hits ('ab')": lambda: store.list_instances(search="ab", limit=PAGE),
        "search, 1 old hit": lambda: store.list_instances(search=old[:13], limit=PAGE),
        "search, no hit": lambda: store.list_instances(search="zz%_", limit=PAGE),
        "search + status, no hit": lambda: store.list_instances(
            search="zz%_", status="failed", limit=PAGE
        ),
        "children of an instance": lambda: store.list_instances(parent=parent, limit=PAGE),
        "status_counts()": lambda: store.status_counts(),
        "status_counts(workflow)": lambda: store.status_counts(workflow=WORKFLOWS[3]),
        "status_counts(search)": lambda: store.status_counts(search="ab"),
        "status_counts(search, no hit)": lambda: store.status_counts(search="zz%_"),
        "count_instances()": lambda: store.count_instances(),
        "count_instances(status)": lambda: store.count_instances(status=["failed"]),
        "count_instances(workflow)": lambda: store.count_instances(workflow=WORKFLOWS[0]),
        "count_instances(search)": lambda: store.count_instances(search="ab"),
        "workflow_names()": lambda: store.workflow_names(),
        "mailbox_rows": lambda: store.mailbox_rows(middle, 100),
        "outbox.rows(instance_id)": lambda: store.outbox.rows(None, 100, instance_id=middle),
    }


def time_all(
    store: Store, ids: list[str], runs: int, *, polling: bool = False
) -> dict[str, tuple[float, int]]:
    """The median ms of each call (of ``calls``; of ``_polling`` with ``polling``)."""
    out = {}
    todo = _polling(store) if polling else calls(store, ids)
    for name, call in todo.items():
        result = call()  # warm: the first call also prepares statements, fills caches
        times = []
        for _ in range(runs):
            begin = time.perf_counter()
            call()
            times.append((time.perf_counter() - begin) * 1000)
        size = _size(result)
        out[name] = (statistics.median(times), size)
    return out


def _size(result: Any) -> int:
    """Rows or names returned, a count as it is; a time (``next_wake``) 1, None 0."""
    if isinstance(result, tuple):  # outbox.due_heads: (newest, heads)
        result = result[-1]
    if isinstance(result, (list, dict)):
        return len(result)
    if isinstance(result, int):
        return result
    return int(result is not None)


def check(store: Store, ids: list[str]) -> None:
    """That the bulk rows read back as the store's own do, and the pages are right."""
    newest = store.list_instances(limit=3)
    assert [r["instance_id"] for r in newest] == ids[::-1][:3], newest
    deep = ids[::-1][1000]
    page = store.list_instances(before=deep, limit=3)
    assert [r["instance_id"] for r in page] == ids[::-1][1001:1004]
    page = store.list_instances(after=deep, limit=3)
    assert [r["instance_id"] for r in page] == ids[::-1][997:1000]
    assert store.count_instances() == len(ids) + len(WORKFLOWS) * len(STATUSES)
    assert len(store.list_instances(parent=ids[0], limit=None)) == PARENT_CHILDREN


def report(label: str, figures: dict[str, tuple[float, int]]) -> None:
    print(f"\n{label}: median of the timed calls, ms (rows or count returned)")
    for name, (ms, size) in figures.items():
        print(f"  {name:<30} {ms:>8.2f}   ({size:,})")


# -- plans --------------------------------------------------------------------------------------


def _polling(store: Store) -> dict[str, Callable[[], Any]]:
    names = list(WORKFLOWS)
    return {
        "claim": lambda: store.claim(
            NOW, "explainer", limit=16, default_timeout=300, workflows=names
        ),
        "due_elsewhere": lambda: store.due_elsewhere(NOW, names[:2]),
        "due_instances": lambda: store.due_instances(NOW),
        "stale_instances": lambda: store.stale_instances(NOW),
        "next_wake": lambda: store.next_wake(workflows=names),
        "outbox.due_heads": lambda: store.outbox.due_heads(NOW, None, 100),
    }


def explain_sqlite(path: str, store: Any, ids: list[str]) -> list[str]:
    """Each SELECT the viewer's reads and the polling send, with SQLite's plan for it."""
    flagged: list[str] = []
    conn = sqlite3.connect(path)
    todo = {**calls(store, ids), **_polling(store)}
    db = store._db()  # the calling thread's connection: the one these calls use
    for name, call in todo.items():
        seen: list[str] = []
        db.conn.set_trace_callback(seen.append)
        try:
            call()
        finally:
            db.conn.set_trace_callback(None)
        for sql in seen:
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            print(f"\n-- {name}: {' '.join(sql.split())[:300]}")
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
                line = row[3]
                print(f"     {line}")
                if "TEMP B-TREE" in line or (
                    line.startswith("SCAN instances") and "INDEX" not in line
                ):
                    flagged.append(f"{name}: {line}")
    conn.close()
    return flagged


def explain_postgres(url: str, schema_url: str, store: Store, ids: list[str]) -> list[str]:
    """The same on PostgreSQL: each statement under ``EXPLAIN ANALYZE``, its values inlined
    (a custom plan) and prepared with a generic plan (what a prepared statement may get)."""
    import psycopg
    from pg_idle_fleet import BIG_TABLES, capture, dollar_params

    def on(name: str) -> Callable[[Any], Any]:
        return lambda s: {**calls(s, ids), **_polling(s)}[name]()

    # capture() runs each call on a store of its own, recording what that store sends
    names = [*calls(store, ids), *_polling(store)]
    captured = capture(schema_url, {name: on(name) for name in names})
    flagged: list[str] = []
    explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY OFF) "
    with psycopg.connect(url, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute(f"SET search_path = {SCHEMA}")
        conn.execute("SET TimeZone = 'UTC'")
        conn.commit()
        for name, stmts in captured.items():
            for sql, params in stmts:
                if "pg_current_xact_id" in str(sql) or not str(sql).lstrip().upper().startswith(
                    ("SELECT", "WITH", "UPDATE")
                ):
                    continue
                print(f"\n-- {name}: {' '.join(str(sql).split())[:300]}")
                dollar, values = dollar_params(str(sql), params)
                plans = {"custom": conn.execute(explain + sql, params).fetchall()}
                conn.rollback()
                conn.execute("SET plan_cache_mode = force_generic_plan")
                conn.execute("PREPARE viewer_q AS " + dollar.replace("%", "%%"))
                marks = ", ".join(["%s"] * len(values))
                execute = f"EXECUTE viewer_q({marks})" if values else "EXECUTE viewer_q"
                plans["generic"] = conn.execute(explain + execute, values).fetchall()
                conn.rollback()
                conn.execute("DEALLOCATE viewer_q")
                conn.execute("RESET plan_cache_mode")
                conn.commit()
                for label, rows in plans.items():
                    print(f"   [{label} plan]")
                    for (line,) in rows:
                        print(f"     {line}")
                        stripped = line.strip()
                        big = any(f"Seq Scan on {t}" in stripped for t in BIG_TABLES)
                        if big or stripped.startswith("Sort Key"):
                            flagged.append(f"{name} ({label}): {stripped}")
    return flagged


# -- main ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_store(folder: str) -> Iterator[tuple[str, Store]]:
    path = os.path.join(folder, "viewer.db")
    store = open_store(f"sqlite:///{path}", synchronous="NORMAL")
    store.open()
    try:
        yield path, store
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--dir", default=None, help="where the SQLite file goes")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    flagged: list[str] = []
    print(
        f"viewer reads: {args.instances:,} instances, {len(WORKFLOWS)} workflows, "
        f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    if "sqlite" in backends:
        with benchlib.scratch_dir(args.dir) as folder, sqlite_store(folder) as (path, store):
            print(benchlib.describe_dir(folder))
            begin = time.perf_counter()
            ids = fill_sqlite(path, store, args.instances)
            size = os.path.getsize(path) / 1e6
            print(f"SQLite: filled in {time.perf_counter() - begin:.1f} s ({size:,.1f} MB)")
            check(store, ids)
            report("SQLite file", time_all(store, ids, args.runs))
            report("SQLite file, the workers' polls", time_all(store, ids, args.runs, polling=True))
            if args.explain:
                flagged += [f"SQLite {f}" for f in explain_sqlite(path, store, ids)]
    if "postgres" in backends:
        server = pg_server.server_for_tests()
        try:
            url = server.create_database(f"bench_viewer_{os.getpid()}")
            schema_url = pg_server.with_schema(url, SCHEMA)
            store = open_store(schema_url)
            store.open()
            try:
                with server.admin(url) as admin:
                    version = admin.execute("SHOW server_version").fetchone()
                begin = time.perf_counter()
                ids = fill_postgres(url, store, args.instances)
                print(
                    f"\nPostgreSQL {version[0] if version else '?'}: filled in "
                    f"{time.perf_counter() - begin:.1f} s"
                )
                check(store, ids)
                report("PostgreSQL", time_all(store, ids, args.runs))
                report(
                    "PostgreSQL, the workers' polls", time_all(store, ids, args.runs, polling=True)
                )
                if args.explain:
                    flagged += [
                        f"PostgreSQL {f}" for f in explain_postgres(url, schema_url, store, ids)
                    ]
            finally:
                store.close()
                server.drop_database(url)
        finally:
            server.close()
    if args.explain:
        print("\nflagged (a temp b-tree or sort, or a scan of a big table):")
        for line in flagged or ["  none"]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
