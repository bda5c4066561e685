"""One writer at a time, queued in the kernel rather than in SQLite's busy handler.

SQLite lets one connection write at a time. A ``BEGIN IMMEDIATE`` that finds another writer
waits in the busy handler, which polls with sleeps of 1, 2, 5, 10 ... ms: longer than a whole
eddic commit, so two processes serving one file mostly sleep. ``WriterLock`` puts eddic's
writers in a queue first: threads of one process on a ``threading.Lock``, processes on an
exclusive ``flock`` of a file beside the database (``<database>-writer``), which the kernel
hands to the next waiter as soon as it is released, and releases by itself when a process dies,
SIGKILL included. Writers that are not eddic (the sqlite3 shell) still meet the busy handler.

The lock file is separate from the database on purpose: closing any descriptor of a file drops
every POSIX lock the process holds on it, SQLite's own included. For the same reason it must be
a plain file of its own, never a symlink (to the database, say). It is created once, when the
database is opened (``open``); later openings (a forked child's) open that same file or refuse:
a new one would not queue with the processes still locking the old.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import weakref
from types import TracebackType

from ...errors import StorageError
from .dbfile import Identity, identity
from .forks import GATE

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: threads queue, processes meet busy_timeout
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """A context manager held around every write transaction on one database file."""

    def __init__(self, database_path: str, *, create_when_used: bool = True) -> None:
        """``create_when_used=False``: only ``open`` creates the lock file (``Storage`` opens it
        with the database it checked; a transaction before that must leave no file behind)."""
        self.path = f"{database_path}-writer"
        self._create_when_used = create_when_used
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._identity: Identity | None = None  # the lock file once opened: reopened only as it
        _ALL.add(self)

    def open(self) -> None:
        """Open the lock file now, creating it when missing: when its database is (re)opened."""
        if fcntl is None:
            return
        with self._threads:
            if self._fd is None:
                self._identity = None
                self._fd = self._open_file(create=True)

    def __enter__(self) -> None:
        self._threads.acquire()
        if fcntl is None:
            return
        try:
            if self._fd is None:
                self._fd = self._open_file(create=self._identity is None and self._create_when_used)
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

    def _open_file(self, *, create: bool) -> int:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            if self._identity is None:
                raise StorageError(
                    f"the writer lock {self.path!r} is missing: its database is not open yet"
                ) from None
            raise StorageError(
                f"the writer lock {self.path!r} was removed while its database was open; it is "
                "not re-created (a new one would not queue with the processes locking the old): "
                "restart eddic"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR):
                raise self._not_plain() from None
            raise StorageError(
                f"cannot open the writer lock {self.path!r}: {exc.strerror}"
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._not_plain()
            if self._identity is not None and identity(st) != self._identity:
                raise StorageError(
                    f"the writer lock {self.path!r} was replaced while its database was open: "
                    "restart eddic"
                )
        except BaseException:
            os.close(fd)
            raise
        self._identity = identity(st)
        return fd

    def _not_plain(self) -> StorageError:
        return StorageError(
            f"the writer lock {self.path!r} is not a plain file (a symlink, folder or device): "
            "remove it while no eddic uses the database, and eddic creates it again"
        )

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

log = logging.getLogger("eddic")


_quiesced: list[WriterLock] = []
_QUIESCE_SECONDS = 10.0  # how long a fork waits for the writes in flight


def _before_fork() -> None:
    # SQLite keeps one record per file of the locks its connections in this process hold. A
    # child forked during a write transaction inherits a record saying a write is in progress
    # that no thread of the child will ever end, so every BEGIN IMMEDIATE there waits out its
    # busy timeout. Waiting for the writes in flight (a commit or so) before forking avoids
    # that. A thread that forks while it writes itself does not wait on its own lock for ever.
    for lock in list(_ALL):
        if lock._threads.acquire(timeout=_QUIESCE_SECONDS):
            _quiesced.append(lock)
        else:  # the child's writes to this file may wait out their busy timeout: say why
            log.warning(
                "forking while a write to %s has held the writer lock for %g s; the child's "
                "writes to it may wait for SQLite's busy timeout",
                lock.path.removesuffix("-writer"),
                _QUIESCE_SECONDS,
            )
    # Then everything else in SQLite (reads, connections: ``forks``), the writers held back.
    if not GATE.before_fork(_QUIESCE_SECONDS):
        log.warning(
            "forking while a thread has been inside SQLite (a read) for %g s; the child's "
            "first SQLite call may wait for ever",
            _QUIESCE_SECONDS,
        )


def _after_fork_in_parent() -> None:
    GATE.after_fork_in_parent()
    while _quiesced:
        _quiesced.pop()._threads.release()


def _after_fork_in_child() -> None:
    GATE.after_fork_in_child()
    _quiesced.clear()
    for lock in list(_ALL):
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
