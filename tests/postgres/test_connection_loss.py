"""Connection loss on a real PostgreSQL server: cut connections, a COMMIT whose reply never
arrives, a server stopped and restarted under ``serve()``, and workers on two "hosts".

What design §6 promises and these tests hold it to: a lost connection is retried with backoff;
a step is committed once or redone, never half-done or doubled; a server restart during a run
is survived by every worker with no operator action; serving workers LISTEN, so a NOTIFY after
the restart still wakes them. Every activity body appends a line to an effects file
(``conn_loss_flows.record_effect``): no ``(instance, seq)`` may appear twice, and each
instance's history must hold exactly one outcome per command.

The tools are real: ``pg_terminate_backend`` through the server fixture, a deferred constraint
trigger that keeps a ``COMMIT`` busy in the server (so it can be cut there), a TCP relay that
swallows the server's reply to a ``COMMIT`` that did commit (``CommitCutter``), the embedded
server's ``stop``/``start`` in every mode, and network namespaces for the two hosts. Times are
printed (``pytest -s``); only generous liveness bounds are asserted.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pg_server
import pytest
from conn_loss_flows import cl_hosts_flow, record_effect

from eddic import (
    ActivityContext,
    App,
    Sleep,
    WaitEvent,
    WorkflowContext,
    activity,
    workflow,
)
from eddic.storage import StorageError
from eddic.storage.postgres import units as pg_units

LIVENESS = 30.0  # seconds: a generous bound on anything that should take well under one


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects"
    monkeypatch.setenv("EDDIC_CL_EFFECTS", str(path))
    return path


def effect_counts(path: Path) -> Counter[tuple[str, int]]:
    """How many times each ``(instance, seq)``'s body ran."""
    if not path.exists():
        return Counter()
    return Counter(
        (f[0], int(f[1])) for f in (line.split() for line in path.read_text().split("\n")) if f
    )


def assert_each_outcome_once(app: App, iid: str) -> None:
    """One scheduled record per seq, and one outcome (resolved) for each."""
    history = app.history(iid)
    per_seq = Counter((h["seq"], h["record"]) for h in history)
    seqs = {h["seq"] for h in history}
    for seq in seqs:
        assert per_seq[(seq, "scheduled")] == 1, (iid, seq, history)
        assert per_seq[(seq, "resolved")] == 1, (iid, seq, history)


def wait_until(what: str, done: Callable[[], bool], bound: float = LIVENESS) -> float:
    """Poll ``done`` until it holds; the seconds it took (fails after ``bound``)."""
    began = time.monotonic()
    while not done():
        assert time.monotonic() - began < bound, f"{what}: not within {bound} s"
        time.sleep(0.02)
    return time.monotonic() - began


