"""Wake-ups across processes for one SQLite file: a doorbell of Unix datagram sockets.

SQLite has no notifications. A serving process that waits for work binds a datagram socket in
a folder beside the database (``<file>.wake/<pid>-<token>``); a commit that creates work for
others (a due time, a delivered event, an instance handed back, an outbox row) sends one byte
to every socket in that folder. Waiting costs nothing (the thread sleeps in ``select``), a ring
costs a ``listdir`` and a ``sendto`` per waiting process, and a socket left by a killed process
is removed by the first ring that finds nobody there. Datagrams are never queued for long: a
full socket buffer means a wake-up is pending already, so a ring that cannot be delivered is
simply dropped.

Where a socket cannot be made (no ``AF_UNIX``, a path longer than the 107 bytes a socket
address allows, a folder that cannot be written), ``Doorbell.listen`` returns None and the
store falls back to reading ``PRAGMA data_version`` every few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import threading

_MAX_ADDRESS = 107  # sun_path holds 108 bytes, the last one a NUL


class Doorbell:
    def __init__(self, db_path: str) -> None:
        self.folder = db_path + ".wake"
        self._sock: socket.socket | None = None
        self._address = ""
        self._lock = threading.Lock()
        self._failed = False

    def listen(self) -> socket.socket | None:
        """This process's socket, made on first use; None where none can be made."""
        with self._lock:
            if self._sock is not None or self._failed:
                return self._sock
            address = os.path.join(self.folder, f"{os.getpid()}-{secrets.token_hex(4)}")
            if not hasattr(socket, "AF_UNIX") or len(os.fsencode(address)) > _MAX_ADDRESS:
                self._failed = True
                return None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                os.makedirs(self.folder, exist_ok=True)
                sock.bind(address)
                sock.setblocking(False)
            except OSError:
                sock.close()
                self._failed = True
                return None
            self._sock, self._address = sock, address
            return sock

    def wait(self, timeout: float) -> bool:
        """Until a ring (or ``ring_self``): True; False after ``timeout``. Needs ``listen``."""
        sock = self._sock
        assert sock is not None
        ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while sock.recv(16):  # every ring so far is one wake-up
                pass
        return True

    def ring_self(self) -> None:
        sock = self._sock
        if sock is not None:
            self._send(sock, self._address)

    def ring(self) -> None:
        """Wake every process waiting on this database (this one included)."""
        try:
            names = os.listdir(self.folder)
        except OSError:
            return  # nobody has waited here yet
        sender = self._sock or _sender()
        for name in names:
            self._send(sender, os.path.join(self.folder, name))

    def _send(self, sender: socket.socket, address: str) -> None:
        try:
            sender.sendto(b"!", address)
        except (BlockingIOError, InterruptedError):
            pass  # its buffer is full: it has wake-ups waiting already
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(OSError):  # its process is gone
                os.unlink(address)
        except OSError:
            pass  # a wake-up is a hint: polling remains the safety net

    def after_fork(self) -> None:
        """In a forked child: the parent's socket is the parent's (its datagrams are not the
        child's to take, nor its file to remove); the child makes its own when it waits."""
        self._sock, self._address, self._failed = None, "", False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()
                with contextlib.suppress(OSError):
                    os.unlink(self._address)
                with contextlib.suppress(OSError):  # only when empty: see liveness.close
                    os.rmdir(self.folder)


_SENDER: socket.socket | None = None


def _sender() -> socket.socket:
    """An unbound datagram socket for rings from a process that does not wait itself."""
    global _SENDER
    if _SENDER is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        _SENDER = sock
    return _SENDER
