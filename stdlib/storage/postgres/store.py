"""PostgreSQL storage: the methods of SQLite's ``Storage``, each one unit of work (``units``).

``PostgresStorage(db_url)`` takes ``postgresql://user:pw@host:port/db`` (or ``postgres://``)
with an optional ``?schema=NAME`` (default ``eddic``, created when missing). Rows come back in
the shape SQLite's do (times as ISO text, see ``rows``), so the runtime reads both alike.
Differences from SQLite, all below the interface: a pool of connections instead of one per
thread; READ COMMITTED with row locks instead of one writer at a time (``steps`` and
``mailbox`` say which lock closes which race); ``claim`` takes a batch of leases in one
statement with ``FOR UPDATE SKIP LOCKED``; ``wait``/``wake`` are LISTEN/NOTIFY (``listener``);
a unit whose connection drops is run again, never twice (``units``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from ...clock import from_text
from ...kernel import Event, InstanceNotFound
from ...serde import dumps
from ..base import Store, Stored
from ..sqlite.public_rows import HISTORY_FIELDS, decoded_history, public_instance, runs_of
from ..step import StepWrite, step_columns
from . import mailbox, steps
from .listener import Listener
from .liveness import Liveness
from .outbox_rows import PostgresOutboxRows
from .rows import as_dicts, text_tuple, texts
from .schema import migrate
from .steps import Cursor
from .units import Units
from .url import parse_postgres_url, password_of

_FINISHED = "('completed','failed','cancelled')"
_HISTORY_SELECT = f"SELECT {', '.join(HISTORY_FIELDS)} FROM history WHERE instance_id = %s"
# What is due or stale now (%(now)s): the union of due_instances' and stale_instances' rules.
_CLAIMABLE = (
    f"status NOT IN {_FINISHED} "
    "AND (lock_owner IS NULL OR lock_expires_at < %(now)s) "
    "AND (retry_after IS NULL OR retry_after <= %(now)s) "
    "AND ((wake_at IS NOT NULL AND wake_at <= %(now)s) "
    "OR (status IN ('running','compensating') AND wake_at IS NULL))"
)
_DUE = (
    f"status NOT IN {_FINISHED} AND wake_at IS NOT NULL AND wake_at <= %(now)s "
    "AND (lock_owner IS NULL OR lock_expires_at < %(now)s) "
    "AND (retry_after IS NULL OR retry_after <= %(now)s)"
)
# The rest of _CLAIMABLE (its rows with no wake time): _DUE or _STALE is exactly _CLAIMABLE.
_STALE = (
    "status IN ('running','compensating') AND wake_at IS NULL "
    "AND (lock_owner IS NULL OR lock_expires_at < %(now)s) "
    "AND (retry_after IS NULL OR retry_after <= %(now)s)"
)
# When an instance waiting on a time can next be taken: its wake time, park, or live lease.
_WAKE = (
    "greatest(wake_at, retry_after, "
    "CASE WHEN lock_owner IS NULL THEN NULL ELSE lock_expires_at END)"
)
_WAKE_SCAN = 32  # rows next_wake reads in wake order before it looks at every one
# A lease of the instance's own timeout, or the default (0 counts as unset, as on SQLite).
_LEASE_UNTIL = (
    "%(now)s::timestamptz + make_interval(secs => "
    "coalesce(nullif(i.lock_timeout_seconds, 0), %(default)s))"
)


#: Connections a store may hold at once. They are made on demand and only while threads ask
#: for them, so the bound costs nothing until used: it is there so that ``serve(threads=16)``
#: (its threads, the relay, the lease keeper, ``start`` from other threads) never waits for a
#: connection, while a runaway number of threads cannot exhaust the server's ``max_connections``.
POOL_SIZE = 32


class PostgresStorage:
    """Storage on one PostgreSQL schema. Threads share a pool of connections."""

    def __init__(
        self,
        db_url: str,
        *,
        max_connections: int = POOL_SIZE,
        connect_timeout: float = 10.0,
        application_name: str = "eddic",
    ) -> None:
        self.db_url = db_url
        self.url = parse_postgres_url(db_url)
        self.schema = self.url.schema
        self.units = Units(
            self.url,
            password_of(db_url),
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            application_name=application_name,
        )
        self.outbox = PostgresOutboxRows(self.units)
        self._listener = Listener(self.units)
        self._liveness = Liveness(self.units)
        self._opened = False

    # -- connections --

    def open(self) -> None:
        """Connect, then create or migrate the schema (refusing a newer one). Idempotent."""
        if self._opened:
            return
        self.units.run(lambda cur: migrate(cur, self.schema, self.url.redacted))
        self._opened = True

    def close(self) -> None:
        self._listener.close()
        self._liveness.close()
        self.units.close()
        self._opened = False

    @property
    def notifies(self) -> bool:
        return True  # commits that create work NOTIFY; wait() LISTENs

    def wait(self, timeout: float) -> bool:
        """Until a commit of any process creates work (NOTIFY), ``wake()``, or ``timeout``."""
        return self._listener.wait(timeout)

    def wake(self) -> None:
        self._listener.wake()

    # -- reads --

    def _instance_row(self, cur: Cursor, instance_id: str) -> dict[str, Any] | None:
        cur.execute("SELECT * FROM instances WHERE instance_id = %s", [instance_id])
        rows = as_dicts(cur)
        return texts(rows[0]) if rows else None

    def _history_rows(
        self, cur: Cursor, instance_id: str, run: int | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of the run in progress (or of run ``run``), oldest first."""
        if run is not None:  # an earlier run: every run's rows, cut at the runs' boundaries
            cur.execute(_HISTORY_SELECT + " ORDER BY pos", [instance_id])
            return runs_of([text_tuple(r) for r in cur.fetchall()], run)
        cur.execute(
            _HISTORY_SELECT + " AND pos > (SELECT run_start_pos FROM instances "
            "WHERE instance_id = %s) ORDER BY pos",
            [instance_id, instance_id],
        )
        return [text_tuple(r) for r in cur.fetchall()]

    def get_instance(self, instance_id: str) -> dict[str, Any]:
        """The instance as a dict of JSON-compatible values and aware UTC datetimes."""
        row = self.units.run(lambda cur: self._instance_row(cur, instance_id), write=False)
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
        """Instances newest first (``created_at``, then insert order), filtered, from a cursor
        (see SQLite's ``select_instance_rows``): the cursor's place is read first, in the same
        unit, then the page in the order of ``instances_by_created`` (or ``_by_status`` /
        ``_by_workflow``) from there; ``InstanceNotFound`` for an unknown cursor."""
        if before is not None and after is not None:
            raise ValueError("give before or after, not both")
        where, params = _filter(status, workflow, search, parent)
        cursor = before if before is not None else after
        order = "ASC" if after is not None else "DESC"  # after: the nearest, then turned round

        def work(cur: Cursor) -> list[dict[str, Any]] | None:
            terms, values = list(where), list(params)
            if cursor is not None:
                cur.execute(
                    "SELECT created_at, ikey FROM instances WHERE instance_id = %s", [cursor]
                )
                found = cur.fetchone()
                if found is None:
                    return None
                terms.append(f"(created_at, ikey) {'<' if before is not None else '>'} (%s, %s)")
                values.extend(found)
            sql = (
                f"SELECT * FROM instances{_where(terms)} ORDER BY created_at {order}, ikey {order}"
            )
            if limit is not None:
                sql += " LIMIT %s"
                values.append(int(limit))
            cur.execute(sql, values)
            return as_dicts(cur)

        rows = self.units.run(work, write=False)
        if rows is None:
            raise InstanceNotFound(f"no workflow instance with id {cursor!r}")
        if after is not None:
            rows.reverse()
        return [public_instance(texts(r)) for r in rows]

    def count_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        search: str | None = None,
        parent: str | None = None,
    ) -> int:
        where, params = _filter(status, workflow, search, parent)

        def work(cur: Cursor) -> int:
            cur.execute(f"SELECT count(*) FROM instances{_where(where)}", params)
            return int(_one(cur))

        return self.units.run(work, write=False)

    def status_counts(
        self, *, workflow: str | None = None, search: str | None = None
    ) -> dict[str, int]:
        """Instances per status present, filtered as ``count_instances``."""
        where, params = _filter(None, workflow, search)

        def work(cur: Cursor) -> dict[str, int]:
            cur.execute(
                f"SELECT status, count(*) FROM instances{_where(where)} GROUP BY status", params
            )
            return {str(status): int(n) for status, n in cur.fetchall()}

        return self.units.run(work, write=False)

    def workflow_names(self) -> list[str]:
        """The distinct workflow names, sorted: one seek in ``instances_by_workflow`` per name
        (each the least name above the last), however many instances each has."""

        def work(cur: Cursor) -> list[str]:
            cur.execute(
                "WITH RECURSIVE names AS (SELECT min(workflow_name) AS name FROM instances "
                "UNION ALL SELECT (SELECT min(workflow_name) FROM instances "
                "WHERE workflow_name > names.name) FROM names WHERE names.name IS NOT NULL) "
                "SELECT name FROM names WHERE name IS NOT NULL"
            )
            return [str(r[0]) for r in cur.fetchall()]

        return sorted(self.units.run(work, write=False))  # Python's order, as SQLite's

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

        def work(cur: Cursor) -> list[tuple[Any, ...]] | None:
            if self._instance_row(cur, instance_id) is None:
                return None
            return self._history_rows(cur, instance_id, run)

        rows = self.units.run(work, write=False)
        if rows is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        return decoded_history(rows[start:] if limit is None else rows[start : start + limit])

    def stored(self, instance_id: str) -> Stored:
        """Everything a replay of the instance needs, read in one transaction.

        READ COMMITTED gives each statement its own snapshot; the instance's row is read
        ``FOR SHARE`` first, so no step of it commits between the reads that follow."""

        def work(cur: Cursor) -> Stored | None:
            cur.execute("SELECT * FROM instances WHERE instance_id = %s FOR SHARE", [instance_id])
            found = as_dicts(cur)
            if not found:
                return None
            cur.execute(
                "SELECT seq, started, failures, next_at, last_failure, details FROM attempts "
                "WHERE instance_id = %s",
                [instance_id],
            )
            attempts = {r[0]: text_tuple(r[1:]) for r in cur.fetchall()}
            return Stored(
                texts(found[0]),
                self._history_rows(cur, instance_id),
                attempts,
                mailbox.waits_of(cur, instance_id),
            )

        stored = self.units.run(work, write=False)
        if stored is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        return stored

    def workflow_name(self, instance_id: str) -> str | None:
        """The workflow the instance with this id runs, or None when there is none."""

        def work(cur: Cursor) -> str | None:
            cur.execute("SELECT workflow_name FROM instances WHERE instance_id = %s", [instance_id])
            row = cur.fetchone()
            return None if row is None else str(row[0])

        return self.units.run(work, write=False)

    # -- writes --

    def create(
        self, row: dict[str, Any], step: StepWrite, now: datetime, *, check_taken: bool = True
    ) -> tuple[str | None, int]:
        """Insert a new instance and its first step: ``(None, key)``. For an id already taken,
        write nothing and return ``(its workflow name, 0)``. ``check_taken`` is accepted for
        SQLite's signature: the insert's unique key checks in the same statement.

        One pipelined unit (``steps.insert_instance``). It NOTIFYs only when it leaves work for
        others (``steps.leaves_work``): not for a starter that holds the lease and runs the
        instance itself, which is most starts."""
        columns = {**row, **step_columns(step)}
        while True:
            try:
                key = self.units.pipelined(
                    lambda cur: steps.insert_instance(cur, columns, step, now, self.units.channel)
                )
                return None, key
            except psycopg.IntegrityError as exc:
                if not steps.taken(exc):
                    raise
            name = self.workflow_name(row["instance_id"])
            if name is not None:  # else it was deleted since: try again
                return name, 0

    def commit_step(self, step: StepWrite, now: datetime) -> None:
        """Write one step atomically, or raise ``LeaseLost`` and write nothing.

        One pipelined unit (``steps.write_step``): a fence that matches no row raises inside
        SQL, so nothing of the step can commit; that error, and only it, is ``LeaseLost``."""
        try:
            self.units.pipelined(lambda cur: steps.write_step(cur, step, now, self.units.channel))
        except psycopg.DataError as exc:
            lost = steps.lease_lost(exc, step)
            if lost is None:
                raise
            raise lost from None

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
        """Record the heartbeat ``details`` of attempt ``attempt`` of activity ``seq``, fenced
        by the lease (see SQLite's ``Storage.heartbeat``): one statement (``steps.HEARTBEAT``)
        in one unit, with no NOTIFY (it creates no work). True when written. Run again after a
        lost connection it writes the same details again, which is harmless."""
        params = {
            "id": instance_id,
            "owner": owner,
            "epoch": epoch,
            "seq": seq,
            "attempt": attempt,
            "details": details,
        }

        def work(cur: Cursor) -> bool:
            cur.execute(steps.HEARTBEAT, params)
            return cur.rowcount == 1

        return self.units.run(work)

    def acquire(
        self, instance_id: str, owner: str, now: datetime, default_timeout: float
    ) -> tuple[int, dict[str, Any]] | None:
        """Take the lease if it is free or expired: ``(epoch, row)``, or None."""

        def work(cur: Cursor) -> tuple[int, dict[str, Any]] | None:
            cur.execute(
                f"UPDATE instances i SET lock_owner = %(owner)s, lock_epoch = i.lock_epoch + 1, "
                f"lock_expires_at = {_LEASE_UNTIL} WHERE instance_id = %(id)s "
                f"AND status NOT IN {_FINISHED} "
                "AND (lock_owner IS NULL OR lock_expires_at IS NULL "
                "OR lock_expires_at <= %(now)s) RETURNING *",
                {"owner": owner, "now": now, "default": default_timeout, "id": instance_id},
            )
            got = as_dicts(cur)
            if not got:
                return None
            row = texts(got[0])
            row["last_pos"] = _last_positions(cur, [instance_id]).get(instance_id, 0)
            return int(row["lock_epoch"]), row

        return self.units.run(work)

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
        these workflows in one statement, the longest-waiting first: ``(epoch, row)`` each, as
        ``acquire`` gives. ``SKIP LOCKED`` passes over rows another claimer (or a committing
        step) holds, so concurrent claimers never wait on each other and never claim one
        instance twice; a small ``limit`` keeps each claim's locks few."""
        which = _CLAIMABLE if stale else _DUE
        # Due rows have a wake time, so without stale instances this is their wake order, which
        # instances_due gives: the first ``limit`` entries, not a sort of every due instance
        # (4 ms with 5,000 due, 0.4 ms read in order).
        order = "coalesce(wake_at, updated_at)" if stale else "wake_at"
        params = {"now": now, "names": list(workflows)}
        # First a read, so that an idle worker's poll finds nothing without a writing unit:
        # that would take a transaction id and flush a commit record to the WAL on every poll
        # of every worker (tests/benchmarks/pg_idle_fleet.py). Each kind is read in the order of
        # its partial index (instances_due, instances_active), the due first: asked for any row
        # of a condition it expects many rows to meet (the OR of _CLAIMABLE; ``wake_at <= $1``
        # in a generic plan), the planner would rather read the table until it meets one, a Seq
        # Scan of every instance (16-31 ms with 100,000 of them, 10,000 running on live leases
        # or 25,000 on timers; tests/benchmarks/viewer_queries.py --explain).
        mine = "AND workflow_name = ANY(%(names)s)"
        first = (
            f"SELECT instance_id, workflow_name FROM instances WHERE {_DUE} {mine} "
            "ORDER BY wake_at LIMIT 1"
        )
        if stale:
            first = (
                f"SELECT * FROM ({first}) AS due UNION ALL SELECT * FROM (SELECT instance_id, "
                f"workflow_name FROM instances WHERE {_STALE} {mine} ORDER BY updated_at LIMIT 1) "
                "AS stale LIMIT 1"
            )
        if not self._pairs(first, params):
            return []

        def work(cur: Cursor) -> list[tuple[int, dict[str, Any]]]:
            # ``= ANY(ARRAY(...))``, not a join with the picked rows: a generic plan of the
            # join (the server's choice after a few runs of a prepared statement) scanned
            # every instance (61 ms with 200,000 of them, tests/benchmarks/pg_idle_fleet.py).
            cur.execute(
                "UPDATE instances i SET lock_owner = %(owner)s, lock_epoch = i.lock_epoch + 1, "
                f"lock_expires_at = {_LEASE_UNTIL} "
                "WHERE i.instance_id = ANY(ARRAY(SELECT instance_id FROM instances "
                f"WHERE {which} {mine} ORDER BY {order} "
                "LIMIT %(limit)s FOR UPDATE SKIP LOCKED)) RETURNING i.*",
                {
                    "owner": owner,
                    "now": now,
                    "default": default_timeout,
                    "limit": limit,
                    "names": list(workflows),
                },
            )
            rows = [texts(r) for r in as_dicts(cur)]
            last = _last_positions(cur, [r["instance_id"] for r in rows])
            for r in rows:
                r["last_pos"] = last.get(r["instance_id"], 0)
            rows.sort(key=lambda r: r["wake_at"] or r["updated_at"] or "")
            return [(int(r["lock_epoch"]), r) for r in rows]

        return self.units.run(work)

    def due_elsewhere(
        self, now: datetime, workflows: Sequence[str], limit: int = 100
    ) -> list[tuple[str, str]]:
        """Due or stale instances of other workflows than these, which ``claim`` leaves."""
        return self._pairs(
            f"SELECT instance_id, workflow_name FROM instances WHERE {_CLAIMABLE} "
            "AND workflow_name <> ALL(%(names)s) LIMIT %(limit)s",
            {"now": now, "names": list(workflows), "limit": limit},
        )

    # -- failover --

    def hold_liveness(self, owner: str) -> None:
        """A session advisory lock for ``owner``, held while this process lives (``liveness``)."""
        self._liveness.hold(owner)

    def dead_owners(self) -> list[str]:
        return self._liveness.dead()

    def expire_leases(self, owner: str, now: datetime) -> int:
        def work(cur: Cursor) -> int:
            cur.execute(
                "UPDATE instances SET lock_owner = NULL, lock_expires_at = NULL "
                "WHERE lock_owner = %s AND lock_expires_at > %s",
                [owner, now],
            )
            return cur.rowcount

        released = self.units.run(work, notify=bool)
        self._liveness.forget(owner)
        return released

    def renew(self, instance_id: str, owner: str, epoch: int, expires: datetime) -> bool:
        return self._fenced(
            "UPDATE instances SET lock_expires_at = %s "
            "WHERE instance_id = %s AND lock_owner = %s AND lock_epoch = %s",
            [expires, instance_id, owner, epoch],
        )

    def release(self, instance_id: str, owner: str, epoch: int) -> None:
        self._fenced(
            "UPDATE instances SET lock_owner = NULL, lock_expires_at = NULL "
            "WHERE instance_id = %s AND lock_owner = %s AND lock_epoch = %s",
            [instance_id, owner, epoch],
            notify=True,  # handed back: another worker may take it on now
        )

    def park(
        self, instance_id: str, owner: str, epoch: int, retry_at: datetime, error: str
    ) -> bool:
        """Park an instance whose step failed (see SQLite's ``Storage.park``). True when parked."""
        return self._fenced(
            "UPDATE instances SET retry_after = %s, error = %s, updated_at = now(), "
            "lock_owner = NULL, lock_expires_at = NULL "
            "WHERE instance_id = %s AND lock_owner = %s AND lock_epoch = %s",
            [retry_at, error, instance_id, owner, epoch],
            notify=True,  # a new wake time: sleeping workers recompute theirs
        )

    def _fenced(self, sql: str, params: list[Any], *, notify: bool = False) -> bool:
        def work(cur: Cursor) -> bool:
            cur.execute(sql, params)
            return cur.rowcount == 1

        return self.units.run(work, notify=(lambda done: done) if notify else None)

    def request_cancel(self, instance_id: str, reason: str | None, now: datetime) -> str | None:
        """Record a cancel request and make the instance due now; its status, or None."""

        def work(cur: Cursor) -> tuple[str, bool] | None:
            cur.execute(
                "SELECT status, cancel_reason FROM instances WHERE instance_id = %s FOR UPDATE",
                [instance_id],
            )
            row = cur.fetchone()
            if row is None:
                return None
            requested = row[0] not in ("completed", "failed", "cancelled") and row[1] is None
            if requested:
                cur.execute(
                    "UPDATE instances SET cancel_reason = %s, cancel_requested_at = %s, "
                    "retry_after = NULL, wake_at = %s WHERE instance_id = %s",
                    [dumps(reason), now, now, instance_id],
                )
            return str(row[0]), requested

        done = self.units.run(work, notify=lambda result: result is not None and result[1])
        return None if done is None else done[0]

    def unpark(self, instance_id: str, now: datetime) -> str | None:
        """Make an instance due now (``App.retry``); its status, or None when there is none."""

        def work(cur: Cursor) -> str | None:
            cur.execute(
                "SELECT status FROM instances WHERE instance_id = %s FOR UPDATE", [instance_id]
            )
            row = cur.fetchone()
            if row is None:
                return None
            if row[0] not in ("completed", "failed", "cancelled"):
                cur.execute(
                    "UPDATE instances SET retry_after = NULL, wake_at = %s WHERE instance_id = %s",
                    [now, instance_id],
                )
            return str(row[0])

        return self.units.run(work, notify=lambda status: status is not None)

    # -- events --

    def mailbox(self, instance_id: str, types: Sequence[str]) -> dict[str, list[tuple[int, Event]]]:
        """The instance's unconsumed events of these types, by type, oldest first."""
        return self.units.run(lambda cur: mailbox.unconsumed(cur, instance_id, types), write=False)

    def mailbox_rows(self, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The instance's mailbox rows, consumed or not, oldest first (``mailbox.rows``)."""
        return self.units.run(lambda cur: mailbox.rows(cur, instance_id, limit), write=False)

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
        """Store a sent event; the instances reached, with their workflow names."""
        return self.units.run(
            lambda cur: mailbox.deliver(
                cur,
                event_type,
                payload,
                source=source,
                event_id=event_id,
                now=now,
                instance_id=instance_id,
            ),
            notify=bool,
        )

    # -- work queues --

    def due_instances(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """Instances with a due wake time and no live lease."""
        return self._pairs(
            "SELECT instance_id, workflow_name FROM instances WHERE wake_at IS NOT NULL "
            "AND wake_at <= %(now)s AND (lock_owner IS NULL OR lock_expires_at < %(now)s) "
            "AND (retry_after IS NULL OR retry_after <= %(now)s) "
            f"AND status NOT IN {_FINISHED} ORDER BY wake_at LIMIT %(limit)s",
            {"now": now, "limit": limit},
        )

    def stale_instances(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """Running or compensating instances whose lease expired (or was never renewed)."""
        return self._pairs(
            "SELECT instance_id, workflow_name FROM instances "
            "WHERE status IN ('running','compensating') "
            "AND (lock_owner IS NULL OR lock_expires_at < %(now)s) "
            "AND (wake_at IS NULL OR wake_at <= %(now)s) "
            "AND (retry_after IS NULL OR retry_after <= %(now)s) "
            "ORDER BY updated_at LIMIT %(limit)s",
            {"now": now, "limit": limit},
        )

    def _pairs(self, sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        def work(cur: Cursor) -> list[tuple[str, str]]:
            cur.execute(sql, params)
            return [(r[0], r[1]) for r in cur.fetchall()]

        return self.units.run(work, write=False)

    def next_wake(
        self, exclude: Sequence[str] = (), workflows: Sequence[str] | None = None
    ) -> datetime | None:
        """When the earliest instance ``due_instances`` will return becomes due (see SQLite's
        ``Storage.next_wake``). ``GREATEST`` skips NULLs, as SQLite's ``''`` stand-ins do.

        Read in ``instances_wake_order`` (wake time or park, the lease left out): among the
        first rows in that order, an unleased one is the answer, since no later row can come
        due before it; only when every one of them is leased are all rows looked at."""
        mine = "" if workflows is None else "AND workflow_name = ANY(%(names)s)"
        where = (
            f"wake_at IS NOT NULL AND status NOT IN {_FINISHED} "
            f"AND instance_id <> ALL(%(exclude)s) {mine}"
        )
        params = {"exclude": list(exclude), "names": list(workflows or ()), "n": _WAKE_SCAN}

        def work(cur: Cursor) -> Any:
            cur.execute(
                f"SELECT min({_WAKE}), bool_or(lock_owner IS NULL OR lock_expires_at IS NULL), "
                f"count(*) FROM (SELECT * FROM instances WHERE {where} "
                "ORDER BY greatest(wake_at, retry_after) LIMIT %(n)s) AS firsts",
                params,
            )
            first, free, seen = cur.fetchone() or (None, None, 0)
            if free or seen < _WAKE_SCAN:
                return first
            cur.execute(f"SELECT min({_WAKE}) FROM instances WHERE {where}", params)
            return _one(cur)

        found = self.units.run(work, write=False)
        return None if found is None else from_text(texts({"t": found})["t"])


def _one(cur: Cursor) -> Any:
    row = cur.fetchone()
    assert row is not None
    return row[0]


def _filter(
    statuses: str | Sequence[str] | None,
    workflow: str | None,
    search: str | None = None,
    parent: str | None = None,
) -> tuple[list[str], list[Any]]:
    """The WHERE terms of a list or count and their parameters: as SQLite's (``search`` is a
    literal, case-sensitive substring of the id: ``strpos``, not ``LIKE``)."""
    where: list[str] = []
    params: list[Any] = []
    if isinstance(statuses, str):
        statuses = [statuses]
    if statuses:
        if len(statuses) == 1:  # an equality: a page by one status is read in index order
            where.append("status = %s")
            params.append(statuses[0])
        else:
            where.append("status = ANY(%s)")
            params.append(list(statuses))
    if workflow is not None:
        where.append("workflow_name = %s")
        params.append(workflow)
    if search:
        where.append("strpos(instance_id, %s) > 0")
        params.append(search)
    if parent is not None:
        where.append("parent_id = %s")
        params.append(parent)
    return where, params


def _where(terms: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(terms) if terms else ""


def _last_positions(cur: Cursor, instance_ids: list[str]) -> dict[str, int]:
    """The number of history rows of each instance (the worker's cache check). A statement of
    its own, after the lease's UPDATE: at READ COMMITTED it sees a step that committed while
    the UPDATE waited for that step's row lock, which the UPDATE's own snapshot does not."""
    if not instance_ids:
        return {}
    cur.execute(
        "SELECT instance_id, max(pos) FROM history WHERE instance_id = ANY(%s) "
        "GROUP BY instance_id",
        [instance_ids],
    )
    return {r[0]: int(r[1]) for r in cur.fetchall()}


def _is_a_store(storage: PostgresStorage) -> Store:
    return storage  # mypy checks here that this backend has the whole interface
