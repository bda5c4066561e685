"""Failover: a worker killed with SIGKILL is seen dead at once (SQLite: its ``flock`` is gone
with its process; PostgreSQL: its session advisory lock is gone with its connection) and another
serving worker takes its instances over within about a second, though their 300 s leases have
not expired; a slow but live worker keeps its lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_process import serve, write_service

from eddic import App
from eddic.storage.sqlite.liveness import Liveness

BOUND = 20.0  # a liveness bound; the takeover itself takes about a second

SERVICE = """
import os, time
from pathlib import Path
from eddic import RetryPolicy, activity, workflow

MARKS = Path(os.environ["FAILOVER_MARKS"])


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=0))
def failover_work(n: int) -> int:
    with MARKS.open("a") as f:
        f.write(f"{os.getpid()}\\n")
    if len(MARKS.read_text().split()) == 1:
        time.sleep(120)  # the first attempt hangs until its worker is killed
    return 2 * n


@workflow
def failover_flow(ctx, n: int) -> int:
    return (yield failover_work(n))
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_killed_workers_instance_is_taken_over_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, backend: str
) -> None:
    marks = tmp_path / "marks"
    monkeypatch.setenv("FAILOVER_MARKS", str(marks))  # read when the service is imported
    service = write_service(tmp_path, "failover_service", SERVICE)
    url = (
        str(request.getfixturevalue("postgres_db_url"))
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'failover.db'}"
    )
    with App(db_url=url):  # `eddic serve` opens an existing database only
        pass
    first = serve(url, tmp_path, "failover_service")
    second: subprocess.Popen[str] | None = None
    try:
        with App(db_url=url) as app:
            iid = app.submit(service.failover_flow, input=21)
            deadline = time.monotonic() + BOUND
            while _lines(marks) != [str(first.pid)]:
                assert time.monotonic() < deadline, "the first worker never ran the activity"
                time.sleep(0.01)
            assert app.get_instance(iid)["lock_owner"] is not None  # leased for 300 s
            second = serve(url, tmp_path, "failover_service")
            time.sleep(1.5)  # the first is slow but alive: the second leaves it alone
            assert _lines(marks) == [str(first.pid)]
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed = time.monotonic()
            while len(_lines(marks)) < 2:
                assert time.monotonic() - killed < BOUND, "nobody took the instance over"
                time.sleep(0.01)
            took = time.monotonic() - killed
            assert _lines(marks) == [str(first.pid), str(second.pid)]
            assert app.wait(iid, timeout=BOUND) == 42
            print(f"\ntaken over {took * 1000:.0f} ms after the SIGKILL (lease: 300 s)")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.communicate(timeout=30)


def test_only_a_dead_workers_file_is_taken_for_dead(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    mine, other = Liveness(db), Liveness(db)
    mine.hold("w-live")
    assert other.dead() == []  # held: alive
    code = (
        "import sys; from eddic.storage.sqlite.liveness import Liveness; "
        f"Liveness({db!r}).hold('w-gone'); sys.stdout.write('held'); sys.stdout.flush(); "
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout == "held" and done.returncode == -signal.SIGKILL
    assert other.dead() == ["w-gone"]
    other.forget("w-gone")
    assert other.dead() == []
    mine.close()
    assert not os.path.exists(mine.folder)


def test_dead_workers_are_looked_for_once_per_interval_however_often_passes_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with App(db_url=f"sqlite:///{tmp_path / 'p.db'}", failover_check_seconds=60) as app:
        looks: list[int] = []
        monkeypatch.setattr(app.storage, "dead_owners", lambda: looks.append(1) or [])
        for _ in range(5):  # a busy worker's passes, back to back
            app._serve_pass(10.0)
        assert len(looks) == 1


def test_a_worker_taking_its_lock_is_never_seen_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its file appears already locked: a look for dead workers between the file's creation and
    # its lock would take a live worker for dead and take its instances over. The look is made
    # right there, inside hold(), just before its flock.
    import fcntl

    db = str(tmp_path / "race.db")
    starting, looking = Liveness(db), Liveness(db)
    real_flock = fcntl.flock
    looks: list[list[str]] = []

    def look_first(fd: int, operation: int) -> None:
        if not looks:
            looks.append([])  # no look from inside the look
            looks[0] = looking.dead()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", look_first)
    starting.hold("w-starting")
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert looks == [[]]  # the look saw no worker: none was unlocked
    assert "w-starting" in starting._held
    assert os.listdir(starting.folder) == ["w-starting"]
    assert looking.dead() == []
    starting.close()
