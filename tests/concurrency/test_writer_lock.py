"""The writer lock: processes writing one file queue on a lock the kernel hands over and frees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eddic import App
from eddic.storage.sqlite import writers
from eddic.storage.sqlite.writers import WriterLock

HOLDER = """
import sys, time
from eddic.storage.sqlite.writers import WriterLock
lock = WriterLock(sys.argv[1])
with lock:
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    print("released", time.time(), flush=True)
"""


def _holder(db: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_writer_waits_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    proc = _holder(db, 0.5)
    with WriterLock(str(db)):
        acquired = time.time()
    out, _ = proc.communicate(timeout=10)
    released = float(out.split()[1])
    assert acquired >= released  # not before the other process let go


def test_a_process_killed_while_holding_the_lock_does_not_block_the_next_writer(
    tmp_path: Path,
) -> None:
    db = tmp_path / "k.db"
    with App(db_url=f"sqlite:///{db}") as app:
        app.initialize()
        proc = _holder(db, 600)
        got: list[str] = []
        writer = threading.Thread(target=lambda: got.append(app.start("kill_probe")))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # queued behind the holder
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        writer.join(10)
        assert not writer.is_alive() and len(got) == 1
        assert app.result(got[0]) == "probed"


def test_a_forked_child_takes_the_lock_for_itself(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    lock = WriterLock(str(db))
    with lock:
        pass  # the parent opens its lock file descriptor
    read, write = os.pipe()
    with lock:
        pid = os.fork()
        if pid == 0:  # the child: the parent holds the lock, so this must block until it lets go
            os.close(read)
            with lock:
                os.write(write, str(time.time()).encode())
            os._exit(0)
        time.sleep(0.3)
        released = time.time()
    os.close(write)
    child_acquired = float(os.read(read, 100).decode())
    os.waitpid(pid, 0)
    assert child_acquired >= released


def test_a_fork_that_cannot_wait_for_a_write_in_flight_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Another thread holds the lock past the wait: the fork goes on, and the log says why the
    # child's writes may wait (the child is the one place such a hang would show).
    monkeypatch.setattr(writers, "_QUIESCE_SECONDS", 0.2)
    lock = WriterLock(str(tmp_path / "q.db"))
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    finally:
        done.set()
        holder.join(10)
    warned = [r.getMessage() for r in caplog.records if "forking while a write" in r.getMessage()]
    assert warned == [
        f"forking while a write to {tmp_path / 'q.db'} has held the writer lock "
        "for 0.2 s; the child's writes to it may wait for SQLite's busy timeout"
    ]
    with lock:  # and the parent's lock was left as it was: free again, usable
        pass


from eddic import WorkflowContext, activity, workflow  # noqa: E402


@activity
def kill_probe_step() -> str:
    return "probed"


@workflow(name="kill_probe")
def kill_probe(ctx: WorkflowContext, _: None = None) -> str:
    return (yield kill_probe_step())


def test_a_forked_child_opens_its_own_connection_and_both_can_write(tmp_path: Path) -> None:
    with App(db_url=f"sqlite:///{tmp_path / 'fork.db'}") as app:
        first = app.start("kill_probe")  # the parent's connection is open now
        parents = app.storage._db()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if app.storage._db() is parents:
                    code = 3  # SQLite connections must not cross a fork
                else:
                    code = 0 if app.result(app.start("kill_probe")) == "probed" else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert app.result(app.start("kill_probe")) == "probed"
        assert len(app.list_instances(status="completed")) == 3
        assert app.result(first) == "probed"
