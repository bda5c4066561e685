"""What one step writes, in PostgreSQL's SQL: the same ``StepWrite`` as SQLite's.

The step's instance update is fenced by ``(owner, epoch)`` and takes the instance's row lock,
held to the commit. That lock is what makes READ COMMITTED enough:

- a worker taking the lease over (``acquire``/``claim``) waits for the step's commit and then
  finds the row as the step left it, so a lease is never taken from under a step half-written;
- an event delivered to the instance (``mailbox.deliver`` locks the row too) comes either
  wholly before the step, whose check of the mailbox then sees it (``woke``), or wholly after,
  when the step's event waits are committed and the delivery makes the instance due. Without
  the lock each could miss the other's uncommitted rows and the event would be lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg

from ..step import LeaseLost, StepWrite, leaves_work, step_columns
from .units import SERVER_START, XACT_ID, Xid
from .wire import Pipeline

Cursor = psycopg.Cursor[tuple[Any, ...]]

#: What the fenced statement raises inside SQL when the fence matched no row: the text of an
#: ``invalid_text_representation`` (22P02) error, which :func:`lease_lost` maps to ``LeaseLost``.
#: The transaction is then aborted, the statements queued after it are skipped, and its
#: ``COMMIT`` (never sent: see ``units``) could only roll it back.
LEASE_LOST = "eddic: lease lost"
_FENCE = "instance_id = %s AND lock_owner = %s AND lock_epoch = %s"

_HISTORY = (
    "INSERT INTO history (instance_id, pos, seq, record, kind, name, args, at, deadline, value, "
    "failure) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)
_OUTBOX = (
    "INSERT INTO outbox (event_id, instance_id, seq, event_type, source, data, "
    "time, status, attempts, next_attempt_at) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,'pending',0,%s)"
)
_WAITS_REMOVED = "DELETE FROM event_waits WHERE instance_id = %s AND seq = ANY(%s)"
_WAITS_ADDED = (
    "INSERT INTO event_waits (instance_id, seq, event_type, deadline, match) "
    "VALUES (%s,%s,%s,%s,%s) ON CONFLICT (instance_id, seq) DO UPDATE "
    "SET event_type = excluded.event_type, deadline = excluded.deadline, match = excluded.match"
)
_CONSUMED = "UPDATE mailbox SET consumed_seq = %s WHERE id = %s"
_ATTEMPTS = (
    "INSERT INTO attempts (instance_id, seq, started, failures, next_at, last_failure) "
    "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (instance_id, seq) DO UPDATE SET "
    "started = excluded.started, failures = excluded.failures, "
    "next_at = excluded.next_at, last_failure = excluded.last_failure"
)
# A heartbeat (``PostgresStorage.heartbeat``), one statement: the attempt's row, only while
# (owner, epoch) holds the lease and only for the attempt the row is on. The lease check takes
# the instance's row lock FOR SHARE (no write to the row), as a step's fence takes it FOR NO KEY
# UPDATE: a takeover (whose UPDATE waits for it, or it for the takeover, and then sees the new
# lease) comes wholly before or wholly after it, so no late heartbeat of an old lease lands.
HEARTBEAT = (
    "INSERT INTO attempts (instance_id, seq, started, failures, details) "
    "SELECT %(id)s, %(seq)s, %(attempt)s, 0, %(details)s WHERE EXISTS (SELECT 1 FROM instances "
    "WHERE instance_id = %(id)s AND lock_owner = %(owner)s AND lock_epoch = %(epoch)s FOR SHARE) "
    "ON CONFLICT (instance_id, seq) DO UPDATE SET details = excluded.details "
    "WHERE attempts.started = excluded.started"
)
_ATTEMPTS_DONE = "DELETE FROM attempts WHERE instance_id = %s AND seq = ANY(%s)"
# An event that reached the mailbox while the step worked wakes the instance again, and the
# listeners with it (one row, one NOTIFY: none when no event is waiting).
_WOKE = (
    "WITH w AS (UPDATE instances SET wake_at = %s WHERE instance_id = %s AND ("
    "cancel_requested_at IS NOT NULL OR EXISTS ("
    "SELECT 1 FROM mailbox m JOIN event_waits w ON m.instance_id = w.instance_id "
    "AND m.event_type = w.event_type WHERE m.instance_id = %s "
    "AND m.consumed_seq IS NULL AND m.id > %s)) RETURNING 1) SELECT pg_notify(%s, '') FROM w"
)
_FINISHED = ("completed", "failed", "cancelled")
_CHILD = (
    "INSERT INTO instances (instance_id, workflow_name, status, input_data, created_at, "
    "updated_at, started_at, service_name, lock_timeout_seconds, lock_epoch, wake_at, "
    "parent_id, parent_seq) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,0,%s,%s,%s) "
    "ON CONFLICT (instance_id) DO NOTHING"
)
_DELIVERY = (
    "INSERT INTO mailbox (instance_id, event_id, event_type, source, time, data) "
    "VALUES (%s,%s,%s,'eddic',%s,%s) ON CONFLICT (instance_id, event_id) DO NOTHING"
)
_DELIVERY_WAKE = (
    "UPDATE instances SET wake_at = %s WHERE instance_id = %s AND EXISTS "
    "(SELECT 1 FROM event_waits WHERE instance_id = %s AND event_type = %s)"
)
_CANCEL_CHILD = (
    "UPDATE instances SET cancel_reason = %s, cancel_requested_at = %s, retry_after = NULL, "
    "wake_at = %s WHERE instance_id = %s AND cancel_reason IS NULL "
    "AND status NOT IN ('completed', 'failed', 'cancelled')"
)
_NOTIFY = "SELECT pg_notify(%s, '')"


@lru_cache(maxsize=64)
def _fenced_sql(names: tuple[str, ...]) -> str:
    """The step's fenced statement for these instance columns (none: only the row's lock). It
    returns the transaction's id (``units``), or raises ``LEASE_LOST`` when the fence matched
    no row: a ``CASE`` on the count, whose other branch depends on the row, so the planner
    cannot fold the cast (and its error) into a constant."""
    if names:
        assignments = ", ".join(f"{name} = %s" for name in names)
        fenced = f"UPDATE instances SET {assignments} WHERE {_FENCE} RETURNING 1"
    else:  # nothing to change: still lock the row, so no one takes the lease until we commit
        fenced = f"SELECT 1 FROM instances WHERE {_FENCE} FOR NO KEY UPDATE"
    return (
        f"WITH f AS MATERIALIZED ({fenced}) SELECT CASE count(*) WHEN 1 THEN {XACT_ID} "
        f"ELSE ('{LEASE_LOST} ' || count(*))::int::text END, {SERVER_START} FROM f"
    )


@lru_cache(maxsize=64)
def _insert_sql(names: tuple[str, ...]) -> str:
    """A new instance's row; an id already taken is a unique violation of ``instances_pkey``
    (and the statements after it are skipped): ``create`` then reads who has it."""
    return (
        f"INSERT INTO instances ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) "
        f"RETURNING ikey, {XACT_ID}, {SERVER_START}"
    )


def _text(value: bytes | None) -> str:
    assert value is not None  # the fenced statement and the insert return one row
    return value.decode()


def lease_lost(exc: psycopg.Error, step: StepWrite) -> LeaseLost | None:
    """The ``LeaseLost`` that ``exc`` stands for, when it is the fence's own error; else None."""
    message = exc.diag.message_primary or ""
    if exc.sqlstate != "22P02" or f'"{LEASE_LOST} ' not in message:
        return None
    return LeaseLost(
        f"worker {step.owner} lost its lease on {step.instance_id!r} (epoch "
        f"{step.epoch}); another worker took it over, so this step was not recorded"
    )


