"""Wake-ups across processes: ``LISTEN`` on a connection of its own, ``NOTIFY`` from commits.

The listening connection is a session of its own, never a pooled one: a pooled connection
serves other units between waits, and a transaction-mode pooler (pgbouncer) hands each
transaction a different server session, so a ``LISTEN`` there hears nothing. It is opened on
the first ``wait`` and opened again after it dropped (a server restart): notifications sent
while it was down are lost, so ``wait`` then returns True at once and the caller looks for
work, as it does after any wake-up. Polling stays the safety net.
"""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from typing import Any

import psycopg

from .schema import quote_ident
from .units import Units, log

#: How long one wait on the socket lasts at most, so that an in-process ``wake()`` (when the
#: server cannot carry its NOTIFY) is noticed within it.
_SLICE = 0.25
#: How long ``wake()`` waits for a pooled connection when every one is busy (then it skips the
#: NOTIFY: the busy connections are committing work, and their commits notify).
_WAKE_WAIT = 0.1


class Listener:
    def __init__(self, units: Units) -> None:
        self._units = units
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()  # one waiter at a time on the connection
        self._woken = threading.Event()
        self._down = False  # LISTEN failed and was logged: log again only once it is back

    def wait(self, timeout: float) -> bool:
        """Until a notification on this schema's channel, a ``wake()``, or ``timeout`` seconds:
        True unless the time ran out."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            while True:
                if self._woken.is_set():
                    self._woken.clear()
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                conn = self._conn
                if conn is None or conn.closed:
                    try:
                        self._conn = self._listen()
                    except Exception as exc:  # the server is away: sleep, and poll later
                        # one warning per outage, not one a second while it lasts
                        (log.debug if self._down else log.warning)(
                            "cannot LISTEN on %s: %s", self._units.url.redacted, exc
                        )
                        self._down = True
                        self._woken.wait(min(left, 1.0))
                        continue
                    if self._down:
                        log.info("LISTEN on %s again", self._units.url.redacted)
                        self._down = False
                    if conn is not None:  # dropped and back: notifications may have been lost
                        return True
                    conn = self._conn
                try:
                    for _ in conn.notifies(timeout=min(left, _SLICE), stop_after=1):
                        return True
                except psycopg.OperationalError as exc:
                    log.warning("the LISTEN connection dropped (%s); reconnecting", exc)
                    with suppress(Exception):
                        conn.close()

    def _listen(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = self._units.connect(autocommit=True)
        conn.execute(f"LISTEN {quote_ident(self._units.channel)}")
        return conn

    def wake(self) -> None:
        """Wake this process's waiter now, and every other listener through a NOTIFY."""
        self._woken.set()
        # One try (see the module's doc): Units.run would retry for seconds with the server down.
        try:
            with self._units.pool().connection(_WAKE_WAIT) as conn:
                conn.execute("SELECT pg_notify(%s, '')", [self._units.channel])
                conn.commit()
        except Exception:  # the local wake-up is done; the others poll
            log.debug("wake(): NOTIFY failed", exc_info=True)

    def close(self) -> None:
        self._woken.set()  # a waiter in another thread returns
        with self._lock:
            if self._conn is not None:
                with suppress(Exception):
                    self._conn.close()
            self._conn = None
            self._woken.clear()
