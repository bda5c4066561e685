from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg_server
import pytest

from eddic import App


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "eddic.db"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Tests of a module marked ``pytestmark = pytest.mark.both_backends`` get their ``app``
    # on an SQLite file and on PostgreSQL (a fresh schema of the session's real server).
    if "app" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", ["sqlite", "postgres"])


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def app(request: pytest.FixtureRequest, db_path: Path, backend: str) -> Iterator[App]:
    if backend == "postgres":
        url = str(request.getfixturevalue("postgres_schema_url"))
    else:
        url = f"sqlite:///{db_path}"
    with App(db_url=url, service_name="tests") as app:
        yield app


@pytest.fixture
def memory_app() -> Iterator[App]:
    with App(db_url="sqlite:///:memory:", service_name="tests") as app:
        yield app


@pytest.fixture
def sqlite_app(db_path: Path) -> Iterator[App]:
    """An App on an SQLite file, for tests that reach into SQLite's tables."""
    with App(db_url=f"sqlite:///{db_path}", service_name="tests") as app:
        yield app


@pytest.fixture
def databases(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[Any]:
    """``make(name) -> URL``: a fresh database per case (an SQLite file, or a schema of the
    session's PostgreSQL database, dropped at the end)."""
    schemas: list[str] = []
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        base = str(request.getfixturevalue("postgres_schemas_db"))

    def make(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        schemas.append(f"t_{secrets.token_hex(6)}")
        return pg_server.with_schema(base, schemas[-1])

    yield make
    if schemas:
        with server.admin(base) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
