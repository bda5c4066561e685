"""A database file is used only as the eddic database it was checked to be.

Every connection opens the file ``open()`` checked, or none: a file moved, deleted or replaced
under a running App is never re-created or adopted; ``file:`` URIs and query strings are refused;
a healthy database in a folder the reader cannot write is readable, and what is wrong with a
damaged one is said plainly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eddic import App, WorkflowContext, activity, cli, workflow
from eddic.storage import Storage
from eddic.storage.sqlite.dbfile import StorageError, check_file, parse_db_url
from eddic.storage.sqlite.dbview import ReadOnlyDatabase

NOBODY = 65534


@activity
def dbsafe_step() -> str:
    return "done"


@workflow
def dbsafe_flow(ctx: WorkflowContext, _: None = None) -> str:
    return (yield dbsafe_step())


def _in_new_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a fresh thread, which opens a fresh connection; its result or its error."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as exc:
            out.append(("raised", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    kind, value = out[0]
    if kind == "raised":
        raise value
    return value


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- 1. moved, deleted or replaced under a running App ------------------------------------------


def test_a_database_moved_away_is_not_recreated_by_a_new_connection(
    app: App, db_path: Path, tmp_path: Path
) -> None:
    iid = app.start(dbsafe_flow)
    moved = tmp_path / "moved.db"
    os.rename(db_path, moved)
    with pytest.raises(StorageError, match=rf"{db_path}.*moved or deleted"):
        _in_new_thread(lambda: app.get_instance(iid))
    with pytest.raises(StorageError, match="moved or deleted"):
        _in_new_thread(lambda: app.start(dbsafe_flow))
    assert not db_path.exists()
    app.shutdown()
    # SQLite does not checkpoint a moved file on close: its last writes stay in the -wal at the
    # old path, which an empty file created there would have deleted. Moving it back restores all.
    assert not db_path.exists() and Path(f"{db_path}-wal").stat().st_size > 0
    os.rename(moved, db_path)
    with App(db_url=f"sqlite:///{db_path}") as again:
        assert again.get_instance(iid)["status"] == "completed"
        assert len(again.list_instances()) == 1


def test_a_database_replaced_under_a_running_app_is_left_alone(
    app: App, db_path: Path, tmp_path: Path
) -> None:
    app.start(dbsafe_flow)
    other = tmp_path / "other.db"
    with App(db_url=f"sqlite:///{other}") as stranger:
        stranger.start(dbsafe_flow)
    before = other.read_bytes()
    os.replace(other, db_path)
    with pytest.raises(StorageError, match=rf"{db_path}.*replaced"):
        _in_new_thread(lambda: app.start(dbsafe_flow))
    app.shutdown()
    assert db_path.read_bytes() == before


def test_a_forked_child_recreates_neither_a_moved_database_nor_its_writer_lock(
    app: App, db_path: Path, tmp_path: Path
) -> None:
    app.start(dbsafe_flow)  # the parent holds a connection and the lock file open
    lock = Path(f"{db_path}-writer")
    os.rename(db_path, tmp_path / "moved.db")
    os.rename(lock, tmp_path / "moved.db-writer")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            app.start(dbsafe_flow)
        except StorageError as exc:
            code = 0 if str(db_path) in str(exc) else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not db_path.exists() and not lock.exists()


def test_a_forked_child_whose_database_was_replaced_does_not_write_it(
    app: App, db_path: Path, tmp_path: Path
) -> None:
    app.start(dbsafe_flow)
    other = tmp_path / "other.db"
    with App(db_url=f"sqlite:///{other}") as stranger:
        stranger.start(dbsafe_flow)
    before = other.read_bytes()
    os.replace(other, db_path)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            app.start(dbsafe_flow)
        except StorageError as exc:
            code = 0 if "replaced" in str(exc) else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    app.shutdown()
    assert db_path.read_bytes() == before


_DIE_WITH_A_WAL = """
import os, sys
from eddic import App
app = App(db_url="sqlite:///" + sys.argv[1])
app.initialize()
app.storage._db().execute("PRAGMA wal_autocheckpoint = 0")
with app.storage.transaction() as db:
    db.execute("INSERT INTO eddic_meta (key, value) VALUES ('note', 'only in the wal')")
