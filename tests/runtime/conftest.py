from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eddic import App


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "eddic.db"


@pytest.fixture
def app(db_path: Path) -> Iterator[App]:
    with App(db_url=f"sqlite:///{db_path}", service_name="tests") as app:
        yield app


@pytest.fixture
def memory_app() -> Iterator[App]:
    with App(db_url="sqlite:///:memory:", service_name="tests") as app:
        yield app
