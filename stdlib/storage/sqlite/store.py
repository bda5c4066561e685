"""SQLite storage on sqlite-utils: schema, migrations, transactions, and every query.

Rows are dicts only inside this module and ``public_rows`` (which makes the public dicts);
the runtime talks to it in terms of instance ids, history rows and :class:`StepWrite`. Every
unit of work is one transaction opened with ``BEGIN IMMEDIATE`` (a deferred ``BEGIN`` would
fail at once with "database is locked" when another process wrote meanwhile); sqlite-utils
calls inside it nest as savepoints.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any

import sqlite_utils

from ...clock import from_text, to_text, utcnow
from ...errors import StorageError
from ...kernel import Event, InstanceNotFound
from ...serde import dumps
from ..base import Stored
from ..step import StepWrite, creates_work, leaves_work, step_columns
from . import claims, history_rows, mailbox, steps
from .commits import GroupCommit
from .dbfile import (
    Identity,
    check_file,
    check_schema,
    create_file,
    file_uri,
    parse_db_url,
    require_same_file,
)
from .doorbell import Doorbell
from .forks import GATE
from .liveness import Liveness
from .outbox_rows import OutboxRows
from .public_rows import (
    HISTORY_FIELDS,
    count_instances,
    decoded_history,
    public_instance,
    runs_of,
    select_instances,
    status_counts,
    workflow_names,
)
from .schema import MAX_POS, MIGRATIONS, POS_BITS, SCHEMA_VERSION
from .transactions import Connection, ReadTransaction, WriteTransaction, writer_cursor
from .writers import WriterLock

#: How often a waiting thread looks for other connections' commits (``wait``): well inside the
#: 100 ms a serving worker may take to see another process's work, for about 0.1 % of a core.
DATA_VERSION_POLL = 0.05

_HISTORY_SELECT = ", ".join(f"h.{name}" for name in HISTORY_FIELDS)


class Storage:
    """The thin storage class. One connection per thread (one shared one for ``:memory:``)."""

    def __init__(
        self, db_url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 30_000
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL, EXTRA or OFF, not {synchronous!r}")
        self.db_url = db_url
        self.path = parse_db_url(db_url)
        self.memory = self.path == ":memory:"
        if not self.memory:
            # Made absolute once: a relative path keeps naming this file after a chdir.
            self.path = os.path.abspath(self.path)
        # The file open() checked; every connection must open it (None: not opened yet).
        self._identity: Identity | None = None
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._shared: sqlite_utils.Database | None = None
        self._lock = threading.RLock()  # serialises the shared :memory: connection
        self._memory_writer = _MemoryWriter(self._lock)
        # Writers queue here, not in SQLite's busy handler (which sleeps >= 1 ms).
        self._writers = WriterLock(self.path, create_when_used=False)  # open() creates it
        self.commits = GroupCommit(self.transaction)
        self._woken = threading.Event()
        self._doorbell = Doorbell(self.path)
        self._liveness = Liveness(self.path)
        self.outbox = OutboxRows(self.transaction, self.reading)
        self._all: list[sqlite_utils.Database] = []
        self._opened = False
        _STORES.add(self)

    # -- connections --

    def open(self) -> None:
        """Check the file, then set pragmas and create or migrate the schema. Idempotent."""
        if self._opened:
            return
        if not self.memory:
            found = check_file(self.path)  # before any pragma: switching to WAL rewrites it
            self._writers.open()  # created now if missing; only reopened as that same file
            self._identity = found if found is not None else create_file(self.path)
        with self.transaction() as db:
            self._migrate(db)
        self._opened = True

    def _connect(self) -> sqlite_utils.Database:
        if self.memory:
            conn = sqlite3.connect(
                ":memory:", check_same_thread=False, isolation_level=None, factory=Connection
            )
        else:
            conn = self._connect_file()
        db = sqlite_utils.Database(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if not self.memory:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        return db

    def _connect_file(self) -> Connection:
        """A connection on the file open() checked, or ``StorageError`` and nothing written:
        ``mode=rw`` never creates a file, and the identity is compared before and after."""
        expected = self._identity
        if expected is None:
            raise StorageError(f"{self.path!r} is not open: call open() (App.initialize()) first")
        require_same_file(self.path, expected)
        try:
            conn = sqlite3.connect(
                file_uri(self.path, mode="rw"),
                uri=True,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                factory=Connection,
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path!r}: {exc}") from None
        try:
            require_same_file(self.path, expected)  # what SQLite opened is what was checked
        except StorageError:
            conn.close()
            raise
        return conn

    def _db(self) -> sqlite_utils.Database:
        if self.memory:
            if self._shared is None:
                self._shared = self._connect()
                self._all.append(self._shared)
            return self._shared
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def close(self) -> None:
        self._doorbell.close()
        self._liveness.close()
        with GATE, self._lock:
            for db in self._all:
                with suppress(sqlite3.Error):
                    db.close()
            self._all.clear()
            self._shared = None
            self._local = threading.local()
            self._opened = False
        if not self.memory:
            self._writers.close()

    def transaction(self) -> WriteTransaction:
        """One unit of work: ``with storage.transaction() as db:`` runs ``BEGIN IMMEDIATE`` ...
        ``COMMIT``, rolled back on error."""
        return WriteTransaction(self._memory_writer if self.memory else self._writers, self._db)

    def reading(self) -> ReadTransaction:
        """A consistent read: ``with storage.reading() as db:`` (one deferred read transaction)."""
        return ReadTransaction(self._lock if self.memory else None, self._db)

    # -- wake-ups --

    @property
    def notifies(self) -> bool:
        # A file's commits by other connections (processes included) are seen by ``wait``;
        # an in-memory database has no other process to hear.
        return not self.memory

    def wait(self, timeout: float) -> bool:
        """Until ``wake()`` or (a file) a commit of another process that creates work: True;
        False after ``timeout`` seconds. The signal is this file's doorbell (``doorbell``); where
        it cannot be had, the waiting thread reads ``PRAGMA data_version`` every
        ``DATA_VERSION_POLL`` seconds (the number changes when another connection committed)."""
        if self.memory:
            woken = self._woken.wait(timeout)
            self._woken.clear()
            return woken
        if self._doorbell.listen() is not None:
            # A wake() sets the event and rings this process's doorbell: one wake-up, not two
            # (the event alone stands for a wake() from before this process listened).
            if self._woken.is_set():
                self._woken.clear()
                self._doorbell.wait(0)
                return True
            rung = self._doorbell.wait(timeout)
            self._woken.clear()
            return rung
        deadline = time.monotonic() + timeout
        with GATE:
            conn = self._db().conn
        last = getattr(self._local, "data_version", None)
        while True:
            with GATE:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
            self._local.data_version = version
            if last is not None and version != last:
                return True
            last = version
            left = deadline - time.monotonic()
            if self._woken.wait(max(0.0, min(DATA_VERSION_POLL, left))):
                self._woken.clear()
                return True
            if left <= 0:
                return False

    def wake(self) -> None:
        self._woken.set()
        if not self.memory:
            self._doorbell.ring_self()

    def _ring(self, creates_work: bool = True) -> None:
        """After a commit: wake the processes waiting on this file when it made work for them."""
        if creates_work and not self.memory:
            self._doorbell.ring()

    # -- schema --

    def _migrate(self, db: sqlite_utils.Database) -> None:
        # Checked again inside the write transaction: what is migrated is what is there now.
        version = check_schema(db.conn, self.path, allow_empty=True) or 0
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](db)
            db.table("eddic_meta").upsert({"key": "schema_version", "value": str(target)}, pk="key")

    # -- instances --

    def workflow_of(self, db: sqlite_utils.Database, instance_id: str) -> str | None:
        """The workflow name of the instance with this id, or None when there is none."""
        row = db.execute(
            "SELECT workflow_name FROM instances WHERE instance_id = ?", [instance_id]
        ).fetchone()
        return None if row is None else str(row[0])

    def instance_row(self, db: sqlite_utils.Database, instance_id: str) -> dict[str, Any] | None:
        cursor = db.execute("SELECT * FROM instances WHERE instance_id = ?", [instance_id])
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
        return None if row is None else dict(zip(names, row, strict=True))

    def get_instance(self, instance_id: str) -> dict[str, Any]:
        """The instance as a dict of JSON-compatible values and aware UTC datetimes."""
        with self.reading() as db:
            row = self.instance_row(db, instance_id)
        if row is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        return public_instance(row)

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
        """Instances newest first, filtered, from a cursor (``public_rows.select_instance_rows``);
        ``InstanceNotFound`` for an unknown cursor."""
        with self.reading() as db:
            return select_instances(
                db,
                statuses=status,
                workflow=workflow,
                limit=limit,
                search=search,
                parent=parent,
                before=before,
                after=after,
            )

    def count_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        search: str | None = None,
        parent: str | None = None,
    ) -> int:
        with self.reading() as db:
            return count_instances(
                db, statuses=status, workflow=workflow, search=search, parent=parent
            )

    def status_counts(
        self, *, workflow: str | None = None, search: str | None = None
    ) -> dict[str, int]:
        """Instances per status present, filtered as ``count_instances``."""
        with self.reading() as db:
            return status_counts(db, workflow=workflow, search=search)

    def workflow_names(self) -> list[str]:
        """The distinct workflow names of the instances, sorted."""
        with self.reading() as db:
            return workflow_names(db)

    def history_rows(
        self, db: sqlite_utils.Database, instance_id: str, run: int | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of the run in progress (or of run ``run``), oldest first."""
        if run is not None:  # an earlier run: every run's rows, cut at the runs' boundaries
            return runs_of(self._all_history_rows(db, instance_id), run)
        # One instance's rows are the id range [ikey << POS_BITS, (ikey + 1) << POS_BITS); the
        # run in progress begins after run_start_pos.
        return db.execute(
            f"SELECT {_HISTORY_SELECT} FROM instances i JOIN history h "
            f"ON h.id > (i.ikey << {POS_BITS}) + i.run_start_pos "
            f"AND h.id <= (i.ikey << {POS_BITS}) | {MAX_POS} "
            "WHERE i.instance_id = ? ORDER BY h.id",
            [instance_id],
        ).fetchall()

    def _all_history_rows(self, db: sqlite_utils.Database, instance_id: str) -> list[Any]:
        return db.execute(
            f"SELECT {_HISTORY_SELECT} FROM instances i JOIN history h "
            f"ON h.id >= i.ikey << {POS_BITS} AND h.id <= (i.ikey << {POS_BITS}) | {MAX_POS} "
            "WHERE i.instance_id = ? ORDER BY h.id",
            [instance_id],
        ).fetchall()

    def history(
        self,
        instance_id: str,
        run: int | None = None,
        *,
        start: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The history of the run in progress (or of run ``run``), one decoded dict per
        record (for display)."""
        with self.reading() as db:
            if self.instance_row(db, instance_id) is None:
                raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
            rows = self.history_rows(db, instance_id, run)
        return decoded_history(rows[start:] if limit is None else rows[start : start + limit])

    # -- leases --

    def acquire(
        self, instance_id: str, owner: str, now: datetime, default_timeout: float
    ) -> tuple[int, dict[str, Any]] | None:
        """Take the lease if it is free or expired: ``(epoch, row)``, or None."""
        with self.transaction() as db:
            row = self.instance_row(db, instance_id)
            return None if row is None else claims.take_lease(db, row, owner, now, default_timeout)

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
        """Take the leases of up to ``limit`` due (with ``stale``, also stale) instances of
        these workflows in one transaction, the longest-waiting first: ``(epoch, row)`` each."""
        with self.transaction() as db:
            return claims.claim(
                db,
                now,
                owner,
                limit=limit,
                default_timeout=default_timeout,
                workflows=workflows,
                stale=stale,
            )

    def due_elsewhere(
        self, now: datetime, workflows: Sequence[str], limit: int = 100
    ) -> list[tuple[str, str]]:
        """Due or stale instances of other workflows than these, which ``claim`` leaves."""
        with self.reading() as db:
            return claims.due_elsewhere(db, now, workflows, limit)

    # -- failover --

    def hold_liveness(self, owner: str) -> None:
        """Show that ``owner`` lives for as long as this process does (``liveness``)."""
        if not self.memory:
            self._liveness.hold(owner)

    def dead_owners(self) -> list[str]:
        """Workers known to have died: their leases may be taken over at once."""
        return [] if self.memory else self._liveness.dead()

    def expire_leases(self, owner: str, now: datetime) -> int:
        """End a dead worker's leases now, so that recovery takes its instances over; forget
        the worker. The number of leases ended."""
        with self.transaction() as db:
            # Released as its worker would have: free for any worker, the epoch unchanged (the
            # next lease bumps it; a dead process commits nothing anyway).
            ended = db.execute(
                "UPDATE instances SET lock_owner = NULL, lock_expires_at = NULL "
                "WHERE lock_owner = ? AND lock_expires_at > ?",
                [owner, to_text(now)],
            ).rowcount
        self._liveness.forget(owner)
        if ended:
            self._ring()
        return int(ended)

    def renew(self, instance_id: str, owner: str, epoch: int, expires: datetime) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE instances SET lock_expires_at = ? "
                "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?",
                [to_text(expires), instance_id, owner, epoch],
            )
            return cursor.rowcount == 1

    def release(self, instance_id: str, owner: str, epoch: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE instances SET lock_owner = NULL, lock_expires_at = NULL "
                "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?",
                [instance_id, owner, epoch],
            )
        self._ring()  # handed back: another worker may take it on now

    # -- steps --

    def commit_step(self, step: StepWrite, now: datetime) -> None:
        """Write one step atomically, or raise ``LeaseLost`` and write nothing.

        Steps committed concurrently by other threads may share the transaction (``commits``).
        """
        self.commits.run(lambda db: steps.write_step(writer_cursor(db), step, now))
        if not self.memory and creates_work(step):  # ``_ring``, in this frame
            self._doorbell.ring()

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
        """Record the heartbeat ``details`` (JSON text) of attempt ``attempt`` of activity
        ``seq``, fenced by the lease: True when written; False when ``(owner, epoch)`` no longer
        holds it or the activity is on another attempt. Only the attempt's row is written (no
        history, wake time or instance column), and no doorbell rings: it creates no work.

        A write like a step's, so it may share a group commit with other threads' steps (and
        their fsync) instead of queueing for a transaction of its own."""
        return self.commits.run(
            lambda db: steps.write_heartbeat(
                writer_cursor(db), instance_id, owner, epoch, seq, attempt, details
            )
        )

    def workflow_name(self, instance_id: str) -> str | None:
        """The workflow the instance with this id runs, or None when there is none."""
        with self.reading() as db:
            return self.workflow_of(db, instance_id)

    def create(
        self, row: dict[str, Any], step: StepWrite, now: datetime, *, check_taken: bool = True
    ) -> tuple[str | None, int]:
        """Record a new instance with its first step (see ``create_instance``), in a commit
        that other threads' steps may share."""
        created = self.commits.run(
            lambda db: self.create_instance(db, row, step, now, check_taken=check_taken)
        )
        self._ring(created[0] is None and leaves_work(step, {**row, **step_columns(step)}))
        return created

    def create_instance(
        self,
        db: sqlite_utils.Database,
        row: dict[str, Any],
        step: StepWrite,
        now: datetime,
        *,
        check_taken: bool = True,
    ) -> tuple[str | None, int]:
        """Insert a new instance and its first step: ``(None, key)``. For an id already taken,
        write nothing and return ``(its workflow name, 0)``. ``check_taken=False`` skips that
        read for an id just drawn at random (a uuid4): were it ever taken, the insert fails on
        the unique id and nothing is written.

        The instance's key, and so its history ids, exist only once the row is inserted: the
        step gets the key here, so that running this again (a group commit redone) is harmless.
        """
        if check_taken:
            taken = self.workflow_of(db, row["instance_id"])
            if taken is not None:
                return taken, 0
        cur = writer_cursor(db)
        step.key = steps.insert_instance(cur, {**row, **step_columns(step)})
        if step.history:
            history_rows.insert(cur, step, fenced=False)
        steps.write_rows(cur, step, now)
        return None, step.key

    def write_step(self, db: sqlite_utils.Database, step: StepWrite, now: datetime) -> None:
        """The step's instance columns, fenced by its lease epoch, then its rows."""
        steps.write_step(writer_cursor(db), step, now)

    def attempts_of(
        self, db: sqlite_utils.Database, instance_id: str
    ) -> dict[int, tuple[Any, ...]]:
        rows = db.execute(
            "SELECT seq, started, failures, next_at, last_failure, details FROM attempts "
            "WHERE instance_id = ?",
            [instance_id],
        ).fetchall()
        return {r[0]: tuple(r[1:]) for r in rows}

    def stored(self, instance_id: str) -> Stored:
        """Everything a replay of the instance needs, read in one read transaction."""
        with self.reading() as db:
            row = self.instance_row(db, instance_id)
            if row is None:
                raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
            return Stored(
                row,
                self.history_rows(db, instance_id),
                self.attempts_of(db, instance_id),
                mailbox.waits_of(db, instance_id),
            )

    # -- events --

    def mailbox(self, instance_id: str, types: Sequence[str]) -> dict[str, list[tuple[int, Event]]]:
        """The instance's unconsumed events of these types, by type, oldest first."""
        with self.reading() as db:
            return mailbox.unconsumed(db, instance_id, types)

    def mailbox_rows(self, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The instance's mailbox rows, consumed or not, oldest first (``mailbox.rows``)."""
        with self.reading() as db:
            return mailbox.rows(db, instance_id, limit)

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
        """Store a sent event (see ``mailbox.deliver``); the instances reached, with their
        workflow names. ``InstanceNotFound`` / ``EddicError`` for a target that cannot take it."""
        with self.transaction() as db:
            reached = mailbox.deliver(
                db,
                event_type,
                payload,
                source=source,
                event_id=event_id,
                now=now,
                instance_id=instance_id,
            )
        self._ring(bool(reached))
        return reached

    # -- work queues --

    def due_instances(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """Instances with a due wake time (timer, deadline, retry, delivered event) and no lease."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT instance_id, workflow_name FROM instances WHERE wake_at IS NOT NULL "
                "AND wake_at <= ? "
                "AND (lock_owner IS NULL OR lock_expires_at < ?) "
                "AND (retry_after IS NULL OR retry_after <= ?) "
                "AND status NOT IN ('completed','failed','cancelled') "
                "ORDER BY wake_at LIMIT ?",
                [to_text(now), to_text(now), to_text(now), limit],
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def stale_instances(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """Running or compensating instances whose lease expired (or was never renewed)."""
        text = to_text(now)
        with self.reading() as db:
            rows = db.execute(
                "SELECT instance_id, workflow_name FROM instances "
                "WHERE status IN ('running','compensating') "
                "AND (lock_owner IS NULL OR lock_expires_at < ?) "
                "AND (wake_at IS NULL OR wake_at <= ?) "
                "AND (retry_after IS NULL OR retry_after <= ?) ORDER BY updated_at LIMIT ?",
                [text, text, text, limit],
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def next_wake(
        self, exclude: Sequence[str] = (), workflows: Sequence[str] | None = None
    ) -> datetime | None:
        """When the earliest instance ``due_instances`` will return becomes due: its wake time,
        or later while it is parked (``retry_after``) or leased by a live worker. ``exclude``
        names instances this worker leaves alone, and ``workflows`` (when given) the workflows
        it can run, so that a serving loop never wakes for work it cannot do."""
        # Times are fixed-width ISO text, so MAX over texts is the latest time; '' stands for
        # NULL. SQLite limits bound parameters: a longer exclude list is cut (waking early is
        # harmless; it is only spinning that is not). The workflow filter is tested on the rows
        # of ``instances_by_wake_at`` (``+``: not read through ``instances_by_workflow``, which
        # holds every finished instance too; see ``claims``).
        skip: list[Any] = list(exclude)[:500]
        not_in = f"AND instance_id NOT IN ({', '.join('?' * len(skip))}) " if skip else ""
        if workflows is not None:
            not_in += "AND +workflow_name IN (SELECT value FROM json_each(?)) "
            skip.append(json.dumps(list(workflows)))
        with self.reading() as db:
            row = db.execute(
                "SELECT MIN(MAX(wake_at, COALESCE(retry_after, ''), "
                "CASE WHEN lock_owner IS NULL THEN '' ELSE COALESCE(lock_expires_at, '') END)) "
                "FROM instances WHERE wake_at IS NOT NULL "
                f"AND status NOT IN ('completed','failed','cancelled') {not_in}",
                skip,
            ).fetchone()
        return from_text(row[0]) if row and row[0] else None

    def park(
        self, instance_id: str, owner: str, epoch: int, retry_at: datetime, error: str
    ) -> bool:
        """Park an instance whose step failed: keep its status and history, store ``error``,
        release the lease and leave it to recovery until ``retry_at``. Fenced by the lease:
        a worker that lost it parks nothing. True when parked."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE instances SET retry_after = ?, error = ?, updated_at = ?, "
                "lock_owner = NULL, lock_expires_at = NULL "
                "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?",
                [to_text(retry_at), error, to_text(utcnow()), instance_id, owner, epoch],
            )
            parked = cursor.rowcount == 1
        self._ring(parked)  # its retry time is a new wake time for the serving workers
        return parked

    def request_cancel(self, instance_id: str, reason: str | None, now: datetime) -> str | None:
        """Record a cancel request (``App.cancel``) and make the instance due now; returns its
        status (a finished one is left alone; a second request keeps the first's reason and
        changes nothing), or None when there is no such instance."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, cancel_reason FROM instances WHERE instance_id = ?", [instance_id]
            ).fetchone()
            if row is None:
                return None
            requested = row[0] not in ("completed", "failed", "cancelled") and row[1] is None
            if requested:
                db.execute(
                    "UPDATE instances SET cancel_reason = ?, cancel_requested_at = ?, "
                    "retry_after = NULL, wake_at = ? WHERE instance_id = ?",
                    [dumps(reason), to_text(now), to_text(now), instance_id],
                )
        self._ring(requested)
        return str(row[0])

    def unpark(self, instance_id: str, now: datetime) -> str | None:
        """Make an instance due now (``App.retry``): clear ``retry_after`` and set its wake time.
        Returns its status, or None when there is no such instance. A finished one is left as
        it is; a lease held by a live worker is left to that worker."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT status FROM instances WHERE instance_id = ?", [instance_id]
            ).fetchone()
            if row is None:
                return None
            if row[0] not in ("completed", "failed", "cancelled"):
                db.execute(
                    "UPDATE instances SET retry_after = NULL, wake_at = ? WHERE instance_id = ?",
                    [to_text(now), instance_id],
                )
        self._ring(row[0] not in ("completed", "failed", "cancelled"))
        return str(row[0])


class _MemoryWriter:
    """The write lock of a ``:memory:`` store: its connection's lock, inside the fork gate (a
    file's writes are waited for by a fork through the writer lock instead)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        GATE.__enter__()
        try:
            self._lock.acquire()
        except BaseException:
            GATE.__exit__(None, None, None)
            raise

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()
        GATE.__exit__(None, None, None)


_STORES: weakref.WeakSet[Storage] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # SQLite connections must not cross a fork: a child opens its own (the parent's are left
    # alone, not closed: closing them here could disturb the parent's locks and WAL). Its own
    # are checked against the identity the parent recorded, like any new connection.
    for store in list(_STORES):
        if not store.memory:
            store._local = threading.local()
            store._all = []
            store._lock = threading.RLock()
            store._doorbell.after_fork()
            store._liveness.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
