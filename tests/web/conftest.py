from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from eddic import App
from eddic.web import create_app

BASE = "http://127.0.0.1:8765"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # ``pytestmark = pytest.mark.both_backends``: the module's ``app`` on SQLite and PostgreSQL
    if "app" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", ["sqlite", "postgres"])


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[App]:
    if backend == "postgres":
        url = str(request.getfixturevalue("postgres_schema_url"))
    else:
        url = f"sqlite:///{tmp_path / 'viewer.db'}"
    with App(db_url=url, service_name="viewer-tests") as app:
        yield app


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    """The viewer of ``app``'s database (opened by URL, as ``eddic ui --db`` does), over HTTP."""
    with TestClient(create_app(app.storage.db_url), base_url=BASE) as client:
        yield client
