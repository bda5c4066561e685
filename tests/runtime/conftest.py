from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