def finished(app: App, ids: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        return all(app.get_instance(i)["status"] == "completed" for i in ids)

    return check


@contextlib.contextmanager
def serving(app: App, threads: int) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=app.serve, kwargs={"threads": threads}, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        app.stop()
        thread.join(LIVENESS)
        assert not thread.is_alive(), "serve() did not return after stop()"


def controllable(server: pg_server.Server) -> pg_server.EmbeddedServer:
    if not isinstance(server, pg_server.EmbeddedServer):
        pytest.skip(f"{pg_server.ENV_URL} names a server these tests cannot stop or restart")
    return server


# -- 1. a connection cut in the middle of a step -----------------------------------------------

#: what the cutting activity needs: the server and the test's database
CUT: dict[str, Any] = {}


@activity
def cl_cut_connections(ctx: ActivityContext, n: int) -> int:
    """Ends every connection of this test's database while the step runs (the worker's pool
    included), so the commit of this step's outcome meets a dead connection."""
    record_effect(ctx)
    server: pg_server.Server = CUT["server"]
    CUT.setdefault("pids", []).extend(server.terminate_backends(database=CUT["database"]))
    return n * 10


@activity
def cl_plain(ctx: ActivityContext, n: int) -> int:
    record_effect(ctx)
    return n + 1


@workflow
def cl_cut_flow(ctx: WorkflowContext, n: int) -> int:
    cut = yield cl_cut_connections(n)
    return int((yield cl_plain(cut)))


@workflow
def cl_cut_later(ctx: WorkflowContext, n: int) -> int:
    """The same, after a timer: start() returns at once and the serving worker runs it."""
    yield Sleep(0.2)
    cut = yield cl_cut_connections(n)
    return int((yield cl_plain(cut)))


@pytest.mark.parametrize("threads", [0, 4], ids=["inline-start", "serve-threads-4"])
def test_a_connection_cut_mid_step_commits_the_outcome_once(
    postgres_server: pg_server.Server, postgres_db_url: str, effects: Path, threads: int
) -> None:
    CUT.clear()
    CUT.update(server=postgres_server, database=postgres_db_url)
    with App(db_url=postgres_db_url, timer_poll_interval=0.2) as app:
        if threads == 0:  # start() runs it in this thread: the step's commit is retried here
            ids = [app.start(cl_cut_flow, input=1)]
        else:
            ids = [app.start(cl_cut_later, input=i) for i in range(6)]
            with serving(app, threads):
                took = wait_until("instances whose connections were cut", finished(app, ids))
            print(f"\n{len(ids)} instances, connections cut {len(CUT['pids'])} times: {took:.2f} s")
        for i, iid in enumerate(ids):
            n = 1 if threads == 0 else i
            assert app.result(iid) == n * 10 + 1
            assert_each_outcome_once(app, iid)
    assert CUT["pids"], "the activity cut no connection: the test tested nothing"
    counts = effect_counts(effects)
    assert set(counts.values()) == {1}, counts  # the commit was retried, no body ran again
    assert len(counts) == 2 * len(ids)


# -- 1b. a COMMIT cut while the server runs it: aborted, so run again (once) --------------------

SLOW_COMMIT = """
CREATE FUNCTION eddic.cl_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER cl_slow_commit AFTER INSERT ON eddic.history
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.record = 'resolved')
    EXECUTE FUNCTION eddic.cl_slow_commit();
"""


@activity
def cl_once(ctx: ActivityContext, n: int) -> int:
    record_effect(ctx)
    return n * 3


@workflow
def cl_commit_flow(ctx: WorkflowContext, n: int) -> int:
    return int((yield cl_once(n)))


def test_a_commit_cut_inside_the_server_is_redone_once(
    postgres_server: pg_server.Server, postgres_db_url: str, effects: Path
) -> None:
    """The outcome's COMMIT runs a deferred trigger that sleeps in the server; the backend is
    terminated right then, so COMMIT was sent and never answered, and the transaction aborted.
    pg_xact_status says so, and the unit runs again: one outcome, the body once."""
    database = pg_server._database_of(postgres_db_url)
    killed: list[int] = []
    stop = threading.Event()

    def cut_in_commit() -> None:
        with postgres_server.admin() as conn:
            while not stop.is_set() and not killed:
                row = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query = 'COMMIT' "
                    "AND state = 'active' AND wait_event = 'PgSleep'",
                    [database],
                ).fetchone()
                if row is None:
                    time.sleep(0.005)
                    continue
                conn.execute("SELECT pg_terminate_backend(%s, 5000)", [row[0]])
                killed.append(row[0])

    with App(db_url=postgres_db_url) as app:
        with postgres_server.admin(postgres_db_url) as conn:
            conn.execute(SLOW_COMMIT)
        cutter = threading.Thread(target=cut_in_commit, daemon=True)
        cutter.start()
        try:
            iid = app.start(cl_commit_flow, input=5)
        finally:
            stop.set()
            cutter.join(LIVENESS)
        assert killed, "no COMMIT was cut: the test tested nothing"
        assert app.result(iid) == 15
        assert_each_outcome_once(app, iid)
    assert effect_counts(effects) == {(iid, 1): 1}


# -- 1c. a COMMIT that landed but whose reply was lost: not run again ---------------------------


class CommitCutter:
    """A TCP relay in front of the server. Armed, it swallows the server's reply to the next
    ``COMMIT`` and closes that connection both ways: the transaction has committed and its
    client never hears so (what ``pg_xact_status`` is for). With ``hold``, the relay then
    refuses new connections (closing them at once, as a server away would) until ``release``.
    """

    _COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # CommandComplete "COMMIT"

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._lock = threading.Lock()
        self._armed = False
        self._hold_after = False
        self.holding = threading.Event()
        self.cut = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, name="commit-cutter", daemon=True).start()

    def arm(self, *, hold: bool = False) -> None:
        with self._lock:
            self._armed, self._hold_after = True, hold

    def release(self) -> None:
        self.holding.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.holding.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._open += [client, upstream]
            for src, dst, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, replies), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while data := src.recv(65536):
                if replies and self._COMMIT_DONE in data and self._take():
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def _take(self) -> bool:
        with self._lock:
            if not self._armed:
                return False
            self._armed = False
            if self._hold_after:
                self.holding.set()
        self.cut.set()
        return True

    def close(self) -> None:
        self._sock.close()
        for s in self._open:
            with contextlib.suppress(OSError):
                s.close()


