"""Fixtures for tests on a real PostgreSQL server (what each gives: tests/pg_server.py).

Nothing here runs until a test asks for one of them: a session without PostgreSQL tests starts
no server and imports no driver.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pg_server
import pytest


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg_server.Server]:
    """The session's server: ``EDDIC_TEST_POSTGRES_URL``'s, or one embedded server."""
    with pg_server.serving() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: pg_server.Server) -> str:
    """The URL of the session server's ``postgres`` database (shared by every test)."""
    return postgres_server.url


@pytest.fixture
def postgres_db_url(postgres_server: pg_server.Server) -> Iterator[str]:
    """A database of this test's own, dropped after it."""
    postgres_server.start()  # a no-op unless an earlier test left the server stopped
    url = postgres_server.create_database()
    yield url
    postgres_server.start()
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def postgres_schemas_db(postgres_server: pg_server.Server) -> Iterator[str]:
    """The database that holds postgres_schema_url's schemas."""
    url = postgres_server.create_database(f"eddic_tests_{secrets.token_hex(4)}")
    yield url
    postgres_server.start()
    postgres_server.drop_database(url)


@pytest.fixture
def postgres_schema_url(
    postgres_server: pg_server.Server, postgres_schemas_db: str
) -> Iterator[str]:
    """A schema of this test's own (``?schema=``, made by eddic), dropped after it."""
    postgres_server.start()
    schema = f"t_{secrets.token_hex(6)}"
    yield pg_server.with_schema(postgres_schemas_db, schema)
    postgres_server.start()
    with postgres_server.admin(postgres_schemas_db) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
