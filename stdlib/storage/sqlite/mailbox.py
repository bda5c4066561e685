"""The SQL of events: an instance's durable mailbox and the delivery of a sent event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from ...clock import from_text, to_text
from ...kernel import EddicError, Event, InstanceNotFound
from ...serde import loads
from ..broadcast import matching_targets
from .public_rows import MAILBOX_FIELDS, mailbox_row

_FINISHED = ("completed", "failed", "cancelled")


def unconsumed(
    db: sqlite_utils.Database, instance_id: str, types: Sequence[str]
) -> dict[str, list[tuple[int, Event]]]:
    """The instance's unconsumed events of these types, by type, oldest first."""
    rows = db.execute(
        "SELECT id, event_id, event_type, source, time, data FROM mailbox "
        f"WHERE instance_id = ? AND consumed_seq IS NULL AND event_type IN "
        f"({', '.join('?' * len(types))}) ORDER BY id",
        [instance_id, *types],
    ).fetchall()
    out: dict[str, list[tuple[int, Event]]] = {}
    for mid, eid, etype, source, when, data in rows:
        at = from_text(when)
        assert at is not None
        out.setdefault(etype, []).append((mid, Event(eid, etype, source, at, loads(data))))
    return out


def rows(db: sqlite_utils.Database, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The instance's mailbox rows, consumed or not, oldest first (``public_rows.mailbox_row``);
    none for an unknown instance. Read through ``mailbox_once`` (one instance's entries)."""
    cursor = db.execute(
        f"SELECT {', '.join(MAILBOX_FIELDS)} FROM mailbox WHERE instance_id = ? "
        "ORDER BY id LIMIT ?",
        [instance_id, int(limit)],
    )
    return [mailbox_row(dict(zip(MAILBOX_FIELDS, r, strict=True))) for r in cursor.fetchall()]


def deliver(
    db: sqlite_utils.Database,
    event_type: str,
    payload: str,
    *,
    source: str,
    event_id: str,
    now: datetime,
    instance_id: str | None,
) -> list[tuple[str, str]]:
    """Store an event in the mailbox of its target (or of every instance waiting on its type)
    and make the waiting ones due; ``(instance id, workflow name)`` of each instance reached.
    A repeated ``(instance, event id)`` is ignored."""
    if instance_id is not None:
        row = db.execute(
            "SELECT status, workflow_name FROM instances WHERE instance_id = ?", [instance_id]
        ).fetchone()
        if row is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        if row[0] in _FINISHED:
            raise EddicError(
                f"instance {instance_id!r} has finished ({row[0]}); it will never receive an event"
            )
        targets = [(instance_id, str(row[1]))]
    else:
        waiting = db.execute(
            "SELECT w.instance_id, i.workflow_name, w.match FROM event_waits w "
            "JOIN instances i ON i.instance_id = w.instance_id WHERE w.event_type = ?",
            [event_type],
        ).fetchall()
        targets = matching_targets(waiting, payload)
    reached: list[tuple[str, str]] = []
    when = to_text(now)
    for target, name in targets:
        cursor = db.execute(
            "INSERT OR IGNORE INTO mailbox (instance_id, event_id, event_type, source, "
            "time, data) VALUES (?,?,?,?,?,?)",
            [target, event_id, event_type, source, when, payload],
        )
        if cursor.rowcount != 1:
            continue  # this instance already has this event id
        reached.append((target, name))
        db.execute(
            "UPDATE instances SET wake_at = ? WHERE instance_id = ? AND EXISTS "
            "(SELECT 1 FROM event_waits WHERE instance_id = ? AND event_type = ?)",
            [when, target, target, event_type],
        )
    return reached


def waits_of(db: sqlite_utils.Database, instance_id: str) -> set[int]:
    """The seqs of the instance's event waits as stored (for broadcasts to find it)."""
    rows = db.execute("SELECT seq FROM event_waits WHERE instance_id = ?", [instance_id])
    return {r[0] for r in rows.fetchall()}