@activity
def cl_arm_cutter(ctx: ActivityContext, n: int) -> int:
    record_effect(ctx)
    CUT["cutter"].arm(hold=CUT["hold"])  # the next COMMIT is this outcome's
    return n * 7


@workflow
def cl_lost_reply_flow(ctx: WorkflowContext, n: int) -> int:
    a = yield cl_arm_cutter(n)
    return int((yield cl_plain(a)))


@pytest.mark.parametrize("restart", [None, "fast", "kill"])
def test_a_commit_whose_reply_was_lost_is_not_run_twice(
    postgres_server: pg_server.Server,
    postgres_db_url: str,
    effects: Path,
    restart: str | None,
) -> None:
    """The step's COMMIT lands, its reply is swallowed: pg_xact_status says committed and the
    unit returns its result without running again (run again, its history rows would collide
    on their key and the instance would be parked). With ``restart`` the server is restarted
    before eddic can ask (fast: a shutdown checkpoint; kill: crash recovery), so the answer
    must come from the server's next life and its checkpoint's xid bound."""
    server = controllable(postgres_server) if restart else postgres_server
    parts = urlsplit(postgres_db_url)
    assert parts.hostname is not None and parts.port is not None
    cutter = CommitCutter(parts.hostname, parts.port)
    CUT.clear()
    CUT.update(cutter=cutter, hold=restart is not None)
    url = pg_server.with_host(postgres_db_url, "127.0.0.1", cutter.port) + "?sslmode=disable"
    try:
        with App(db_url=url) as app:
            result: list[str] = []
            runner = threading.Thread(
                target=lambda: result.append(app.start(cl_lost_reply_flow, input=2)),
                daemon=True,
            )
            runner.start()
            assert cutter.cut.wait(LIVENESS), "no COMMIT reply was swallowed"
            if restart:
                began = time.monotonic()
                server.restart(restart)  # type: ignore[union-attr]
                cutter.release()
                print(
                    f"\nrestart ({restart}) while a COMMIT's fate was unknown: "
                    f"{time.monotonic() - began:.2f} s"
                )
            runner.join(LIVENESS)
            assert result, "start() did not return"
            iid = result[0]
            info = app.get_instance(iid)
            assert info["status"] == "completed", info
            assert app.result(iid) == 15
            assert_each_outcome_once(app, iid)
    finally:
        cutter.close()
    assert effect_counts(effects) == {(iid, 1): 1, (iid, 2): 1}


# -- 2. the server stopped and restarted under serve() ------------------------------------------


@activity
def cl_work(ctx: ActivityContext, n: int) -> int:
    record_effect(ctx)
    time.sleep(0.05)
    return n + 1


@workflow
def cl_restart_flow(ctx: WorkflowContext, n: int) -> dict[str, Any]:
    a = yield cl_work(n)
    yield Sleep(0.3)
    event = yield WaitEvent("cl.go")
    b = yield cl_work(a)
    yield Sleep(0.2)
    c = yield cl_work(b)
    return {"c": c, "event": event.data}


@workflow
def cl_quick(ctx: WorkflowContext) -> str:
    yield Sleep(0.05)
    return "woke"


