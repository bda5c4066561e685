"""Taking work on SQLite: leases, one by id (``acquire``) or a batch of due work (``claim``).

Every function here runs inside the caller's ``BEGIN IMMEDIATE`` transaction, so a claim's read
and its lease updates are one unit: SQLite has one writer at a time, so two claimers (threads or
processes) can never take one instance twice, and never wait on each other's rows for long.
The workflow names a claimer can run are passed as one JSON array (``json_each``), so any number
of them costs one bound parameter. The filter is written ``+workflow_name IN (...)``: the unary
``+`` keeps SQLite from reading it through ``instances_by_workflow``, whose equality lookup its
planner (which has no statistics) prefers to any range, and which holds every instance of those
workflows, finished or not: an idle worker's due query then read all of them (64 ms per poll
with 100,000 instances, tests/benchmarks/viewer_queries.py) instead of the few entries of
``instances_by_wake_at`` that are due (tests/storage/test_poll_plans.py pins the plans).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from ...clock import from_text, to_text
from .schema import MAX_POS, POS_BITS

FINISHED = ("completed", "failed", "cancelled")
_UNFINISHED = "status NOT IN ('completed','failed','cancelled')"
_FREE = (
    "(lock_owner IS NULL OR lock_expires_at < :now) "
    "AND (retry_after IS NULL OR retry_after <= :now)"
)
# Due: a wake time has come (timer, deadline, retry, delivered event). Stale: running or
# compensating with nothing to wait for, and no live lease (its worker died or handed it back).
_DUE = f"wake_at IS NOT NULL AND wake_at <= :now AND {_FREE} AND {_UNFINISHED}"
_STALE = (
    "status IN ('running','compensating') AND (wake_at IS NULL OR wake_at <= :now) AND " + _FREE
)


def take_lease(
    db: sqlite_utils.Database,
    row: dict[str, Any],
    owner: str,
    now: datetime,
    default_timeout: float,
) -> tuple[int, dict[str, Any]] | None:
    """Take the lease of the instance ``row`` (read in this transaction) if it is free or
    expired: ``(epoch, row)`` with ``last_pos`` added, or None."""
    if row["status"] in FINISHED:
        return None
    expires = from_text(row["lock_expires_at"])
    if row["lock_owner"] is not None and expires is not None and expires > now:
        return None
    timeout = row["lock_timeout_seconds"] or default_timeout
    epoch = row["lock_epoch"] + 1
    db.execute(
        "UPDATE instances SET lock_owner = ?, lock_epoch = ?, lock_expires_at = ? "
        "WHERE instance_id = ?",
        [owner, epoch, to_text(now + timedelta(seconds=timeout)), row["instance_id"]],
    )
    last = db.execute(
        "SELECT MAX(id) FROM history WHERE id BETWEEN ? AND ?",
        [row["ikey"] << POS_BITS, row["ikey"] << POS_BITS | MAX_POS],
    ).fetchone()[0]
    # Not a column: the number of history rows, for the worker's cache check.
    row.update(lock_owner=owner, lock_epoch=epoch, last_pos=0 if last is None else last & MAX_POS)
    return epoch, row


def claim(
    db: sqlite_utils.Database,
    now: datetime,
    owner: str,
    *,
    limit: int,
    default_timeout: float,
    workflows: Sequence[str],
    stale: bool,
) -> list[tuple[int, dict[str, Any]]]:
    """Take the leases of up to ``limit`` due (and, with ``stale``, stale) instances of these
    workflows, the longest-waiting first. Two index-served queries, each bounded by ``limit``
    (the due one by ``instances_by_wake_at``, read in wake order, the stale one by
    ``instances_by_status``); the workflow filter is tested on their rows (``+``, above)."""
    params = {"now": to_text(now), "names": json.dumps(list(workflows)), "limit": limit}
    mine = "+workflow_name IN (SELECT value FROM json_each(:names))"
    found = _rows(
        db, f"SELECT * FROM instances WHERE {_DUE} AND {mine} ORDER BY wake_at LIMIT :limit", params
    )
    if stale:
        seen = {r["instance_id"] for r in found}
        found += [
            r
            for r in _rows(
                db,
                f"SELECT * FROM instances WHERE {_STALE} AND {mine} "
                "ORDER BY updated_at LIMIT :limit",
                params,
            )
            if r["instance_id"] not in seen
        ]
        found.sort(key=lambda r: r["wake_at"] or r["updated_at"] or "")
    taken = []
    for row in found[:limit]:
        got = take_lease(db, row, owner, now, default_timeout)
        if got is not None:
            taken.append(got)
    return taken


def due_elsewhere(
    db: sqlite_utils.Database, now: datetime, workflows: Sequence[str], limit: int
) -> list[tuple[str, str]]:
    """Due or stale instances of workflows *not* among ``workflows``: work for another process,
    which ``claim`` passes over (``(instance id, workflow name)``)."""
    params = {"now": to_text(now), "names": json.dumps(list(workflows)), "limit": limit}
    others = "workflow_name NOT IN (SELECT value FROM json_each(:names))"
    rows = db.execute(
        f"SELECT instance_id, workflow_name FROM instances WHERE (({_DUE}) OR ({_STALE})) "
        f"AND {others} LIMIT :limit",
        params,
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _rows(db: sqlite_utils.Database, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
