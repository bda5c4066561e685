"""The plans of a worker's polls on SQLite: what an idle worker reads must not grow with the
instances that have finished.

SQLite's planner has no statistics (eddic never runs ``ANALYZE``), so it prefers an equality
lookup to any range: given ``workflow_name IN (...)`` it would read ``instances_by_workflow``,
every instance of the worker's workflows, finished or not (64 ms for the claim's due query and
86 ms for ``next_wake`` with 100,000 instances, tests/benchmarks/viewer_queries.py), instead of
the few entries of the partial ``instances_by_wake_at`` (0.01 ms). The workflow filter is
written ``+workflow_name`` so that the index is not used for it; these tests pin the plans that
result, and that the filter still holds."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from eddic.clock import to_text
from eddic.storage import StepWrite, open_store

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1)
FINISHED = 3000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    """A file holding 3,000 finished instances of ``wf``, one due instance of it (``due``, its
    wake time ``T0``) and one of ``other``, due a minute earlier."""
    path = tmp_path / "polls.db"
    backend: Any = open_store(f"sqlite:///{path}")
    backend.open()
    for iid, workflow, wake in [
        ("due", "wf", T0),
        ("elsewhere", "other", T0 - timedelta(minutes=1)),
    ]:
        row = {
            "instance_id": iid,
            "workflow_name": workflow,
            "status": "running",
            "input_data": "null",
            "created_at": T0,
            "updated_at": T0,
            "started_at": T0,
            "lock_owner": None,
            "lock_epoch": 0,
            "lock_expires_at": None,
        }
        taken, _key = backend.create(row, StepWrite(iid, "", 0, columns={"wake_at": wake}), T0)
        assert taken is None
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO instances (instance_id, workflow_name, status, created_at, updated_at) "
            "VALUES (?, 'wf', ?, ?, ?)",
            [
                (f"done-{n}", ("completed", "failed", "cancelled")[n % 3], at, at)
                for n in range(FINISHED)
                for at in [to_text(T0 - timedelta(seconds=FINISHED - n))]
            ],
        )
    conn.close()
    yield backend
    backend.close()


def _plans(store: Any, call: Callable[[], Any]) -> tuple[Any, dict[str, list[str]]]:
    """What ``call`` returns, and the plan of each SELECT it sends (by its SQL text)."""
    conn = store._db().conn  # the calling thread's connection: the one the call uses
    sent: list[str] = []
    conn.set_trace_callback(sent.append)
    try:
        result = call()
    finally:
        conn.set_trace_callback(None)
    selects = [s for s in sent if s.lstrip().upper().startswith("SELECT")]
    plans = {
        sql: [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        for sql in selects
        if "FROM instances" in sql
    }
    assert plans, sent
    return result, plans


def _reads_the_due_index(plan: list[str]) -> bool:
    """The plan reads ``instances_by_wake_at``, and neither ``instances_by_workflow`` nor the
    whole table."""
    return (
        any(p.startswith("SEARCH instances USING INDEX instances_by_wake_at") for p in plan)
        and not any("instances_by_workflow" in p for p in plan)
        and not any(p.startswith("SCAN instances") for p in plan)
    )


def test_the_claims_due_query_reads_the_due_index_in_wake_order(store: Any) -> None:
    def claim() -> Any:
        return store.claim(NOW, "w1", limit=4, default_timeout=60, workflows=["wf"], stale=False)

    taken, plans = _plans(store, claim)
    assert [row["instance_id"] for _epoch, row in taken] == ["due"]  # not "elsewhere"
    [(sql, plan)] = [(s, p) for s, p in plans.items() if "ORDER BY wake_at" in s]
    assert _reads_the_due_index(plan), (sql, plan)
    assert not [p for p in plan if "TEMP B-TREE" in p], plan  # the index gives the order


def test_the_claims_stale_query_reads_the_status_index(store: Any) -> None:
    def claim() -> Any:
        return store.claim(NOW, "w1", limit=4, default_timeout=60, workflows=["wf"], stale=True)

    taken, plans = _plans(store, claim)
    assert [row["instance_id"] for _epoch, row in taken] == ["due"]
    [(sql, plan)] = [(s, p) for s, p in plans.items() if "ORDER BY updated_at" in s]
    assert any(p.startswith("SEARCH instances USING INDEX instances_by_status") for p in plan)
    assert not any("instances_by_workflow" in p for p in plan), (sql, plan)


@pytest.mark.parametrize(
    ("workflows", "exclude", "expected"),
    [
        (["wf"], [], T0),
        (["wf", "other"], [], T0 - timedelta(minutes=1)),
        (["wf", "other"], ["elsewhere"], T0),
        (["nothing"], [], None),
        (None, [], T0 - timedelta(minutes=1)),
    ],
)
def test_next_wake_reads_the_due_index(
    store: Any, workflows: list[str] | None, exclude: list[str], expected: datetime | None
) -> None:
    found, plans = _plans(store, lambda: store.next_wake(exclude=exclude, workflows=workflows))
    assert found == expected
    [(sql, plan)] = plans.items()
    assert _reads_the_due_index(plan), (sql, plan)
