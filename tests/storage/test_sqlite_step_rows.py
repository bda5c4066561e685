"""SQLite's step rows as written by the inline path's cheaper statements (issue 14 item 8):
history in pairs, the lease checked by the first history INSERT of a step that changes no
instance column, times as texts without ``%`` formatting, and a commit that no other thread
shares going straight to the writer. What is stored must be what the one-statement-per-row
code stored, and a lost lease must still write nothing."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from eddic.clock import to_text
from eddic.storage import LeaseLost, StepWrite, Storage

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
IID = "rows-1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Storage]:
    storage = Storage(f"sqlite:///{tmp_path / 'rows.db'}")
    storage.open()
    yield storage
    storage.close()


def _row(iid: str = IID) -> dict[str, Any]:
    return {
        "instance_id": iid,
        "workflow_name": "wf",
        "status": "running",
        "input_data": '"in"',
        "created_at": T0,
        "updated_at": T0,
        "started_at": T0,
        "service_name": "rows",
        "lock_timeout_seconds": None,
        "lock_owner": "w1",
        "lock_epoch": 1,
        "lock_expires_at": T0 + timedelta(minutes=5),
    }


def _record(pos: int, kind: str, when: datetime) -> tuple[Any, ...]:
    """A history record of each kind the SQLite rows distinguish."""
    if kind == "scheduled":
        return (
            IID,
            pos,
            pos,
            "scheduled",
            "activity",
            f"act{pos}",
            f'["a{pos}"]',
            when,
            None,
            None,
            None,
        )
    if kind == "scheduled_deadline":
        due = when + timedelta(seconds=pos)
        return (IID, pos, pos, "scheduled", "timer", f"t{pos}", "{}", when, due, None, None)
    if kind == "value":
        return (IID, pos, pos - 1, "resolved", None, None, None, when, None, f'"v{pos}"', None)
    if kind == "failure":
        return (IID, pos, pos - 1, "resolved", None, None, None, when, None, None, f'{{"e":{pos}}}')
    assert kind == "cancel"
    return (IID, pos, 0, "cancel", None, None, None, when, None, '"why"', None)


def _expected(key: int, record: tuple[Any, ...]) -> tuple[Any, ...]:
    iid, pos, seq, kind, what, name, args, when, due, value, failure = record
    return (
        key << 24 | pos,
        iid,
        pos,
        seq,
        kind,
        what,
        name,
        args,
        to_text(when),
        to_text(due),
        value,
        failure,
    )


def _stored(store: Storage) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(
            "SELECT id, instance_id, pos, seq, record, kind, name, args, at, deadline, value, "
            "failure FROM history ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


KINDS = ["scheduled", "scheduled_deadline", "value", "failure", "cancel"]


@pytest.mark.parametrize("seed", range(6))
def test_history_rows_of_every_kind_and_count_are_stored_as_recorded(
    store: Storage, seed: int
) -> None:
    draw = random.Random(seed)
    pos = 1
    first = StepWrite(IID, "w1", 1, columns={"status": "running", "updated_at": T0})
    first.history = [_record(pos, draw.choice(KINDS), T0)]
    _, key = store.create(_row(), first, T0, check_taken=False)
    expected = [_expected(key, first.history[0])]
    # counts of 1, 2 (one statement), 3 and 5 (pairs, then one); columns changed or not (the
    # lease checked by the UPDATE, or by the first history INSERT)
    for n, count in enumerate([1, 2, 3, 5, 2, 1, 4]):
        now = T0 + timedelta(seconds=n + 1, microseconds=draw.randrange(10**6))
        step = StepWrite(IID, "w1", 1, key)
        for _ in range(count):
            pos += 1
            step.history.append(_record(pos, draw.choice(KINDS), now))
        if draw.random() < 0.5:
            step.columns = {"updated_at": now, "wake_at": None}
        store.commit_step(step, now)
        expected += [_expected(key, r) for r in step.history]
    assert _stored(store) == expected


def _take_over(store: Storage) -> None:
    conn = sqlite3.connect(store.path)
    try:
        with conn:
            conn.execute("UPDATE instances SET lock_owner = 'w2', lock_epoch = 2")
    finally:
        conn.close()


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("columns", [False, True])
def test_a_step_of_a_lost_lease_writes_nothing(store: Storage, count: int, columns: bool) -> None:
    first = StepWrite(IID, "w1", 1, history=[_record(1, "scheduled", T0)])
    _, key = store.create(_row(), first, T0, check_taken=False)
    before = _stored(store)
    _take_over(store)
    step = StepWrite(IID, "w1", 1, key)
    step.history = [_record(2 + i, KINDS[i % len(KINDS)], T0) for i in range(count)]
    step.attempts = [(2, 1, 1, T0, '"boom"')]
    if columns:
        step.columns = {"status": "completed", "updated_at": T0}
    with pytest.raises(LeaseLost):
        store.commit_step(step, T0)
    assert _stored(store) == before
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (0,)
        assert conn.execute("SELECT status, lock_owner FROM instances").fetchone() == (
            "running",
            "w2",
        )
    finally:
        conn.close()
    # the new holder's step goes in
    step = StepWrite(IID, "w2", 2, key, history=[_record(2, "value", T0)])
    store.commit_step(step, T0)
    assert len(_stored(store)) == 2


def _reference_text(when: datetime) -> str:
    u = when.astimezone(timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00" % (  # noqa: UP031
        u.year,
        u.month,
        u.day,
        u.hour,
        u.minute,
        u.second,
        u.microsecond,
    )


def test_time_texts_are_the_fixed_width_iso_texts() -> None:
    draw = random.Random(14)
    zones = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11))]
    low = datetime(2, 1, 1, tzinfo=timezone.utc)
    span = int((datetime(9998, 12, 31, tzinfo=timezone.utc) - low).total_seconds())
    whens = [
        datetime(1970, 1, 1, tzinfo=timezone.utc),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
        T0,  # microsecond 0: still six digits
    ]
    for _ in range(20_000):
        when = low + timedelta(seconds=draw.randrange(span), microseconds=draw.randrange(10**6))
        whens.append(when.astimezone(draw.choice(zones)))
        # close together, as a step's times are (the text up to the minute is kept)
        whens.append(T0 + timedelta(microseconds=draw.randrange(10**9)))
    for when in whens:
        assert to_text(when) == _reference_text(when), when
        assert to_text(when) == _reference_text(when), when  # the last one, remembered
    assert to_text(None) is None


def test_time_texts_under_freezegun() -> None:
    freezegun = pytest.importorskip("freezegun")
    with freezegun.freeze_time("2026-03-04 05:06:07.000008"):
        from eddic.clock import utcnow

        assert to_text(utcnow()) == "2026-03-04T05:06:07.000008+00:00"


def test_every_commit_goes_through_storage_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The crash harness (tests/crash/worker.py) wraps Storage.transaction to die right after a
    # commit: a commit alone, taking the writer directly, must still go through it.
    real = Storage.transaction
    seen: list[str] = []

    @contextlib.contextmanager
    def counted(self: Storage) -> Iterator[Any]:
        with real(self) as db:
            yield db
        seen.append("committed")

    monkeypatch.setattr(Storage, "transaction", counted)
    store = Storage(f"sqlite:///{tmp_path / 'hooked.db'}")
    store.open()
    try:
        seen.clear()
        first = StepWrite(IID, "w1", 1, history=[_record(1, "scheduled", T0)])
        _, key = store.create(_row(), first, T0, check_taken=False)
        store.commit_step(StepWrite(IID, "w1", 1, key, history=[_record(2, "value", T0)]), T0)
        assert seen == ["committed", "committed"]
        assert len(_stored(store)) == 2
    finally:
        store.close()


def test_a_commit_alone_that_raises_writes_nothing_and_leaves_the_writer_free(
    store: Storage,
) -> None:
    with store.transaction() as db:
        db.execute("CREATE TABLE notes (who TEXT NOT NULL)")

    def half(db: Any) -> None:
        db.execute("INSERT INTO notes (who) VALUES ('half')")
        raise KeyError("boom")

    with pytest.raises(KeyError):
        store.commits.run(half)
    assert not store.commits._leading
    # another thread commits at once: nothing is left holding the writer or the lead
    done: list[str] = []
    thread = threading.Thread(
        target=lambda: done.append(
            store.commits.run(lambda db: db.execute("INSERT INTO notes VALUES ('b')") and "b")
        )
    )
    thread.start()
    thread.join(10)
    assert done == ["b"]
    with store.reading() as db:
        assert [r[0] for r in db.execute("SELECT who FROM notes")] == ["b"]
