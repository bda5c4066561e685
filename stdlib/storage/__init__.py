"""Storage: everything eddic keeps, behind one class per backend, chosen once from the URL.

The runtime, the relay, replay and the CLI reach storage through the names exported here; SQL
text and database drivers live only under this package (``tests/test_layering.py`` pins it).
Today the one backend is SQLite (``storage/sqlite``).
"""

from __future__ import annotations

import sqlite3

from .base import OutboxStore, Store, Stored
from .sqlite.dbfile import StorageError
from .sqlite.public_rows import DamagedRecord
from .sqlite.steps import LeaseLost, StepWrite
from .sqlite.store import Storage

#: What a backend's driver may raise past eddic's own checks (a file changed by hand, say):
#: callers that must not show a traceback (the CLI) catch these with ``StorageError``.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)


def open_store(db_url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 30_000) -> Store:
    """The backend for ``db_url``, chosen once: today ``sqlite:///...`` (any other scheme is a
    ``ValueError`` naming the supported ones). Opened by ``Store.open``."""
    return Storage(db_url, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)


__all__ = [
    "DRIVER_ERRORS",
    "DamagedRecord",
    "LeaseLost",
    "OutboxStore",
    "StepWrite",
    "Storage",
    "StorageError",
    "Store",
    "Stored",
    "open_store",
]
