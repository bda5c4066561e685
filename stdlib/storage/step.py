"""What one step of one instance commits: the same value for every backend.

A :class:`StepWrite` is built by the runtime from the interpreter's new records and the
instance's new state, and handed to ``Store.create`` or ``Store.commit_step``, which write it
atomically, fenced by the lease ``(owner, epoch)``, or raise :class:`LeaseLost` and write
nothing. It holds records and values, never rows: every time is an aware ``datetime``, every
value, argument, failure and error a JSON text (what the runtime already encoded), positions
are the record's place in the history (1, 2, ...), and ``key`` is whatever handle the backend
gave for the instance. How that becomes rows (SQLite's clustered history ids, its text times;
PostgreSQL's ``(instance_id, pos)`` keys and ``timestamptz``) is each backend's business.

``columns`` are the instance's changed fields: ``status``, ``wake_at``, ``retry_after``,
``lock_expires_at``, ``updated_at``, ``completed_at`` (datetimes or None), ``output_data`` and
``error`` (JSON texts or None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import LeaseLost


@dataclass(slots=True)
class StepWrite:
    """Everything one step of one instance commits, fenced by its lease epoch."""

    instance_id: str
    owner: str
    epoch: int
    key: int = 0  # the backend's handle on the instance, from ``create``/``acquire``/``claim``
    # (instance_id, pos, seq, record, kind, name, args, at, deadline, value, failure)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    # (event_id, instance_id, seq, event_type, source, data, time, next_attempt_at)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    # (seq, event type, deadline, the JSON of a WaitEvent's match or None)
    waits_added: list[tuple[int, str, datetime | None, str | None]] = field(default_factory=list)
    waits_removed: list[int] = field(default_factory=list)
    mailbox_consumed: list[tuple[int, int]] = field(default_factory=list)  # (mailbox id, seq)
    # (seq, started, failures, next_at, last_failure); a row's heartbeat details are kept
    attempts: list[tuple[int, int, int, datetime | None, str | None]] = field(default_factory=list)
    attempts_done: list[int] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)
    # Lifecycle, written in the same transaction: child instances to create (their rows: no
    # lease, due now; an id that exists is left alone), ...
    children: list[dict[str, Any]] = field(default_factory=list)
    # ... a finished child's outcome for its parent's mailbox (parent id, event id, event type,
    # JSON payload; the parent is made due when it waits on that type), ...
    deliveries: list[tuple[str, str, str, str]] = field(default_factory=list)
    # ... and cancels of abandoned children (instance id, reason as JSON), as ``request_cancel``
    cancels: list[tuple[str, str]] = field(default_factory=list)
    release: bool = False
    # The newest mailbox row the worker has read for this instance: a release wakes it again
    # only for a newer event (one it read and could not take, a WaitEvent(match=) refusing
    # it, must not wake it over and over).
    mailbox_seen: int = 0
    woke: bool = False  # set by write_rows: a waited-for event was already in the mailbox


def step_columns(step: StepWrite) -> dict[str, Any]:
    """The instance columns the step sets; releasing the lease clears its owner and expiry."""
    columns = dict(step.columns)
    if step.release:
        columns["lock_owner"] = None
        columns["lock_expires_at"] = None
    return columns


_RUNNABLE = ("running", "compensating")


def leaves_work(step: StepWrite, columns: dict[str, Any]) -> bool:
    """Whether other workers should hear of this step: it has rows for the relay, a wake or
    retry time, or leaves a runnable instance without an owner (created so, or handed back).
    ``columns`` are what the instance's row will hold of its columns: the step's own
    (``step_columns``), or a new instance's whole row. A ``create`` whose starter holds the
    lease and runs the instance itself inline leaves nothing for anyone else."""
    return _leaves_work(step, columns, _unowned(columns))


def creates_work(step: StepWrite) -> bool:
    """Whether waiting workers should hear of this step once it is written: ``leaves_work``,
    or an event was already waiting in its mailbox (``woke``, set by the write).

    ``leaves_work(step, step_columns(step))`` without the copy of the columns, as it runs
    after every commit: a release is what ``step_columns`` would add, an unowned row."""
    columns = step.columns
    return step.woke or _leaves_work(step, columns, step.release or _unowned(columns))


def _unowned(columns: dict[str, Any]) -> bool:
    return "lock_owner" in columns and columns["lock_owner"] is None


def _leaves_work(step: StepWrite, columns: dict[str, Any], unowned: bool) -> bool:
    return bool(
        step.outbox
        or step.children
        or step.deliveries
        or step.cancels
        or columns.get("wake_at") is not None
        or columns.get("retry_after") is not None
        # a step that leaves its status as it was hands back a running instance
        or (unowned and columns.get("status", "running") in _RUNNABLE)
    )


__all__ = ["LeaseLost", "StepWrite", "creates_work", "leaves_work", "step_columns"]
