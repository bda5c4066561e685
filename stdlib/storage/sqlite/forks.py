"""What a fork waits for: the threads of this process that are inside SQLite.

SQLite's own mutexes (its allocator's, its table of the file locks a process holds) are plain
pthread mutexes, and every SQLite call releases the GIL. A child forked while another thread of
the parent is inside SQLite inherits whatever mutex that thread held, held, and its first SQLite
call waits for ever: forking while threads read or open connections hangs most children (a
thread opening, reading and closing connections in a loop: 84 of 100 children hung). So a fork
waits until no thread is inside eddic's SQLite: the writers (``writers``: the writer lock) and,
through ``GATE``, everything else eddic does in SQLite: read transactions, opening and closing
connections, the ``data_version`` polls of ``Storage.wait``. While a fork waits, no thread
enters; a thread already inside may go deeper (the forking thread itself, say).

``writers``' fork handlers call this gate after they have quiesced the writers, so a thread
that holds the writer lock is never waited for here.
"""

from __future__ import annotations

import threading
import time


class ForkGate:
    """``with GATE:`` around a piece of SQLite work done outside a write transaction."""

    def __init__(self) -> None:
        self._reset(0)

    def _reset(self, inside: int) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)  # for the waits only: entries are hot
        self._inside = inside
        self._forking = False
        self._own = threading.local()

    def __enter__(self) -> None:
        own = self._own
        n = getattr(own, "n", 0)
        mutex = self._mutex
        mutex.acquire()
        try:
            while self._forking and not n:
                self._cond.wait()
            self._inside += 1
        finally:
            mutex.release()
        own.n = n + 1

    def __exit__(self, *exc_info: object) -> None:
        self._own.n -= 1
        mutex = self._mutex
        mutex.acquire()
        try:
            self._inside -= 1
            if self._forking:
                self._cond.notify_all()
        finally:
            mutex.release()

    def before_fork(self, timeout: float) -> bool:
        """Hold new entries back and wait up to ``timeout`` seconds for the threads inside to
        leave; False when some were still inside. Always followed by one of the two below."""
        own = getattr(self._own, "n", 0)
        self._cond.acquire()
        self._forking = True
        deadline = time.monotonic() + timeout
        while self._inside > own:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cond.wait(left)
        return True

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def after_fork_in_child(self) -> None:
        # The forking thread is the child's only thread: only its own entries are still open.
        self._reset(getattr(self._own, "n", 0))
        self._own.n = self._inside


GATE = ForkGate()
