"""The reads the web viewer makes of ``eddic.storage.Store``: filtered, searched and cursor-paged
lists, counts per status, workflow names, an instance's mailbox and outbox rows. Through the
interface alone, once per backend (an SQLite file, ``:memory:``, PostgreSQL in a fresh schema
per test), as ``test_contract`` does; then the migrations that add their indexes, and (SQLite)
the plans that keep a page from sorting every instance."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pg_server
import pytest
import sqlite_utils

from eddic.clock import to_text
from eddic.kernel import InstanceNotFound
from eddic.storage import StepWrite, Store, open_store
from eddic.storage.postgres import schema as pg_schema
from eddic.storage.postgres.url import parse_postgres_url
from eddic.storage.sqlite import schema as sqlite_schema
from eddic.storage.sqlite.dbview import ReadOnlyDatabase

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)

BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite-file": lambda request, tmp: f"sqlite:///{tmp / 'viewer.db'}",
    "sqlite-memory": lambda request, tmp: "sqlite:///:memory:",
    "postgres": lambda request, tmp: str(request.getfixturevalue("postgres_schema_url")),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = open_store(BACKENDS[request.param](request, tmp_path))
    backend.open()
    yield backend
    backend.close()


def _create(
    store: Store,
    iid: str,
    *,
    at: datetime = T0,
    workflow: str = "wf",
    status: str = "running",
    parent: str | None = None,
    outbox: list[tuple[Any, ...]] | None = None,
    children: list[dict[str, Any]] | None = None,
) -> None:
    """A new instance created at ``at``, leased by w1 (epoch 1), with one scheduled record."""
    row = {
        "instance_id": iid,
        "workflow_name": workflow,
        "status": "running",
        "input_data": "null",
        "created_at": at,
        "updated_at": at,
        "started_at": at,
        "service_name": "viewer",
        "lock_timeout_seconds": 60.0,
        "lock_owner": "w1",
        "lock_epoch": 1,
        "lock_expires_at": at + timedelta(seconds=60),
        "parent_id": parent,
    }
    step = StepWrite(iid, "w1", 1, columns={} if status == "running" else {"status": status})
    step.history = [(iid, 1, 1, "scheduled", "timer", "sleep", "{}", at, None, None, None)]
    step.outbox = outbox or []
    step.children = children or []
    taken, _key = store.create(row, step, at)
    assert taken is None


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["instance_id"] for r in rows]


# -- the list: existing calls, filters ---------------------------------------------------------


def test_the_list_is_newest_first_with_ties_in_insert_order(store: Store) -> None:
    for n, iid in enumerate(["a", "b", "c", "d"]):
        _create(store, iid, at=T0 + timedelta(seconds=n // 2))  # a, b share a time; c, d too
    assert _ids(store.list_instances()) == ["d", "c", "b", "a"]
    assert _ids(store.list_instances(limit=2)) == ["d", "c"]
    assert _ids(store.list_instances(limit=None)) == ["d", "c", "b", "a"]


def test_status_and_workflow_filters_keep_working_as_before(store: Store) -> None:
    _create(store, "r1", workflow="orders")
    _create(store, "c1", workflow="orders", status="completed", at=T0 + timedelta(seconds=1))
    _create(store, "f1", workflow="refunds", status="failed", at=T0 + timedelta(seconds=2))
    assert _ids(store.list_instances(status="completed")) == ["c1"]
    assert _ids(store.list_instances(status=["completed", "failed"])) == ["f1", "c1"]
    assert _ids(store.list_instances(workflow="orders")) == ["c1", "r1"]
    assert _ids(store.list_instances(workflow="orders", status=["running"])) == ["r1"]
    assert store.count_instances() == 3
    assert store.count_instances(status=["completed", "failed"]) == 2
    assert store.count_instances(status="failed") == 1
    assert store.count_instances(workflow="refunds") == 1


def test_search_is_a_case_sensitive_substring_with_every_character_literal(store: Store) -> None:
    ids = ["a%b-1", "axb-2", "a_b-3", "ab-4", "A%B-5", "back\\slash-6", "plain-7"]
    for n, iid in enumerate(ids):
        _create(store, iid, at=T0 + timedelta(seconds=n))
    assert _ids(store.list_instances(search="%")) == ["A%B-5", "a%b-1"]
    assert _ids(store.list_instances(search="a%b")) == ["a%b-1"]  # LIKE would take axb too
    assert _ids(store.list_instances(search="_")) == ["a_b-3"]  # LIKE's _ would take them all
    assert _ids(store.list_instances(search="\\")) == ["back\\slash-6"]
    assert _ids(store.list_instances(search="b-")) == ["ab-4", "a_b-3", "axb-2", "a%b-1"]
    assert _ids(store.list_instances(search="B-")) == ["A%B-5"]
    assert store.list_instances(search="nowhere") == []
    assert store.count_instances(search="%") == 2 and store.count_instances(search="_") == 1
    assert store.count_instances(search="b-", status=["running"]) == 4


def test_search_and_status_filters_combine(store: Store) -> None:
    _create(store, "order-1", status="completed")
    _create(store, "order-2", status="failed", at=T0 + timedelta(seconds=1))
    _create(store, "refund-3", status="failed", at=T0 + timedelta(seconds=2))
    assert _ids(store.list_instances(search="order", status="failed")) == ["order-2"]
    assert store.count_instances(search="order", status=["failed"]) == 1


def test_the_parent_filter_lists_only_that_instances_children(store: Store) -> None:
    child = {
        "workflow_name": "child_wf",
        "status": "running",
        "input_data": "1",
        "service_name": "viewer",
        "lock_timeout_seconds": None,
        "parent_id": "p-1",
    }
    made = [{**child, "instance_id": f"p-1-c{n}", "parent_seq": n} for n in (1, 2)]
    _create(store, "p-1", children=made)  # made by the parent's step, as a CallWorkflow does
    _create(store, "p-2", at=T0 + timedelta(seconds=1))
    _create(store, "p-2-c1", parent="p-2", at=T0 + timedelta(seconds=2))
    assert sorted(_ids(store.list_instances(parent="p-1"))) == ["p-1-c1", "p-1-c2"]
    assert _ids(store.list_instances(parent="p-2")) == ["p-2-c1"]
    assert store.list_instances(parent="p-2-c1") == []
    assert store.list_instances(parent="nope") == []
    assert store.count_instances(parent="p-1") == 2
    assert store.count_instances(parent="p-1", search="c2") == 1
    assert store.get_instance("p-2-c1")["parent_id"] == "p-2"


# -- cursors -----------------------------------------------------------------------------------


def _seven(store: Store) -> list[str]:
    """Seven instances, two sharing each time; their ids newest first."""
    ids = [f"i{n}" for n in range(7)]
    for n, iid in enumerate(ids):
        _create(store, iid, at=T0 + timedelta(seconds=n // 2), status=("running", "failed")[n % 2])
    return ids[::-1]


def test_paging_with_before_and_after_cursors_gives_every_instance_once_in_order(
    store: Store,
) -> None:
    order = _seven(store)
    assert _ids(store.list_instances(limit=None)) == order
    pages = [store.list_instances(limit=3)]
    while pages[-1]:
        pages.append(store.list_instances(before=pages[-1][-1]["instance_id"], limit=3))
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [i for page in pages for i in _ids(page)] == order
    # back up again: after the first instance of a page comes the page before it
    assert _ids(store.list_instances(after=pages[2][0]["instance_id"], limit=3)) == _ids(pages[1])
    assert _ids(store.list_instances(after=pages[1][0]["instance_id"], limit=3)) == _ids(pages[0])
    assert store.list_instances(after=order[0], limit=3) == []
    # from the oldest up, 3 at a time: the nearest 3 newer each time, newest first
    seen: list[str] = [order[-1]]
    while page := store.list_instances(after=seen[0], limit=3):
        assert len(page) == 3 or len(seen) + len(page) == len(order)
        seen = _ids(page) + seen
    assert seen == order


def test_cursors_combine_with_filters_and_need_not_pass_them(store: Store) -> None:
    order = _seven(store)  # i6, i4, i2, i0 running; i5, i3, i1 failed
    assert _ids(store.list_instances(status="failed", before="i4")) == ["i3", "i1"]
    assert _ids(store.list_instances(status="running", before="i5", limit=2)) == ["i4", "i2"]
    assert _ids(store.list_instances(status=["failed"], after="i2")) == ["i5", "i3"]
    assert _ids(store.list_instances(search="i", after="i1", limit=2)) == ["i3", "i2"]
    assert store.list_instances(before=order[-1]) == []


def test_an_unknown_cursor_is_instance_not_found_and_both_at_once_a_value_error(
    store: Store,
) -> None:
    _seven(store)
    with pytest.raises(InstanceNotFound):
        store.list_instances(before="nope")
    with pytest.raises(InstanceNotFound):
        store.list_instances(after="nope", status="failed")
    with pytest.raises(ValueError, match="not both"):
        store.list_instances(before="i1", after="i3")


# -- counts and names --------------------------------------------------------------------------


def test_status_counts_count_only_the_statuses_present_with_or_without_filters(
    store: Store,
) -> None:
    assert store.status_counts() == {}
    plan = [
        ("o-1", "orders", "running"),
        ("o-2", "orders", "completed"),
        ("o-3", "orders", "completed"),
        ("r-1", "refunds", "failed"),
        ("r-2", "refunds", "completed"),
        ("x%1", "refunds", "cancelled"),
    ]
    for n, (iid, workflow, status) in enumerate(plan):
        _create(store, iid, workflow=workflow, status=status, at=T0 + timedelta(seconds=n))
    assert store.status_counts() == {"running": 1, "completed": 3, "failed": 1, "cancelled": 1}
    assert store.status_counts(workflow="orders") == {"running": 1, "completed": 2}
    assert store.status_counts(search="r-") == {"failed": 1, "completed": 1}
    assert store.status_counts(search="%") == {"cancelled": 1}
    assert store.status_counts(workflow="refunds", search="-") == {"failed": 1, "completed": 1}
    assert store.status_counts(workflow="nope") == {}


def test_workflow_names_are_the_distinct_names_sorted(store: Store) -> None:
    assert store.workflow_names() == []
    for n, workflow in enumerate(["refunds", "orders", "refunds", "Zeta", "billing"]):
        _create(store, f"i{n}", workflow=workflow, at=T0 + timedelta(seconds=n))
    assert store.workflow_names() == ["Zeta", "billing", "orders", "refunds"]


# -- one instance's mailbox and outbox --------------------------------------------------------


def test_mailbox_rows_are_every_event_oldest_first_consumed_or_not(store: Store) -> None:
    _create(store, "i-1")
    _create(store, "i-2")
    later = T0 + timedelta(seconds=5)
    store.deliver("paid", '{"n": 1}', source="shop", event_id="e1", now=T0, instance_id="i-1")
    store.deliver("shipped", "[2]", source="depot", event_id="e2", now=later, instance_id="i-1")
    store.deliver("paid", "3", source="shop", event_id="e3", now=T0, instance_id="i-2")
    [(mailbox_id, _event)] = store.mailbox("i-1", ["paid"])["paid"]
    step = StepWrite("i-1", "w1", 1, mailbox_consumed=[(mailbox_id, 2)])
    store.commit_step(step, later)

    rows = store.mailbox_rows("i-1")
    assert [set(r) for r in rows] == [
        {"id", "event_type", "event_id", "source", "data", "time", "consumed_seq"}
    ] * 2
    first, second = rows
    assert first["id"] == mailbox_id and first["id"] < second["id"]
    assert (first["event_type"], first["event_id"], first["source"]) == ("paid", "e1", "shop")
    assert first["data"] == {"n": 1} and first["consumed_seq"] == 2
    assert (second["event_type"], second["event_id"], second["source"]) == (
        "shipped",
        "e2",
        "depot",
    )
    assert second["data"] == [2] and second["consumed_seq"] is None
    assert first["time"] == T0 and second["time"] == later
    assert first["time"].tzinfo is not None
    assert [r["event_id"] for r in store.mailbox_rows("i-1", limit=1)] == ["e1"]
    assert [r["event_id"] for r in store.mailbox_rows("i-2")] == ["e3"]
    assert store.mailbox_rows("nope") == []


def test_outbox_rows_of_one_instance(store: Store) -> None:
    def rows(iid: str, n: int) -> list[tuple[Any, ...]]:
        return [(f"{iid}-ev{k}", iid, k, "t", "s", f'{{"k": {k}}}', T0, T0) for k in range(n)]

    _create(store, "i-1", outbox=rows("i-1", 2))
    _create(store, "i-2", outbox=rows("i-2", 1))
    _create(store, "i-3")  # none
    mine = store.outbox.rows(instance_id="i-1")
    assert [r["event_id"] for r in mine] == ["i-1-ev0", "i-1-ev1"]
    assert [r["data"] for r in mine] == [{"k": 0}, {"k": 1}]
    assert [r["event_id"] for r in store.outbox.rows(None, 100, instance_id="i-2")] == ["i-2-ev0"]
    assert store.outbox.rows(instance_id="i-3") == []
    assert len(store.outbox.rows()) == 3  # the filter is what cut it
    store.outbox.sent(mine[0]["id"], 1, T0)
    assert [r["event_id"] for r in store.outbox.rows(["sent"], instance_id="i-1")] == ["i-1-ev0"]
    assert [r["event_id"] for r in store.outbox.rows(["pending"], instance_id="i-1")] == ["i-1-ev1"]
    assert [r["event_id"] for r in store.outbox.rows(instance_id="i-1", limit=1)] == ["i-1-ev0"]


# -- migrations --------------------------------------------------------------------------------

_OLD_ROWS = [("old-1", "orders", "completed", 0), ("old-2", "refunds", "failed", 1)]


def _reads_of_old_rows(url: str) -> None:
    store = open_store(url)
    store.open()
    try:
        assert _ids(store.list_instances()) == ["old-2", "old-1"]
        assert _ids(store.list_instances(after="old-1")) == ["old-2"]
        assert store.status_counts() == {"completed": 1, "failed": 1}
        assert store.workflow_names() == ["orders", "refunds"]
        assert store.count_instances(search="old", status="failed") == 1
    finally:
        store.close()


def _indexes(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        ]
        return {n: [c[2] for c in conn.execute(f"PRAGMA index_info({n})")] for n in names}
    finally:
        conn.close()


def test_a_sqlite_file_of_the_previous_version_gains_the_indexes(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    db = sqlite_utils.Database(path)
    for version in range(1, sqlite_schema.SCHEMA_VERSION):
        sqlite_schema.MIGRATIONS[version](db)
    db.table("eddic_meta").insert(
        {"key": "schema_version", "value": str(sqlite_schema.SCHEMA_VERSION - 1)}
    )
    for iid, workflow, status, n in _OLD_ROWS:
        at = to_text(T0 + timedelta(seconds=n))
        db.execute(
            "INSERT INTO instances (instance_id, workflow_name, status, input_data, created_at, "
            "updated_at) VALUES (?, ?, ?, 'null', ?, ?)",
            [iid, workflow, status, at, at],
        )
    db.conn.commit()
    db.close()
    assert "instances_by_created" not in _indexes(path)
    _reads_of_old_rows(f"sqlite:///{path}")
    indexes = _indexes(path)
    assert indexes["instances_by_created"] == ["created_at", "ikey", "instance_id"]
    assert indexes["instances_by_status"] == ["status", "created_at", "ikey"]
    assert indexes["instances_by_workflow"] == ["workflow_name", "created_at", "ikey"]
    assert indexes["outbox_by_instance"] == ["instance_id", "id"]
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT value FROM eddic_meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert version == (str(sqlite_schema.SCHEMA_VERSION),)


def test_a_postgres_schema_of_the_previous_version_gains_the_indexes(
    postgres_server: pg_server.Server, postgres_schema_url: str
) -> None:
    schema = parse_postgres_url(postgres_schema_url).schema
    quoted = pg_schema.quote_ident(schema)
    previous = pg_schema.SCHEMA_VERSION - 1
    with postgres_server.admin(postgres_schema_url) as conn:
        conn.execute(f"CREATE SCHEMA {quoted}")
        conn.execute(f"SET search_path TO {quoted}")
        for version in range(1, previous + 1):
            pg_schema.MIGRATIONS[version](conn)
        conn.execute("INSERT INTO eddic_meta VALUES ('schema_version', %s)", [str(previous)])
        for iid, workflow, status, n in _OLD_ROWS:
            conn.execute(
                "INSERT INTO instances (instance_id, workflow_name, status, input_data, "
                "created_at, updated_at) VALUES (%s, %s, %s, 'null', %s, %s)",
                [iid, workflow, status, T0 + timedelta(seconds=n), T0 + timedelta(seconds=n)],
            )
    _reads_of_old_rows(postgres_schema_url)
    with postgres_server.admin(postgres_schema_url) as conn:
        found = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", [schema]
            ).fetchall()
        )
        version = conn.execute(
            f"SELECT value FROM {quoted}.eddic_meta WHERE key = 'schema_version'"
        ).fetchone()
    assert version == (str(pg_schema.SCHEMA_VERSION),)
    assert found["instances_by_status"].endswith("(status, created_at, ikey)")
    assert found["instances_by_workflow"].endswith("(workflow_name, created_at, ikey)")
    assert found["instances_by_created"].endswith("(created_at DESC, ikey DESC)")
    assert found["outbox_by_instance"].endswith("(instance_id, id)")


# -- plans (SQLite: its planner has no statistics, so the plan does not depend on the rows) ----


def test_sqlite_pages_and_counts_are_read_in_index_order_without_a_sort(tmp_path: Path) -> None:
    store: Any = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    store.open()
    try:
        _seven(store)
        reads: dict[str, Callable[[], Any]] = {
            "page": lambda: store.list_instances(limit=50),
            "page by status": lambda: store.list_instances(status="failed", limit=50),
            "page by workflow": lambda: store.list_instances(workflow="wf", limit=50),
            "before": lambda: store.list_instances(before="i3", limit=50),
            "after": lambda: store.list_instances(after="i3", limit=50),
            "before by status": lambda: store.list_instances(before="i3", status="failed"),
            "after by workflow": lambda: store.list_instances(after="i3", workflow="wf"),
            "search": lambda: store.list_instances(search="i", limit=50),
            "count": lambda: store.count_instances(),
            "count by status": lambda: store.count_instances(status="failed"),
            "status counts": lambda: store.status_counts(),
            "workflow names": lambda: store.workflow_names(),
            "outbox of one": lambda: store.outbox.rows(instance_id="i3"),
        }
        conn = store._db().conn
        plans: dict[str, list[str]] = {}
        for name, read in reads.items():
            sent: list[str] = []
            conn.set_trace_callback(sent.append)
            try:
                read()
            finally:
                conn.set_trace_callback(None)
            selects = [s for s in sent if s.lstrip().upper().startswith(("SELECT", "WITH"))]
            assert selects, name
            plans[name] = [
                row[3] for sql in selects for row in conn.execute("EXPLAIN QUERY PLAN " + sql)
            ]
    finally:
        store.close()
    for name, plan in plans.items():
        assert not [p for p in plan if "TEMP B-TREE" in p], (name, plan)  # no sort of them all
        scans = [p for p in plan if p.startswith(("SCAN instances", "SCAN outbox"))]
        assert not [p for p in scans if "INDEX" not in p], (name, plan)  # no table scan
    assert any("instances_by_created" in p for p in plans["before"]), plans["before"]
    assert any("instances_by_status" in p for p in plans["before by status"])
    assert any("instances_by_workflow" in p for p in plans["after by workflow"])
    assert any("outbox_by_instance" in p for p in plans["outbox of one"])


def test_the_read_only_view_of_a_file_offers_the_same_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'view.db'}"
    store = open_store(url)
    store.open()
    try:
        order = _seven(store)
        store.deliver("paid", "1", source="s", event_id="e1", now=T0, instance_id="i2")
        later = T0 + timedelta(seconds=10)
        _create(store, "o-1", at=later, outbox=[("ev", "o-1", 1, "t", "s", "{}", T0, T0)])
        expected = (
            _ids(store.list_instances(status="failed", before="i5", limit=2)),
            _ids(store.list_instances(after="i0", search="i", limit=3)),
            store.status_counts(workflow="wf"),
            store.workflow_names(),
            store.mailbox_rows("i2"),
        )
    finally:
        store.close()
    with ReadOnlyDatabase(url) as view:
        assert _ids(view.list_instances(limit=None))[1:] == order  # o-1 is the newest
        got = (
            _ids(view.list_instances(status="failed", before="i5", limit=2)),
            _ids(view.list_instances(after="i0", search="i", limit=3)),
            view.status_counts(workflow="wf"),
            view.workflow_names(),
            view.mailbox_rows("i2"),
        )
        assert got == expected
        assert got[0] == ["i3", "i1"] and got[1] == ["i3", "i2", "i1"]
        assert view.count_instances(search="i", status="failed", parent=None) == 3
        assert [r["event_id"] for r in view.outbox(instance_id="o-1")] == ["ev"]
        assert view.outbox(instance_id="i2") == []
        with pytest.raises(InstanceNotFound):
            view.list_instances(before="nope")
