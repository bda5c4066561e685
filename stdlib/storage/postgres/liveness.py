"""Which workers are alive, as the server knows it: a session advisory lock per worker.

A worker that takes leases first takes the session-level advisory lock
``hashtextextended(worker id, 0)`` on a connection of its own, held for as long as its process
lives, then registers in ``workers`` (in that order: once registered, it is seen locked). The
server releases a session's locks the moment its connection ends, so when a worker's process
dies (a SIGKILL, a host lost: its connection is closed, or cut by keepalive within about 25 s)
any other worker, on any machine, sees its lock gone from ``pg_locks``: its leases are released
and its instances recovered at once, while a slow but live worker keeps its lock and its
leases. A worker whose lock connection is lost while it lives (a server restart) may be taken
for dead meanwhile; fencing then refuses its next commit (``LeaseLost``), and it takes the
lock again before its next lease.

Only registered workers are ever taken for dead: one that never took a lease, or an eddic
without this, is not in ``workers``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psycopg

from .units import Units

#: A registered worker none of whose sessions holds its lock (``pg_locks`` shows an advisory
#: lock's 64-bit key as two 32-bit halves, ``classid`` and ``objid``, ``objsubid`` 1).
_DEAD = (
    "SELECT w.owner FROM workers w WHERE NOT EXISTS (SELECT 1 FROM pg_locks l "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = ((hashtextextended(w.owner, 0) >> 32) & 4294967295)::oid "
    "AND l.objid = (hashtextextended(w.owner, 0) & 4294967295)::oid)"
)


class Liveness:
    def __init__(self, units: Units) -> None:
        self.units = units
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def hold(self, owner: str) -> None:
        """Register ``owner`` and hold its lock (idempotent; taken again after a lost
        connection). A failure leaves the worker without one: its leases then only expire."""
        conn = self._conn
        if owner in self._held and conn is not None and not conn.closed and not conn.broken:
            return
        with self._lock:
            try:
                conn = self._conn
                if conn is None or conn.closed or conn.broken:
                    self._held.clear()
                    conn = self._conn = self.units.connect(autocommit=True)
                if owner in self._held:
                    return
                # The lock first, then the row: a look for dead workers (``dead``) between the
                # two must not find the worker registered and unlocked, and take it for dead.
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [owner])
                self.units.run(
                    lambda cur: cur.execute(
                        "INSERT INTO workers (owner) VALUES (%s) ON CONFLICT DO NOTHING", [owner]
                    )
                )
                self._held.add(owner)
            except Exception:
                return  # no liveness for now: the next lease tries again

    def dead(self) -> list[str]:
        """Registered workers whose lock no session holds: their processes have ended."""

        def work(cur: Any) -> list[str]:
            cur.execute(_DEAD)
            return [str(r[0]) for r in cur.fetchall() if r[0] not in self._held]

        found: list[str] = self.units.run(work, write=False)
        return found

    def forget(self, owner: str) -> None:
        self.units.run(lambda cur: cur.execute("DELETE FROM workers WHERE owner = %s", [owner]))

    def close(self) -> None:
        """This process's workers stop: unregistered (no one must take them over)."""
        with self._lock:
            held, self._held = set(self._held), set()
            conn, self._conn = self._conn, None
        for owner in held:
            with contextlib.suppress(Exception):
                self.forget(owner)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
