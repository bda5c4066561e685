"""The worker survives what kills processes: crashing activities, ``sys.exit`` in user code,
a fork in the middle of group commits, a full disk. Real processes, a real full file system."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from children import hung_children

from eddic import App, Sleep, WorkflowContext, activity, workflow

CRASHING = textwrap.dedent(
    """
    import os, signal, sys
    from eddic import App, ActivityContext, ActivityFailed, RetryPolicy, activity, workflow

    MARKS = sys.argv[2]

    @activity(retry=RetryPolicy(max_attempts=2, initial_interval=0))
    def kills_its_worker(ctx: ActivityContext) -> str:
        with open(MARKS, "a") as f:
            f.write(f"{ctx.attempt}\\n")
        os.kill(os.getpid(), signal.SIGKILL)
        return "never"

    @workflow
    def crashing_flow(ctx):
        try:
            return (yield kills_its_worker())
        except ActivityFailed as exc:
            return f"gave up: {exc.type} after {exc.attempts}"

    app = App(db_url=sys.argv[1], recovery_interval_seconds=0.1)
    with app:
        if sys.argv[3] == "start":
            app.start(crashing_flow, instance_id="crashing", lock_timeout_seconds=0.3)
        else:
            app.run_due()
            print(app.get_instance("crashing")["status"], app.result("crashing"))
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_activity_that_kills_its_worker_runs_no_more_than_max_attempts(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    script = tmp_path / "crashing.py"
    script.write_text(CRASHING)
    if backend == "postgres":  # the same real SIGKILLs, the instance on the PostgreSQL server
        db = str(request.getfixturevalue("postgres_schema_url"))
    else:
        db = f"sqlite:///{tmp_path / 'c.db'}"
    marks = tmp_path / "marks"

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, str(script), db, str(marks), mode]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    assert run("start").returncode == -signal.SIGKILL
    outcomes = []
    for _ in range(6):  # before the fix every recovery ran it again: attempts 1, 2, 3, ...
        time.sleep(0.4)  # the dead worker's lease expires
        done = run("recover")
        outcomes.append(done.returncode)
        if done.returncode == 0:
            break
    assert marks.read_text().split() == ["1", "2"]
    assert outcomes == [-signal.SIGKILL, 0], done.stderr
    assert done.stdout.strip() == "completed gave up: eddic.AttemptLost after 2"


exits: list[str] = []


@activity
def ws_exits(code: int) -> str:
    exits.append("ran")
    sys.exit(code)


@workflow
def ws_exiting_flow(ctx: WorkflowContext, code: int) -> str:
    yield Sleep(0)
    return str((yield ws_exits(code)))


@activity
def ws_fine() -> str:
    return "fine"


@workflow
def ws_fine_flow(ctx: WorkflowContext) -> str:
    yield Sleep(0)
    return str((yield ws_fine()))


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[App, threading.Thread]]:
    app = App(db_url=f"sqlite:///{tmp_path / 'serve.db'}", timer_poll_interval=0.05)
    app.initialize()
    thread = threading.Thread(target=app.serve, daemon=True)
    thread.start()
    yield app, thread
    app.shutdown()
    thread.join(10)