@pytest.mark.parametrize(
    ("threads", "mode"),
    [(1, "fast"), (4, "fast"), (4, "immediate"), (1, "kill"), (4, "kill")],
)
def test_serve_survives_a_server_restart(
    postgres_server: pg_server.Server,
    postgres_db_url: str,
    effects: Path,
    threads: int,
    mode: str,
) -> None:
    server = controllable(postgres_server)
    # Polls and recovery passes far apart: after the restart, only the reconnected LISTEN
    # (a NOTIFY of another App's commit) can wake the idle worker in time.
    options = {"timer_poll_interval": 120.0, "recovery_interval_seconds": 120.0}
    with App(db_url=postgres_db_url, **options) as app, App(db_url=postgres_db_url) as other:
        before = [app.start(cl_restart_flow, input=10 * i) for i in range(4)]
        for iid in before:  # into the mailbox before the WaitEvent: consumed by the worker
            app.send_event("cl.go", data={"when": "before"}, instance_id=iid)
        during: list[str] = []
        errors: list[BaseException] = []

        def start_during_outage() -> None:
            try:
                for i in range(2):
                    iid = other.start(cl_restart_flow, input=100 + i)
                    during.append(iid)
                    other.send_event("cl.go", data={"when": "during"}, instance_id=iid)
            except BaseException as exc:  # reported below
                errors.append(exc)

        with serving(app, threads):
            time.sleep(0.15)  # activities and timers under way when the server goes
            server.stop(mode)
            starter = threading.Thread(target=start_during_outage, daemon=True)
            starter.start()
            time.sleep(1.0)
            server.start()
            back = time.monotonic()
            starter.join(LIVENESS)
            assert not errors, errors
            after = [app.start(cl_restart_flow, input=1000)]
            app.send_event("cl.go", data={"when": "after"}, instance_id=after[0])
            ids = before + during + after
            wait_until("every instance after the restart", finished(app, ids))
            all_done = time.monotonic() - back
            # the worker is idle now, for up to 120 s: a NOTIFY must reach its new LISTEN
            time.sleep(0.3)
            quick = other.start(cl_quick)
            woke = wait_until("a NOTIFY after the restart", finished(app, [quick]))
        print(
            f"\nthreads={threads} stop={mode}: {len(ids)} instances completed "
            f"{all_done:.2f} s after the server was back; a NOTIFY after the restart woke the "
            f"worker and its 0.05 s timer fired {woke:.2f} s after the start"
        )
        for iid in ids:
            result = app.result(iid)
            assert result["c"] == app.get_instance(iid)["input_data"] + 3
            assert_each_outcome_once(app, iid)
        assert [app.result(i)["event"]["when"] for i in ids] == (
            ["before"] * 4 + ["during"] * 2 + ["after"]
        )
    counts = effect_counts(effects)
    assert set(counts.values()) == {1}, counts
    assert len(counts) == 3 * len(ids)


