"""A step's statements through libpq itself (``eddic.storage.postgres.wire``), on a real server:
values written as text, statements prepared once per connection and again when psycopg has
deallocated them, a step larger than the socket's buffers, errors raised as psycopg raises them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import freezegun
import psycopg
import pytest
from test_pipelined_steps import _row  # an instance row leased to w1

from eddic.storage import StepWrite
from eddic.storage.postgres import wire
from eddic.storage.postgres.store import PostgresStorage

T0 = datetime(2030, 1, 1, 12, 30, 45, 123456, tzinfo=timezone.utc)


@pytest.fixture
def conn(postgres_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_db_url, autocommit=True) as c:
        yield c


def _hist(iid: str, pos: int, value: str | None = None) -> tuple[Any, ...]:
    return (iid, pos, pos, "resolved", None, None, None, T0, None, value, None)


def _one(conn: psycopg.Connection[Any], sql: str, params: list[Any]) -> bytes | None:
    """``sql`` sent through a pipeline on ``conn``, committed; its first value, as text."""
    pipeline = wire.Pipeline()
    result = pipeline.execute(sql, params)
    pipeline.run(conn)
    wire.commit(conn)
    return result.value()


@pytest.mark.parametrize(
    ("value", "cast", "shown"),
    [
        ("plain", "text", b"plain"),
        (
            "ünïcode \u202e and 'quotes' \"too\"",
            "text",
            "ünïcode \u202e and 'quotes' \"too\"".encode(),
        ),
        (42, "bigint", b"42"),
        (-7, "int", b"-7"),
        (2.5, "float8", b"2.5"),
        (True, "boolean", b"true"),
        (False, "boolean", b"false"),
        (T0, "timestamptz", b"2030-01-01 12:30:45.123456+00"),
        (
            T0.astimezone(timezone(timedelta(hours=-5))),
            "timestamptz",
            b"2030-01-01 12:30:45.123456+00",
        ),
        ([1, 2, 3], "int[]", b"{1,2,3}"),
        ([], "int[]", b"{}"),
        (["a", 'b"q', "c\\d", "e,f", "{g}"], "text[]", b'{a,"b\\"q","c\\\\d","e,f","{g}"}'),
        (None, "text", None),
    ],
)
def test_values_reach_the_server_as_they_are(
    conn: psycopg.Connection[Any], value: Any, cast: str, shown: bytes | None
) -> None:
    assert _one(conn, f"SELECT (%s::{cast})::text", [value]) == shown


class Status(str, enum.Enum):
    DONE = "done"


class Level(enum.IntEnum):
    HIGH = 3


def test_subclasses_of_the_types_are_written_as_their_base(
    conn: psycopg.Connection[Any],
) -> None:
    """freezegun's FakeDatetime, str and int enums: as the plain values (never their repr)."""
    with freezegun.freeze_time(T0):
        now = datetime.now(timezone.utc)
        assert type(now).__name__ == "FakeDatetime"  # a subclass, not datetime itself
        assert (
            _one(conn, "SELECT (%s::timestamptz)::text", [now]) == b"2030-01-01 12:30:45.123456+00"
        )
    assert _one(conn, "SELECT %s::text", [Status.DONE]) == b"done"
    assert _one(conn, "SELECT (%s::int)::text", [Level.HIGH]) == b"3"
    assert _one(conn, "SELECT (%s::int[])::text", [[Level.HIGH, 4]]) == b"{3,4}"


def test_a_value_of_another_type_is_refused_before_anything_is_sent(
    conn: psycopg.Connection[Any],
) -> None:
    with pytest.raises(TypeError, match="cannot carry a dict"):
        _one(conn, "SELECT %s::text", [{"a": 1}])
    with pytest.raises(TypeError, match="ints or strings, not float"):
        wire.encode([1.5])
    # the connection was closed (its state unknown), never left half-sent
    assert conn.closed


def test_a_statement_is_prepared_once_per_connection(conn: psycopg.Connection[Any]) -> None:
    sql = "SELECT %s::int + 1 AS test_prepared_once"
    for n in range(3):
        assert _one(conn, sql, [n]) == str(n + 1).encode()
    row = conn.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
        ["%test_prepared_once%"],
    ).fetchone()
    assert row == (1,)


def test_statements_deallocated_by_psycopg_are_prepared_again(store: PostgresStorage) -> None:
    """psycopg sends DEALLOCATE ALL after a rollback or DDL of its own while it holds prepared
    statements: the next step must still be written, once."""
    store.create(_row("i1"), StepWrite("i1", "w1", 1, history=[_hist("i1", 1)]), T0)
    store.commit_step(StepWrite("i1", "w1", 1, history=[_hist("i1", 2)]), T0)
    with store.units.pool().connection() as c:
        c.execute("DEALLOCATE ALL")
        assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    store.commit_step(StepWrite("i1", "w1", 1, history=[_hist("i1", 3)]), T0)
    assert [r["seq"] for r in store.history("i1")] == [1, 2, 3]


def test_a_step_larger_than_the_sockets_buffers_is_written_whole(store: PostgresStorage) -> None:
    store.create(_row("big"), StepWrite("big", "w1", 1, history=[_hist("big", 1)]), T0)
    value = '"' + "x" * 4000 + '"'
    rows = [_hist("big", pos, value) for pos in range(2, 2002)]  # about 8 MB of statements
    store.commit_step(StepWrite("big", "w1", 1, history=rows), T0)
    history = store.history("big")
    assert len(history) == 2001


def test_an_error_is_psycopgs_and_the_connection_serves_the_next_unit(
    store: PostgresStorage,
) -> None:
    store.create(_row("dup"), StepWrite("dup", "w1", 1, history=[_hist("dup", 1)]), T0)
    with pytest.raises(psycopg.errors.UniqueViolation) as caught:  # position 1 is taken
        store.commit_step(StepWrite("dup", "w1", 1, history=[_hist("dup", 1)]), T0)
    assert caught.value.sqlstate == "23505"
    assert caught.value.diag.constraint_name is not None
    store.commit_step(StepWrite("dup", "w1", 1, history=[_hist("dup", 2)]), T0)
    assert len(store.history("dup")) == 2


def test_statements_already_prepared_that_we_did_not_count_are_used(
    store: PostgresStorage,
) -> None:
    """A server connection that holds our statements though this connection's count says it
    does not (what a pooler handing out another server connection looks like): the step is
    sent again without preparing them, once."""
    store.create(_row("i1"), StepWrite("i1", "w1", 1, history=[_hist("i1", 1)]), T0)
    store.commit_step(StepWrite("i1", "w1", 1, history=[_hist("i1", 2)]), T0)
    with store.units.pool().connection() as c:
        held = c.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'eddic%'")
        assert held.fetchone()[0] >= 2  # type: ignore[index]
        wire._wires[c.pgconn].prepared.clear()  # forget them: the next step prepares again
    store.commit_step(StepWrite("i1", "w1", 1, history=[_hist("i1", 3)]), T0)
    assert [r["seq"] for r in store.history("i1")] == [1, 2, 3]
