"""Which workers are alive, as the OS knows it: one ``flock``-ed file per worker beside the file.

A worker that takes leases first takes an exclusive ``flock`` on ``<file>.alive/<worker id>``
and holds it (the file descriptor stays open) for as long as its process lives. The kernel
releases the lock the moment the process dies, however it dies (``SIGKILL`` included), so any
other process can tell a dead worker from a live one by trying the lock: that is how a dead
worker's instances are taken over in about a second instead of when their 300 s leases run
out, while a slow but live worker keeps its leases. Only the workers of one machine share the
file's folder, which is SQLite's case: one machine.

A worker whose file is missing (it never took a lease, or ran an eddic without this) is never
taken for dead. A forked child gets a worker id of its own and closes its copy of the parent's
descriptors, which would otherwise keep the parent's lock alive after the parent died.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from urllib.parse import quote, unquote


class Liveness:
    def __init__(self, db_path: str) -> None:
        self.folder = db_path + ".alive"
        self._held: dict[str, int] = {}  # worker id -> the open, locked descriptor
        self._lock = threading.Lock()

    def hold(self, owner: str) -> None:
        """Lock ``owner``'s file for the life of this process (idempotent). A folder that
        cannot be written leaves the worker without one: its leases then only expire."""
        if owner in self._held:
            return
        with self._lock:
            if owner in self._held:
                return
            try:
                fd = _create_locked(self.folder, quote(owner, safe=""))
            except OSError:
                return
            self._held[owner] = fd

    def dead(self) -> list[str]:
        """The workers whose file is there but unlocked: their processes have died."""
        try:
            names = os.listdir(self.folder)
        except OSError:
            return []
        gone = []
        for name in names:
            if name.startswith("."):
                continue  # a worker's file being made (``_create_locked``): not a worker yet
            owner = unquote(name)
            if owner in self._held:
                continue
            try:
                fd = os.open(os.path.join(self.folder, name), os.O_RDWR)
            except OSError:
                continue  # removed meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: alive
            else:
                gone.append(owner)
            finally:
                os.close(fd)  # closing also lets go of the lock just taken
        return gone

    def forget(self, owner: str) -> None:
        """Remove a dead worker's file once its leases have been taken over."""
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, quote(owner, safe="")))

    def after_fork(self) -> None:
        for fd in self._held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._held = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """This process's workers stop: their files go (no one must take them over)."""
        with self._lock:
            held, self._held = self._held, {}
        for owner, fd in held.items():
            self.forget(owner)
            with contextlib.suppress(OSError):
                os.close(fd)
        if held:
            # Only an empty folder goes: nothing is left beside the database by a process that
            # has stopped. (Another process that made it meanwhile just re-makes it.)
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)


def _create_locked(folder: str, name: str) -> int:
    """A descriptor of ``folder/name``, a new file that appears already locked: it is made and
    locked under a hidden name, then renamed. A look for dead workers (``dead``) between its
    creation and its lock would otherwise find it unlocked and take a live worker for dead.
    (A process that stops removes the folder only when it is empty: once the hidden file is
    in it, the folder stays.)"""
    hidden = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}")
    fd = _open_creating(folder, hidden)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file no one else knows
        os.rename(hidden, os.path.join(folder, name))
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(hidden)
        raise
    return fd


def _open_creating(folder: str, path: str) -> int:
    """``path`` opened (made if missing) in ``folder`` (made if missing), tried again once if
    the folder was removed in between by a process that stopped."""
    for _ in range(2):
        os.makedirs(folder, exist_ok=True)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
