"""A step's statements sent through libpq itself (``psycopg.pq``), one pipeline per step.

Why not psycopg's cursors, which the other units use: a step is a handful of short statements
whose texts repeat, and psycopg's per-statement Python (converting the query, dumping each
value by type, its prepared-statement cache, a generator per result, the pipeline object's
queues) was most of the client's CPU per step: 0.34 ms of storage CPU per activity against the
0.27-0.31 ms that a raw commit takes on the test box (``tests/benchmarks/pg_storage_cpu.py``).
Here each text is turned once into libpq's ``$n`` form and prepared on each connection the
first time it is sent there (in the same pipeline: no extra round trip); values are written as
text by :func:`encode`, which knows the types a step holds and refuses any other; the pipeline
is driven by a small loop that waits on the socket with ``poll`` (so other threads run while
this one waits, as in psycopg's own wait).

The connection stays psycopg's: it is borrowed from the pool in its idle state and handed back
in its idle state (or in a failed transaction, which the pool rolls back, or closed). Our
prepared statements are named ``eddic_N``, never psycopg's ``_pg3_N``. A statement that fails
aborts the pipeline: the statements queued after it are skipped by the server and their results
come back ``PIPELINE_ABORTED``; :meth:`Pipeline.run` reads every result up to the ``Sync`` and
raises the first error as psycopg would (``psycopg.errors.error_from_result``: the same classes,
``sqlstate`` and ``diag``). Anything else that goes wrong while the pipeline is in flight (a lost
connection, an interrupt) leaves the connection's state unknown, so it is closed; a lost one
surfaces as psycopg's ``OperationalError``, which ``Units`` retries.
"""

from __future__ import annotations

import select
import threading
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq

_SYNC = pq.ExecStatus.PIPELINE_SYNC
_FATAL = pq.ExecStatus.FATAL_ERROR
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_SQLSTATE = pq.DiagnosticField.SQLSTATE
# invalid_sql_statement_name, duplicate_prepared_statement: our count of what is prepared here
# is wrong (see Pipeline.run)
_STALE_STATEMENTS = (b"26000", b"42P05")
_OURS = r"SELECT name FROM pg_prepared_statements WHERE name LIKE 'eddic\_%'"


def encode(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format; its type is the statement's to infer (each
    one is a column or compared with one). ``TypeError`` for a type a step does not hold."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:  # a step's commonest values after strings (which run() encodes in line)
        return repr(value).encode()
    if kind is datetime:
        return value.isoformat().encode()  # type: ignore[no-any-return]
    # isinstance, not type(): freezegun's FakeDatetime, IntEnum and str enums are written as
    # their base types (int.__repr__, not an enum's repr); bool before int, its base
    if isinstance(value, str):
        return str.encode(value)
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return int.__repr__(value).encode()
    if isinstance(value, float):
        return float.__repr__(value).encode()
    if isinstance(value, datetime):
        return value.isoformat().encode()
    if isinstance(value, (list, tuple)):
        return ("{" + ",".join(_element(v) for v in value) + "}").encode()
    raise TypeError(f"a step's statement cannot carry a {kind.__name__} ({value!r:.80})")


def _element(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"an array in a step holds ints or strings, not {type(value).__name__}")


# -- statement names -----------------------------------------------------------------------

_names: dict[str, tuple[bytes, bytes]] = {}  # psycopg-style text -> (name, libpq text)
_names_lock = threading.Lock()


def _named(sql: str) -> tuple[bytes, bytes]:
    found = _names.get(sql)
    if found is None:
        parts = sql.split("%s")
        text = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
        with _names_lock:
            found = _names.setdefault(sql, (f"eddic_{len(_names)}".encode(), text.encode()))
    return found


class _Wire:
    """What we keep per connection: the statements prepared there, and a poll on its socket."""

    __slots__ = ("poll", "prepared")

    def __init__(self, pgconn: pq.abc.PGconn) -> None:
        self.prepared: set[bytes] = set()
        self.poll = select.poll()
        self.poll.register(pgconn.socket, select.POLLIN)


_wires: weakref.WeakKeyDictionary[pq.abc.PGconn, _Wire] = weakref.WeakKeyDictionary()


def _wire_of(pgconn: pq.abc.PGconn) -> _Wire:
    wire = _wires.get(pgconn)
    if wire is None:
        wire = _wires[pgconn] = _Wire(pgconn)
    return wire


# -- a pipeline ----------------------------------------------------------------------------


class Result:
    """One statement's result, once :meth:`Pipeline.run` has returned."""

    __slots__ = ("_res",)

    def __init__(self) -> None:
        self._res: pq.abc.PGresult | None = None

    def value(self, column: int = 0) -> bytes | None:
        """The first row's ``column`` (text), or None when the value is NULL or no row came."""
        res = self._res
        if res is None or res.ntuples == 0:
            return None
        return res.get_value(0, column)

    @property
    def rowcount(self) -> int:
        """Rows returned (a SELECT) or changed (INSERT, UPDATE, DELETE)."""
        res = self._res
        return 0 if res is None else (res.command_tuples or 0)


