"""One writer at a time, queued in the kernel rather than in SQLite's busy handler.

SQLite lets one connection write at a time. A ``BEGIN IMMEDIATE`` that finds another writer
waits in the busy handler, which polls with sleeps of 1, 2, 5, 10 ... ms: longer than a whole
eddic commit, so two processes serving one file mostly sleep. ``WriterLock`` puts eddic's
writers in a queue first: threads of one process on a ``threading.Lock``, processes on an
exclusive ``flock`` of a file beside the database (``<database>-writer``), which the kernel
hands to the next waiter as soon as it is released, and releases by itself when a process dies,
SIGKILL included. Writers that are not eddic (the sqlite3 shell) still meet the busy handler.

The lock file is separate from the database on purpose: closing any descriptor of a file drops
every POSIX lock the process holds on it, SQLite's own included.
"""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: threads queue, processes meet busy_timeout
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """A context manager held around every write transaction on one database file."""

    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}-writer"
        self._threads = threading.Lock()
        self._fd: int | None = None
        _ALL.add(self)

    def __enter__(self) -> None:
        self._threads.acquire()
        if fcntl is None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None

    def _forget(self) -> None:
        # In a forked child: the parent's thread lock may be copied held, and its descriptor
        # shares the parent's flock. The child queues like any other process, on its own.
        self._threads = threading.Lock()
        self._fd = None


_ALL: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_ALL):
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
