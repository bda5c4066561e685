"""eddic's own SQL with eddic taken out: the ceiling of any Python code that writes the same rows.

``throughput.py`` compares eddic with the raw single-row commit rate. This module answers the
next question: how much of the gap is eddic's Python, and how much is the SQL the design asks
for (one transaction per start and per step, each holding the history records, the instance's
row and its indexes)? It records, with their parameters, the statements a real eddic run sends
to SQLite, then replays them through plain ``sqlite3`` on a file warmed up the same way: the
same transactions and rows, but no workflow, kernel, pydantic or locking code in between.

Recording wraps the benchmark process's connections only (``Connection.execute`` and the kept
step cursor); nothing under ``stdlib/`` is edited.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from benchlib import connect_like_eddic

from eddic import App
from eddic.storage.sqlite.transactions import Connection

# one statement: (sql, parameters, executemany?)
Statement = tuple[str, Any, bool]


class _RecordingCursor:
    """Stands in for a connection's kept step cursor and writes down what goes through it."""

    def __init__(self, cursor: sqlite3.Cursor, log: list[Statement]) -> None:
        self._cursor, self._log = cursor, log

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        self._log.append((sql, parameters, False))
        return self._cursor.execute(sql, parameters)

    def executemany(self, sql: str, seq: Iterable[Any]) -> sqlite3.Cursor:
        rows = list(seq)
        self._log.append((sql, rows, True))
        return self._cursor.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def record(app: App, run_one: Callable[[int], None], numbers: range) -> list[list[Statement]]:
    """The statements each ``run_one(i)`` sent to SQLite, one list per ``i``, in order."""
    log: list[Statement] = []
    conn = app.storage._db().conn  # this thread's connection (benchmark-only peek)
    assert isinstance(conn, Connection)
    kept = conn.writer
    conn.writer = _RecordingCursor(kept, log)  # type: ignore[assignment]
    plain_execute = Connection.execute

    def execute(self: sqlite3.Connection, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        log.append((sql, parameters, False))
        return plain_execute(self, sql, parameters)

    Connection.execute = execute  # type: ignore[method-assign,assignment]
    per_item: list[list[Statement]] = []
    try:
        for i in numbers:
            run_one(i)
            per_item.append(log[:])
            log.clear()
    finally:
        Connection.execute = plain_execute  # type: ignore[method-assign]
        conn.writer = kept
    return per_item


class Replayer:
    """Replays recorded statements, item by item, on one connection with eddic's pragmas."""

    def __init__(self, path: str, synchronous: str, per_item: list[list[Statement]]) -> None:
        self.conn = connect_like_eddic(path, synchronous)
        self.cursor = self.conn.cursor()
        self.per_item = per_item
        self.done = 0

    def run(self, count: int) -> None:
        cursor = self.cursor
        for statements in self.per_item[self.done : self.done + count]:
            for sql, parameters, many in statements:
                if many:
                    cursor.executemany(sql, parameters)
                else:
                    cursor.execute(sql, parameters).fetchall()  # a read reads all its rows
        self.done += count

    def close(self) -> None:
        self.conn.close()
