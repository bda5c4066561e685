"""Fixtures of the PostgreSQL backend's own tests (the server's are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eddic.storage.postgres.store import PostgresStorage


@pytest.fixture
def store(postgres_schema_url: str) -> Iterator[PostgresStorage]:
    """A store on a fresh schema whose pool holds one connection, reused by every unit."""
    s = PostgresStorage(postgres_schema_url, max_connections=1)
    s.open()
    yield s
    s.close()