def test_start_during_an_outage_is_retried_or_fails_clearly(
    postgres_server: pg_server.Server, postgres_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start() while the server is down: retried (for ``RETRY_FOR``) and done once it is back;
    past that, a StorageError naming the lost connection, without the password, and nothing
    half-written: the same start once the server is back runs it once."""
    server = controllable(postgres_server)
    monkeypatch.setattr(pg_units, "RETRY_FOR", 1.5)
    with App(db_url=postgres_db_url) as app:
        assert app.list_instances() == []  # connected: the stop ends pooled connections
        server.stop("fast")
        began = time.monotonic()
        with pytest.raises(StorageError) as caught:
            app.start(cl_quick, instance_id="during-outage")
        failed_after = time.monotonic() - began
        message = str(caught.value)
        assert "lost the connection" in message and server.password not in message
        assert failed_after < LIVENESS
        restarter = threading.Timer(0.5, server.start)
        restarter.start()
        began = time.monotonic()
        iid = app.start(cl_quick, instance_id="during-outage")  # retried until the server is back
        retried_for = time.monotonic() - began
        restarter.join()

        def ran() -> bool:
            app.run_due()
            return bool(app.get_instance(iid)["status"] == "completed")

        wait_until("the instance started during the outage", ran)
        assert_each_outcome_once(app, iid)
        print(f"\nstart() gave up after {failed_after:.2f} s; retried, it took {retried_for:.2f} s")


def test_wake_and_wait_never_wait_out_a_server_that_is_down(
    postgres_server: pg_server.Server, postgres_db_url: str
) -> None:
    """wake() makes one try at its NOTIFY (refused at once with the server down) instead of
    retrying for seconds, and wait() returns on a wake() with the LISTEN connection gone."""
    server = controllable(postgres_server)
    with App(db_url=postgres_db_url) as app:
        storage: Any = app.storage
        assert storage.wait(0.05) is False  # LISTENing now
        server.stop("fast")
        try:
            began = time.monotonic()
            storage.wake()
            woke_in = time.monotonic() - began
            began = time.monotonic()
            assert storage.wait(5.0) is True  # the wake() above, or the dropped LISTEN
            waited = time.monotonic() - began
            storage.wake()
            assert storage.wait(5.0) is True
        finally:
            server.start()
        print(f"\nwake() with the server down: {woke_in * 1000:.1f} ms; wait(): {waited:.3f} s")
        assert woke_in < 2.0, f"wake() blocked {woke_in:.1f} s with the server down"
        assert waited < 2.0


def test_eddic_serve_does_not_print_the_password(postgres_db_url: str) -> None:
    password = urlsplit(postgres_db_url).password
    assert password
    worker = subprocess.Popen(
        [sys.executable, "-m", "eddic", "serve", "--db", postgres_db_url, "--poll", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None
        first = worker.stdout.readline()
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=LIVENESS)
    assert first.startswith("serving"), first + out
    assert password not in first + out


# -- 3. two hosts: workers in two network namespaces ----------------------------------------------


@functools.cache
def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here (None: they can). Checked once."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (ip netns add)"
    ip = shutil.which("ip")
    if ip is None:
        return "needs the ip command (iproute2) to make network namespaces"
    probe = f"eddic-probe-{os.getpid()}"
    made = subprocess.run([ip, "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip() or made.returncode}"
    subprocess.run([ip, "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextlib.contextmanager
def two_hosts() -> Iterator[list[tuple[str, str, str]]]:
    """Two network namespaces, each linked to this one by a veth pair: yields, per host, its
    namespace, the address this side of its link (the server's there) and its own address."""
    tag = secrets.token_hex(3)
    hosts = []
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    octet = next(o for o in range(200, 250) if f"10.{o}." not in routes)
    try:
        for i, name in enumerate("ab"):
            ns, here, there = f"eddic-{name}-{tag}", f"ed{name}0{tag}", f"ed{name}1{tag}"
            hosts.append((ns, here))
            _ip("netns", "add", ns)
            _ip("link", "add", here, "type", "veth", "peer", "name", there)
            _ip("link", "set", there, "netns", ns)
            _ip("addr", "add", f"10.{octet}.{i}.1/24", "dev", here)
            _ip("link", "set", here, "up")
            _ip("-n", ns, "addr", "add", f"10.{octet}.{i}.2/24", "dev", there)
            _ip("-n", ns, "link", "set", there, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield [(ns, f"10.{octet}.{i}.1", f"10.{octet}.{i}.2") for i, (ns, _) in enumerate(hosts)]
    finally:
        for ns, here in hosts:  # deleting the namespace deletes its end, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            subprocess.run(["ip", "link", "del", here], capture_output=True)


def test_workers_on_two_hosts_complete_every_instance_once(effects: Path, tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with two_hosts() as hosts:
        # A server of this test's own: it must listen on the hosts' links, made just now.
        server = pg_server.start_embedded(
            listen=[here for _ns, here, _there in hosts],
            hba=[f"host all all {there}/32 scram-sha-256" for _ns, _here, there in hosts],
        )
        workers: list[subprocess.Popen[str]] = []
        try:
            db_url = server.create_database()
            with App(db_url=db_url) as app:  # the schema, before the workers need it
                env = {
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(
                        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
                    ),
                }
                for name, (ns, here, _there) in zip("ab", hosts, strict=True):
                    url = pg_server.with_host(db_url, here)
                    command = [sys.executable, "-m", "eddic", "serve", "--db", url]
                    command += ["--import", "conn_loss_flows", "--threads", "2", "--poll", "1"]
                    workers.append(
                        subprocess.Popen(
                            ["ip", "netns", "exec", ns, *command],
                            env={**env, "EDDIC_CL_HOST": name},
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                        )
                    )
                ids = [app.start(cl_hosts_flow, input=10 * i) for i in range(30)]
                took = wait_until("instances served by the two hosts", finished(app, ids), 60)
                for i, iid in enumerate(ids):
                    assert app.result(iid) == 10 * i + 2
                    assert_each_outcome_once(app, iid)
            print(f"\n{len(ids)} instances on two hosts: {took:.2f} s after the first start")
        finally:
            outputs = []
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    out, _ = w.communicate(timeout=LIVENESS)
                except subprocess.TimeoutExpired:
                    w.kill()
                    out, _ = w.communicate()
                outputs.append(out)
            server.close()
    for w, out in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out
    lines = [line.split() for line in effects.read_text().splitlines() if line]
    counts = Counter((f[0], f[1]) for f in lines)
    assert set(counts.values()) == {1}, counts
    assert len(counts) == 2 * len(ids)
    by_host = Counter(f[3] for f in lines)
    print(f"bodies run per host: {dict(by_host)}")
    assert set(by_host) == {"a", "b"}, f"one host did all the work: {by_host}"
