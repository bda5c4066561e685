"""Timers and external events: what is due for an instance, and ``send_event``.

A timer is due when ``now >= deadline``. An event in the instance's mailbox resolves the oldest
matching ``WaitEvent`` (first in, first out per type). When an event and a deadline compete, the
earlier of (event time, deadline) wins, and the event wins a tie, even if it is processed after
the deadline passed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import validate
from .clock import from_text, to_text, utcnow
from .instance import LiveInstance, event_to_json
from .kernel import EddicError, Event, Failure, InstanceNotFound, Resolved
from .serde import dumps, loads, to_jsonable
from .storage.sqlite.steps import StepWrite

if TYPE_CHECKING:
    from .runtime import App
    from .worker import Worker

log = logging.getLogger("eddic")

_TERMINAL = ("completed", "failed", "cancelled")


def resolve_due(worker: Worker, live: LiveInstance, now: datetime) -> StepWrite | None:
    """Feed the earliest due timer, event or timeout to the instance and commit it.

    Returns the committed step, or None when nothing is due.
    """
    pending = live.interp.pending
    candidates: list[tuple[datetime, int, int, Resolved, Any, tuple[int, int] | None]] = []
    event_leaves = [p for p in pending if p.kind == "event"]
    mailbox: dict[str, list[tuple[Any, ...]]] = {}
    if event_leaves:
        types = sorted({p.name for p in event_leaves})
        with worker.storage.reading() as db:
            rows = db.execute(
                "SELECT id, event_id, event_type, source, time, data FROM mailbox "
                f"WHERE instance_id = ? AND consumed_seq IS NULL AND event_type IN "
                f"({', '.join('?' * len(types))}) ORDER BY id",
                [live.instance_id, *types],
            ).fetchall()
        for row in rows:
            mailbox.setdefault(row[2], []).append(row)
    for p in pending:
        if p.kind == "timer" and p.deadline is not None and p.deadline <= now:
            candidates.append((p.deadline, 1, p.seq, Resolved(p.seq, now), None, None))
        elif p.kind == "event":
            queue = mailbox.get(p.name)
            if queue and (p.deadline is None or from_text(queue[0][4]) <= p.deadline):  # type: ignore[operator]
                mid, eid, etype, source, when, data = queue.pop(0)
                event = Event(eid, etype, source, from_text(when), loads(data))  # type: ignore[arg-type]
                candidates.append(
                    (
                        event.time,
                        0,
                        p.seq,
                        Resolved(p.seq, now, event),
                        event_to_json(event),
                        (mid, p.seq),
                    )
                )
            elif p.deadline is not None and p.deadline <= now:
                failure = Failure(
                    "eddic.EventTimeout",
                    f"no {p.name!r} event arrived by {p.deadline.isoformat()}",
                )
                candidates.append(
                    (p.deadline, 1, p.seq, Resolved(p.seq, now, failure=failure), None, None)
                )
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    _when, _prio, seq, resolved, json_value, consumed = candidates[0]
    live.interp.feed(resolved)
    values = {} if json_value is None else {seq: dumps(json_value)}
    step = worker._step(live, [resolved, *live.interp.decide()], values, now)
    if consumed is not None:
        step.mailbox_consumed.append(consumed)
    return worker._commit(live, step, now)


def send_event(
    app: App,
    event_type: str,
    data: Any = None,
    *,
    source: str | None = None,
    id: str | None = None,
    instance_id: str | None = None,
) -> list[str]:
    """Deliver an event; returns the ids of the instances it reached.

    With ``instance_id`` it goes to that instance's durable mailbox, to be received by its
    next matching ``WaitEvent``. Without, it reaches every instance whose pending
    ``WaitEvent`` matches when the send commits. A repeated event id is ignored.
    """
    app._ready()
    validate.name(event_type, "event type")
    if id is not None:
        validate.name(id, "event id")
    if instance_id is not None:
        validate.name(instance_id, "instance_id")
    if source is not None:
        validate.name(source, "event source")
    now = utcnow()
    event_id = id or str(uuid.uuid4())
    payload = dumps(to_jsonable(data, what=f"data of event {event_type!r}"))
    origin = source or app.service_name
    reached: list[tuple[str, str]] = []
    with app.storage.transaction() as db:
        if instance_id is not None:
            row = app.storage.instance_row(db, instance_id)
            if row is None:
                raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
            if row["status"] in _TERMINAL:
                raise EddicError(
                    f"instance {instance_id!r} has finished ({row['status']}); "
                    "it will never receive an event"
                )
            targets = [(instance_id, row["workflow_name"])]
        else:
            targets = db.execute(
                "SELECT DISTINCT w.instance_id, i.workflow_name FROM event_waits w "
                "JOIN instances i ON i.instance_id = w.instance_id WHERE w.event_type = ?",
                [event_type],
            ).fetchall()
        for target, name in targets:
            cursor = db.execute(
                "INSERT OR IGNORE INTO mailbox (instance_id, event_id, event_type, source, "
                "time, data) VALUES (?,?,?,?,?,?)",
                [target, event_id, event_type, origin, to_text(now), payload],
            )
            if cursor.rowcount != 1:
                continue  # this instance already has this event id
            reached.append((target, name))
            db.execute(
                "UPDATE instances SET wake_at = ? WHERE instance_id = ? AND EXISTS "
                "(SELECT 1 FROM event_waits WHERE instance_id = ? AND event_type = ?)",
                [to_text(now), target, target, event_type],
            )
    # The event is durable now: nothing that goes wrong running its receivers may raise here,
    # or a caller's retry would send it again under a new id.
    for target, name in reached:
        try:
            app._worker._resume(target, name, utcnow())
        except Exception:
            log.exception(
                "event %s reached instance %s; running it inline failed", event_id, target
            )
    return [target for target, _name in reached]
