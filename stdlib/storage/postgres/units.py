"""Units of work on a pool of PostgreSQL connections: one transaction each, retried when the
connection is lost, never applied twice.

Every storage method is one call of :meth:`Units.run`: a pooled connection, one transaction at
READ COMMITTED (set on each new connection, with ``synchronous_commit = on``, so a unit is
durable when its ``COMMIT`` returns), committed, and given back to the pool.

**Connection loss.** A unit that fails because its connection broke (server restart,
``pg_terminate_backend``, a network cut) is run again, from the start, on another connection,
a few times with growing pauses. Before the ``COMMIT`` was sent, nothing of it can have landed
(only ``COMMIT`` makes a transaction's writes visible), so running it again is simply running
it. The hard case is a connection lost *during* ``COMMIT``: the server may have committed and
the reply never arrived. Running the unit again could then double it: a step's history rows
would hit their primary key ``(instance_id, pos)`` (an error, not a double, but a false one:
the step did land), while rows without such a key (an outbox row, a mailbox row of a new event)
or a lease taken twice would be written twice or the caller told the wrong thing.

So each writing unit first asks for its transaction id (``pg_current_xact_id()``, which a
writing transaction has anyway), and a unit whose ``COMMIT`` did not return asks the server,
on a new connection, what became of that id (``pg_xact_status``: ``committed``, ``aborted``,
or ``in progress`` while the old backend is still finishing). Committed: the unit's result
(computed inside the transaction, before ``COMMIT``) is returned as it is; aborted: the unit
runs again. The writes themselves are fenced or keyed as a second line of defence: a step's
instance update is fenced by ``(owner, epoch)``, its history rows are keyed by
``(instance_id, pos)``, outbox rows by their event id, mailbox rows by ``(instance, event id)``.

**NOTIFY.** A unit that creates work sends one ``pg_notify`` just before its ``COMMIT``:
PostgreSQL delivers it at commit, and only if the transaction commits, so a listener never
wakes for work that is not there. One per transaction (not one per row), and only from the
units that create work: notifying takes a lock at commit that serialises notifying commits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..sqlite.dbfile import StorageError
from .url import PostgresURL, scrub

log = logging.getLogger("eddic.storage.postgres")

T = TypeVar("T")

#: How often a unit whose connection was lost is run again, and the first pause (doubled each
#: time, so about 0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s: a fast server restart is survived).
RETRIES = 6
FIRST_PAUSE = 0.05

_SESSION = (
    "SELECT set_config('search_path', %s, false), set_config('TimeZone', 'UTC', false), "
    "set_config('synchronous_commit', 'on', false), "
    "set_config('default_transaction_isolation', 'read committed', false)"
)


def connection_error(message: str, url: PostgresURL, password: str | None) -> StorageError:
    return StorageError(f"cannot connect to {url.redacted}: {scrub(message, password).strip()}")


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
        }
        self._max = max_connections
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None
        self._lock = threading.Lock()

    # -- connections --

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection of its own (not pooled), set up like the pool's; ``StorageError``
        (without the password) when the server cannot be reached or refuses the login."""
        try:
            conn = psycopg.connect(self.url.conninfo, autocommit=autocommit, **self.kwargs)
        except psycopg.Error as exc:
            raise connection_error(str(exc), self.url, self.password) from None
        self._configure(conn)
        return conn

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(_SESSION, [f'"{self.url.schema}"'])
        if not conn.autocommit:
            conn.commit()

    def pool(self) -> ConnectionPool[psycopg.Connection[tuple[Any, ...]]]:
        with self._lock:
            if self._pool is None:
                # Checked by a connection of our own first: the pool retries a failed login in
                # the background and reports only a timeout, not why.
                self.connect().close()
                pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
                    self.url.conninfo,
                    min_size=1,
                    max_size=self._max,
                    kwargs=self.kwargs,
                    configure=self._configure,
                    open=False,
                    name=f"eddic-{self.url.schema}",
                    reconnect_timeout=60,
                )
                pool.open(wait=True, timeout=self.connect_timeout)
                self._pool = pool
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
            self._pool = None

    # -- units of work --

    def run(
        self,
        work: Callable[[psycopg.Cursor[tuple[Any, ...]]], T],
        *,
        write: bool = True,
        notify: Callable[[T], bool] | None = None,
    ) -> T:
        """``work(cursor)`` in one transaction, committed; its result. ``notify(result)`` says,
        before the commit, whether to wake listeners. Retried on connection loss (see above)."""
        pause = FIRST_PAUSE
        for attempt in range(RETRIES + 1):
            xid: str | None = None
            committing = False
            try:
                with self.pool().connection(timeout=self.connect_timeout) as conn:
                    with conn.cursor() as cur:
                        if write:
                            cur.execute("SELECT pg_current_xact_id()::text")
                            xid = _one(cur)
                        result = work(cur)
                        if notify is not None and notify(result):
                            cur.execute("SELECT pg_notify(%s, '')", [self.channel])
                    committing = True
                    conn.commit()
                    return result
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if not _lost(exc):
                    raise
                if attempt == RETRIES:
                    raise StorageError(
                        f"lost the connection to {self.url.redacted} and could not get it back "
                        f"({RETRIES} tries): {scrub(str(exc), self.password).strip()}"
                    ) from None
                log.warning("connection to %s lost (%s); trying again", self.url.redacted, exc)
                self._discard_broken()
                if committing and xid is not None and self._committed(xid):
                    return result
            time.sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")

    def _committed(self, xid: str) -> bool:
        """Whether the transaction ``xid``, whose COMMIT went unanswered, committed."""
        pause = FIRST_PAUSE
        for _ in range(RETRIES + 10):
            try:
                with self.pool().connection(timeout=self.connect_timeout) as conn:
                    row = conn.execute("SELECT pg_xact_status(%s::xid8)", [xid]).fetchone()
                    conn.commit()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if not _lost(exc):
                    raise
                self._discard_broken()
            else:
                status = None if row is None else row[0]
                if status != "in progress":  # the old backend may still be finishing it
                    return status == "committed"
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        raise StorageError(
            f"lost the connection to {self.url.redacted} while committing, and could not learn "
            "whether that commit landed"
        )

    def _discard_broken(self) -> None:
        # After a server restart every idle pooled connection is dead: check them all now
        # rather than meet them one retry at a time.
        pool = self._pool
        if pool is not None:
            try:
                pool.check()
            except Exception:  # checking is only a shortcut; the retry copes regardless
                log.debug("pool check failed", exc_info=True)


def _one(cur: psycopg.Cursor[tuple[Any, ...]]) -> Any:
    row = cur.fetchone()
    assert row is not None
    return row[0]


def _lost(exc: Exception) -> bool:
    """A connection that broke (or none to be had), as opposed to an error of the statement."""
    if isinstance(exc, PoolTimeout):
        return True
    # OperationalError covers both; a statement error (a lock timeout, say) leaves the
    # connection usable and has a SQLSTATE of its class, while a lost one has none or 08/57P.
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
