"""The SQL of the transactional outbox: the rows the relay delivers, claims and marks.

The relay's policy (which rows, when, how often, what a failure means) is ``eddic.runtime.outbox``;
this module only reads and writes the rows, each function inside a transaction its caller
(``Storage``) opens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import sqlite_utils

from ...clock import to_text
from ...serde import loads

_HEAD_ROWS = (
    "SELECT id, event_id, instance_id, event_type, source, data, time, attempts FROM outbox o "
    "WHERE status = 'pending' AND next_attempt_at <= ? AND o.id <= ? AND NOT EXISTS (SELECT 1 "
    "FROM outbox p WHERE p.instance_id = o.instance_id AND p.id < o.id "
    "AND p.status IN ('pending','failed')) ORDER BY id LIMIT ?"
)


def newest_id(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])


def heads(db: sqlite_utils.Database, now: datetime, newest: int, limit: int) -> list[Any]:
    """The head row of each instance's queue that is due, up to row ``newest``:
    ``(id, event_id, instance_id, event_type, source, data, time, attempts)``."""
    return list(db.execute(_HEAD_ROWS, [to_text(now), newest, limit]).fetchall())


def claim(
    db: sqlite_utils.Database, row_id: int, attempts: int, until: datetime, now: datetime
) -> bool:
    """Move a due pending row's next attempt to ``until``; False when another relay has it."""
    return bool(
        db.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE id = ? AND status = 'pending' "
            "AND attempts = ? AND next_attempt_at <= ?",
            [to_text(until), row_id, attempts, to_text(now)],
        ).rowcount
    )


def mark_sent(db: sqlite_utils.Database, row_id: int, attempts: int, now: datetime) -> None:
    db.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = ? WHERE id = ?",
        [to_text(now), attempts, row_id],
    )


def mark_failed_attempt(
    db: sqlite_utils.Database,
    row_id: int,
    *,
    attempts: int,
    error: str,
    next_at: datetime,
    give_up: bool,
) -> None:
    db.execute(
        "UPDATE outbox SET status = ?, attempts = ?, last_error = ?, next_attempt_at = ? "
        "WHERE id = ?",
        ["failed" if give_up else "pending", attempts, error, to_text(next_at), row_id],
    )


def select_outbox(
    db: sqlite_utils.Database,
    *,
    statuses: Sequence[str] | None = None,
    limit: int = 100,
    instance_id: str | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows as dicts (``data`` decoded), in delivery order; of one instance only with
    ``instance_id`` (read through ``outbox_by_instance``)."""
    sql = (
        "SELECT id, event_id, instance_id, seq, event_type, source, data, time, status, attempts, "
        "next_attempt_at, last_error, sent_at FROM outbox"
    )
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if instance_id is not None:
        where.append("instance_id = ?")
        params.append(instance_id)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    rows = list(db.query(sql, params))
    for row in rows:
        row["data"] = loads(row["data"])
    return rows


def retry_failed(db: sqlite_utils.Database, now: datetime, event_id: str | None) -> int:
    sql = (
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ? "
        "WHERE status = 'failed'"
    )
    params: list[Any] = [to_text(now)]
    if event_id is not None:
        sql += " AND event_id = ?"
        params.append(event_id)
    return int(db.execute(sql, params).rowcount)


def discard(db: sqlite_utils.Database, event_id: str | None) -> int:
    sql = "UPDATE outbox SET status = 'discarded' WHERE status = 'failed'"
    params: list[Any] = []
    if event_id is not None:
        sql += " AND event_id = ?"
        params.append(event_id)
    return int(db.execute(sql, params).rowcount)


class OutboxRows:
    """``Storage.outbox``: each method one unit of work on the outbox rows."""

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[sqlite_utils.Database]],
        reading: Callable[[], AbstractContextManager[sqlite_utils.Database]],
    ) -> None:
        self._transaction = transaction
        self._reading = reading

    def due_heads(self, now: datetime, newest: int | None, limit: int) -> tuple[int, list[Any]]:
        """``(newest, heads)``: the due head rows up to row ``newest`` (the newest row now when
        None), so that a relay pass can stop at the rows present when it began."""
        with self._reading() as db:
            if newest is None:
                newest = newest_id(db)
            return newest, heads(db, now, newest, limit)

    def claim(self, row_id: int, attempts: int, until: datetime, now: datetime) -> bool:
        with self._transaction() as db:
            return claim(db, row_id, attempts, until, now)

    def sent(self, row_id: int, attempts: int, now: datetime) -> None:
        with self._transaction() as db:
            mark_sent(db, row_id, attempts, now)

    def failed_attempt(
        self, row_id: int, *, attempts: int, error: str, next_at: datetime, give_up: bool
    ) -> None:
        with self._transaction() as db:
            mark_failed_attempt(
                db, row_id, attempts=attempts, error=error, next_at=next_at, give_up=give_up
            )

    def rows(
        self,
        statuses: Sequence[str] | None = None,
        limit: int = 100,
        instance_id: str | None = None,
    ) -> list[dict[str, Any]]:
        with self._reading() as db:
            return select_outbox(db, statuses=statuses, limit=limit, instance_id=instance_id)

    def pending(self) -> bool:
        """Whether any row waits for delivery."""
        with self._reading() as db:
            row = db.execute("SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1").fetchone()
        return row is not None

    def retry_failed(self, now: datetime, event_id: str | None = None) -> int:
        with self._transaction() as db:
            return retry_failed(db, now, event_id)

    def discard(self, event_id: str | None = None) -> int:
        with self._transaction() as db:
            return discard(db, event_id)
