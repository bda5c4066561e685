"""A step as one pipelined unit on a real server (``units.Units.pipelined``, ``steps``): its
round trips, a lost lease raised inside SQL, the windows a pipeline opens for connection loss,
a lost COMMIT reply of a pipelined ``create``, and which commits NOTIFY.

The windows: a connection lost after the pipeline was sent and before any result came back
(the unit's COMMIT was not sent, so it runs again, once) is made real by holding the row (or
key) the pipeline's first statement needs from another connection, so the step's backend is
seen waiting in the server with its statements sent, and terminating it there.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pg_server
import psycopg
import pytest
from test_connection_loss import CommitCutter

from eddic.storage import LeaseLost, StepWrite
from eddic.storage.postgres import steps
from eddic.storage.postgres.store import PostgresStorage
from eddic.storage.postgres.url import parse_postgres_url

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
BOUND = 30.0  # seconds: a generous bound on what should take well under one


def _row(iid: str, *, owner: str | None = "w1", **extra: Any) -> dict[str, Any]:
    row = {
        "instance_id": iid,
        "workflow_name": "wf",
        "status": "running",
        "input_data": "null",
        "created_at": T0,
        "updated_at": T0,
        "started_at": T0,
        "service_name": "svc",
        "lock_timeout_seconds": None,
        "lock_owner": owner,
        "lock_epoch": 1,
        "lock_expires_at": T0 + timedelta(seconds=30) if owner else None,
    }
    row.update(extra)
    return row


def _hist(iid: str, pos: int) -> tuple[Any, ...]:
    return (iid, pos, pos, "scheduled", "activity", "act", "[]", T0, None, None, None)


def _create(store: PostgresStorage, iid: str, *, owner: str | None = "w1") -> None:
    taken, key = store.create(
        _row(iid, owner=owner), StepWrite(iid, "w1", 1, history=[_hist(iid, 1)]), T0
    )
    assert taken is None and key > 0


def _full_step(iid: str, owner: str, epoch: int, pos: int = 2) -> StepWrite:
    """A step with a row of every kind, and instance columns."""
    return StepWrite(
        iid,
        owner,
        epoch,
        history=[_hist(iid, pos), _hist(iid, pos + 1)],
        outbox=[(f"e{pos}", iid, pos, "t", "s", "{}", T0, T0)],
        waits_added=[(pos, "go", None, None)],
        attempts=[(pos, 1, 0, None, None)],
        columns={"status": "waiting_for_event", "updated_at": T0},
    )


def _counts(server: pg_server.Server, url: str, iid: str) -> dict[str, int]:
    schema = parse_postgres_url(url).schema
    with server.admin(url.split("?")[0]) as conn:
        return {
            table: int(
                conn.execute(
                    f'SELECT count(*) FROM "{schema}".{table} WHERE instance_id = %s', [iid]
                ).fetchone()[0]
            )
            for table in ("history", "outbox", "event_waits", "attempts")
        }


# -- round trips --------------------------------------------------------------------------------


def _client_waits(store: PostgresStorage, do: Callable[[], Any]) -> int:
    """How many times the client waited for the server during ``do()``: libpq's trace of the
    pool's one connection, a turn from messages sent after a Sync, Query or Flush to replies."""
    with store.units.pool().connection() as conn:
        pass  # made and put back: the pool's one connection, which do() then gets
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            do()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        waits, asked = 0, False
        for line in trace.read().splitlines():
            direction, _length, message = [*line.split("\t"), "", ""][:3]
            if direction == "F" and message.split(" ")[0] in ("Sync", "Query", "Flush"):
                asked = True
            elif direction == "B" and asked:
                waits, asked = waits + 1, False
    return waits


def test_a_step_and_a_create_are_two_round_trips_each(store: PostgresStorage) -> None:
    assert _client_waits(store, lambda: _create(store, "i1")) == 2
    step = _full_step("i1", "w1", 1)
    step.columns = {"updated_at": T0}
    assert _client_waits(store, lambda: store.commit_step(step, T0)) == 2
    lock_only = StepWrite("i1", "w1", 1, history=[_hist("i1", 4)])  # no columns: the row lock
    assert _client_waits(store, lambda: store.commit_step(lock_only, T0)) == 2
    assert len(store.history("i1")) == 4


# -- a lost lease, inside SQL ------------------------------------------------------------------


