"""Storage's transactions: all or nothing, and the writer lock is given back whatever happens."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eddic.storage import Storage


@pytest.fixture(params=["file", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    url = f"sqlite:///{tmp_path / 'tx.db'}" if request.param == "file" else "sqlite:///:memory:"
    store = Storage(url)
    store.open()
    with store.transaction() as db:
        db.execute("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        # A deferred foreign key is checked at COMMIT: the way to make COMMIT itself fail.
        db.execute(
            "CREATE TABLE children (parent INTEGER REFERENCES parents (id) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
    yield store
    store.close()


def rows(storage: Storage, table: str) -> list[int]:
    with storage.reading() as db:
        return [r[0] for r in db.execute(f"SELECT * FROM {table}")]


def can_write_from_another_thread(storage: Storage) -> bool:
    """True when another thread gets the writer lock and commits within a few seconds."""
    done = threading.Event()

    def write() -> None:
        with storage.transaction() as db:
            db.execute("INSERT INTO parents (id) VALUES (99)")
        done.set()

    threading.Thread(target=write, daemon=True).start()
    return done.wait(5)


def test_a_committed_transaction_writes_everything(storage: Storage) -> None:
    with storage.transaction() as db:
        db.execute("INSERT INTO parents (id) VALUES (1)")
        db.execute("INSERT INTO children (parent) VALUES (1)")
    assert rows(storage, "parents") == [1]
    assert rows(storage, "children") == [1]


def test_a_body_that_raises_writes_nothing_and_gives_the_lock_back(storage: Storage) -> None:
    with pytest.raises(RuntimeError, match="halfway"), storage.transaction() as db:
        db.execute("INSERT INTO parents (id) VALUES (1)")
        raise RuntimeError("halfway")
    assert not storage._db().conn.in_transaction
    assert rows(storage, "parents") == []
    assert can_write_from_another_thread(storage)
    assert rows(storage, "parents") == [99]


def test_a_commit_that_fails_is_rolled_back_and_gives_the_lock_back(storage: Storage) -> None:
    failing = pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY")
    with failing, storage.transaction() as db:
        db.execute("INSERT INTO parents (id) VALUES (1)")
        db.execute("INSERT INTO children (parent) VALUES (7)")  # no parent 7
    # SQLite leaves the transaction open when COMMIT fails; left so, the next BEGIN would fail.
    assert not storage._db().conn.in_transaction
    assert rows(storage, "parents") == []
    assert rows(storage, "children") == []
    assert can_write_from_another_thread(storage)
    with storage.transaction() as db:
        db.execute("INSERT INTO parents (id) VALUES (2)")
    assert rows(storage, "parents") == [2, 99]


def test_a_read_that_raises_ends_its_transaction(storage: Storage) -> None:
    with pytest.raises(ZeroDivisionError), storage.reading() as db:
        db.execute("SELECT count(*) FROM parents").fetchone()
        _ = 1 / 0
    assert not storage._db().conn.in_transaction
    assert can_write_from_another_thread(storage)
