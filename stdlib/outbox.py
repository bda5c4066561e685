"""The transactional outbox relay: pending rows to a sink, at least once, in order per instance.

Rows are written by ``Publish`` and ``ctx.publish`` in the same transaction as the history record
that produced them. The relay claims the head row of each instance's queue, delivers it, and marks
it sent; on failure it backs off (a durable next-attempt time) and after ``max_attempts`` marks the
row failed, which holds back that instance's later rows (never another instance's) until
``retry_failed`` or ``discard``.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from .clock import from_text, to_text, utcnow
from .kernel import EddicError, Event
from .serde import loads
from .storage import Storage

_HEAD_ROWS = (
    "SELECT id, event_id, instance_id, event_type, source, data, time, attempts FROM outbox o "
    "WHERE status = 'pending' AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM outbox p "
    "WHERE p.instance_id = o.instance_id AND p.id < o.id AND p.status IN ('pending','failed')) "
    "ORDER BY id LIMIT ?"
)


class SinkError(EddicError):
    """A sink refused an event or did not answer in time."""


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failures: 1 s, doubling, 5 min cap."""
    return float(min(300.0, 2.0 ** (attempts - 1)))


def event_of(row: tuple[Any, ...]) -> Event:
    _id, event_id, _iid, event_type, source, data, time, _attempts = row
    when = from_text(time)
    assert when is not None
    return Event(event_id, event_type, source, when, loads(data))


def cloudevent_json(event: Event) -> bytes:
    """CloudEvents 1.0, structured mode."""
    body = {
        "specversion": "1.0",
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "time": event.time.isoformat(),
        "datacontenttype": "application/json",
        "data": event.data,
    }
    return json.dumps(body).encode()


def deliver(sink: Callable[[Event], Any] | str, event: Event, timeout: float) -> None:
    """Hand one event to the sink; raise on refusal or on a timeout."""
    if isinstance(sink, str):
        request = urllib.request.Request(
            sink,
            data=cloudevent_json(event),
            headers={"Content-Type": "application/cloudevents+json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise SinkError(f"{sink} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SinkError(f"{sink} is unreachable: {exc}") from None
        if not 200 <= status < 300:
            raise SinkError(f"{sink} answered HTTP {status}")
        return
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            sink(event)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call, name="eddic-outbox-sink", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise SinkError(f"sink {sink!r} did not return within {timeout}s")
    if outcome[0] is not None:
        raise SinkError(f"sink {sink!r} raised {type(outcome[0]).__name__}: {outcome[0]}")


def relay(
    storage: Storage,
    sink: Callable[[Event], Any] | str | None,
    *,
    max_attempts: int,
    timeout: float,
    batch: int = 100,
) -> int:
    """Deliver due pending rows; returns how many were delivered. No sink: rows stay pending."""
    if sink is None:
        return 0
    delivered = 0
    while True:
        progress = _relay_heads(storage, sink, max_attempts, timeout, batch)
        delivered += progress
        if not progress:
            return delivered


def _relay_heads(
    storage: Storage,
    sink: Callable[[Event], Any] | str,
    max_attempts: int,
    timeout: float,
    batch: int,
) -> int:
    """One round: the due head row of each instance's queue. Returns how many were delivered."""
    delivered = 0
    now = utcnow()
    with storage.reading() as db:
        heads = db.execute(_HEAD_ROWS, [to_text(now), batch]).fetchall()
    for row in heads:
        row_id, attempts = row[0], row[7]
        claim_until = now + timedelta(seconds=timeout + 30)
        with storage.transaction() as db:
            claimed = db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE id = ? AND status = 'pending' "
                "AND attempts = ? AND next_attempt_at <= ?",
                [to_text(claim_until), row_id, attempts, to_text(now)],
            ).rowcount
        if not claimed:
            continue  # another relay has it
        try:
            deliver(sink, event_of(row), timeout)
        except SinkError as exc:
            _record_failure(storage, row_id, attempts + 1, str(exc), max_attempts)
            continue
        with storage.transaction() as db:
            db.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = ? WHERE id = ?",
                [to_text(utcnow()), attempts + 1, row_id],
            )
        delivered += 1
    return delivered


def _record_failure(
    storage: Storage, row_id: int, attempts: int, error: str, max_attempts: int
) -> None:
    now = utcnow()
    status = "failed" if attempts >= max_attempts else "pending"
    with storage.transaction() as db:
        db.execute(
            "UPDATE outbox SET status = ?, attempts = ?, last_error = ?, next_attempt_at = ? "
            "WHERE id = ?",
            [status, attempts, error, to_text(now + timedelta(seconds=backoff(attempts))), row_id],
        )


def outbox_rows(
    storage: Storage, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    with storage.reading() as db:
        return select_outbox(db, statuses=None if status is None else [status], limit=limit)


def select_outbox(
    db: sqlite_utils.Database, *, statuses: Sequence[str] | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Outbox rows as dicts (``data`` decoded), in delivery order."""
    sql = (
        "SELECT id, event_id, instance_id, seq, event_type, source, data, time, status, attempts, "
        "next_attempt_at, last_error, sent_at FROM outbox"
    )
    params: list[Any] = []
    if statuses:
        sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
        params.extend(statuses)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    rows = list(db.query(sql, params))
    for row in rows:
        row["data"] = loads(row["data"])
    return rows


def retry_failed(storage: Storage, event_id: str | None = None) -> int:
    """Put failed rows (all, or one) back to pending with a fresh attempt count."""
    now: datetime = utcnow()
    sql = (
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ? "
        "WHERE status = 'failed'"
    )
    params: list[Any] = [to_text(now)]
    if event_id is not None:
        sql += " AND event_id = ?"
        params.append(event_id)
    with storage.transaction() as db:
        return int(db.execute(sql, params).rowcount)


def discard(storage: Storage, event_id: str | None = None) -> int:
    """Mark failed rows (all, or one) discarded, releasing the rows held behind them."""
    sql = "UPDATE outbox SET status = 'discarded' WHERE status = 'failed'"
    params: list[Any] = []
    if event_id is not None:
        sql += " AND event_id = ?"
        params.append(event_id)
    with storage.transaction() as db:
        return int(db.execute(sql, params).rowcount)
