"""Which file a ``db_url`` names, and is it an eddic database this eddic may open?

Checked before anything touches it: a file that is not SQLite, is an SQLite database of another
program, is corrupt, is read-only or carries a newer (or damaged) eddic schema is refused with an
error that names it, and left byte for byte as it was: the check runs before any pragma
(switching to WAL rewrites the header).

The check is only worth something if every later connection opens the same file. So the file is
known by its identity (device and inode) from the check on; connections open it through a URI
with ``mode=rw``, which never creates a file, and compare the identity before and after (see
:func:`require_same_file`). A database moved, deleted or replaced under a running App is then
refused rather than silently re-created empty beside its old ``-wal``.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ...errors import StorageError
from .schema import SCHEMA_VERSION

_SQLITE_HEADER = b"SQLite format 3\x00"
_FORMS = (
    "use sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory: "
    "or postgresql://user:password@host:port/dbname"
)

#: A file as the kernel knows it, whatever its name: ``(st_dev, st_ino)``.
Identity = tuple[int, int]


def parse_db_url(db_url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``; ``:memory:``.

    The rest of the URL is a path and nothing else: SQLite would read ``file:...`` as a URI of
    its own (naming any file, past the checks) and ``?mode=...`` as options, so both are refused.
    """
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        from ..postgres.url import redact  # a URL of another kind may hold a password

        raise ValueError(f"unsupported db_url {redact(db_url)!r}: {_FORMS}")
    path = db_url[len(prefix) :]
    if not path:
        raise ValueError(f"db_url {db_url!r} names no file")
    if path[:5].lower() == "file:":
        raise ValueError(
            f"db_url {db_url!r} is a file: URI, which eddic does not accept: {_FORMS} "
            "(a file whose name starts with 'file:' can be named as ./file:...)"
        )
    for char, what in (("?", "a query string"), ("#", "a fragment"), ("\x00", "a NUL byte")):
        if char in path:
            raise ValueError(
                f"db_url {db_url!r} has {what}, which eddic does not accept: {_FORMS}; "
                "the database's options are App arguments"
            )
    return path


def file_uri(path: str, **params: str) -> str:
    """The SQLite URI of exactly ``path`` ('%', '?', '#' and the like quoted), with ``params``."""
    uri = Path(os.path.abspath(path)).as_uri()
    return f"{uri}?{urlencode(params)}" if params else uri


def identity(st: os.stat_result) -> Identity:
    return st.st_dev, st.st_ino


def require_same_file(path: str, expected: Identity) -> None:
    """``StorageError`` unless ``path`` still names the file that was checked."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise StorageError(
            f"{path!r} was moved or deleted while eddic had it open; it is not re-created "
            "(an empty file there would lose the database's -wal): put it back, or restart "
            "eddic on the right db_url"
        ) from None
    except OSError as exc:
        raise StorageError(f"cannot reach {path!r}: {exc.strerror}") from None
    if identity(st) != expected:
        raise StorageError(
            f"{path!r} was replaced by another file while eddic had it open; the new file was "
            "left untouched: restart eddic to check and open it"
        )


def check_file(path: str) -> Identity | None:
    """Refuse, before anything is written, a file eddic must not open for writing. The identity
    of the file checked, or None when there is none yet (:func:`create_file` makes it)."""
    folder = os.path.dirname(os.path.abspath(path))
    st = _plain_file(path)
    if st is None or st.st_size == 0:
        _refuse_an_orphaned_wal(path)
        if not os.path.isdir(folder):
            raise StorageError(f"cannot create database {path!r}: folder {folder!r} is missing")
        if st is None:
            if not os.access(folder, os.W_OK):
                raise StorageError(f"cannot create database {path!r}: folder is read-only")
            return None
        _refuse_read_only(path, folder)
        return identity(st)
    _require_readable(path)
    with open(path, "rb") as f:
        header = f.read(16)
    if header != _SQLITE_HEADER:
        raise StorageError(
            f"{path!r} is not an SQLite database, so not an eddic database; it was left untouched"
        )
    conn = open_read_only(path)
    try:
        check_schema(conn, path, allow_empty=True)
    finally:
        conn.close()
    _refuse_read_only(path, folder)
    require_same_file(path, identity(st))  # the file read is the file stat'ed
    return identity(st)


def create_file(path: str) -> Identity:
    """Create the empty file a new database starts as; its identity. The one place a database
    file comes into being: connections open with ``mode=rw``, which never creates one."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        # Another process created it since check_file looked: check what is there now.
        found = check_file(path)
        if found is None:
            raise StorageError(f"{path!r} appeared and vanished while eddic created it") from None
        return found
    except OSError as exc:
        raise StorageError(f"cannot create database {path!r}: {exc.strerror}") from None
    try:
        return identity(os.fstat(fd))
    finally:
        os.close(fd)


