"""The storage interface: what the runtime may ask of a backend, one unit of work per method.

No connection, cursor or transaction crosses it in either direction: each method opens and
ends its own unit of work, so the backends can differ where they really differ (SQLite:
``BEGIN IMMEDIATE``, the writer lock, group commit; PostgreSQL: a pooled connection, READ
COMMITTED, ``SKIP LOCKED``, ``NOTIFY``) without the runtime knowing. ``App``, the worker, the
lease keeper, the relay and replay are typed against these protocols, so ``mypy --strict`` pins
that they use nothing else.

What a step commits is a :class:`~eddic.storage.sqlite.steps.StepWrite`: records as JSON texts,
times, event-wait and attempt changes and the instance's new columns, fenced by the lease
(owner, epoch); ``StepWrite.key`` is the backend's own handle on the instance, returned by
``create`` and ``stored``/``acquire``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from ..kernel import Event
from .step import StepWrite


class Stored(NamedTuple):
    """An instance as stored: its row, history rows, attempt rows by seq, event-wait seqs.

    An attempt row is ``(started, failures, next_at, last_failure, details)``: the attempt
    number begun, the failures so far, the retry time as ISO text (or None), the last failure
    and the last heartbeat details of the attempt in progress as JSON texts (or None)."""

    row: dict[str, Any]
    history: list[tuple[Any, ...]]
    attempts: dict[int, tuple[Any, ...]]
    waits: set[int]


class OutboxStore(Protocol):
    """``Store.outbox``: the rows of the transactional outbox, for the relay and the CLI."""

    def due_heads(self, now: datetime, newest: int | None, limit: int) -> tuple[int, list[Any]]:
        """``(newest, heads)``: each instance's due head row, up to row ``newest``."""

    def claim(self, row_id: int, attempts: int, until: datetime, now: datetime) -> bool:
        """Take a due row for one delivery until ``until``; False when another relay has it."""

    def sent(self, row_id: int, attempts: int, now: datetime) -> None: ...

    def failed_attempt(
        self, row_id: int, *, attempts: int, error: str, next_at: datetime, give_up: bool
    ) -> None: ...

    def rows(
        self,
        statuses: Sequence[str] | None = None,
        limit: int = 100,
        instance_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows as dicts (``data`` decoded), in delivery order; of one instance only with
        ``instance_id`` (index-served)."""

    def pending(self) -> bool: ...

    def retry_failed(self, now: datetime, event_id: str | None = None) -> int: ...

    def discard(self, event_id: str | None = None) -> int: ...


class Store(Protocol):
    """One backend, chosen once from the URL (``eddic.storage.open_store``)."""

    db_url: str

    @property
    def outbox(self) -> OutboxStore:
        """The outbox rows (a read-only attribute of the backend)."""

    # -- lifecycle --
    def open(self) -> None:
        """Check the database, create or migrate its schema; idempotent. A database that is
        not eddic's, damaged or from a newer eddic is refused untouched (``StorageError``)."""

    def close(self) -> None: ...

    # -- reading --
    def get_instance(self, instance_id: str) -> dict[str, Any]:
        """The public dict of an instance; ``InstanceNotFound``."""

    def list_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        limit: int | None = 100,
        search: str | None = None,
        parent: str | None = None,
        before: str | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Public dicts, newest first (``created_at DESC``, then the later insert first), read
        in the order of an index, so a page costs its rows, not the table's.

        Filters: ``status`` (one or several), ``workflow``, ``search`` (instances whose id
        contains this text: case-sensitive, every character literal, ``%`` and ``_`` too) and
        ``parent`` (the children of that instance). ``before`` / ``after`` take an instance id
        as a cursor: only the instances after it in this order (older) / before it (newer: the
        ``limit`` nearest to it, still newest first); the cursor itself need not pass the
        filters. An unknown cursor raises ``InstanceNotFound``; both at once, ``ValueError``."""

    def count_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        search: str | None = None,
        parent: str | None = None,
    ) -> int:
        """How many instances ``list_instances`` would give with these filters, unlimited."""

    def status_counts(
        self, *, workflow: str | None = None, search: str | None = None
    ) -> dict[str, int]:
        """How many instances (of ``workflow``, whose id contains ``search``) have each status:
        only the statuses present."""

    def workflow_names(self) -> list[str]:
        """The distinct workflow names of the stored instances, sorted (index-served)."""

    def history(
        self,
        instance_id: str,
        run: int | None = None,
        *,
        start: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Decoded records of the run in progress, or of run ``run`` (continue-as-new); with
        ``start``/``limit``, only that slice is decoded (a page of a long history)."""

    def stored(self, instance_id: str) -> Stored:
        """Everything a replay needs, in one read (the history of the run in progress);
        ``InstanceNotFound``."""

    def workflow_name(self, instance_id: str) -> str | None: ...

    # -- instances and steps --
    def create(
        self, row: dict[str, Any], step: StepWrite, now: datetime, *, check_taken: bool = True
    ) -> tuple[str | None, int]:
        """Record a new instance with its first step: ``(None, key)``; for a taken id nothing
        is written and ``(its workflow name, 0)`` returned."""

    def commit_step(self, step: StepWrite, now: datetime) -> None:
        """Write one step atomically, or raise ``LeaseLost`` and write nothing."""

    def heartbeat(
        self,
        instance_id: str,
        owner: str,
        epoch: int,
        seq: int,
        attempt: int,
        details: str,
        now: datetime,
    ) -> bool:
        """Record ``details`` (a JSON text) as the last heartbeat of attempt ``attempt`` of
        the activity at ``seq``, fenced by the lease ``(owner, epoch)`` as ``commit_step`` is.
        The attempt's row is created (``started=attempt``, no failures) when there is none,
        and its details set when it is on ``attempt``; on another attempt nothing is written.
        True when written, False otherwise (never ``LeaseLost``). It writes nothing else (no
        history, wake time or instance column) and wakes no one: it creates no work. A step's
        later write of the attempt's row keeps the details; ``attempts_done`` drops them."""

    # -- leases --
    def acquire(
        self, instance_id: str, owner: str, now: datetime, default_timeout: float
    ) -> tuple[int, dict[str, Any]] | None:
        """Take the lease if it is free or expired: ``(epoch, row)``, or None."""

    def renew(self, instance_id: str, owner: str, epoch: int, expires: datetime) -> bool: ...

    # -- failover --
    def hold_liveness(self, owner: str) -> None:
        """Show, for as long as this process lives, that worker ``owner`` is alive (SQLite: an
        ``flock``-ed file; idempotent). Called before the worker takes leases."""

    def dead_owners(self) -> list[str]:
        """Workers that showed they lived and whose process has died since."""

    def expire_leases(self, owner: str, now: datetime) -> int:
        """Release a dead worker's live leases (as it would have: any worker may take its
        instances now) and forget it; the number of leases released."""

    def release(self, instance_id: str, owner: str, epoch: int) -> None: ...

    def park(
        self, instance_id: str, owner: str, epoch: int, retry_at: datetime, error: str
    ) -> bool:
        """Store ``error``, release the lease, leave the instance until ``retry_at``."""

    def unpark(self, instance_id: str, now: datetime) -> str | None:
        """Make an unfinished instance due now; its status, or None when there is none."""

    def request_cancel(self, instance_id: str, reason: str | None, now: datetime) -> str | None:
        """Record a cancel request (``cancel_reason``, ``cancel_requested_at``) and make the
        instance due now, waking a worker; its status, or None when there is none. A finished
        instance, or one asked before, is left as it is. A worker that holds the instance's
        lease sees the request at its next step, or when it releases the lease (``woke``)."""

    # -- work --
    def claim(
        self,
        now: datetime,
        owner: str,
        *,
        limit: int,
        default_timeout: float,
        workflows: Sequence[str],
        stale: bool = True,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Take the leases of up to ``limit`` instances of ``workflows`` that are due (a wake
        time has come, no live lease, not parked) or, with ``stale``, stale (running with no
        live lease), the longest-waiting first: ``(epoch, row)`` each, as ``acquire`` gives.
        Concurrent claimers (threads, processes, machines) never take one instance twice."""

    def due_elsewhere(
        self, now: datetime, workflows: Sequence[str], limit: int = 100
    ) -> list[tuple[str, str]]:
        """``(instance id, workflow name)`` of due or stale instances of workflows other than
        ``workflows``: the work ``claim`` leaves to processes that have their code."""

    def due_instances(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]: ...

    def stale_instances(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]: ...

    def next_wake(
        self, exclude: Sequence[str] = (), workflows: Sequence[str] | None = None
    ) -> datetime | None:
        """When the earliest due instance (not in ``exclude``; of ``workflows``, when given)
        falls due, counting parks and live leases; None when nothing waits on a time."""

    # -- wake-ups --
    @property
    def notifies(self) -> bool:
        """Whether ``wait`` hears of work other processes create (PostgreSQL: LISTEN/NOTIFY);
        where it does not, a serving worker polls."""

    def wait(self, timeout: float) -> bool:
        """Until a commit (of any process, where ``notifies``) created work or ``wake()`` was
        called: True; False after ``timeout`` seconds."""

    def wake(self) -> None:
        """Make a ``wait`` of this process return now (or its next one): never blocks, needs no
        server. Other processes hear of work from the commits that create it."""

    # -- events --
    def mailbox(self, instance_id: str, types: Sequence[str]) -> dict[str, list[tuple[int, Event]]]:
        """Unconsumed events of these types, by type, oldest first, as ``(id, event)``."""

    def mailbox_rows(self, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The instance's mailbox rows, consumed or not, oldest first (for display): ``id``,
        ``event_type``, ``event_id``, ``source``, ``data`` (decoded), ``time`` (an aware
        datetime) and ``consumed_seq`` (the seq of the step that took the event; None while it
        waits). An unknown instance has none: an empty list."""

    def deliver(
        self,
        event_type: str,
        payload: str,
        *,
        source: str,
        event_id: str,
        now: datetime,
        instance_id: str | None = None,
    ) -> list[tuple[str, str]]:
        """Store a sent event; ``(instance id, workflow name)`` of each instance reached."""
