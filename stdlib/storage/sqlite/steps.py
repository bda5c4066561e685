"""The SQL that writes one step of one instance (a :class:`~eddic.storage.step.StepWrite`).

A step is written inside a transaction that ``Storage`` opens (and that other threads' steps may
share, see ``commits``): the instance's changed columns, fenced by the lease epoch, then its
history, outbox, event-wait, mailbox and attempt rows.

Statements here never bind ``None``: python's sqlite3 looks up an adapter for every parameter
that is not an int, float, str or bytes, and for ``None`` that lookup (a registry probe and two
attribute lookups) costs more than binding the rest of the row. Absent values are left to the
columns' NULL default or written as a ``NULL`` literal.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from ...clock import to_text
from ...errors import LeaseLost
from ..step import StepWrite
from . import history_rows

_FINISHED = ("completed", "failed", "cancelled")


class _Fragments(dict[str, str]):
    """A column's part of a statement text by its name, built when first asked."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern

    def __missing__(self, name: str) -> str:
        text = self[name] = self.pattern.format(name)
        return text


# Each column's part of an UPDATE's SET list, bound or NULL. The tuple of an UPDATE's parts is
# its shape, and an INSERT's its column names with which of them are NULL: statement texts are
# built once per shape and kept (``_UPDATES``, ``_INSERTS``), which also spares ``sqlite3``'s
# statement cache the hash of a fresh text per step.
_BOUND = _Fragments("{} = ?")
_NULLED = _Fragments("{} = NULL")
_UPDATES: dict[tuple[str, ...], str] = {}
_INSERTS: dict[tuple[tuple[str, ...], tuple[bool, ...]], str] = {}
_KEPT = 256  # shapes kept of each kind: the runtime writes a few dozen
_RELEASED = ("lock_owner", "lock_expires_at")  # a release clears them (``step_columns``)


def insert_instance(cur: sqlite3.Cursor, row: dict[str, Any]) -> int:
    """Insert a new instance; returns its key (``ikey``)."""
    values = row.values()
    key = (tuple(row), tuple([v is None for v in values]))  # its columns, which are NULL
    text = _INSERTS.get(key)
    if text is None:
        text = _INSERTS[key] = _insert_text(key, _INSERTS)
    cur.execute(
        text,
        [to_text(v) if isinstance(v, datetime) else v for v in values if v is not None],
    )
    ikey = cur.lastrowid
    assert ikey is not None
    return ikey


def _insert_text(shape: tuple[tuple[str, ...], tuple[bool, ...]], kept: dict[Any, str]) -> str:
    if len(kept) >= _KEPT:
        kept.clear()
    names, nulls = shape
    marks = ", ".join("NULL" if null else "?" for null in nulls)
    return f"INSERT INTO instances ({', '.join(names)}) VALUES ({marks})"


def _update_text(shape: tuple[str, ...], kept: dict[tuple[str, ...], str]) -> str:
    if len(kept) >= _KEPT:
        kept.clear()
    return (
        f"UPDATE instances SET {', '.join(shape)} "
        "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?"
    )


def _update(cur: sqlite3.Cursor, step: StepWrite) -> bool:
    """The UPDATE of the step's columns (``step_columns``: a release clears the lease's),
    fenced by its lease: True when it held."""
    release = step.release
    shape: list[str] = []
    params: list[Any] = []
    for name, value in step.columns.items():
        if value is None or (release and name in _RELEASED):
            shape.append(_NULLED[name])
        else:
            shape.append(_BOUND[name])
            params.append(to_text(value) if isinstance(value, datetime) else value)
    if release:
        columns = step.columns
        for name in _RELEASED:
            if name not in columns:
                shape.append(_NULLED[name])
    key = tuple(shape)
    text = _UPDATES.get(key)
    if text is None:
        text = _UPDATES[key] = _update_text(key, _UPDATES)
    params += (step.instance_id, step.owner, step.epoch)
    return cur.execute(text, params).rowcount == 1


def write_step(cur: sqlite3.Cursor, step: StepWrite, now: datetime) -> None:
    """The step's instance columns, fenced by its lease epoch, its history, then its other rows
    (``write_rows``)."""
    if step.columns or step.release:
        held = _update(cur, step)
        if held and step.history:
            history_rows.insert(cur, step, fenced=False)
    elif step.history:
        # Nothing to change: the history's first INSERT checks the lease (history_rows), and
        # the row's page is not rewritten.
        held = history_rows.insert(cur, step, fenced=True)
    else:
        held = bool(
            cur.execute(
                "SELECT 1 FROM instances WHERE instance_id = ? AND lock_owner = ? "
                "AND lock_epoch = ?",
                (step.instance_id, step.owner, step.epoch),
            ).fetchall()
        )
    if not held:
        raise _lost(step)
    write_rows(cur, step, now)


def _lost(step: StepWrite) -> LeaseLost:
    return LeaseLost(
        f"worker {step.owner} lost its lease on {step.instance_id!r} (epoch "
        f"{step.epoch}); another worker took it over, so this step was not recorded"
    )


_ATTEMPT = (
    "INSERT INTO attempts (instance_id, seq, started, failures, next_at, last_failure) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT (instance_id, seq) DO UPDATE SET "
    "started = excluded.started, failures = excluded.failures, "
    "next_at = excluded.next_at, last_failure = excluded.last_failure"
)
# A heartbeat (``write_heartbeat``): fenced by the lease, for the attempt in progress only.
_HEARTBEAT = (
    "INSERT INTO attempts (instance_id, seq, started, failures, details) "
    "SELECT ?, ?, ?, 0, ? WHERE EXISTS (SELECT 1 FROM instances "
    "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?) "
    "ON CONFLICT (instance_id, seq) DO UPDATE SET details = excluded.details "
    "WHERE attempts.started = excluded.started"
)