def taken(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is ``create``'s insert finding the instance's id taken."""
    return exc.sqlstate == "23505" and exc.diag.constraint_name == "instances_pkey"


def insert_instance(
    cur: Pipeline, row: dict[str, Any], step: StepWrite, now: datetime, channel: str
) -> Callable[[], tuple[Xid, int]]:
    """Queue a new instance (``row``: every column, the step's included) and the rest of its
    first step, in a pipeline (``Units.pipelined``); ``finish`` gives the id and its key."""
    insert = cur.execute(_insert_sql(tuple(row)), list(row.values()))
    rows = write_rows(cur, step, now, channel, notify=leaves_work(step, row))

    def finish() -> tuple[Xid, int]:
        step.key = int(insert.value(0))  # type: ignore[arg-type]
        rows()
        return (_text(insert.value(1)), _text(insert.value(2))), step.key

    return finish


def write_step(
    cur: Pipeline, step: StepWrite, now: datetime, channel: str
) -> Callable[[], tuple[Xid, None]]:
    """Queue the step's instance columns, fenced by its lease epoch, then its rows, in a
    pipeline (``Units.pipelined``); ``finish`` gives the transaction's id."""
    columns = step_columns(step)
    fence = cur.execute(
        _fenced_sql(tuple(columns)),
        [*columns.values(), step.instance_id, step.owner, step.epoch],
    )
    rows = write_rows(cur, step, now, channel, notify=leaves_work(step, columns))

    def finish() -> tuple[Xid, None]:
        rows()
        return (_text(fence.value(0)), _text(fence.value(1))), None

    return finish


def write_rows(
    cur: Pipeline, step: StepWrite, now: datetime, channel: str, *, notify: bool
) -> Callable[[], None]:
    """Queue everything of the step but the instance's columns, and with ``notify`` a
    ``pg_notify`` on ``channel`` (delivered at commit, only if it commits); the function
    returned sets ``step.woke`` once the results are in."""
    if step.history:
        cur.executemany(_HISTORY, step.history)
    if step.outbox:
        cur.executemany(_OUTBOX, step.outbox)
    iid = step.instance_id
    if step.waits_removed:
        cur.execute(_WAITS_REMOVED, [iid, list(step.waits_removed)])
    if step.waits_added:
        cur.executemany(_WAITS_ADDED, [(iid, *w) for w in step.waits_added])
    if step.mailbox_consumed:
        cur.executemany(_CONSUMED, [(seq, mid) for mid, seq in step.mailbox_consumed])
    if step.attempts:
        cur.executemany(_ATTEMPTS, [(iid, *a) for a in step.attempts])
    if step.attempts_done:
        cur.execute(_ATTEMPTS_DONE, [iid, list(step.attempts_done)])
    for c in step.children:
        cur.execute(
            _CHILD,
            [
                c["instance_id"],
                c["workflow_name"],
                c["status"],
                c["input_data"],
                now,
                now,
                now,
                c["service_name"],
                c["lock_timeout_seconds"],
                now,
                c["parent_id"],
                c["parent_seq"],
            ],
        )
    for target, event_id, event_type, payload in step.deliveries:
        cur.execute(_DELIVERY, [target, event_id, event_type, now, payload])
        cur.execute(_DELIVERY_WAKE, [now, target, target, event_type])
    if step.cancels:
        cur.executemany(
            _CANCEL_CHILD, [(reason, now, now, child) for child, reason in step.cancels]
        )
    step.woke = False  # set afresh: a unit run again after a lost connection runs this again
    woke = None
    if step.release and step.columns.get("status") not in _FINISHED:
        # notifies by itself when it wakes the instance (a second NOTIFY of the same channel
        # and payload in one transaction is delivered once)
        woke = cur.execute(_WOKE, [now, iid, iid, step.mailbox_seen, channel])
    if notify:
        cur.execute(_NOTIFY, [channel])

    def finish() -> None:
        if woke is not None:
            step.woke = woke.rowcount == 1

    return finish