os._exit(0)  # no close, no checkpoint: the write lives only in the -wal
"""


def _database_with_a_wal(path: Path) -> None:
    subprocess.run([sys.executable, "-c", _DIE_WITH_A_WAL, str(path)], check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0


@pytest.mark.parametrize("main_file", ["deleted", "emptied"])
def test_a_wal_left_without_its_database_is_refused_and_kept(db_path: Path, main_file: str) -> None:
    _database_with_a_wal(db_path)
    if main_file == "deleted":
        db_path.unlink()
    else:
        db_path.write_bytes(b"")
    Path(f"{db_path}-shm").unlink()
    wal = Path(f"{db_path}-wal")
    before = wal.read_bytes()
    with pytest.raises(StorageError, match=rf"{db_path}.*-wal"):
        App(db_url=f"sqlite:///{db_path}").initialize()
    assert wal.read_bytes() == before  # SQLite would have deleted it, opening an empty file
    assert db_path.exists() == (main_file == "emptied")


def test_a_relative_db_url_keeps_naming_the_file_it_named_at_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with App(db_url="sqlite:///rel.db") as app:
        iid = app.start(dbsafe_flow)
        monkeypatch.chdir(elsewhere)
        assert _in_new_thread(lambda: app.get_instance(iid))["status"] == "completed"
    assert _files(elsewhere) == []


def test_a_storage_never_opened_makes_no_connection(tmp_path: Path) -> None:
    store = Storage(f"sqlite:///{tmp_path / 'never.db'}")
    with pytest.raises(StorageError, match="open"), store.transaction():
        pass
    with pytest.raises(StorageError, match="open"), store.reading():
        pass
    assert _files(tmp_path) == []


def test_a_writer_lock_that_is_not_a_plain_file_is_refused(db_path: Path) -> None:
    with App(db_url=f"sqlite:///{db_path}"):  # creates the database; closed (checkpointed)
        pass  # now, not whenever its connection is collected, which would change the file
    lock = Path(f"{db_path}-writer")
    lock.unlink()
    lock.symlink_to(db_path)  # its flock, and closing it, would act on the database itself
    before = db_path.read_bytes()
    app = App(db_url=f"sqlite:///{db_path}")
    with pytest.raises(StorageError, match=rf"{lock}.*not a plain file"):
        app.initialize()
    app.shutdown()
    assert db_path.read_bytes() == before


# -- 2. what a db_url may name ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///file:other.db",
        "sqlite:///FILE:other.db",
        "sqlite:///file:///tmp/other.db",
        "sqlite:///x.db?mode=ro",
        "sqlite:////tmp/x.db?mode=rwc",
        "sqlite:///x.db?",
        "sqlite:///x.db#part",
        "sqlite:///x\x00.db",
    ],
)
def test_file_uris_and_query_strings_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///relative\.db"):
        parse_db_url(url)
    with pytest.raises(ValueError):
        App(db_url=url)
    with pytest.raises(ValueError):
        ReadOnlyDatabase(url)


def test_a_file_uri_cannot_reach_another_programs_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conn = sqlite3.connect("other.db")
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = (tmp_path / "other.db").read_bytes()
    with pytest.raises(ValueError, match="file: URI"):
        App(db_url="sqlite:///file:other.db").initialize()
    assert (tmp_path / "other.db").read_bytes() == before
    assert _files(tmp_path) == ["other.db"]


@pytest.mark.parametrize("name", ["50%25.db", "a b.db", "ü.db", "x:y.db", "file:inside.db"])
def test_a_path_is_opened_as_exactly_that_path(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    with App(db_url=f"sqlite:///{folder / name}") as app:
        iid = app.start(dbsafe_flow)
        assert _in_new_thread(lambda: app.get_instance(iid))["status"] == "completed"
    assert name in _files(folder)
    with ReadOnlyDatabase(f"sqlite:///{folder / name}") as view:
        assert [i["instance_id"] for i in view.list_instances()] == [iid]


def test_a_folder_given_as_the_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=rf"{tmp_path}.*not a plain file"):
        App(db_url=f"sqlite:///{tmp_path}").initialize()
    with pytest.raises(StorageError, match="not a plain file"):
        ReadOnlyDatabase(f"sqlite:///{tmp_path}")


def test_a_fifo_given_as_the_database_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def initialize() -> None:
        try:
            App(db_url=f"sqlite:///{fifo}").initialize()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=initialize, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # blocked opening the fifo for reading: let it go, and fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail("opening a fifo as the database blocked")
    assert isinstance(outcome[0], StorageError) and "not a plain file" in str(outcome[0])


# -- 3. a folder the reader cannot write --------------------------------------------------------


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder outside pytest's (private) tmp tree, so that another user can reach it."""
    folder = Path(tempfile.mkdtemp(prefix="eddic-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def _as_a_user_who_cannot_write(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a forked child without write permission on root-owned files: as 'nobody'
    when the tests run as root (root ignores permissions). Returns its result; re-raises a
    StorageError as one; skips when privileges cannot be dropped."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            result: list[Any] = ["ok", None]
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
            except OSError as exc:
                result = ["skip", f"cannot drop root privileges to test permissions: {exc}"]
            else:
                try:
                    result = ["ok", fn()]
                except BaseException as exc:
                    result = ["raised", type(exc).__name__, str(exc)]
            data = json.dumps(result).encode()
            while data:
                data = data[os.write(write, data) :]
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    outcome = json.loads(b"".join(chunks))
    if outcome[0] == "skip":
        pytest.skip(outcome[1])
    if outcome[0] == "raised":
        if outcome[1] == "StorageError":
            raise StorageError(outcome[2])
        pytest.fail(f"{outcome[1]}: {outcome[2]}")
    return outcome[1]


def _healthy_database(folder: Path) -> tuple[Path, str]:
    path = folder / "eddic.db"
    with App(db_url=f"sqlite:///{path}") as app:
        iid = app.start(dbsafe_flow)
    path.chmod(0o644)
    return path, iid


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_eddic_list_reads_a_healthy_database_in_a_read_only_folder(shared_folder: Path) -> None:
    path, iid = _healthy_database(shared_folder)
    assert _files(shared_folder) == ["eddic.db", "eddic.db-writer"]  # no -wal, no -shm left
    shared_folder.chmod(0o555)

    def read() -> Any:
        with ReadOnlyDatabase(f"sqlite:///{path}") as view:
            ids = [i["instance_id"] for i in view.list_instances()]
            status = view.instance(iid)["status"]
        return ids, status, _cli("list", "--db", str(path))

    ids, status, (code, out, err) = _as_a_user_who_cannot_write(read)
    assert ids == [iid] and status == "completed"
    assert code == 0 and iid in out and err == ""


def test_a_read_only_folder_is_named_as_such_when_opening_for_writing(
    shared_folder: Path,
) -> None:
    path, _ = _healthy_database(shared_folder)
    shared_folder.chmod(0o555)
    with pytest.raises(StorageError, match="read-only") as raised:
        _as_a_user_who_cannot_write(lambda: App(db_url=f"sqlite:///{path}").initialize())
    assert str(path) in str(raised.value) and "corrupt" not in str(raised.value)


def test_uncheckpointed_writes_in_a_read_only_folder_are_explained(shared_folder: Path) -> None:
    path = shared_folder / "eddic.db"
    _database_with_a_wal(path)
    Path(f"{path}-shm").unlink()  # a reader would have to create it, and cannot
    for name in _files(shared_folder):
        (shared_folder / name).chmod(0o644)
    shared_folder.chmod(0o555)
    with pytest.raises(StorageError, match="not writable") as raised:
        _as_a_user_who_cannot_write(lambda: ReadOnlyDatabase(f"sqlite:///{path}").close())
    message = str(raised.value)
    assert str(path) in message and "-wal" in message and "corrupt" not in message


def test_an_unreadable_database_is_named_as_such(shared_folder: Path) -> None:
    path, _ = _healthy_database(shared_folder)
    path.chmod(0o600)
    with pytest.raises(StorageError, match="permission") as raised:
        _as_a_user_who_cannot_write(lambda: ReadOnlyDatabase(f"sqlite:///{path}").close())
    assert "corrupt" not in str(raised.value)


# -- 4. a damaged schema version ----------------------------------------------------------------

_NULL_VERSION = (
    "ALTER TABLE eddic_meta RENAME TO old_meta",
    "CREATE TABLE eddic_meta (key TEXT PRIMARY KEY, value TEXT)",
    "INSERT INTO eddic_meta SELECT * FROM old_meta",
    "DROP TABLE old_meta",
    "UPDATE eddic_meta SET value = NULL WHERE key = 'schema_version'",
)


@pytest.mark.parametrize(
    "damage",
    [
        ("UPDATE eddic_meta SET value = 'x' WHERE key = 'schema_version'",),
        ("UPDATE eddic_meta SET value = '' WHERE key = 'schema_version'",),
        ("UPDATE eddic_meta SET value = '0' WHERE key = 'schema_version'",),
        ("UPDATE eddic_meta SET value = '-1' WHERE key = 'schema_version'",),
        ("UPDATE eddic_meta SET value = '2.5' WHERE key = 'schema_version'",),
        ("UPDATE eddic_meta SET value = x'32' WHERE key = 'schema_version'",),
        ("DELETE FROM eddic_meta WHERE key = 'schema_version'",),
        _NULL_VERSION,
    ],
    ids=["text", "blank", "zero", "negative", "fraction", "blob", "deleted", "null"],
)
def test_a_damaged_schema_version_is_refused_and_left_untouched(
    db_path: Path, damage: tuple[str, ...]
) -> None:
    with App(db_url=f"sqlite:///{db_path}") as app:
        app.start(dbsafe_flow)
    conn = sqlite3.connect(db_path)
    for statement in damage:
        conn.execute(statement)
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StorageError, match=rf"{db_path}.*schema version"):
        App(db_url=f"sqlite:///{db_path}").initialize()
    with pytest.raises(StorageError, match=rf"{db_path}.*schema version"):
        ReadOnlyDatabase(f"sqlite:///{db_path}")
    assert db_path.read_bytes() == before


def test_check_file_names_the_identity_it_checked(db_path: Path) -> None:
    assert check_file(str(db_path)) is None  # nothing there yet: open() creates it
    App(db_url=f"sqlite:///{db_path}").initialize()
    st = db_path.stat()
    assert check_file(str(db_path)) == (st.st_dev, st.st_ino)
