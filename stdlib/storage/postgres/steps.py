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

from datetime import datetime
from typing import Any

import psycopg

from ..step import LeaseLost, StepWrite, step_columns

Cursor = psycopg.Cursor[tuple[Any, ...]]

_HISTORY = (
    "INSERT INTO history (instance_id, pos, seq, record, kind, name, args, at, deadline, value, "
    "failure) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)


def insert_instance(cur: Cursor, row: dict[str, Any]) -> int | None:
    """Insert a new instance; its key, or None when the id is taken (nothing written)."""
    names = ", ".join(row)
    cur.execute(
        f"INSERT INTO instances ({names}) VALUES ({', '.join(['%s'] * len(row))}) "
        "ON CONFLICT (instance_id) DO NOTHING RETURNING ikey",
        list(row.values()),
    )
    found = cur.fetchone()
    return None if found is None else int(found[0])


def write_step(cur: Cursor, step: StepWrite, now: datetime) -> None:
    """The step's instance columns, fenced by its lease epoch, then its rows."""
    columns = step_columns(step)
    fence = [step.instance_id, step.owner, step.epoch]
    if columns:
        assignments = ", ".join(f"{name} = %s" for name in columns)
        cur.execute(
            f"UPDATE instances SET {assignments} "
            "WHERE instance_id = %s AND lock_owner = %s AND lock_epoch = %s",
            [*columns.values(), *fence],
        )
    else:  # nothing to change: still lock the row, so no one takes the lease until we commit
        cur.execute(
            "SELECT 1 FROM instances WHERE instance_id = %s AND lock_owner = %s "
            "AND lock_epoch = %s FOR NO KEY UPDATE",
            fence,
        )
    if cur.rowcount != 1:
        raise LeaseLost(
            f"worker {step.owner} lost its lease on {step.instance_id!r} (epoch "
            f"{step.epoch}); another worker took it over, so this step was not recorded"
        )
    write_rows(cur, step, now)


def write_rows(cur: Cursor, step: StepWrite, now: datetime) -> None:
    """Everything of the step but the instance's columns."""
    if step.history:
        cur.executemany(_HISTORY, step.history)
    if step.outbox:
        cur.executemany(
            "INSERT INTO outbox (event_id, instance_id, seq, event_type, source, data, "
            "time, status, attempts, next_attempt_at) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,'pending',0,%s)",
            step.outbox,
        )
    iid = step.instance_id
    if step.waits_removed:
        cur.execute(
            "DELETE FROM event_waits WHERE instance_id = %s AND seq = ANY(%s)",
            [iid, list(step.waits_removed)],
        )
    if step.waits_added:
        cur.executemany(
            "INSERT INTO event_waits (instance_id, seq, event_type, deadline) "
            "VALUES (%s,%s,%s,%s) ON CONFLICT (instance_id, seq) DO UPDATE "
            "SET event_type = excluded.event_type, deadline = excluded.deadline",
            [(iid, *w) for w in step.waits_added],
        )
    if step.mailbox_consumed:
        cur.executemany(
            "UPDATE mailbox SET consumed_seq = %s WHERE id = %s",
            [(seq, mid) for mid, seq in step.mailbox_consumed],
        )
    if step.attempts:
        cur.executemany(
            "INSERT INTO attempts (instance_id, seq, started, failures, next_at, last_failure) "
            "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (instance_id, seq) DO UPDATE SET "
            "started = excluded.started, failures = excluded.failures, "
            "next_at = excluded.next_at, last_failure = excluded.last_failure",
            [(iid, *a) for a in step.attempts],
        )
    if step.attempts_done:
        cur.execute(
            "DELETE FROM attempts WHERE instance_id = %s AND seq = ANY(%s)",
            [iid, list(step.attempts_done)],
        )
    step.woke = False  # set afresh: a unit run again after a lost connection runs this again
    if step.release and step.columns.get("status") == "waiting_for_event":
        # An event that reached the mailbox while we worked must wake the instance again.
        cur.execute(
            "UPDATE instances SET wake_at = %s WHERE instance_id = %s AND EXISTS ("
            "SELECT 1 FROM mailbox m JOIN event_waits w ON m.instance_id = w.instance_id "
            "AND m.event_type = w.event_type WHERE m.instance_id = %s "
            "AND m.consumed_seq IS NULL)",
            [now, iid, iid],
        )
        step.woke = cur.rowcount == 1


def creates_work(step: StepWrite) -> bool:
    """Whether listeners should hear of this step: it has rows for the relay, a wake time,
    an event already waiting, or it hands the instance back for another worker."""
    return bool(
        step.outbox
        or step.woke
        or step.columns.get("wake_at") is not None
        or (step.release and step.columns.get("status") in ("running", "compensating"))
    )
