"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from eddic import (
    ActivityFailed,
    App,
    InstanceExists,
    InstanceNotFound,
    UnknownWorkflow,
    WorkflowContext,
    activity,
    workflow,
)
from eddic.storage.sqlite.dbfile import StorageError

pytestmark = pytest.mark.both_backends


class Opaque:
    pass


@activity
def bad_returns_opaque() -> Any:
    return Opaque()


@activity
def bad_takes(value: Any) -> str:
    return "ran"


@workflow
def bad_unserialisable_result(ctx: WorkflowContext, _: None = None) -> str:
    try:
        yield bad_returns_opaque()
    except ActivityFailed as failure:
        return f"{failure.type}: {failure.message}"
    return "no error"


@workflow
def bad_unserialisable_argument(ctx: WorkflowContext, _: None = None) -> str:
    try:
        yield bad_takes(Opaque())
    except ActivityFailed as failure:
        return f"{failure.type}: {failure.message}"
    return "no error"


@workflow
def bad_yields_non_command(ctx: WorkflowContext, _: None = None) -> str:
    try:
        yield "not a command"
    except TypeError as exc:
        return str(exc)
    return "no error"


@workflow
def bad_returns_opaque_wf(ctx: WorkflowContext, _: None = None) -> Any:
    return Opaque()
    yield  # pragma: no cover


@workflow
def bad_typed(ctx: WorkflowContext, n: int) -> int:
    return n
    yield  # pragma: no cover


def test_invalid_input_raises_and_leaves_the_database_byte_for_byte_unchanged(
    sqlite_app: App, db_path: Path
) -> None:
    app = sqlite_app  # the file's bytes: SQLite's
    app.start(bad_typed, input=1)
    app.storage.close()
    before = db_path.read_bytes()
    app2 = App(db_url=f"sqlite:///{db_path}")
    with pytest.raises(pydantic.ValidationError):
        app2.start(bad_typed, input="not a number")
    app2.shutdown()
    assert db_path.read_bytes() == before


def test_an_unknown_workflow_name_is_refused(app: App) -> None:
    with pytest.raises(UnknownWorkflow, match="no workflow named 'nope'"):
        app.start("nope")
    assert app.list_instances() == []


def test_an_unserialisable_activity_result_fails_that_activity_with_a_clear_message(
    app: App,
) -> None:
    iid = app.start(bad_unserialisable_result)
    message = app.result(iid)
    assert "SerializationError" in message
    assert "bad_returns_opaque" in message and "cannot be serialised" in message
    history = app.history(iid)
    assert history[1]["failure"]["attempts"] == 1  # never retried
    assert history[1]["value"] is None


def test_an_unserialisable_argument_fails_the_call_without_running_it(app: App) -> None:
    iid = app.start(bad_unserialisable_argument)
    assert "cannot be serialised" in app.result(iid)


def test_an_unserialisable_workflow_result_fails_the_instance(app: App) -> None:
    iid = app.start(bad_returns_opaque_wf)
    info = app.get_instance(iid)
    assert info["status"] == "failed"
    assert "cannot be serialised" in info["error"]["message"]


def test_yielding_a_non_command_throws_a_type_error_naming_it(app: App) -> None:
    iid = app.start(bad_yields_non_command)
    assert "'not a command'" in app.result(iid)


def test_an_instance_id_taken_by_another_workflow_is_refused(app: App) -> None:
    app.start(bad_typed, input=1, instance_id="taken")
    with pytest.raises(InstanceExists, match="bad_typed"):
        app.start(bad_yields_non_command, instance_id="taken")


def test_unknown_instance_ids_raise_instance_not_found(app: App) -> None:
    with pytest.raises(InstanceNotFound):
        app.get_instance("missing")
    with pytest.raises(InstanceNotFound):
        app.result("missing")


def test_a_foreign_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n")
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not an SQLite database"):
        App(db_url=f"sqlite:///{path}").initialize()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_another_programs_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not an eddic one"):
        App(db_url=f"sqlite:///{path}").initialize()
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()
    assert not Path(f"{path}-writer").exists()


def test_a_corrupt_database_is_refused_and_left_untouched(sqlite_app: App, db_path: Path) -> None:
    app = sqlite_app  # a damaged file: SQLite's
    app.start(bad_typed, input=1)
    app.shutdown()
    data = bytearray(db_path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # trash the schema page after the header
    db_path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="corrupt"):
        App(db_url=f"sqlite:///{db_path}").initialize()
    assert db_path.read_bytes() == bytes(data)


def test_a_database_from_a_newer_schema_is_refused(sqlite_app: App, db_path: Path) -> None:
    app = sqlite_app  # PostgreSQL's newer schema: tests/postgres/test_store.py
    with app.storage.transaction() as db:
        db.execute("UPDATE eddic_meta SET value = '99' WHERE key = 'schema_version'")
    app.shutdown()
    before = db_path.read_bytes()
    with pytest.raises(StorageError, match="schema version 99"):
        App(db_url=f"sqlite:///{db_path}").initialize()
    assert db_path.read_bytes() == before


def test_a_read_only_database_is_refused(
    app: App, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.shutdown()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode)
    )
    with pytest.raises(StorageError, match="read-only"):
        App(db_url=f"sqlite:///{db_path}").initialize()


@pytest.mark.parametrize("url", ["mysql://localhost/x", "sqlite://x.db", "x.db", "http://h/x"])
def test_an_unsupported_db_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="postgresql://"):  # the message names what works
        App(db_url=url)


def test_a_postgres_url_without_the_extra_names_the_extra() -> None:
    # psycopg made unimportable, as on an install without eddic[postgres]
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from eddic import App\n"
        "try:\n"
        "    App(db_url='postgresql://u:secret-pw@localhost/x')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith("StorageError") and "eddic[postgres]" in out
    assert "secret-pw" not in out
