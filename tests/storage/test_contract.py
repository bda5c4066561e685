"""The storage contract: what every backend of ``eddic.storage.Store`` must do, tested through
the interface alone (no SQL, no handles), once per backend: an SQLite file and ``:memory:``.
A new backend joins by adding itself to ``BACKENDS``; PostgreSQL runs on the real server of
``tests/pg_server.py``, in a fresh schema per test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from eddic.clock import to_text
from eddic.kernel import EddicError, InstanceNotFound
from eddic.storage import LeaseLost, StepWrite, Store, open_store

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)

BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite-file": lambda request, tmp: f"sqlite:///{tmp / 'contract.db'}",
    "sqlite-memory": lambda request, tmp: "sqlite:///:memory:",
    "postgres": lambda request, tmp: str(request.getfixturevalue("postgres_schema_url")),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = open_store(BACKENDS[request.param](request, tmp_path))
    backend.open()
    backend.open()  # idempotent
    yield backend
    backend.close()


# The backends whose wait() hears another store's commits (a :memory: database has no other).
@pytest.fixture(params=sorted(set(BACKENDS) - {"sqlite-memory"}))
def heard_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = open_store(BACKENDS[request.param](request, tmp_path))
    backend.open()
    assert backend.notifies
    yield backend
    backend.close()


def _row(
    iid: str, *, owner: str | None = "w1", until: datetime | None = None, workflow: str = "wf"
) -> dict[str, Any]:
    return {
        "instance_id": iid,
        "workflow_name": workflow,
        "status": "running",
        "input_data": '"in"',
        "created_at": T0,
        "updated_at": T0,
        "started_at": T0,
        "service_name": "contract",
        "lock_timeout_seconds": 60.0,
        "lock_owner": owner,
        "lock_epoch": 1,
        "lock_expires_at": until or T0 + timedelta(seconds=60),
    }


def _scheduled(iid: str, pos: int, seq: int, kind: str = "timer") -> tuple[Any, ...]:
    return (iid, pos, seq, "scheduled", kind, "sleep", "{}", T0, None, None, None)


def _create(store: Store, iid: str, **columns: Any) -> int:
    """A new instance leased by w1 (epoch 1), with one scheduled record."""
    step = StepWrite(iid, "w1", 1, columns=columns)
    step.history = [_scheduled(iid, 1, 1)]
    taken, key = store.create(_row(iid), step, T0)
    assert taken is None
    return key


def test_create_then_read_back(store: Store) -> None:
    _create(store, "i-1", wake_at=T0 + timedelta(seconds=5))
    info = store.get_instance("i-1")
    assert (info["workflow_name"], info["status"], info["input_data"]) == ("wf", "running", "in")
    assert info["wake_at"] == T0 + timedelta(seconds=5)
    assert [(h["record"], h["seq"]) for h in store.history("i-1")] == [("scheduled", 1)]
    stored = store.stored("i-1")
    assert stored.row["instance_id"] == "i-1" and len(stored.history) == 1
    assert store.workflow_name("i-1") == "wf" and store.workflow_name("nope") is None
    with pytest.raises(InstanceNotFound):
        store.get_instance("nope")
    with pytest.raises(InstanceNotFound):
        store.stored("nope")


def test_a_taken_id_writes_nothing(store: Store) -> None:
    _create(store, "i-1")
    again = StepWrite("i-1", "w2", 1)
    again.history = [_scheduled("i-1", 1, 1, kind="event")]
    assert store.create(_row("i-1", owner="w2"), again, T0) == ("wf", 0)
    assert store.history("i-1")[0]["kind"] == "timer"


def test_the_lease_is_taken_only_when_free_or_expired_and_fences_every_write(store: Store) -> None:
    key = _create(store, "i-1")
    assert store.acquire("i-1", "w2", T0, 60) is None  # w1 holds it until T0 + 60 s
    got = store.acquire("i-1", "w2", T0 + timedelta(seconds=61), 60)
    assert got is not None and got[0] == 2
    stale = StepWrite("i-1", "w1", 1, key=key, columns={"status": "failed"})
    with pytest.raises(LeaseLost):
        store.commit_step(stale, T0)
    assert not store.renew("i-1", "w1", 1, T0 + timedelta(hours=1))
    assert store.renew("i-1", "w2", 2, T0 + timedelta(hours=1))
    step = StepWrite("i-1", "w2", 2, key=key, columns={"status": "waiting_for_timer"})
    step.history = [("i-1", 2, 1, "resolved", None, None, None, T0, None, "null", None)]
    store.commit_step(step, T0)
    assert store.get_instance("i-1")["status"] == "waiting_for_timer"
    assert len(store.history("i-1")) == 2
    store.release("i-1", "w1", 1)  # not the holder: nothing happens
    assert store.get_instance("i-1")["lock_owner"] == "w2"
    store.release("i-1", "w2", 2)
    assert store.get_instance("i-1")["lock_owner"] is None


def test_due_work_and_the_next_wake_skip_what_cannot_run(store: Store) -> None:
    soon = T0 + timedelta(seconds=10)
    _create(store, "due", wake_at=soon)
    store.release("due", "w1", 1)
    assert store.due_instances(T0) == []
    assert store.due_instances(soon) == [("due", "wf")]
    assert store.next_wake() == soon
    assert store.next_wake(exclude=["due"]) is None
    assert store.park("due", "w1", 1, soon, '{"parked": true}') is False  # not its lease
    got = store.acquire("due", "w1", T0, 60)
    assert got is not None
    retry_at = T0 + timedelta(minutes=5)
    assert store.park("due", "w1", got[0], retry_at, '{"parked": true}')
    assert store.due_instances(soon) == []  # parked
    assert store.next_wake() == retry_at
    assert store.get_instance("due")["retry_after"] == retry_at
    assert store.unpark("due", soon) == "running"
    assert store.due_instances(soon) == [("due", "wf")]
    assert store.unpark("nope", soon) is None


def test_a_stale_lease_is_recovery_work(store: Store) -> None:
    _create(store, "stale")
    assert store.stale_instances(T0) == []
    assert store.stale_instances(T0 + timedelta(seconds=61)) == [("stale", "wf")]


def _free(store: Store, iid: str, workflow: str = "wf", **columns: Any) -> None:
    """A new instance with no lease (as a released or handed-back one), one scheduled record."""
    step = StepWrite(iid, "w1", 1, columns=columns)
    step.history = [_scheduled(iid, 1, 1)]
    assert store.create(_row(iid, owner=None, workflow=workflow), step, T0)[0] is None


def test_claim_takes_due_then_stale_work_of_its_workflows_only(store: Store) -> None:
    soon, later = T0 + timedelta(seconds=10), T0 + timedelta(seconds=61)
    _free(store, "timer", wake_at=soon)
    _create(store, "stale")  # w1's lease runs out at T0 + 60 s
    _free(store, "other", workflow="other", wake_at=soon)
    claim = {"limit": 10, "default_timeout": 30.0, "workflows": ["wf"]}
    assert store.claim(T0, "w2", **claim) == []  # nothing due yet, the lease is live
    assert store.next_wake(workflows=["wf"]) == soon
    assert store.next_wake(workflows=["elsewhere"]) is None
    assert store.due_elsewhere(soon, ["wf"]) == [("other", "other")]
    [(epoch, row)] = store.claim(later, "w2", stale=False, **claim)
    assert (row["instance_id"], epoch, row["last_pos"]) == ("timer", 2, 1)
    assert row["lock_owner"] == "w2"
    # its own lock_timeout_seconds (60), not the default
    assert store.get_instance("timer")["lock_expires_at"] == later + timedelta(seconds=60)
    [(epoch, row)] = store.claim(later, "w2", **claim)  # stale work too now
    assert (row["instance_id"], epoch) == ("stale", 2)
    assert store.claim(later, "w3", **claim) == []  # both leased by w2 now
    assert [
        r["instance_id"] for _, r in store.claim(later, "w3", **{**claim, "workflows": ["other"]})
    ] == ["other"]


def test_claim_orders_the_longest_waiting_first_and_stops_at_its_limit(store: Store) -> None:
    for n in (3, 1, 2):
        _free(store, f"i{n}", wake_at=T0 + timedelta(seconds=n))
    got = store.claim(
        T0 + timedelta(seconds=5), "w2", limit=2, default_timeout=30, workflows=["wf"]
    )
    assert [row["instance_id"] for _, row in got] == ["i1", "i2"]


def test_claimers_in_two_threads_never_take_one_instance_twice(store: Store) -> None:
    ids = [f"i{n:02d}" for n in range(40)]
    for iid in ids:
        _free(store, iid, wake_at=T0)
    claimed: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def claimer(k: int) -> None:
        barrier.wait()
        while batch := store.claim(T0, f"w{k}", limit=3, default_timeout=60, workflows=["wf"]):
            claimed[k].extend(row["instance_id"] for _, row in batch)

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed[0] + claimed[1]) == ids  # each once
    assert store.claim(T0, "w3", limit=100, default_timeout=60, workflows=["wf"]) == []
    expired = T0 + timedelta(seconds=61)
    assert len(store.claim(expired, "w3", limit=100, default_timeout=60, workflows=["wf"])) == 40


def test_events_reach_the_mailbox_once(store: Store) -> None:
    _create(store, "i-1")
    step = StepWrite("i-1", "w1", 1, columns={"status": "waiting_for_event"})
    step.waits_added = [(2, "paid", None, None)]
    store.commit_step(step, T0)
    reached = store.deliver("paid", '{"n": 1}', source="s", event_id="e1", now=T0)
    assert reached == [("i-1", "wf")]  # a broadcast: i-1 waits on "paid"
    assert store.deliver("paid", '{"n": 1}', source="s", event_id="e1", now=T0) == []
    targeted = store.deliver("other", "2", source="s", event_id="e2", now=T0, instance_id="i-1")
    assert targeted == [("i-1", "wf")]
    box = store.mailbox("i-1", ["other", "paid"])
    assert [e.id for _mid, e in box["paid"]] == ["e1"] and box["paid"][0][1].data == {"n": 1}
    assert [e.data for _mid, e in box["other"]] == [2]
    with pytest.raises(InstanceNotFound):
        store.deliver("paid", "1", source="s", event_id="e3", now=T0, instance_id="nope")


def test_a_finished_instance_takes_no_event(store: Store) -> None:
    _create(store, "done", status="completed")
    with pytest.raises(EddicError, match="finished"):
        store.deliver("x", "1", source="s", event_id="e", now=T0, instance_id="done")


def test_outbox_rows_are_claimed_by_one_relay_at_a_time(store: Store) -> None:
    step = StepWrite("i-1", "w1", 1)
    step.history = [_scheduled("i-1", 1, 1)]
    step.outbox = [("ev-1", "i-1", 1, "t", "s", "{}", T0, T0)]
    assert store.create(_row("i-1"), step, T0)[0] is None
    assert store.outbox.pending()
    newest, heads = store.outbox.due_heads(T0, None, 10)
    assert len(heads) == 1
    row_id, attempts = heads[0][0], heads[0][7]
    until = T0 + timedelta(seconds=40)
    assert store.outbox.claim(row_id, attempts, until, T0)
    assert not store.outbox.claim(row_id, attempts, until, T0)  # another relay: no
    store.outbox.failed_attempt(row_id, attempts=1, error="boom", next_at=T0, give_up=True)
    assert [r["status"] for r in store.outbox.rows()] == ["failed"]
    assert store.outbox.retry_failed(T0) == 1
    store.outbox.sent(row_id, 2, T0)
    assert not store.outbox.pending() and store.outbox.rows(["sent"])[0]["attempts"] == 2
    assert store.outbox.due_heads(T0, newest, 10)[1] == []


def test_an_unsupported_url_is_refused_without_its_password() -> None:
    with pytest.raises(ValueError, match="unsupported db_url") as refused:
        open_store("mysql://app:s3cret-pw@db.example:3306/orders")
    assert "s3cret-pw" not in str(refused.value) and "app:***@db.example" in str(refused.value)


# -- heartbeats --


def _begin_attempt(store: Store, key: int, iid: str, seq: int, attempt: int, **lease: Any) -> None:
    """A step that begins attempt ``attempt`` of the activity at ``seq`` (as the worker does)."""
    owner, epoch = lease.get("owner", "w1"), lease.get("epoch", 1)
    step = StepWrite(iid, owner, epoch, key=key)
    step.attempts = [(seq, attempt, attempt - 1, None, None)]
    store.commit_step(step, T0)


def test_heartbeat_details_are_written_and_read_back(store: Store) -> None:
    key = _create(store, "i-1", wake_at=T0 + timedelta(seconds=5))
    before = (store.get_instance("i-1"), store.history("i-1"), store.next_wake())
    # no row yet for seq 2: the heartbeat makes one, on its attempt, with no failures
    assert store.heartbeat("i-1", "w1", 1, 2, 1, '{"done": 1}', T0)
    assert store.stored("i-1").attempts == {2: (1, 0, None, None, '{"done": 1}')}
    assert store.heartbeat("i-1", "w1", 1, 2, 1, '{"done": 2}', T0 + timedelta(seconds=1))
    assert store.stored("i-1").attempts == {2: (1, 0, None, None, '{"done": 2}')}
    # a row a step wrote: only its details change
    _begin_attempt(store, key, "i-1", seq=3, attempt=2)
    assert store.stored("i-1").attempts[3] == (2, 1, None, None, None)
    assert store.heartbeat("i-1", "w1", 1, 3, 2, "[3, null]", T0)
    assert store.stored("i-1").attempts[3] == (2, 1, None, None, "[3, null]")
    # nothing but the attempt rows was written
    assert (store.get_instance("i-1"), store.history("i-1"), store.next_wake()) == before


def test_a_heartbeat_is_fenced_by_the_lease(store: Store) -> None:
    key = _create(store, "i-1")
    _begin_attempt(store, key, "i-1", seq=2, attempt=1)
    assert not store.heartbeat("i-1", "w2", 1, 2, 1, '"other owner"', T0)
    assert not store.heartbeat("i-1", "w1", 2, 2, 1, '"other epoch"', T0)
    assert not store.heartbeat("i-1", "w2", 1, 5, 1, '"no row, other owner"', T0)
    assert not store.heartbeat("nope", "w1", 1, 2, 1, '"no instance"', T0)
    assert store.stored("i-1").attempts == {2: (1, 0, None, None, None)}
    assert store.heartbeat("i-1", "w1", 1, 2, 1, '"mine"', T0)
    store.release("i-1", "w1", 1)
    assert not store.heartbeat("i-1", "w1", 1, 2, 1, '"after release"', T0)
    # taken over (a new epoch): the old lease writes nothing, the new one does
    got = store.acquire("i-1", "w2", T0, 60)
    assert got is not None and got[0] == 2
    assert not store.heartbeat("i-1", "w1", 1, 2, 1, '"old lease"', T0)
    _begin_attempt(store, key, "i-1", seq=2, attempt=2, owner="w2", epoch=2)
    assert store.heartbeat("i-1", "w2", 2, 2, 2, '"new lease"', T0)
    assert store.stored("i-1").attempts == {2: (2, 1, None, None, '"new lease"')}


def test_a_heartbeat_of_another_attempt_writes_nothing(store: Store) -> None:
    key = _create(store, "i-1")
    _begin_attempt(store, key, "i-1", seq=2, attempt=2)
    assert store.heartbeat("i-1", "w1", 1, 2, 2, '"second"', T0)
    assert not store.heartbeat("i-1", "w1", 1, 2, 1, '"late first"', T0)
    assert not store.heartbeat("i-1", "w1", 1, 2, 3, '"not begun"', T0)
    assert store.stored("i-1").attempts == {2: (2, 1, None, None, '"second"')}


def test_heartbeat_details_outlive_the_attempt_row_s_writes_until_it_is_done(store: Store) -> None:
    key = _create(store, "i-1")
    _begin_attempt(store, key, "i-1", seq=2, attempt=1)
    _begin_attempt(store, key, "i-1", seq=4, attempt=1)
    assert store.heartbeat("i-1", "w1", 1, 2, 1, '{"page": 7}', T0)
    assert store.heartbeat("i-1", "w1", 1, 4, 1, '{"page": 1}', T0)
    # attempt 1 fails and a retry is due: the step rewrites the row and keeps the details,
    # which the next attempt reads
    retry_at = T0 + timedelta(seconds=30)
    failed = StepWrite("i-1", "w1", 1, key=key, columns={"wake_at": retry_at})
    failed.attempts = [(2, 1, 1, retry_at, '"boom"')]
    store.commit_step(failed, T0)
    assert store.stored("i-1").attempts[2] == (1, 1, to_text(retry_at), '"boom"', '{"page": 7}')
    _begin_attempt(store, key, "i-1", seq=2, attempt=2)
    assert store.stored("i-1").attempts[2] == (2, 1, None, None, '{"page": 7}')
    assert store.heartbeat("i-1", "w1", 1, 2, 2, '{"page": 9}', T0)
    # done: the row goes, its details with it; the other activity's row stays
    done = StepWrite("i-1", "w1", 1, key=key)
    done.history = [("i-1", 2, 2, "resolved", None, None, None, T0, None, "1", None)]
    done.attempts_done = [2]
    store.commit_step(done, T0)
    assert store.stored("i-1").attempts == {4: (1, 0, None, None, '{"page": 1}')}


def test_a_heartbeat_wakes_no_one(heard_store: Store) -> None:
    store = heard_store
    key = _create(store, "i-1")
    _begin_attempt(store, key, "i-1", seq=2, attempt=1)
    listener = open_store(store.db_url)
    listener.open()
    try:
        listener.wait(0)  # listening from now on
        assert store.heartbeat("i-1", "w1", 1, 2, 1, '"quiet"', T0)
        assert not listener.wait(0.3)
        store.release("i-1", "w1", 1)  # work for others: this one is heard
        assert listener.wait(5)
    finally:
        listener.close()
