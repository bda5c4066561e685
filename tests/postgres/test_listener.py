"""The LISTEN side of PostgresStorage (storage/postgres/listener.py) on a real server: an idle
wait blocks once on its sockets (no time slices), wake() is local and never needs the server,
a NOTIFY between two waits is kept, and an outage is logged once and ends in a True wait."""

from __future__ import annotations

import logging
import selectors
import threading
import time
from collections.abc import Iterator
from typing import Any

import pg_server
import psycopg
import pytest

from eddic.storage.postgres import listener as pg_listener
from eddic.storage.postgres.store import PostgresStorage

PROMPT = 0.5  # seconds: what "at once" may take on a loaded machine


@pytest.fixture
def storage(postgres_db_url: str) -> Iterator[PostgresStorage]:
    s = PostgresStorage(postgres_db_url)
    s.open()
    yield s
    s.close()


def controllable(server: pg_server.Server) -> pg_server.EmbeddedServer:
    if not isinstance(server, pg_server.EmbeddedServer):
        pytest.skip(f"{pg_server.ENV_URL} names a server these tests cannot stop or restart")
    return server


def notify(url: str, channel: str) -> None:
    """A NOTIFY from another session, as another process's commit sends it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, '')", [channel])


class Waiter:
    """``storage.wait(timeout)`` in a thread of its own: what it returned, and when."""

    def __init__(self, storage: PostgresStorage, timeout: float) -> None:
        self.result: bool | None = None
        self.ended = 0.0
        self._thread = threading.Thread(target=self._run, args=(storage, timeout), daemon=True)
        self._thread.start()

    def _run(self, storage: PostgresStorage, timeout: float) -> None:
        self.result = storage.wait(timeout)
        self.ended = time.monotonic()

    def join(self, timeout: float) -> bool | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "wait() did not return"
        return self.result


def test_an_idle_wait_blocks_once_on_its_sockets(
    storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No time slices: one select for the whole timeout, and the connection is never polled."""
    assert storage.wait(0.05) is False  # LISTENing now
    listener: Any = storage._listener
    selects: list[float | None] = []
    takes: list[None] = []
    select = listener._selector.select
    take = listener._take

    def counted_select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        selects.append(timeout)
        result: list[tuple[selectors.SelectorKey, int]] = select(timeout)
        return result

    def counted_take() -> bool:
        takes.append(None)
        result: bool = take()
        return result

    monkeypatch.setattr(listener._selector, "select", counted_select)
    monkeypatch.setattr(listener, "_take", counted_take)
    began = time.monotonic()
    assert storage.wait(1.0) is False
    assert time.monotonic() - began >= 1.0
    assert len(selects) == 1 and selects[0] is not None and selects[0] > 0.9, selects
    assert takes == []


def test_wake_from_another_thread_ends_a_wait_at_once(storage: PostgresStorage) -> None:
    assert storage.wait(0.05) is False
    waiter = Waiter(storage, 30.0)
    time.sleep(0.2)  # blocked in select by now
    woke = time.monotonic()
    storage.wake()
    assert waiter.join(5.0) is True
    assert waiter.ended - woke < PROMPT
    assert storage.wait(0.05) is False  # used up


def test_wakes_before_a_wait_are_kept_and_count_once(storage: PostgresStorage) -> None:
    for _ in range(10_000):  # more than the socket pair holds: the extra ones are dropped
        storage.wake()
    assert storage.wait(0) is True
    assert storage.wait(0) is False


def test_a_notify_between_two_waits_is_not_lost(
    storage: PostgresStorage, postgres_db_url: str
) -> None:
    assert storage.wait(0.05) is False  # LISTENing, and nobody waits from here on
    notify(postgres_db_url, storage.units.channel)
    notify(postgres_db_url, storage.units.channel)
    time.sleep(0.2)  # in the LISTEN connection's socket by now
    assert storage.wait(0) is True
    assert storage.wait(0.05) is False  # both read at once


def test_a_notify_from_another_session_ends_a_wait(
    storage: PostgresStorage, postgres_db_url: str
) -> None:
    assert storage.wait(0.05) is False
    waiter = Waiter(storage, 30.0)
    time.sleep(0.2)
    sent = time.monotonic()
    notify(postgres_db_url, storage.units.channel)
    assert waiter.join(5.0) is True
    assert waiter.ended - sent < PROMPT


def test_close_ends_a_wait_in_another_thread(postgres_db_url: str) -> None:
    storage = PostgresStorage(postgres_db_url)
    storage.open()
    try:
        assert storage.wait(0.05) is False
        waiter = Waiter(storage, 30.0)
        time.sleep(0.2)
        closed = time.monotonic()
    finally:
        storage.close()
    assert waiter.join(5.0) is True
    assert waiter.ended - closed < PROMPT


def test_wake_with_the_server_stopped_ends_a_wait_at_once(
    postgres_server: pg_server.Server, storage: PostgresStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """The waiter lost its connection and is retrying LISTEN: a wake() from another thread
    (no server needed) still ends its wait at once; the outage is logged once; once the server
    is back the wait after it returns True (notifications may have been lost meanwhile)."""
    server = controllable(postgres_server)
    assert storage.wait(0.05) is False
    waiter = Waiter(storage, 30.0)
    time.sleep(0.2)
    caplog.set_level(logging.DEBUG, logger=pg_listener.log.name)
    server.stop("fast")
    try:
        time.sleep(2.5)  # the drop seen, two or three tries at LISTEN refused
        began = time.monotonic()
        storage.wake()
        woke_in = time.monotonic() - began
        assert waiter.join(5.0) is True
        assert waiter.ended - began < PROMPT
        assert woke_in < 0.05, f"wake() took {woke_in * 1000:.0f} ms with the server down"
        began = time.monotonic()
        assert storage.wait(1.5) is False  # still down: tries again, quietly, until the timeout
        assert time.monotonic() - began >= 1.5
    finally:
        server.start()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in warnings if "dropped" in m]) == 1, warnings
    assert len([m for m in warnings if "cannot LISTEN" in m]) == 1, warnings
    began = time.monotonic()
    assert storage.wait(10.0) is True  # LISTENing again: look for work
    assert time.monotonic() - began < PROMPT
    assert any("LISTEN on" in r.getMessage() and "again" in r.getMessage() for r in caplog.records)
    assert storage.wait(0.05) is False