def _wait_for(predicate: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("code", [0, 1])
def test_sys_exit_in_an_activity_neither_ends_serve_nor_runs_again(
    serving: tuple[App, threading.Thread], code: int
) -> None:
    app, thread = serving
    exits.clear()
    bad = app.start(ws_exiting_flow, input=code)
    _wait_for(lambda: app.get_instance(bad)["error"] is not None)
    good = app.start(ws_fine_flow)
    _wait_for(lambda: app.get_instance(good)["status"] == "completed")
    assert thread.is_alive()  # before: serve ended (and `eddic serve` exited with `code`)
    info = app.get_instance(bad)
    assert info["error"]["type"] == "SystemExit" and info["error"]["parked"] is True
    time.sleep(0.3)
    assert exits == ["ran"]  # parked until its retry time, not run again by the next passes


@activity
def ws_step(i: int) -> int:
    return i


@workflow
def ws_counting(ctx: WorkflowContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += yield ws_step(i)
    return total


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_threads_commit_does_not_hang(tmp_path: Path) -> None:
    app = App(db_url=f"sqlite:///{tmp_path / 'fork.db'}", synchronous="NORMAL")
    app.initialize()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            app.start(ws_counting, input=5)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()

    def child() -> bool:  # one workflow through the inherited App
        return bool(app.result(app.start(ws_counting, input=3)) == 3)

    assert _hung_while(app, stop, threads, child, 12, every=0.05, seconds=20) == 0


def _hung_while(
    app: App,
    stop: threading.Event,
    threads: list[threading.Thread],
    child: Callable[[], bool],
    forks: int,
    *,
    every: float,
    seconds: float,
) -> int:
    """``hung_children`` while ``threads`` (started by the caller) run; then ``stop`` them."""
    try:
        return hung_children(forks, child, every=every, seconds=seconds)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        app.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_threads_read_and_connect_does_not_hang(tmp_path: Path) -> None:
    # SQLite's own mutexes (its allocator's, its table of file locks) are plain pthread
    # mutexes: a child forked while a thread of the parent is inside SQLite (a read, opening or
    # closing a connection) would inherit one held and wait for ever at its first SQLite call.
    # A fork waits for eddic's reads and connections as it waits for its writes.
    app = App(db_url=f"sqlite:///{tmp_path / 'fork-reads.db'}", synchronous="NORMAL")
    app.initialize()
    iid = app.start(ws_counting, input=2)
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            app.get_instance(iid)

    def connect() -> None:  # a new thread, so a new connection, for every read
        while not stop.is_set():
            one = threading.Thread(target=lambda: app.get_instance(iid))
            one.start()
            one.join()

    threads = [threading.Thread(target=read) for _ in range(3)]
    threads.append(threading.Thread(target=connect))
    for t in threads:
        t.start()

    def child() -> bool:  # a read and a workflow through the inherited App
        ok = app.get_instance(iid)["status"] == "completed"
        return ok and bool(app.result(app.start(ws_counting, input=3)) == 3)

    # 3 of 30 children hung before a fork waited for reads and connections
    assert _hung_while(app, stop, threads, child, 30, every=0.02, seconds=10) == 0


def _mount_small_tmpfs(where: Path) -> bool:
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@activity
def ws_pad(i: int) -> str:
    return "x" * 2000 + str(i)


@workflow
def ws_padding(ctx: WorkflowContext, n: int) -> int:
    yield Sleep(0.5)  # start() returns here; serve() runs the rest
    for i in range(n):
        yield ws_pad(i)
    return n


def test_serve_survives_a_full_disk_and_goes_on_when_space_is_back(tmp_path: Path) -> None:
    disk = tmp_path / "small"
    if not _mount_small_tmpfs(disk):
        pytest.skip("needs root and mount to make a small real file system (tmpfs)")
    filler = disk / "filler"
    app = App(
        db_url=f"sqlite:///{disk / 'full.db'}",
        timer_poll_interval=0.05,
        recovery_interval_seconds=1,
    )
    thread = None
    try:
        app.initialize()
        iid = app.start(ws_padding, input=100)
        with open(filler, "wb", buffering=0) as f:  # fill the disk while work is left
            for chunk in (1 << 20, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass
        thread = threading.Thread(target=app.serve, daemon=True)
        thread.start()
        time.sleep(2.0)  # a two-second spell of "database or disk is full"
        assert thread.is_alive()  # before: the first failed commit ended serve()
        assert app.get_instance(iid)["status"] != "completed"
        filler.unlink()
        _wait_for(lambda: app.get_instance(iid)["status"] == "completed", 60)
        assert app.result(iid) == 100
        steps = [h for h in app.history(iid) if h["record"] == "resolved"]
        assert len(steps) == 101  # the timer and 100 activities, each recorded once
    finally:
        app.shutdown()
        if thread is not None:
            thread.join(10)
        subprocess.run(["umount", "-l", str(disk)], check=False)
