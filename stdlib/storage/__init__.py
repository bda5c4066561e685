"""Storage: everything eddic keeps, behind one class per backend, chosen once from the URL.

The runtime, the relay, replay and the CLI reach storage through the names exported here; SQL
text and database drivers live only under this package (``tests/test_layering.py`` pins it).
Two backends: SQLite (``storage/sqlite``) and PostgreSQL (``storage/postgres``, imported only
for a ``postgresql://`` URL).
"""

from __future__ import annotations

import sqlite3
import sys

from ..errors import DamagedRecord, StorageError
from .base import OutboxStore, Store, Stored
from .sqlite.public_rows import HISTORY_FIELDS, check_replayable, decoded_history, history_record
from .sqlite.store import Storage
from .step import LeaseLost, StepWrite

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def driver_errors() -> tuple[type[Exception], ...]:
    """What a backend's driver may raise past eddic's own checks (a file changed by hand, a
    server gone): callers that must not show a traceback (the CLI) catch these with
    ``StorageError``. psycopg's errors are among them once it is loaded (never imported here)."""
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        errors += (psycopg.Error,)
    return errors


def shown_url(db_url: str) -> str:
    """``db_url`` as it may be printed or logged: a server URL's password replaced by ``***``."""
    from .postgres.url import redact  # plain urllib: no driver is imported

    return redact(db_url)


def open_store(db_url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 30_000) -> Store:
    """The backend for ``db_url``, chosen once: ``sqlite:///...`` or ``postgresql://...``
    (also ``postgres://``; the ``eddic[postgres]`` extra). Any other scheme is a ``ValueError``
    naming the supported ones. ``synchronous`` and ``busy_timeout_ms`` are SQLite's."""
    if isinstance(db_url, str) and db_url.lower().startswith(_POSTGRES_SCHEMES):
        try:
            from .postgres.store import PostgresStorage
        except ImportError as exc:  # psycopg missing
            raise StorageError(
                f"{db_url.split('://')[0]}:// URLs need the PostgreSQL extra: "
                f"pip install 'eddic[postgres]' ({exc})"
            ) from None
        return PostgresStorage(db_url)
    return Storage(db_url, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)


__all__ = [
    "HISTORY_FIELDS",
    "DamagedRecord",
    "LeaseLost",
    "OutboxStore",
    "StepWrite",
    "Storage",
    "StorageError",
    "Store",
    "Stored",
    "check_replayable",
    "decoded_history",
    "driver_errors",
    "history_record",
    "open_store",
    "shown_url",
]
