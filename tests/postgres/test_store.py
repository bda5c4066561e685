"""PostgresStorage against a real server: schema, fencing, queues, events, outbox, claims,
NOTIFY, connection loss and login errors."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pg_server
import psycopg
import pytest

from eddic.clock import to_text
from eddic.kernel import EddicError, InstanceNotFound
from eddic.storage import LeaseLost, StepWrite
from eddic.storage.postgres import wire
from eddic.storage.postgres.schema import SCHEMA_VERSION
from eddic.storage.postgres.store import PostgresStorage
from eddic.storage.postgres.url import parse_postgres_url
from eddic.storage.sqlite.dbfile import StorageError

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(postgres_schema_url: str):
    s = PostgresStorage(postgres_schema_url)
    s.open()
    yield s
    s.close()


def _row(iid: str, *, owner: str | None = "w1", epoch: int = 1, **extra: Any) -> dict[str, Any]:
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
        "lock_epoch": epoch,
        "lock_expires_at": T0 + timedelta(seconds=30) if owner else None,
    }
    row.update(extra)
    return row


def _hist(iid: str, pos: int, seq: int, *, record: str = "scheduled") -> tuple[Any, ...]:
    if record == "scheduled":
        return (iid, pos, seq, "scheduled", "activity", "act", "[]", T0, None, None, None)
    return (iid, pos, seq, "resolved", None, None, None, T0, None, "1", None)


def _create(store: PostgresStorage, iid: str, **extra: Any) -> StepWrite:
    step = StepWrite(iid, "w1", 1, history=[_hist(iid, 1, 1)])
    taken, key = store.create(_row(iid, **extra), step, T0)
    assert taken is None and key > 0
    return step


def _schema(url: str) -> str:
    return parse_postgres_url(url).schema


# -- schema --


def test_the_schema_is_created_with_its_version_and_open_is_idempotent(
    postgres_server: pg_server.Server, postgres_schema_url: str
):
    s = PostgresStorage(postgres_schema_url)
    s.open()
    s.open()
    s.close()
    PostgresStorage(postgres_schema_url).open()  # again on an existing schema
    with postgres_server.admin(postgres_schema_url) as conn:
        version = conn.execute(
            f'SELECT value FROM "{_schema(postgres_schema_url)}".eddic_meta '
            "WHERE key = 'schema_version'"
        ).fetchone()
    assert version == (str(SCHEMA_VERSION),)


def test_a_newer_schema_is_refused_untouched(
    postgres_server: pg_server.Server, postgres_schema_url: str
):
    PostgresStorage(postgres_schema_url).open()
    schema = _schema(postgres_schema_url)
    with postgres_server.admin(postgres_schema_url) as conn:
        conn.execute(
            f"UPDATE \"{schema}\".eddic_meta SET value = '99' WHERE key = 'schema_version'"
        )
        before = conn.execute(
            f"SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"
        ).fetchone()
    with pytest.raises(StorageError, match="newer"):
        PostgresStorage(postgres_schema_url).open()
    with postgres_server.admin(postgres_schema_url) as conn:
        after = conn.execute(
            f"SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"
        ).fetchone()
        value = conn.execute(
            f"SELECT value FROM \"{schema}\".eddic_meta WHERE key = 'schema_version'"
        ).fetchone()
    assert before == after and value == ("99",)


def test_a_schema_of_other_tables_is_refused(
    postgres_server: pg_server.Server, postgres_schema_url: str
):
    schema = _schema(postgres_schema_url)
    with postgres_server.admin(postgres_schema_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".users (id int)')
    with pytest.raises(StorageError, match="not eddic's"):
        PostgresStorage(postgres_schema_url).open()


def test_a_bad_password_is_a_storage_error_without_the_password(
    postgres_server: pg_server.Server, postgres_schema_url: str
):
    if not isinstance(postgres_server, pg_server.EmbeddedServer):
        pytest.skip("the embedded server's password only")
    secret = "not-the-Password-4711"
    bad = postgres_schema_url.replace(postgres_server.password, secret)
    with pytest.raises(StorageError) as caught:
        PostgresStorage(bad, connect_timeout=5).open()
    assert secret not in str(caught.value) and postgres_server.password not in str(caught.value)
    assert "password authentication failed" in str(caught.value)


def test_an_unreachable_server_is_a_storage_error():
    url = "postgresql://u:topsecret@127.0.0.1:1/db?schema=x"
    with pytest.raises(StorageError, match="cannot connect") as caught:
        PostgresStorage(url, connect_timeout=2).open()
    assert "topsecret" not in str(caught.value)


def test_urls():
    u = parse_postgres_url("postgres://a:b@h:5/d?schema=s1&sslmode=disable")
    assert u.schema == "s1" and "schema" not in u.conninfo and "sslmode=disable" in u.conninfo
    assert u.redacted == "postgres://a:***@h:5/d?schema=s1&sslmode=disable"
    assert parse_postgres_url("postgresql://h/d").schema == "eddic"
    with pytest.raises(ValueError):
        parse_postgres_url("postgresql://h/d?schema=a;drop")


# -- instances, steps, fencing --


def test_create_acquire_commit_and_read_back(store: PostgresStorage):
    _create(store, "i1")
    assert store.workflow_name("i1") == "wf" and store.workflow_name("nope") is None
    taken, key = store.create(_row("i1"), StepWrite("i1", "w1", 1), T0)
    assert (taken, key) == ("wf", 0)  # an id already taken writes nothing
    got = store.acquire("i1", "w2", T0 + timedelta(seconds=31), 60)
    assert got is not None
    epoch, row = got
    assert epoch == 2 and row["lock_owner"] == "w2" and row["last_pos"] == 1
    assert row["lock_expires_at"] == to_text(T0 + timedelta(seconds=91))
    assert store.acquire("i1", "w3", T0 + timedelta(seconds=32), 60) is None  # held
    step = StepWrite(
        "i1",
        "w2",
        2,
        history=[_hist("i1", 2, 1, record="resolved")],
        columns={"status": "completed", "output_data": '{"x": 1}', "updated_at": T0},
        attempts=[(1, 1, 0, T0, None)],
        release=True,
    )
    store.commit_step(step, T0)
    inst = store.get_instance("i1")
    assert inst["status"] == "completed" and inst["output_data"] == {"x": 1}
    assert inst["lock_owner"] is None and inst["created_at"] == T0
    assert [h["pos"] for h in store.history("i1")] == [1, 2]
    stored = store.stored("i1")
    assert stored.row["started_at"] == to_text(T0) and len(stored.history) == 2
    assert stored.attempts == {1: (1, 0, to_text(T0), None, None)}
    assert [i["instance_id"] for i in store.list_instances(status="completed")] == ["i1"]
    assert store.count_instances(status=["running"]) == 0
    with pytest.raises(InstanceNotFound):
        store.get_instance("nope")
    with pytest.raises(InstanceNotFound):
        store.history("nope")


def test_a_stale_epoch_raises_lease_lost_and_writes_nothing(store: PostgresStorage):
    _create(store, "i1")
    stale = StepWrite(
        "i1",
        "w1",
        0,
        history=[_hist("i1", 2, 2)],
        outbox=[("e1", "i1", 2, "t", "s", "{}", T0, T0)],
        columns={"status": "failed"},
    )
    with pytest.raises(LeaseLost):
        store.commit_step(stale, T0)
    with pytest.raises(LeaseLost):
        store.commit_step(StepWrite("i1", "nobody", 1, history=[_hist("i1", 2, 2)]), T0)
    assert store.get_instance("i1")["status"] == "running"
    assert len(store.history("i1")) == 1 and store.outbox.rows() == []
    store.commit_step(StepWrite("i1", "w1", 1, history=[_hist("i1", 2, 2)]), T0)  # the holder
    assert len(store.history("i1")) == 2


def test_renew_release_park_unpark(store: PostgresStorage):
    _create(store, "i1")
    assert store.renew("i1", "w1", 1, T0 + timedelta(seconds=100))
    assert not store.renew("i1", "w1", 7, T0 + timedelta(seconds=100))
    assert store.get_instance("i1")["lock_expires_at"] == T0 + timedelta(seconds=100)
    assert not store.park("i1", "w1", 5, T0, '{"type": "X", "message": "m"}')
    assert store.park("i1", "w1", 1, T0 + timedelta(seconds=60), '{"type": "X", "message": "m"}')
    inst = store.get_instance("i1")
    assert inst["retry_after"] == T0 + timedelta(seconds=60) and inst["lock_owner"] is None
    assert inst["error"]["type"] == "X"
    assert store.stale_instances(T0 + timedelta(seconds=1)) == []  # parked
    assert store.unpark("i1", T0) == "running"
    assert store.due_instances(T0) == [("i1", "wf")]
    assert store.unpark("nope", T0) is None
    got = store.acquire("i1", "w2", T0, 10)
    assert got is not None
    store.release("i1", "w2", got[0])
    assert store.get_instance("i1")["lock_owner"] is None


def test_due_stale_and_next_wake(store: PostgresStorage):
    _create(store, "sleeper")
    store.commit_step(
        StepWrite(
            "sleeper",
            "w1",
            1,
            columns={"status": "waiting_for_timer", "wake_at": T0 + timedelta(hours=1)},
            release=True,
        ),
        T0,
    )
    _create(store, "runner")  # leased for 30 s
    assert store.due_instances(T0) == []
    assert store.stale_instances(T0) == []
    assert store.next_wake() == T0 + timedelta(hours=1)
    assert store.next_wake(exclude=["sleeper"]) is None
    later = T0 + timedelta(hours=2)
    assert store.due_instances(later) == [("sleeper", "wf")]
    assert store.stale_instances(later) == [("runner", "wf")]


# -- events --


def _waiting(store: PostgresStorage, iid: str, event_type: str = "paid") -> None:
    _create(store, iid)
    store.commit_step(
        StepWrite(
            iid,
            "w1",
            1,
            waits_added=[(1, event_type, None, None)],
            columns={"status": "waiting_for_event", "wake_at": None},
            release=True,
        ),
        T0,
    )


def test_targeted_and_broadcast_delivery(store: PostgresStorage):
    _waiting(store, "a")
    _waiting(store, "b")
    _create(store, "c")  # running, not waiting
    sent = {"source": "svc", "now": T0}
    assert store.deliver("paid", '{"n": 1}', event_id="e1", **sent) == [("a", "wf"), ("b", "wf")]
    assert store.deliver("paid", '{"n": 1}', event_id="e1", **sent) == []  # repeated id
    assert store.deliver("other", "null", event_id="e2", instance_id="c", **sent) == [("c", "wf")]
    assert store.deliver("other", "null", event_id="e2", instance_id="c", **sent) == []
    box = store.mailbox("a", ["paid", "x"])
    assert list(box) == ["paid"]
    ((mid, event),) = box["paid"]
    assert event.id == "e1" and event.data == {"n": 1} and event.time == T0
    assert event.time.tzinfo is timezone.utc
    assert sorted(store.due_instances(T0)) == [("a", "wf"), ("b", "wf")]
    with pytest.raises(InstanceNotFound):
        store.deliver("paid", "null", event_id="e3", instance_id="nope", **sent)
    got = store.acquire("a", "w2", T0, 10)
    assert got is not None
    store.commit_step(
        StepWrite(
            "a",
            "w2",
            got[0],
            mailbox_consumed=[(mid, 1)],
            waits_removed=[1],
            columns={"status": "completed", "wake_at": None},
            release=True,
        ),
        T0,
    )
    assert store.mailbox("a", ["paid"]) == {}
    with pytest.raises(EddicError, match="finished"):
        store.deliver("paid", "null", event_id="e4", instance_id="a", **sent)


def test_an_event_already_in_the_mailbox_wakes_a_step_that_starts_waiting(store: PostgresStorage):
    _create(store, "i1")
    store.deliver("paid", "null", source="s", event_id="e1", now=T0, instance_id="i1")
    step = StepWrite(
        "i1",
        "w1",
        1,
        waits_added=[(2, "paid", None, None)],
        columns={"status": "waiting_for_event", "wake_at": None},
        release=True,
    )
    store.commit_step(step, T0)
    assert step.woke and store.due_instances(T0) == [("i1", "wf")]


# -- outbox --


def test_outbox_rows_heads_and_claims(store: PostgresStorage):
    _create(store, "i1")
    store.commit_step(
        StepWrite(
            "i1",
            "w1",
            1,
            outbox=[
                ("e1", "i1", 1, "t", "s", '{"a": 1}', T0, T0),
                ("e2", "i1", 2, "t", "s", "{}", T0, T0),
            ],
        ),
        T0,
    )
    assert store.outbox.pending()
    _newest, heads = store.outbox.due_heads(T0, None, 10)
    assert [h[1] for h in heads] == ["e1"]  # the head of the instance's queue only
    row_id, attempts = heads[0][0], heads[0][7]
    until = T0 + timedelta(seconds=30)
    results = []
    barrier = threading.Barrier(2)

    def claimer() -> None:
        barrier.wait()
        results.append(store.outbox.claim(row_id, attempts, until, T0))

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]  # two relays: one wins
    store.outbox.failed_attempt(row_id, attempts=1, error="boom", next_at=T0, give_up=True)
    assert store.outbox.due_heads(T0, None, 10)[1] == []  # a failed row holds back the rest
    assert store.outbox.retry_failed(T0, "e1") == 1
    store.outbox.sent(row_id, 1, T0)
    assert [h[1] for h in store.outbox.due_heads(T0, None, 10)[1]] == ["e2"]
    rows = store.outbox.rows(["sent"])
    assert [r["event_id"] for r in rows] == ["e1"] and rows[0]["data"] == {"a": 1}
    assert store.outbox.discard() == 0


def test_wait_returns_on_a_notify_from_another_connection(postgres_schema_url: str):
    listener = PostgresStorage(postgres_schema_url)
    writer = PostgresStorage(postgres_schema_url)
    listener.open()
    writer.open()
    try:
        assert listener.wait(0.05) is False  # LISTENing from now on
        _create(writer, "i1", owner=None)  # left for any worker: work for others
        started = time.monotonic()
        assert listener.wait(5) is True
        assert time.monotonic() - started < 2
        assert listener.wait(0.05) is False  # one transaction, one notification
        _create(writer, "i2")  # its starter holds the lease and runs it: nothing to hear
        assert listener.wait(0.2) is False
        writer.wake()  # wakes the writer's own process only
        assert listener.wait(0.2) is False
        listener.wake()
        assert listener.wait(0) is True  # its own wake()
    finally:
        listener.close()
        writer.close()


# -- connection loss --


def test_a_terminated_backend_is_reconnected(
    postgres_server: pg_server.Server, postgres_db_url: str
):
    store = PostgresStorage(postgres_db_url, application_name="eddic-cut")
    store.open()
    try:
        _create(store, "i1")
        assert store.wait(0.01) is False  # a LISTEN connection too
        cut = postgres_server.terminate_backends(postgres_db_url, application_name="eddic-cut")
        assert cut
        assert store.get_instance("i1")["status"] == "running"  # reconnected
        store.commit_step(StepWrite("i1", "w1", 1, history=[_hist("i1", 2, 2)]), T0)
        assert len(store.history("i1")) == 2
        assert store.wait(0.5) is True  # the LISTEN connection came back: look for work
    finally:
        store.close()


def test_a_commit_whose_reply_was_lost_is_not_run_twice(postgres_db_url: str, monkeypatch):
    """The unit committed but the connection broke before COMMIT returned: the retry learns
    from pg_xact_status that it landed and returns its result, writing nothing again."""
    store = PostgresStorage(postgres_db_url)
    store.open()
    try:
        _create(store, "i1")
        real_commit = wire.commit  # every unit's COMMIT (units._retried)
        calls = {"n": 0}

        def commit_then_break(conn: psycopg.Connection[Any]) -> None:
            real_commit(conn)
            calls["n"] += 1
            if calls["n"] == 1:
                conn.close()
                raise psycopg.OperationalError("the connection broke during COMMIT")

        monkeypatch.setattr(wire, "commit", commit_then_break)
        step = StepWrite(
            "i1",
            "w1",
            1,
            history=[_hist("i1", 2, 2)],
            outbox=[("e1", "i1", 2, "t", "s", "{}", T0, T0)],
        )
        store.commit_step(step, T0)  # no IntegrityError, no LeaseLost
        monkeypatch.undo()
        assert calls["n"] == 1, "the step's COMMIT did not go through the broken commit"
        assert len(store.history("i1")) == 2 and len(store.outbox.rows()) == 1
    finally:
        store.close()


def test_the_server_restarted_between_units(
    postgres_server: pg_server.Server, postgres_db_url: str
):
    if not postgres_server.controllable:
        pytest.skip("needs the embedded server")
    store = PostgresStorage(postgres_db_url)
    store.open()
    try:
        _create(store, "i1")
        postgres_server.restart()
        assert store.workflow_name("i1") == "wf"
        store.commit_step(StepWrite("i1", "w1", 1, history=[_hist("i1", 2, 2)]), T0)
        assert len(store.history("i1")) == 2
    finally:
        store.close()


def test_a_worker_registering_is_never_seen_unlocked(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It takes its lock before its row goes in: a look for dead workers (another store's, on
    # another connection) right after the row is written finds it locked, alive.
    from eddic.storage.postgres.units import Units

    starting, looking = PostgresStorage(postgres_schema_url), PostgresStorage(postgres_schema_url)
    starting.open()
    looking.open()
    looks: list[list[str]] = []
    real_run = Units.run

    def run_then_look(self: Units, work: Any, **kwargs: Any) -> Any:
        done = real_run(self, work, **kwargs)
        if self is starting.units and not looks:
            looks.append([])
            looks[0] = looking.dead_owners()
        return done

    try:
        monkeypatch.setattr(Units, "run", run_then_look)
        starting.hold_liveness("w-starting")
        monkeypatch.setattr(Units, "run", real_run)
        assert looks == [[]]  # the row was in, and the lock already held
        assert looking.dead_owners() == []
    finally:
        starting.close()
        looking.close()
