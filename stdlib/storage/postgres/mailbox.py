"""Events on PostgreSQL: an instance's durable mailbox and the delivery of a sent event.

A delivery locks each instance it reaches (``FOR UPDATE``, in id order so that two broadcasts
never deadlock) before writing its mailbox: see ``steps`` for why that lock keeps an event from
slipping between a step that starts waiting for it and the delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...kernel import EddicError, Event, InstanceNotFound
from ...serde import loads
from ..broadcast import matching_targets
from ..sqlite.public_rows import MAILBOX_FIELDS, mailbox_row
from .rows import texts, utc
from .steps import Cursor

_FINISHED = ("completed", "failed", "cancelled")


def unconsumed(
    cur: Cursor, instance_id: str, types: Sequence[str]
) -> dict[str, list[tuple[int, Event]]]:
    """The instance's unconsumed events of these types, by type, oldest first."""
    cur.execute(
        "SELECT id, event_id, event_type, source, time, data FROM mailbox "
        "WHERE instance_id = %s AND consumed_seq IS NULL AND event_type = ANY(%s) ORDER BY id",
        [instance_id, list(types)],
    )
    out: dict[str, list[tuple[int, Event]]] = {}
    for mid, eid, etype, source, when, data in cur.fetchall():
        event = Event(eid, etype, source, utc(when), loads(data))
        out.setdefault(etype, []).append((mid, event))
    return out


def rows(cur: Cursor, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The instance's mailbox rows, consumed or not, oldest first (``public_rows.mailbox_row``);
    none for an unknown instance. Read through the ``(instance_id, event_id)`` unique index."""
    cur.execute(
        f"SELECT {', '.join(MAILBOX_FIELDS)} FROM mailbox WHERE instance_id = %s "
        "ORDER BY id LIMIT %s",
        [instance_id, int(limit)],
    )
    return [mailbox_row(texts(dict(zip(MAILBOX_FIELDS, r, strict=True)))) for r in cur.fetchall()]


def deliver(
    cur: Cursor,
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
    targets: list[Any]
    if instance_id is not None:
        cur.execute(
            "SELECT status, workflow_name FROM instances WHERE instance_id = %s FOR UPDATE",
            [instance_id],
        )
        row = cur.fetchone()
        if row is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        if row[0] in _FINISHED:
            raise EddicError(
                f"instance {instance_id!r} has finished ({row[0]}); it will never receive an event"
            )
        targets = [(instance_id, str(row[1]))]
    else:
        cur.execute(
            "SELECT i.instance_id, i.workflow_name, w.match FROM instances i "
            "JOIN event_waits w ON w.instance_id = i.instance_id WHERE w.event_type = %s "
            "ORDER BY i.instance_id FOR UPDATE OF i",
            [event_type],
        )
        targets = matching_targets(cur.fetchall(), payload)
    reached: list[tuple[str, str]] = []
    for target, name in targets:
        cur.execute(
            "INSERT INTO mailbox (instance_id, event_id, event_type, source, time, data) "
            "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (instance_id, event_id) DO NOTHING",
            [target, event_id, event_type, source, now, payload],
        )
        if cur.rowcount != 1:
            continue  # this instance already has this event id
        reached.append((target, name))
        cur.execute(
            "UPDATE instances SET wake_at = %s WHERE instance_id = %s AND EXISTS "
            "(SELECT 1 FROM event_waits WHERE instance_id = %s AND event_type = %s)",
            [now, target, target, event_type],
        )
    return reached


def waits_of(cur: Cursor, instance_id: str) -> set[int]:
    """The seqs of the instance's event waits as stored (for broadcasts to find it)."""
    cur.execute("SELECT seq FROM event_waits WHERE instance_id = %s", [instance_id])
    return {r[0] for r in cur.fetchall()}