def write_heartbeat(
    cur: sqlite3.Cursor,
    instance_id: str,
    owner: str,
    epoch: int,
    seq: int,
    attempt: int,
    details: str,
) -> bool:
    """Record ``details`` for attempt ``attempt`` of activity ``seq``, in one statement: only
    while ``(owner, epoch)`` holds the lease, and only for the attempt the row is on (a new row
    when there is none yet). Nothing else of the instance is touched. True when written."""
    cur.execute(_HEARTBEAT, (instance_id, seq, attempt, details, instance_id, owner, epoch))
    return cur.rowcount == 1


_CHILD_COLUMNS = (
    "instance_id, workflow_name, status, input_data, created_at, updated_at, started_at, "
    "service_name, lock_timeout_seconds, lock_epoch, wake_at, parent_id, parent_seq"
)
_CHILD = (
    f"INSERT INTO instances ({_CHILD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,0,?,?,?) "
    "ON CONFLICT (instance_id) DO NOTHING"
)
_DELIVERY = (
    "INSERT OR IGNORE INTO mailbox (instance_id, event_id, event_type, source, time, data) "
    "VALUES (?,?,?,'eddic',?,?)"
)
_DELIVERY_WAKE = (
    "UPDATE instances SET wake_at = ? WHERE instance_id = ? AND EXISTS "
    "(SELECT 1 FROM event_waits WHERE instance_id = ? AND event_type = ?)"
)
_CANCEL_CHILD = (
    "UPDATE instances SET cancel_reason = ?, cancel_requested_at = ?, retry_after = NULL, "
    "wake_at = ? WHERE instance_id = ? AND cancel_reason IS NULL "
    "AND status NOT IN ('completed', 'failed', 'cancelled')"
)


def write_lifecycle(cur: sqlite3.Cursor, step: StepWrite, now: datetime) -> None:
    """Children created, a child's outcome delivered to its parent, abandoned children's
    cancels: in the step's transaction, so a crash never leaves one without the other."""
    when = to_text(now)
    for c in step.children:
        cur.execute(
            _CHILD,
            (
                c["instance_id"],
                c["workflow_name"],
                c["status"],
                c["input_data"],
                when,
                when,
                when,
                c["service_name"],
                c["lock_timeout_seconds"],
                when,
                c["parent_id"],
                c["parent_seq"],
            ),
        )
    for target, event_id, event_type, payload in step.deliveries:
        cur.execute(_DELIVERY, (target, event_id, event_type, when, payload))
        cur.execute(_DELIVERY_WAKE, (when, target, target, event_type))
    for child, reason in step.cancels:
        cur.execute(_CANCEL_CHILD, (reason, when, when, child))


def write_rows(cur: sqlite3.Cursor, step: StepWrite, now: datetime) -> None:
    """Everything of the step but the instance's columns and its history (``write_step`` and
    ``Storage.create_instance`` write those first)."""
    if step.outbox:
        cur.executemany(
            "INSERT INTO outbox (event_id, instance_id, seq, event_type, source, data, "
            "time, status, attempts, next_attempt_at) VALUES (?,?,?,?,?,?,?,'pending',0,?)",
            [(*r[:6], to_text(r[6]), to_text(r[7])) for r in step.outbox],
        )
    iid = step.instance_id
    if step.waits_removed:
        cur.executemany(
            "DELETE FROM event_waits WHERE instance_id = ? AND seq = ?",
            [(iid, seq) for seq in step.waits_removed],
        )
    if step.waits_added:
        cur.executemany(
            "INSERT INTO event_waits (instance_id, seq, event_type, deadline, match) "
            "VALUES (?,?,?,?,?)",
            [(iid, seq, kind, to_text(due), m) for seq, kind, due, m in step.waits_added],
        )
    if step.mailbox_consumed:
        cur.executemany(
            "UPDATE mailbox SET consumed_seq = ? WHERE id = ?",
            [(seq, mid) for mid, seq in step.mailbox_consumed],
        )
    if step.attempts:
        cur.executemany(  # an upsert, not a replace: it keeps the row's heartbeat details
            _ATTEMPT,
            [(iid, seq, n, f, to_text(at), last) for seq, n, f, at, last in step.attempts],
        )
    if step.attempts_done:
        cur.executemany(
            "DELETE FROM attempts WHERE instance_id = ? AND seq = ?",
            [(iid, seq) for seq in step.attempts_done],
        )
    if step.children or step.deliveries or step.cancels:
        write_lifecycle(cur, step, now)
    status = step.columns.get("status")
    if step.release and status not in _FINISHED:
        # An event that reached the mailbox while we worked, or a cancel asked meanwhile, must
        # wake the instance again.
        ready = cur.execute(
            "SELECT 1 FROM instances WHERE instance_id = ? AND cancel_requested_at IS NOT NULL",
            [iid],
        ).fetchone()
        if ready is None and status in ("waiting_for_event", "waiting_for_child"):
            ready = cur.execute(
                "SELECT 1 FROM mailbox m JOIN event_waits w ON m.instance_id = w.instance_id "
                "AND m.event_type = w.event_type WHERE m.instance_id = ? "
                "AND m.consumed_seq IS NULL AND m.id > ? LIMIT 1",
                [iid, step.mailbox_seen],
            ).fetchone()
        step.woke = ready is not None  # set afresh: a group commit may run this twice
        if ready:
            cur.execute(
                "UPDATE instances SET wake_at = ? WHERE instance_id = ?", [to_text(now), iid]
            )
