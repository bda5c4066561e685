"""Connections and the two kinds of transaction ``Storage`` opens on them.

A write transaction holds the writer lock (``writers.WriterLock``; for ``:memory:``, the lock
of the one shared connection) from ``BEGIN IMMEDIATE`` to ``COMMIT``; a read transaction is a
deferred ``BEGIN`` ... ``COMMIT``. Both are small classes rather than ``@contextmanager``
generators: every step commits through one, and a generator-based context manager costs about
as many instructions as the ``BEGIN IMMEDIATE`` and ``COMMIT`` themselves.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

import sqlite_utils

from .forks import GATE

__all__ = ["Connection", "ReadTransaction", "WriteTransaction", "begin_immediate", "writer_cursor"]

T = TypeVar("T")


class Connection(sqlite3.Connection):
    """A connection with one cursor kept for eddic's step writes: ``Connection.execute`` makes
    a new cursor per statement, which costs about as much as the statement's own work."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer = self.cursor()


def writer_cursor(db: sqlite_utils.Database) -> sqlite3.Cursor:
    conn = db.conn
    return conn.writer if isinstance(conn, Connection) else conn.cursor()


def begin_immediate(db: sqlite_utils.Database) -> None:
    try:
        writer_cursor(db).execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        _begin_again(db, exc)


def _begin_again(db: sqlite_utils.Database, exc: sqlite3.OperationalError) -> None:
    # The busy timeout absorbs most contention; this covers what it gives up on.
    delay = 0.005
    for attempt in range(1, 12):
        text = str(exc).lower()
        if "locked" not in text and "busy" not in text:
            raise exc
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 1.0)
        try:
            writer_cursor(db).execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as again:
            if attempt == 11:
                raise
            exc = again


class WriteTransaction:
    """``with WriteTransaction(lock, database) as db``: ``BEGIN IMMEDIATE`` ... ``COMMIT`` on
    ``database()``, rolled back on error; ``lock`` is held throughout and given back always.

    ``run(fn)`` is ``with self as db: return fn(db)`` written out in one frame, for the group
    commit's steps: the with-protocol's two calls cost more than their own work.
    """

    __slots__ = ("_database", "_db", "_lock")

    def __init__(
        self, lock: AbstractContextManager[Any], database: Callable[[], sqlite_utils.Database]
    ) -> None:
        self._lock = lock
        self._database = database

    def __enter__(self) -> sqlite_utils.Database:
        self._lock.__enter__()
        try:
            db = self._db = self._database()
            begin_immediate(db)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return db

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._db.conn
        try:
            if kind is not None:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                return
            try:
                writer_cursor(self._db).execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (disk full, I/O) leaves it open
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._lock.__exit__(None, None, None)

    def run(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """``fn(db)`` in this write transaction; its result once committed."""
        lock = self._lock
        lock.__enter__()
        try:
            db = self._db = self._database()
            conn = db.conn
            cur = conn.writer if isinstance(conn, Connection) else conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                _begin_again(db, exc)
            try:
                result = fn(db)
                cur.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # fn raised, or COMMIT failed (disk full, I/O)
                    conn.execute("ROLLBACK")
                raise
            return result
        finally:
            lock.__exit__(None, None, None)


class ReadTransaction:
    """``with ReadTransaction(lock, database) as db``: a deferred ``BEGIN`` ... ``COMMIT`` on
    ``database()``, holding ``lock`` (when not None) throughout, inside the fork gate (a fork
    waits for it to end: ``forks``)."""

    __slots__ = ("_database", "_db", "_lock")

    def __init__(
        self,
        lock: threading.RLock | None,
        database: Callable[[], sqlite_utils.Database],
    ) -> None:
        self._lock = lock
        self._database = database

    def __enter__(self) -> sqlite_utils.Database:
        GATE.__enter__()  # before the lock, as everywhere: a fork holds the gate, never the lock
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            db = self._db = self._database()
            db.conn.execute("BEGIN")
        except BaseException:
            if lock is not None:
                lock.release()
            GATE.__exit__(None, None, None)
            raise
        return db

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._db.conn.execute("COMMIT")
        finally:
            if self._lock is not None:
                self._lock.release()
            GATE.__exit__(None, None, None)
