"""Wake-ups across processes: ``LISTEN`` on a connection of its own, ``NOTIFY`` from commits.

The listening connection is a session of its own, never a pooled one: a pooled connection
serves other units between waits, and a transaction-mode pooler (pgbouncer) hands each
transaction a different server session, so a ``LISTEN`` there hears nothing. It is opened on
the first ``wait`` and opened again after it dropped (a server restart): notifications sent
while it was down are lost, so ``wait`` then returns True at once and the caller looks for
work, as it does after any wake-up. Polling stays the safety net.

An idle ``wait`` costs nothing: it blocks in one ``select`` on the connection's socket and on a
socket pair of this listener's own, for the whole timeout, and wakes only when the server sends
something (a notification; the socket also turns readable when the connection drops) or
``wake()`` writes a byte into the pair. Notifications are then read without blocking
(``notifies(timeout=0)``). Between two waits they wait in the socket, so none is missed.

``wake()`` wakes this process's waiter only, through the pair: no server round trip, so it is
as quick with the server down. Other processes hear of new work from the ``NOTIFY`` of the
commit that made it (``Units.run(..., notify=True)``), never from a ``wake()``.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from contextlib import suppress
from typing import Any

import psycopg

from .schema import quote_ident
from .units import Units, log

#: How long ``wait`` sleeps between two tries at LISTEN while the server cannot be reached
#: (a ``wake()`` still ends the sleep at once).
_RETRY = 1.0

_WAKE = "wake"  # selector key data: the socket pair
_LISTEN = "listen"  # selector key data: the LISTEN connection's socket


class Listener:
    def __init__(self, units: Units) -> None:
        self._units = units
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._fd = -1  # the socket of _conn, registered in _selector
        self._lock = threading.Lock()  # one waiter at a time on the connection
        # wake() writes into _pair[1], a waiter reads _pair[0]; made on first use, closed by
        # close(). _pair_lock guards making and closing it (never held while waiting).
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._pair_lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None  # used under _lock only
        self._lost = False  # a LISTEN connection dropped: True once it is back
        self._down = False  # LISTEN failed and was logged: log again only once it is back

    def wait(self, timeout: float) -> bool:
        """Until a notification on this schema's channel, a ``wake()``, or ``timeout`` seconds:
        True unless the time ran out."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            selector = self._open_selector()
            while True:
                if self._conn is None and time.monotonic() < deadline and self._connect(selector):
                    if self._lost:  # dropped and back: notifications may have been lost
                        self._lost = False
                        return True
                    if self._take():  # heard while the LISTEN itself ran
                        return True
                left = max(0.0, deadline - time.monotonic())
                if self._conn is None:  # the server is away: sleep, and try LISTEN again
                    left = min(left, _RETRY)
                ready = {key.data for key, _ in selector.select(left)}
                if _WAKE in ready:
                    self._drain()
                # read the socket even when woken: what it holds is heard now, not next time
                heard = _LISTEN in ready and self._take()
                if heard or _WAKE in ready:
                    return True
                if not ready and time.monotonic() >= deadline:
                    return False

    def _open_selector(self) -> selectors.BaseSelector:
        if self._selector is None:
            receiver, _ = self._socket_pair()
            self._selector = selectors.DefaultSelector()
            self._selector.register(receiver, selectors.EVENT_READ, _WAKE)
        return self._selector

    def _socket_pair(self) -> tuple[socket.socket, socket.socket]:
        with self._pair_lock:
            if self._pair is None:
                receiver, sender = socket.socketpair()
                receiver.setblocking(False)
                sender.setblocking(False)
                self._pair = receiver, sender
            return self._pair

    def _connect(self, selector: selectors.BaseSelector) -> bool:
        """LISTEN on a new connection, registered in ``selector``; False (logged once per
        outage) when the server cannot be reached."""
        try:
            conn = self._units.connect(autocommit=True)
            try:
                conn.execute(f"LISTEN {quote_ident(self._units.channel)}")
                fd = conn.fileno()
                selector.register(fd, selectors.EVENT_READ, _LISTEN)
            except BaseException:
                with suppress(Exception):
                    conn.close()
                raise
        except Exception as exc:
            # one warning per outage, not one a second while it lasts
            (log.debug if self._down else log.warning)(
                "cannot LISTEN on %s: %s", self._units.url.redacted, exc
            )
            self._down = True
            return False
        if self._down:
            log.info("LISTEN on %s again", self._units.url.redacted)
            self._down = False
        self._conn, self._fd = conn, fd
        return True

    def _take(self) -> bool:
        """Whether notifications came, read without blocking (what the socket holds, or what
        psycopg kept while a statement ran). A lost connection is closed, to be opened again."""
        conn = self._conn
        if conn is None:
            return False
        heard = False
        try:
            for _ in conn.notifies(timeout=0):
                heard = True
        except psycopg.Error as exc:
            log.warning("the LISTEN connection dropped (%s); reconnecting", exc)
            self._drop()
            self._lost = True
        return heard

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if self._selector is not None and self._fd >= 0:
            with suppress(KeyError, ValueError):
                self._selector.unregister(self._fd)
        self._fd = -1
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def _drain(self) -> None:
        receiver, _ = self._socket_pair()
        with suppress(OSError):  # BlockingIOError once it is empty
            while receiver.recv(4096):
                pass

    def wake(self) -> None:
        """Make this process's ``wait`` return True now (or its next one, if none is waiting).
        Never blocks, and needs no server."""
        _, sender = self._socket_pair()
        with suppress(OSError):  # BlockingIOError: the pair is full, a wake-up is pending
            sender.send(b"\0")

    def close(self) -> None:
        self.wake()  # a waiter in another thread returns
        with self._lock:
            self._drop()
            self._lost = False
            if self._selector is not None:
                self._selector.close()
                self._selector = None
            with self._pair_lock:
                pair, self._pair = self._pair, None
            for end in pair or ():
                end.close()