def test_a_fenced_out_step_raises_lease_lost_and_writes_nothing(
    store: PostgresStorage, postgres_server: pg_server.Server, postgres_schema_url: str
) -> None:
    _create(store, "i1")
    before = store.get_instance("i1")
    for stale in (
        _full_step("i1", "w1", 2),  # a later epoch than the row's
        _full_step("i1", "w2", 1),  # another owner
        StepWrite("i1", "w1", 0, history=[_hist("i1", 2)]),  # no columns: the locking read
        _full_step("nobody", "w1", 1),  # no such instance
    ):
        with pytest.raises(LeaseLost, match="lost its lease"):
            store.commit_step(stale, T0)
        assert store.get_instance("i1") == before
        assert _counts(postgres_server, postgres_schema_url, "i1") == {
            "history": 1,
            "outbox": 0,
            "event_waits": 0,
            "attempts": 0,
        }
    # the pool's one connection was rolled back and serves the holder's step
    store.commit_step(_full_step("i1", "w1", 1), T0)
    assert _counts(postgres_server, postgres_schema_url, "i1") == {
        "history": 3,
        "outbox": 1,
        "event_waits": 1,
        "attempts": 1,
    }


def test_only_the_fence_is_lease_lost(store: PostgresStorage, postgres_schema_url: str) -> None:
    """Another error of the pipeline (a history row's key taken) is itself, not LeaseLost,
    and the step's fenced update is rolled back with it; so is a cast error of the same
    SQLSTATE that is not the fence's."""
    _create(store, "i1")
    clash = StepWrite("i1", "w1", 1, history=[_hist("i1", 1)], columns={"status": "failed"})
    with pytest.raises(psycopg.errors.UniqueViolation):
        store.commit_step(clash, T0)
    assert store.get_instance("i1")["status"] == "running"
    step = StepWrite("i1", "w1", 1)
    with psycopg.connect(postgres_schema_url.split("?")[0]) as conn:
        for sql, fence in (
            ("SELECT 'x'::int", False),
            (f"SELECT ('{steps.LEASE_LOST} ' || count(*))::int FROM pg_class WHERE false", True),
        ):
            with pytest.raises(psycopg.errors.InvalidTextRepresentation) as caught:
                conn.execute(sql)
            conn.rollback()
            assert (steps.lease_lost(caught.value, step) is not None) is fence


# -- connection lost after the pipeline was sent, before any result ----------------------------


def _cut_while_waiting(
    server: pg_server.Server, url: str, app: str, hold: Callable[[psycopg.Connection[Any]], None]
) -> Callable[[Callable[[], Any]], tuple[Any, str]]:
    """Run ``call()`` in a thread while another connection holds what its pipeline's first
    statement needs (``hold``); once its backend is seen waiting there (the pipeline sent, no
    result back), terminate that backend, then let go. ``call()``'s result, and the statement
    that was waiting when it was cut."""

    def run(call: Callable[[], Any]) -> tuple[Any, str]:
        out: list[Any] = []
        with server.admin(url.split("?")[0]) as holder, server.admin(url.split("?")[0]) as admin:
            holder.execute("BEGIN")
            hold(holder)
            thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
            thread.start()
            deadline = time.monotonic() + BOUND
            while True:
                row = admin.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE application_name = %s "
                    "AND wait_event_type = 'Lock'",
                    [app],
                ).fetchone()
                if row is not None:
                    break
                assert time.monotonic() < deadline, "the step's pipeline never waited"
                time.sleep(0.01)
            pid, query = row
            assert server.terminate_backend(pid)
            time.sleep(0.2)  # the unit sees the loss and tries again (waiting on the hold too)
            holder.execute("ROLLBACK")
            thread.join(BOUND)
            assert out, "the unit did not finish"
        return out[0], str(query)

    return run


