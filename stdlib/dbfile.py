"""Which file a ``db_url`` names, and is it an eddic database this eddic may open?

Checked before anything touches it: a file that is not SQLite, is an SQLite database of another
program, is corrupt, is read-only or carries a newer eddic schema is refused with an error that
names it, and left byte for byte as it was: the check runs before any pragma (switching to WAL
rewrites the header).
"""

from __future__ import annotations

import os
import sqlite3

from .kernel import EddicError
from .schema import SCHEMA_VERSION

_SQLITE_HEADER = b"SQLite format 3\x00"


class StorageError(EddicError):
    """The database cannot be used: foreign, corrupt, read-only, or from a newer eddic."""


def parse_db_url(db_url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``; ``:memory:``."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        raise ValueError(
            f"unsupported db_url {db_url!r}: use sqlite:///relative.db, sqlite:////absolute.db "
            "or sqlite:///:memory:"
        )
    path = db_url[len(prefix) :]
    if not path:
        raise ValueError(f"db_url {db_url!r} names no file")
    return path


def check_file(path: str) -> None:
    """Refuse, before anything is written, a file eddic must not open for writing."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        if not os.path.isdir(folder):
            raise StorageError(f"cannot create database {path!r}: folder {folder!r} is missing")
        if not os.access(folder, os.W_OK):
            raise StorageError(f"cannot create database {path!r}: folder is read-only")
        return
    with open(path, "rb") as f:
        header = f.read(16)
    if header != _SQLITE_HEADER:
        raise StorageError(
            f"{path!r} is not an SQLite database, so not an eddic database; it was left untouched"
        )
    try:
        conn = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path!r}: {exc}") from None
    try:
        check_schema(conn, path, allow_empty=True)
    finally:
        conn.close()
    if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        raise StorageError(
            f"{path!r} is read-only (eddic needs to write it and its -wal/-shm files beside it)"
        )


def check_schema(conn: sqlite3.Connection, path: str, *, allow_empty: bool) -> int | None:
    """The eddic schema version of an open database; ``StorageError`` when it is not eddic's,
    is corrupt, or is newer than this eddic. ``None`` for an empty file when ``allow_empty``."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if not tables and allow_empty:
            return None
        if "eddic_meta" not in tables:
            held = f"it holds {', '.join(sorted(tables)[:5])}" if tables else "it is empty"
            raise StorageError(
                f"{path!r} is an SQLite database but not an eddic one ({held}); "
                "it was left untouched"
            )
        row = conn.execute("SELECT value FROM eddic_meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"{path!r} is corrupt or unreadable ({exc}); it was left untouched"
        ) from None
    version = int(row[0]) if row else None
    if version is not None and version > SCHEMA_VERSION:
        raise StorageError(
            f"{path!r} has eddic schema version {version}, newer than this eddic "
            f"understands ({SCHEMA_VERSION}); upgrade eddic. It was left untouched"
        )
    return version