class Pipeline:
    """Statements queued by a step's writer (``execute``, ``executemany``, with psycopg's
    ``%s`` placeholders), then sent after ``BEGIN`` as one pipeline by :meth:`run`."""

    __slots__ = ("_queued",)

    def __init__(self) -> None:
        self._queued: list[tuple[str, Sequence[Any], Result | None]] = []

    def execute(self, sql: str, params: Sequence[Any]) -> Result:
        result = Result()
        self._queued.append((sql, params, result))
        return result

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        queued = self._queued
        for params in rows:
            queued.append((sql, params, None))

    def run(self, conn: psycopg.Connection[Any]) -> None:
        """``BEGIN``, then the statements, in one round trip, the transaction left open; the
        first statement's error raised (the transaction is then aborted).

        What we believe prepared on this connection may be wrong: psycopg sends ``DEALLOCATE
        ALL`` after any rollback or DDL it runs while it holds prepared statements of its own,
        and a pooler may hand us another server connection. Then, once, the transaction (which
        did nothing) is rolled back, the server asked which of ours it holds, and the pipeline
        sent again."""
        pgconn = conn.pgconn
        wire = _wire_of(pgconn)
        failed = self._send(conn, pgconn, wire)
        if failed is not None and failed.error_field(_SQLSTATE) in _STALE_STATEMENTS:
            _simple(conn, b"ROLLBACK")
            held = conn.execute(_OURS).fetchall()
            wire.prepared = {name.encode() for (name,) in held}
            failed = self._send(conn, pgconn, wire)
        if failed is not None:
            raise psycopg.errors.error_from_result(failed, encoding=conn.info.encoding)

    def _send(
        self, conn: psycopg.Connection[Any], pgconn: pq.abc.PGconn, wire: _Wire
    ) -> pq.abc.PGresult | None:
        """One try of :meth:`run`: the first error's result, or None."""
        prepared = wire.prepared
        failed: pq.abc.PGresult | None = None
        try:
            pgconn.enter_pipeline_mode()
            pgconn.send_query_params(b"BEGIN", None)
            # What each result in order is for: a prepare (its name), or a statement's handle
            expected: list[bytes | Result | None] = [None]  # BEGIN's
            preparing: set[bytes] = set()  # in this pipeline: prepared once its result is in
            for sql, params, handle in self._queued:
                name, text = _named(sql)
                if name not in prepared and name not in preparing:
                    pgconn.send_prepare(name, text)
                    preparing.add(name)
                    expected.append(name)
                pgconn.send_query_prepared(
                    name,
                    [  # the common types in line: a call per value is a third of this loop
                        None if v is None else v.encode() if type(v) is str else encode(v)
                        for v in params
                    ],
                )
                expected.append(handle)
            pgconn.pipeline_sync()
            if pgconn.flush():
                _flush(pgconn, wire)
            for what in expected:
                res = _next(pgconn, wire)
                while _next(pgconn, wire) is not None:  # each query's results end with NULL
                    pass
                assert res is not None
                status = res.status
                if status == _FATAL:
                    failed = failed or res
                elif type(what) is bytes:
                    if status == _COMMAND_OK:
                        prepared.add(what)
                elif isinstance(what, Result) and status in (_TUPLES_OK, _COMMAND_OK):
                    what._res = res
            sync = _next(pgconn, wire)
            assert sync is not None and sync.status == _SYNC, sync
            pgconn.exit_pipeline_mode()
        except BaseException:
            conn.close()  # in flight, broken or interrupted: its state is unknown
            raise
        return failed


def commit(conn: psycopg.Connection[Any]) -> None:
    """``COMMIT`` the transaction open on ``conn`` (a step's, or any unit's: one statement with
    no values, so psycopg's machinery buys nothing here); its error raised as psycopg would.
    Lost on the way, the connection is closed and psycopg's ``OperationalError`` raised."""
    _simple(conn, b"COMMIT")


def rollback(conn: psycopg.Connection[Any]) -> None:
    """``ROLLBACK`` whatever transaction is open on ``conn``: not psycopg's ``rollback()``,
    which would also deallocate every prepared statement of the connection, ours included."""
    _simple(conn, b"ROLLBACK")


def _simple(conn: psycopg.Connection[Any], command: bytes) -> None:
    """One statement without values, on the simple protocol; its error raised as psycopg's."""
    pgconn = conn.pgconn
    wire = _wire_of(pgconn)
    failed = None
    try:
        pgconn.send_query(command)
        if pgconn.flush():
            _flush(pgconn, wire)
        while (res := _next(pgconn, wire)) is not None:
            if res.status == _FATAL:
                failed = failed or res
    except BaseException:
        conn.close()
        raise
    if failed is not None:
        raise psycopg.errors.error_from_result(failed, encoding=conn.info.encoding)


def _flush(pgconn: pq.abc.PGconn, wire: _Wire) -> None:
    """Send what libpq could not yet (a large step): wait until the socket takes more, reading
    what the server sends meanwhile so that neither side waits on the other."""
    fd = pgconn.socket
    wire.poll.modify(fd, select.POLLIN | select.POLLOUT)
    try:
        while True:
            for _, events in wire.poll.poll():
                if events & select.POLLIN:
                    pgconn.consume_input()
            if not pgconn.flush():
                return
    finally:
        wire.poll.modify(fd, select.POLLIN)


def _next(pgconn: pq.abc.PGconn, wire: _Wire) -> pq.abc.PGresult | None:
    """The next result, waiting for it on the socket (without the GIL) while it is not in."""
    while pgconn.is_busy():
        wire.poll.poll()
        pgconn.consume_input()
    return pgconn.get_result()