def open_read_only(path: str) -> sqlite3.Connection:
    """A connection that cannot write, on a healthy database even where this user cannot
    write the folder (or it is a read-only mount).

    A reader of a WAL database needs its ``-shm`` file, which SQLite creates beside it when
    missing. Where it cannot, ``immutable=1`` reads the database file alone, which is exact
    only when no ``-wal`` holds writes not yet copied into it; when one does, say so.
    """
    if _plain_file(path) is None:
        raise StorageError(f"no database at {path!r}")
    _require_readable(path)
    opened = _probed(path, mode="ro")
    if isinstance(opened, sqlite3.Connection):
        return opened
    if not _shm_unavailable(opened):
        raise _unreadable(path, opened)
    wal = f"{path}-wal"
    if _size(wal) > 0:
        raise StorageError(
            f"cannot read {path!r}: {_why_no_shm(path)}, and {wal!r} holds writes not yet "
            "copied into the database, which SQLite reads only through that -shm file. Read it "
            "as a user who can write the folder, or have its owner open and close it with eddic "
            "(which checkpoints it)"
        )
    opened = _probed(path, immutable="1")
    if isinstance(opened, sqlite3.Connection):
        return opened
    raise _unreadable(path, opened)


def check_schema(conn: sqlite3.Connection, path: str, *, allow_empty: bool) -> int | None:
    """The eddic schema version of an open database; ``StorageError`` when it is not eddic's,
    is corrupt, or its version is damaged or newer than this eddic. ``None`` for an empty file
    when ``allow_empty``."""
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
        raise _unreadable(path, exc) from None
    version = _version(path, row)
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path!r} has eddic schema version {version}, newer than this eddic "
            f"understands ({SCHEMA_VERSION}); upgrade eddic. It was left untouched"
        )
    return version


def _version(path: str, row: tuple[Any, ...] | None) -> int:
    # eddic writes the version as decimal text in the same transaction that creates the schema,
    # so anything else (no row, NULL, a blob, not a whole number >= 1) is damage, not a version.
    if row is None:
        raise StorageError(
            f"{path!r} has no eddic schema version (eddic_meta lacks its schema_version row): "
            "it is damaged, and was left untouched"
        )
    value = row[0]
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and int(value) >= 1):
        raise StorageError(
            f"{path!r} has a damaged eddic schema version ({value!r} in eddic_meta, not a "
            "whole number from 1 up); it was left untouched"
        )
    return int(value)


def _plain_file(path: str) -> os.stat_result | None:
    """``os.stat(path)``, None when nothing is there; a folder, fifo or device is refused (opening
    a fifo to read its header would block)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot reach {path!r}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise StorageError(
            f"{path!r} is not a plain file, so not a database; it was left untouched"
        )
    return st


def _require_readable(path: str) -> None:
    if not os.access(path, os.R_OK):
        raise StorageError(f"cannot read {path!r}: permission denied for this user")


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _refuse_an_orphaned_wal(path: str) -> None:
    # SQLite opening an empty database file deletes the -wal beside it: the last writes of a
    # database that was moved or deleted without its -wal would be lost.
    wal = f"{path}-wal"
    if _size(wal) > 0:
        state = "empty" if os.path.exists(path) else "missing"
        raise StorageError(
            f"{path!r} is {state}, but {wal!r} beside it holds writes not yet copied into a "
            "database: the database was moved or deleted without its -wal. Put the database "
            "back, or remove the -wal if those writes are not wanted; nothing was changed"
        )


def _refuse_read_only(path: str, folder: str) -> None:
    blocked = [
        what
        for what, name in (("the file", path), (f"its folder {folder!r}", folder))
        if not os.access(name, os.W_OK)
    ]
    if blocked:
        raise StorageError(
            f"{path!r} is read-only for this user ({' and '.join(blocked)}, or a read-only "
            "mount): eddic writes the database and its -wal, -shm and -writer files beside it. "
            "It was left untouched"
        )


def _probed(path: str, **params: str) -> sqlite3.Connection | sqlite3.Error:
    """A connection on ``file_uri(path, **params)`` that has read the schema (the first read is
    when SQLite opens the -wal and -shm), or the error that stopped it."""
    try:
        conn = sqlite3.connect(
            file_uri(path, **params), uri=True, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        return exc
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        conn.close()
        return exc
    return conn


def _shm_unavailable(exc: sqlite3.Error) -> bool:
    """Did the read fail because the -shm (or -wal) beside the database cannot be created or
    opened, rather than because of the database itself?"""
    name = getattr(exc, "sqlite_errorname", "")  # Python >= 3.11
    if name:
        return bool(name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")))
    text = str(exc)
    return text in ("unable to open database file", "attempt to write a readonly database")


def _why_no_shm(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK):
        return (
            f"its folder {folder!r} is not writable for this user (or is a read-only mount), "
            "so SQLite cannot create the -shm file a reader needs there"
        )
    return f"its -shm file {path + '-shm'!r} cannot be opened by this user"


def _unreadable(path: str, exc: sqlite3.Error) -> StorageError:
    return StorageError(f"{path!r} is corrupt or unreadable ({exc}); it was left untouched")
