"""Units of work on a pool of PostgreSQL connections: one transaction each, retried when the
connection is lost, never applied twice.

Every storage method is one call of :meth:`Units.run` (or :meth:`Units.pipelined`, below): a
pooled connection, one transaction at READ COMMITTED (set on each new connection, with
``synchronous_commit = on``, so a unit is durable when its ``COMMIT`` returns), committed, and
given back to the pool.

**The pool** (``_Pool``) is a small one of our own: connections are made on demand in the
calling thread, at most ``max_connections``, and kept idle for the next unit. No background
thread reconnects on a schedule of its own: after a server restart psycopg_pool's backoff
(1, 2, 4, 8 ... s per connection, and a 10 s wait for it in every unit) kept a unit blocked
for a minute while the server was down and for seconds after it was back. Here a unit that
finds the server down fails its attempt at once (connection refused) and the next attempt,
after a short pause, connects again itself.

**Connection loss.** A unit that fails because its connection broke (server restart,
``pg_terminate_backend``, a network cut) is run again, from the start, on another connection,
with growing pauses (0.05 s doubling to 1 s) for up to ``RETRY_FOR`` seconds; then
``StorageError``. Before the ``COMMIT`` was sent, nothing of it can have landed (only
``COMMIT`` makes a transaction's writes visible), so running it again is simply running it.
The hard case is a connection lost *during* ``COMMIT``: the server may have committed and the
reply never arrived. Running the unit again could then double it: a step's history rows would
hit their primary key ``(instance_id, pos)`` (an error, not a double, but a false one: the
step did land), while rows without such a key (an outbox row, a mailbox row of a new event)
or a lease taken twice would be written twice or the caller told the wrong thing.

So each writing unit learns its transaction id (``pg_current_xact_id()``, which a writing
transaction has anyway) and the server's start time *before* it sends ``COMMIT``, and a unit
whose ``COMMIT`` did not return asks the server, on a new connection, what became of that id
(``pg_xact_status``: ``committed``, ``aborted``, or ``in progress`` while the old backend is
still finishing; an id "in the future" never reached the WAL, so it did not commit).
Committed: the unit's result (computed inside the transaction, before ``COMMIT``) is returned as
it is; aborted: the unit runs again. After a crash of the server, an id whose records never
reached the WAL is handed out again, so once the server has restarted a "committed" is believed
only for an id below the ``next_xid`` of the shutdown (or end-of-recovery) checkpoint it started
from: an id at or above it was not durable, so whatever committed under it is another
transaction's. The writes themselves are fenced or keyed as a second line of defence: a step's
instance update is fenced by ``(owner, epoch)``, its history rows are keyed by
``(instance_id, pos)``, outbox rows by their event id, mailbox rows by ``(instance, event id)``.

**Round trips.** A step (``commit_step``, ``create``) is one *pipelined* unit
(:meth:`Units.pipelined`: libpq's pipeline mode, driven by ``wire`` without psycopg's cursors,
whose per-statement Python was half the client's CPU of a step): ``BEGIN``, the fenced
statement (which returns the id: ``steps``), the history, outbox, wait and attempt rows, the
``pg_notify`` if any, and a ``Sync`` go out in one write, and their results come back in one
wait; then ``COMMIT``. Two round trips for the whole step (five before, plus one per extra
batch of rows).
``COMMIT`` is deliberately *not* in the pipeline. Were it there, a connection that drops after
the pipeline was sent and before any result came back would leave the unit with an outcome
unknown (the server may have run it all, ``COMMIT`` included) and no id to ask about: only a
token made by the client and written by the same transaction (a row that a new connection looks
up) could then tell, which costs a table and a row per commit, for one round trip (~80 µs here
against a commit's ~400-1,000 µs flush). Sent after the results instead, the cases are the two
above: lost before ``COMMIT`` was sent (the pipeline's write, its wait, anything before) means
nothing landed, so the unit simply runs again; lost during ``COMMIT`` means the id is in hand,
so ``pg_xact_status`` decides. A lost lease aborts the transaction inside SQL: the fenced
statement raises when it matched no row (``steps.LEASE_LOST``, mapped to ``LeaseLost`` and to
nothing else), PostgreSQL skips the rest of the pipeline, and no ``COMMIT`` is sent (had one
been, it would roll back: a ``COMMIT`` of a failed transaction is a ``ROLLBACK``). Other writing
units send ``BEGIN; SELECT <id>`` as one simple query (one round trip, not two), then their
statements, then ``COMMIT``. Pooled connections are in autocommit mode so that ``BEGIN`` is
ours to send: psycopg's own is a round trip of its own, even in a pipeline (it syncs).

**NOTIFY.** A unit that creates work for other workers sends one ``pg_notify`` in its
transaction: PostgreSQL delivers it at commit, and only if the transaction commits, so a
listener never wakes for work that is not there. One per transaction (not one per row; the
same channel and payload twice in one transaction is delivered once), and only from the units
that create work (``steps.leaves_work``; not a ``create`` whose starter holds the lease and
runs the instance itself): notifying takes a lock at commit that serialises notifying commits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg import pq

from ...errors import StorageError
from . import wire
from .url import PostgresURL, scrub
from .wire import Pipeline

log = logging.getLogger("eddic.storage.postgres")

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]
Xid = tuple[str, str]  # a transaction's id, and the server's start time when it was given (text)

#: How long a unit whose connection was lost is tried again (seconds), and the pauses between
#: tries (the first, doubled each time up to the last): a server restart of a few seconds,
#: crash recovery included, is survived; a longer outage is a ``StorageError`` the caller sees
#: (``serve()`` logs it and tries again with its own backoff).
RETRY_FOR = 10.0
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0

_SESSION = (
    "SELECT set_config('search_path', %s, false), set_config('TimeZone', 'UTC', false), "
    "set_config('synchronous_commit', 'on', false), "
    "set_config('default_transaction_isolation', 'read committed', false)"
)
#: A writing unit's id, and which life of the server gave it (see ``_committed``): the two
#: columns a pipelined unit's ``finish`` reads from one of its statements.
XACT_ID = "pg_current_xact_id()::text"
SERVER_START = "pg_postmaster_start_time()::text"
_BEGIN_XID = f"BEGIN; SELECT {XACT_ID}, {SERVER_START}"
_STATUS = (
    "SELECT pg_xact_status(%s::xid8), pg_postmaster_start_time() = %s::timestamptz, c.next_xid, "
    "c.redo_lsn = c.checkpoint_lsn FROM pg_control_checkpoint() c"
)


def connection_error(message: str, url: PostgresURL, password: str | None) -> StorageError:
    return StorageError(f"cannot connect to {url.redacted}: {scrub(message, password).strip()}")


class _Busy(Exception):
    """Every connection of the pool is in use (and stayed so for the whole wait)."""


class _Pool:
    """At most ``size`` connections, made on demand by the thread that needs one; idle ones
    are kept (the most recently used first) until a lost connection says they are suspect."""

    def __init__(self, connect: Callable[[], Conn], size: int, first: Conn) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[Conn] = [first]
        self._out = 0  # handed out, or being made
        self._cond = threading.Condition()
        self._closed = False

    def get(self, timeout: float) -> Conn:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise StorageError("the PostgreSQL storage was closed")
                if self._idle:
                    self._out += 1
                    return self._idle.pop()
                if self._out < self._size:
                    self._out += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Busy(f"all {self._size} connections stayed busy for {timeout} s")
                self._cond.wait(left)
        try:
            return self._connect()
        except BaseException:
            self._put_back(None)
            raise

    def put(self, conn: Conn) -> None:
        """Take back a connection; one left broken or inside a transaction is closed."""
        keep = not conn.closed and not conn.broken
        if keep and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                wire.rollback(conn)  # psycopg's would deallocate our prepared statements too
            except Exception:
                keep = False
        if not keep:
            with suppress(Exception):
                conn.close()
        self._put_back(conn if keep else None)

    def _put_back(self, conn: Conn | None) -> None:
        with self._cond:
            self._out -= 1
            if conn is not None and not self._closed:
                self._idle.append(conn)
                conn = None
            self._cond.notify()
        if conn is not None:
            with suppress(Exception):
                conn.close()

    @contextmanager
    def connection(self, timeout: float = 10.0) -> Iterator[Conn]:
        """A connection for the block, given back after it (rolled back if left open)."""
        conn = self.get(timeout)
        try:
            yield conn
        finally:
            self.put(conn)

    def discard_idle(self) -> None:
        """Close the idle connections: after a lost one they are likely lost too (a server
        restart ends them all), and each would cost a retry to find out."""
        with self._cond:
            idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.discard_idle()


class Units:
    def __init__(
        self,
        url: PostgresURL,
        password: str | None,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        application_name: str = "eddic",
    ) -> None:
        self.url = url
        self.password = password
        self.channel = f"eddic_{url.schema}"
        self.connect_timeout = connect_timeout
        self.kwargs: dict[str, Any] = {
            "connect_timeout": max(1, int(connect_timeout)),
            "application_name": application_name,
            # A peer gone without a word (a host down, a network cut) is found out in about
            # 25 s rather than the kernel's two hours: the LISTEN connection, idle by nature,
            # then reconnects, and an idle pooled one is not handed out dead for long.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        self._max = max_connections
        self._pool: _Pool | None = None
        self._lock = threading.Lock()

    # -- connections --

    def connect(self, *, autocommit: bool = False) -> Conn:
        """A connection of its own (not pooled), set up like the pool's; ``StorageError``
        (without the password) when the server cannot be reached or refuses the login."""
        try:
            return self._connect(autocommit=autocommit)
        except psycopg.Error as exc:
            raise connection_error(str(exc), self.url, self.password) from None

    def _connect(self, *, autocommit: bool = False) -> Conn:
        """A new connection, set up; psycopg's errors as they are (a unit retries those)."""
        conn = psycopg.connect(self.url.conninfo, autocommit=autocommit, **self.kwargs)
        try:
            conn.execute(_SESSION, [f'"{self.url.schema}"'])
            if not autocommit:
                conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                # The first connection is made here, not retried: a wrong password, database
                # or host is an error at once, not a connection "lost" and tried for seconds.
                # Autocommit: each unit sends its own BEGIN, in the round trip of its first
                # statements (psycopg's own would be a round trip of its own, even pipelined).
                self._pool = _Pool(
                    lambda: self._connect(autocommit=True), self._max, self.connect(autocommit=True)
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
            self._pool = None

    # -- units of work --

    def run(
        self,
        work: Callable[[Cursor], T],
        *,
        write: bool = True,
        notify: Callable[[T], bool] | None = None,
    ) -> T:
        """``work(cursor)`` in one transaction, committed; its result. ``notify(result)`` says,
        before the commit, whether to wake listeners. Retried on connection loss (see above)."""

        def attempt(conn: Conn) -> tuple[Xid | None, T]:
            xid: Xid | None = None
            with conn.cursor() as cur:
                if write:  # BEGIN and the id in one round trip (the simple protocol)
                    cur.execute(_BEGIN_XID, prepare=False)
                    cur.nextset()
                    row = cur.fetchone()
                    assert row is not None
                    xid = (row[0], row[1])
                else:
                    cur.execute("BEGIN", prepare=False)
                result = work(cur)
                if notify is not None and notify(result):
                    cur.execute("SELECT pg_notify(%s, '')", [self.channel])
            return xid, result

        return self._retried(attempt)

    def pipelined(self, work: Callable[[Pipeline], Callable[[], tuple[Xid, T]]]) -> T:
        """A writing unit sent as one pipeline (see above) through libpq itself (``wire``):
        ``work(pipeline)`` queues its statements and returns ``finish``, called once every
        result is in, which gives the transaction's id (``XACT_ID``, ``SERVER_START``, from
        one of them) and the unit's result; then ``COMMIT``. A statement's error is raised as
        psycopg raises it (the first one: those after it were skipped), the transaction rolled
        back."""

        def attempt(conn: Conn) -> tuple[Xid | None, T]:
            pipeline = Pipeline()
            finish = work(pipeline)
            pipeline.run(conn)
            return finish()

        return self._retried(attempt)

    def _retried(self, attempt: Callable[[Conn], tuple[Xid | None, T]]) -> T:
        """``attempt(conn)``, then ``COMMIT``; run again on another connection when the
        connection is lost, unless the lost ``COMMIT`` is known to have landed."""
        pause = FIRST_PAUSE
        deadline: float | None = None  # set at the first loss
        while True:
            xid: Xid | None = None
            committing = False
            try:
                pool = self.pool()
                conn = pool.get(self.connect_timeout)
                try:
                    xid, result = attempt(conn)
                    committing = True
                    wire.commit(conn)
                    return result
                finally:
                    pool.put(conn)
            except (psycopg.OperationalError, _Busy) as exc:
                if not _lost(exc):
                    raise
                now = time.monotonic()
                deadline = now + RETRY_FOR if deadline is None else deadline
                self._discard_idle()
                if committing and xid is not None and self._committed(*xid):
                    return result
                if now >= deadline:
                    raise StorageError(
                        f"lost the connection to {self.url.redacted} and could not get it back "
                        f"in {RETRY_FOR:g} s: {scrub(str(exc), self.password).strip()}"
                    ) from None
                # one warning per unit, not one per try while the server is away
                (log.debug if pause > FIRST_PAUSE else log.warning)(
                    "connection to %s lost (%s); trying again", self.url.redacted, exc
                )
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, MAX_PAUSE)

    def _committed(self, xid: str, started: str) -> bool:
        """Whether the transaction ``xid``, whose COMMIT went unanswered, committed: asked
        again (the server may be restarting) for up to ``RETRY_FOR`` seconds."""
        pause = FIRST_PAUSE
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline:
            try:
                with self.pool().connection(self.connect_timeout) as conn:
                    row = conn.execute(_STATUS, [xid, started]).fetchone()
                    conn.commit()
            except psycopg.errors.InvalidParameterValue:
                return False  # "in the future": the id never reached the WAL
            except (psycopg.OperationalError, _Busy) as exc:
                if not _lost(exc):
                    raise
                self._discard_idle()
            else:
                assert row is not None
                status, same_server, next_xid, shutdown_checkpoint = row
                if status == "in progress":  # the old backend may still be finishing it
                    pass
                elif status != "committed":
                    return False
                elif same_server:
                    return True
                elif shutdown_checkpoint:
                    # Restarted from a shutdown or end-of-recovery checkpoint: every id below
                    # its next_xid is of the old life and durable; an id at or above it was not,
                    # and "committed" there is a newer transaction that was given the same id.
                    return int(xid) < _full_xid(next_xid)
                else:
                    break  # a checkpoint since: that bound is gone, so we cannot tell
            time.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
        raise StorageError(
            f"lost the connection to {self.url.redacted} while committing, and could not learn "
            "whether that commit landed"
        )

    def _discard_idle(self) -> None:
        pool = self._pool
        if pool is not None:
            pool.discard_idle()


def _full_xid(text: str) -> int:
    """``pg_control_checkpoint()``'s ``next_xid`` (``epoch:xid``) as a full 64-bit id."""
    epoch, _, xid = text.partition(":")
    return (int(epoch) << 32) + int(xid)


def _lost(exc: Exception) -> bool:
    """A connection that broke (or none to be had), as opposed to an error of the statement."""
    if isinstance(exc, _Busy):
        return True
    # OperationalError covers both; a statement error (a lock timeout, say) leaves the
    # connection usable and has a SQLSTATE of its class, while a lost one has none or 08/57P.
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
