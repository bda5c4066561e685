"""Group commit: concurrent steps share a transaction, and each stays atomic on its own."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eddic import App, WorkflowContext, activity, workflow
from eddic.storage import LeaseLost, StepWrite, Storage


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    store = Storage(f"sqlite:///{tmp_path / 'gc.db'}")
    store.open()
    with store.transaction() as db:
        db.execute("CREATE TABLE notes (who TEXT NOT NULL UNIQUE)")
    return store


def _note(who: str) -> Callable[[Any], str]:
    def work(db: Any) -> str:
        db.execute("INSERT INTO notes (who) VALUES (?)", [who])
        return f"noted {who}"

    return work


def _notes(storage: Storage) -> list[str]:
    with storage.reading() as db:
        return sorted(r[0] for r in db.execute("SELECT who FROM notes"))


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _run_while_a_commit_is_held(
    storage: Storage, works: dict[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    """Hold a first commit open until every work in ``works`` is queued behind it, then let go.
    Returns each thread's result or raised exception."""
    release = threading.Event()
    outcomes: dict[str, Any] = {}

    def holding(db: Any) -> str:
        db.execute("INSERT INTO notes (who) VALUES ('holder')")
        release.wait(10)
        return "held"

    def call(name: str, work: Callable[[Any], Any]) -> None:
        try:
            outcomes[name] = storage.commits.run(work)
        except BaseException as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=call, args=("holder", holding))]
    threads[0].start()
    _wait_until(lambda: storage.commits._leading)
    for name, work in works.items():
        threads.append(threading.Thread(target=call, args=(name, work)))
        threads[-1].start()
    _wait_until(lambda: len(storage.commits._queue) == len(works))
    release.set()
    for t in threads:
        t.join(10)
    return outcomes


def test_work_queued_behind_a_commit_is_committed_together_in_one_transaction(
    storage: Storage,
) -> None:
    before = (storage.commits.batches, storage.commits.works)
    outcomes = _run_while_a_commit_is_held(storage, {w: _note(w) for w in ("a", "b", "c")})
    assert outcomes == {"holder": "held", "a": "noted a", "b": "noted b", "c": "noted c"}
    assert _notes(storage) == ["a", "b", "c", "holder"]
    batches, works = storage.commits.batches - before[0], storage.commits.works - before[1]
    assert (batches, works) == (2, 4)  # the holder alone, then a, b and c in one commit


def test_a_failing_work_in_a_shared_commit_is_rolled_back_alone(storage: Storage) -> None:
    def half_then_fail(db: Any) -> None:
        db.execute("INSERT INTO notes (who) VALUES ('half')")
        db.execute("INSERT INTO notes (who) VALUES ('a')")  # UNIQUE: 'a' is noted first

    outcomes = _run_while_a_commit_is_held(
        storage, {"a": _note("a"), "bad": half_then_fail, "c": _note("c")}
    )
    assert outcomes["a"] == "noted a" and outcomes["c"] == "noted c"
    assert isinstance(outcomes["bad"], sqlite3.IntegrityError)
    assert _notes(storage) == ["a", "c", "holder"]  # nothing of 'bad', not even 'half'


def test_a_step_whose_lease_was_lost_fails_alone_in_a_shared_commit(tmp_path: Path) -> None:
    with App(db_url=f"sqlite:///{tmp_path / 'lease.db'}") as app:
        iid = app.start(gc_waits)
        storage = app.storage
        with storage.transaction() as db:
            db.execute("CREATE TABLE notes (who TEXT NOT NULL UNIQUE)")
        stale = StepWrite(iid, "nobody", 99, columns={"status": "failed"})
        outcomes = _run_while_a_commit_is_held(
            storage,
            {"stale": lambda db: storage.write_step(db, stale, _now()), "b": _note("b")},
        )
        assert isinstance(outcomes["stale"], LeaseLost)
        assert outcomes["b"] == "noted b"
        assert app.get_instance(iid)["status"] == "waiting_for_event"


def _now() -> Any:
    from eddic.clock import utcnow

    return utcnow()


@activity
def gc_reserve(order: int) -> str:
    return f"R{order}"


@activity
def gc_charge(order: int, reservation: str) -> str:
    return f"C{order}/{reservation}"


@workflow
def gc_order(ctx: WorkflowContext, order: int) -> list[str]:
    reservation = yield gc_reserve(order)
    charge = yield gc_charge(order, reservation)
    return [reservation, charge]


@workflow
def gc_waits(ctx: WorkflowContext, _: None = None) -> None:
    from eddic import WaitEvent

    yield WaitEvent("never")


def test_threads_starting_workflows_at_once_each_finish_with_every_record_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "threads.db"
    orders = list(range(120))
    ids: dict[int, str] = {}
    errors: list[BaseException] = []
    with App(db_url=f"sqlite:///{path}") as app:
        barrier = threading.Barrier(6)

        def starter(mine: list[int]) -> None:
            try:
                barrier.wait(10)
                for order in mine:
                    ids[order] = app.start(gc_order, input=order)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=starter, args=(orders[k::6],)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        for order in orders:
            assert app.result(ids[order]) == [f"R{order}", f"C{order}/R{order}"]
        commits = app.storage.commits
        assert commits.works >= 3 * len(orders)  # a start and two steps each, at least

    conn = sqlite3.connect(path)
    try:
        records = Counter(
            (iid, seq, record)
            for iid, seq, record in conn.execute("SELECT instance_id, seq, record FROM history")
        )
    finally:
        conn.close()
    assert len(records) == 4 * len(orders)  # two activities, scheduled and resolved
    assert set(records.values()) == {1}


def test_a_start_redone_after_another_writer_slipped_in_keeps_its_history_ids_right(
    tmp_path: Path,
) -> None:
    # A shared commit whose piece fails is rolled back and redone; between the two, another
    # process may insert an instance, so the redone start gets a different key.
    path = tmp_path / "redo.db"
    with App(db_url=f"sqlite:///{path}") as app:
        storage = app.storage
        real_run = storage.commits.run

        class Undo(Exception):
            pass

        def redone_once(fn: Callable[[Any], Any]) -> Any:
            storage.commits.run = real_run  # type: ignore[method-assign]
            with pytest.raises(Undo), storage.transaction() as db:
                fn(db)
                raise Undo
            with storage.transaction() as db:
                db.execute(
                    "INSERT INTO instances (instance_id, workflow_name, status, created_at, "
                    "updated_at) VALUES ('slipped-in', 'other', 'completed', 't', 't')"
                )
            return real_run(fn)

        storage.commits.run = redone_once  # type: ignore[method-assign]
        iid = app.start(gc_order, input=7)
        assert app.result(iid) == ["R7", "C7/R7"]
    conn = sqlite3.connect(path)
    try:
        (key,) = conn.execute("SELECT ikey FROM instances WHERE instance_id = ?", [iid]).fetchone()
        rows = conn.execute("SELECT id, pos FROM history WHERE instance_id = ?", [iid]).fetchall()
    finally:
        conn.close()
    assert len(rows) == 4
    assert all(row_id == key << 24 | pos for row_id, pos in rows)
