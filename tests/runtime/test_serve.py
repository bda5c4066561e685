"""The worker loop: timers created by another process fire in this one's serve()."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from eddic import App, Sleep, WorkflowContext, activity, workflow

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=timezone.utc)

HERE = Path(__file__).parent


def test_a_timer_created_in_another_process_fires_in_this_processs_serve(db_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import serve_workflows  # noqa: F401 - registers serve_nap here too
    finally:
        sys.path.remove(str(HERE))
    url = f"sqlite:///{db_path}"
    with App(db_url=url, timer_poll_interval=0.05) as app:
        worker = threading.Thread(target=app.serve, daemon=True)
        worker.start()
        started = subprocess.run(
            [sys.executable, str(HERE / "serve_workflows.py"), url, "0.3"],
            capture_output=True,
            text=True,
            check=True,
        )
        iid = started.stdout.strip()
        deadline = time.monotonic() + 20
        while app.get_instance(iid)["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
        app.shutdown()
        worker.join(5)
    with App(db_url=url) as check:
        assert check.result(iid) == "woke"
    assert not worker.is_alive()


side_by_side = threading.Barrier(4)


@activity
def serve_meet(n: int) -> int:
    side_by_side.wait(timeout=10)  # four instances must be in their activity at the same time
    return n


@workflow
def serve_meeting(ctx: WorkflowContext, n: int) -> int:
    yield Sleep(1)
    return (yield serve_meet(n))


def test_serve_with_threads_advances_instances_side_by_side(db_path: Path) -> None:
    side_by_side.reset()
    with freeze_time(T0) as clock, App(db_url=f"sqlite:///{db_path}") as app:
        ids = [app.start(serve_meeting, input=n) for n in range(4)]
        clock.tick(2)
        worker = threading.Thread(target=lambda: app.serve(idle_sleep_max=0.05, threads=4))
        worker.start()
        for _ in range(400):  # up to 20 s of real time (freezegun stops time.monotonic)
            if all(app.get_instance(i)["status"] in ("completed", "failed") for i in ids):
                break
            time.sleep(0.05)
        app.shutdown()
        worker.join(10)
        assert [app.result(i) for i in ids] == [0, 1, 2, 3]


def test_serve_refuses_zero_threads(app: App) -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        app.serve(threads=0)


GRACEFUL = """
import os, time
from pathlib import Path
from eddic import App, Sleep, activity, workflow

HERE = Path(__file__).parent
app = App(db_url=f"sqlite:///{HERE / 'graceful.db'}")


def mark(text):
    with open(HERE / "marks", "a") as f:
        f.write(text + "\\n")


@activity
def graceful_slow() -> str:
    mark("slow started")
    time.sleep(1.5)
    mark("slow ended")
    return "slow"


@activity
def graceful_next() -> str:
    mark("next ran")
    return "next"


@workflow
def graceful_flow(ctx, _: None = None) -> list:
    yield Sleep(0.2)
    first = yield graceful_slow()
    second = yield graceful_next()
    return [first, second]
"""


def test_sigterm_lets_eddic_serve_finish_the_step_in_progress_then_hand_the_lease_back(
    tmp_path: Path,
) -> None:
    (tmp_path / "graceful_service.py").write_text(GRACEFUL)
    sys.path.insert(0, str(tmp_path))
    try:
        import graceful_service as service
    finally:
        sys.path.remove(str(tmp_path))
    marks = tmp_path / "marks"
    with service.app as app:
        iid = app.start(service.graceful_flow)
    time.sleep(0.3)  # the timer is due
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "eddic", "serve", "--app", "graceful_service:app", "--poll", "0.05"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for _ in range(200):  # up to 10 s for the slow activity to start
        if marks.exists() and "slow started" in marks.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "stopping after the steps in progress" in out
    assert marks.read_text().splitlines() == ["slow started", "slow ended"]  # not cut, no more
    with App(db_url=f"sqlite:///{tmp_path / 'graceful.db'}") as app:
        info = app.get_instance(iid)
        assert info["status"] == "running"
        with app.storage.reading() as db:
            owner = db.execute(
                "SELECT lock_owner FROM instances WHERE instance_id = ?", [iid]
            ).fetchone()[0]
        assert owner is None  # handed back, not left to expire
        assert app.run_due() == 1  # the next recovery pass goes on at once
        assert app.result(iid) == ["slow", "next"]
    assert marks.read_text().splitlines() == ["slow started", "slow ended", "next ran"]


def test_a_stop_asked_before_serve_begins_its_loop_is_kept(tmp_path: Path) -> None:
    # A signal handler may call stop() between start-up and the loop: it must not be lost.
    with App(db_url=f"sqlite:///{tmp_path / 'early.db'}", timer_poll_interval=30) as app:
        app.stop()
        done = threading.Event()
        thread = threading.Thread(target=lambda: (app.serve(), done.set()), daemon=True)
        thread.start()
        assert done.wait(10)  # before: serve() cleared the request and slept for 30 s
        app.stop()  # the request was used up: a later serve() runs until asked again