def test_a_step_cut_after_its_pipeline_was_sent_is_run_again_once(
    postgres_server: pg_server.Server, postgres_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = f"pipe-{os.getpid()}-{time.monotonic_ns()}"
    store = PostgresStorage(postgres_schema_url, application_name=app)
    store.open()
    schema = parse_postgres_url(postgres_schema_url).schema
    try:
        _create(store, "i1")
        run = _cut_while_waiting(
            postgres_server,
            postgres_schema_url,
            app,
            lambda c: c.execute(
                f'SELECT 1 FROM "{schema}".instances WHERE instance_id = %s FOR UPDATE', ["i1"]
            ),
        )
        with caplog.at_level(logging.WARNING, logger="eddic.storage.postgres"):
            _, waiting = run(lambda: store.commit_step(_full_step("i1", "w1", 1), T0))
        assert waiting.startswith("WITH f AS"), waiting  # the fenced statement, cut there
        assert any("trying again" in r.getMessage() for r in caplog.records)
        assert store.get_instance("i1")["status"] == "waiting_for_event"
        assert _counts(postgres_server, postgres_schema_url, "i1") == {
            "history": 3,
            "outbox": 1,
            "event_waits": 1,
            "attempts": 1,
        }
    finally:
        store.close()


def test_a_create_cut_after_its_pipeline_was_sent_is_run_again_once(
    postgres_server: pg_server.Server, postgres_schema_url: str
) -> None:
    """The holder inserts the same instance id and rolls back: the create's insert waits on
    that key, is cut there, and its next try creates the instance (not "taken")."""
    app = f"pipe-{os.getpid()}-{time.monotonic_ns()}"
    store = PostgresStorage(postgres_schema_url, application_name=app)
    store.open()
    schema = parse_postgres_url(postgres_schema_url).schema
    try:
        run = _cut_while_waiting(
            postgres_server,
            postgres_schema_url,
            app,
            lambda c: c.execute(
                f'INSERT INTO "{schema}".instances (instance_id, workflow_name, status, '
                "created_at, updated_at, lock_epoch) VALUES ('i1', 'other', 'running', now(), "
                "now(), 1)"
            ),
        )
        (taken, key), waiting = run(
            lambda: store.create(_row("i1"), StepWrite("i1", "w1", 1, history=[_hist("i1", 1)]), T0)
        )
        assert waiting.startswith("INSERT INTO instances"), waiting
        assert taken is None and key > 0
        assert store.get_instance("i1")["workflow_name"] == "wf"
        assert len(store.history("i1")) == 1
    finally:
        store.close()


def test_a_create_of_a_taken_id_says_who_has_it_and_writes_nothing(store: PostgresStorage):
    _create(store, "i1")
    row = _row("i1", workflow_name="other")
    assert store.create(row, StepWrite("i1", "w9", 1, history=[_hist("i1", 2)]), T0) == ("wf", 0)
    assert len(store.history("i1")) == 1
    _create(store, "i2")  # the connection is usable


# -- a lost COMMIT reply of a pipelined unit ---------------------------------------------------


def test_a_create_whose_commit_reply_was_lost_is_created_once(
    postgres_schema_url: str,
) -> None:
    """Run again, the create would find its own instance and call it taken: pg_xact_status
    must say it committed, and the create return its key."""
    parts = urlsplit(postgres_schema_url)
    assert parts.hostname is not None and parts.port is not None
    cutter = CommitCutter(parts.hostname, parts.port)
    relayed = pg_server.with_host(postgres_schema_url, "127.0.0.1", cutter.port)
    store = PostgresStorage(relayed + "&sslmode=disable")
    try:
        store.open()
        cutter.arm()
        taken, key = store.create(
            _row("i1"), StepWrite("i1", "w1", 1, history=[_hist("i1", 1)]), T0
        )
        assert cutter.cut.is_set(), "no COMMIT reply was swallowed"
        assert taken is None and key > 0
        cutter.cut.clear()
        cutter.arm()
        store.commit_step(_full_step("i1", "w1", 1), T0)
        assert cutter.cut.is_set(), "no COMMIT reply was swallowed"
        assert len(store.history("i1")) == 3
    finally:
        store.close()
        cutter.close()


# -- NOTIFY ------------------------------------------------------------------------------------


def test_only_commits_that_leave_work_for_others_notify(postgres_schema_url: str) -> None:
    listener = PostgresStorage(postgres_schema_url)
    writer = PostgresStorage(postgres_schema_url)
    listener.open()
    writer.open()

    def heard() -> bool:
        got = listener.wait(0.3)
        while listener.wait(0.05):  # drain
            pass
        return got

    try:
        assert listener.wait(0.05) is False  # LISTENing from now on
        _create(writer, "inline")  # the starter holds the lease and runs it itself
        assert not heard()
        writer.commit_step(StepWrite("inline", "w1", 1, history=[_hist("inline", 2)]), T0)
        assert not heard()
        _create(writer, "unowned", owner=None)  # created for any worker to run
        assert heard()
        released = StepWrite("inline", "w1", 1, history=[_hist("inline", 3)], release=True)
        writer.commit_step(released, T0)  # handed back, still running
        assert heard()
        _create(writer, "w")
        outbox = StepWrite("w", "w1", 1, outbox=[("e1", "w", 2, "t", "s", "{}", T0, T0)])
        writer.commit_step(outbox, T0)  # rows for the relay
        assert heard()
        writer.commit_step(StepWrite("w", "w1", 1, columns={"wake_at": T0}), T0)  # a timer
        assert heard()
        writer.deliver("go", "null", source="s", event_id="ev1", now=T0, instance_id="w")
        assert heard()  # the event (the instance does not wait for it yet)
        waits = StepWrite("w", "w1", 1, waits_added=[(3, "go", None, None)], release=True)
        waits.columns = {"status": "waiting_for_event"}
        writer.commit_step(waits, T0)  # the event was there already: it wakes the instance
        assert waits.woke and heard()
    finally:
        listener.close()
        writer.close()
