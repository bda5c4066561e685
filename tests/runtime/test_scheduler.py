"""``serve(threads=N)`` is a continuous scheduler: no barrier between batches of instances.

An instance in a long activity holds up only its own driver thread: another instance's due
timer, short instances submitted meanwhile, a busy instance's neighbours, and a slow outbox
sink all go on without it. A stop lets the drivers finish the step in progress and leaves no
lease held. Real time, with margins for a noisy machine of two cores: each bound is far from
what the test sees when it passes (a fraction of a second) and from what the batch barrier
made of it (the long activity's length).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from service_process import serve, write_service

from eddic import App, Publish, Sleep, WorkflowContext, activity, workflow

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"])

LONG = 4.0  # seconds of the long activity
BOUND = 20.0  # a liveness bound, for waits that should end in well under a second

marks: dict[str, float] = {}  # what happened when (time.monotonic())
began: dict[str, threading.Event] = {}
spin_stop = threading.Event()
spins: list[int] = []


def _event(name: str) -> threading.Event:
    return began.setdefault(name, threading.Event())


@pytest.fixture(autouse=True)
def _fresh_marks() -> None:
    marks.clear()
    began.clear()
    spin_stop.clear()
    spins.clear()


@pytest.fixture
def url(request: pytest.FixtureRequest, db_path: Path, backend: str) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{db_path}"


@pytest.fixture
def serving(url: str) -> Iterator[Callable[..., App]]:
    """``serving(threads, **options)``: an App on ``url`` serving in a background thread;
    stopped (and the thread's end checked) after the test."""
    running: list[tuple[App, threading.Thread]] = []

    def start(threads: int, **options: Any) -> App:
        app = App(db_url=url, service_name="tests", **options)
        app.initialize()
        thread = threading.Thread(target=app.serve, kwargs={"threads": threads}, daemon=True)
        thread.start()
        running.append((app, thread))
        return app

    yield start
    spin_stop.set()
    for app, thread in running:
        app.shutdown()
        thread.join(BOUND)
        assert not thread.is_alive()


@activity
def sch_work(name: str, seconds: float) -> str:
    marks[f"{name} began"] = time.monotonic()
    _event(name).set()
    time.sleep(seconds)
    marks[f"{name} ended"] = time.monotonic()
    return name


@workflow
def sch_long(ctx: WorkflowContext, name: str) -> str:
    return (yield sch_work(name, LONG))


@workflow
def sch_timer(ctx: WorkflowContext) -> str:
    yield Sleep(1)
    return "woke"


@workflow
def sch_short(ctx: WorkflowContext, name: str) -> str:
    first = yield sch_work(name, 0.0)
    yield Sleep(0.05)
    return first


@activity
def sch_spin() -> bool:
    spins.append(1)
    return not spin_stop.is_set()


@workflow
def sch_busy(ctx: WorkflowContext) -> int:
    rounds = 0
    while (yield sch_spin()):
        rounds += 1
        yield Sleep(0)
    return rounds


@workflow
def sch_two_steps(ctx: WorkflowContext, name: str) -> list[str]:
    first = yield sch_work(name, 1.5)
    second = yield sch_work(f"{name} next", 0.0)
    return [first, second]


@workflow
def sch_publish(ctx: WorkflowContext) -> str:
    yield Publish("scheduler.test", data={"n": 1})
    return "published"


def _wait_began(*names: str) -> None:
    for name in names:
        assert _event(name).wait(BOUND), f"{name}'s activity never began"


def test_a_due_timer_does_not_wait_behind_another_instances_long_activity(
    serving: Callable[..., App],
) -> None:
    app = serving(4)
    a = app.submit(sch_long, input="A")
    _wait_began("A")
    begun = time.monotonic()
    b = app.start(sch_timer)  # runs here until its Sleep(1): the serving worker wakes it
    assert app.wait(b, timeout=BOUND) == "woke"
    took = time.monotonic() - begun
    assert "A ended" not in marks, f"B woke {took:.1f} s after its start, after A's activity"
    assert took < 2.5  # before: after A's activity (4 s), the batch's barrier
    assert app.wait(a, timeout=BOUND) == "A"


def test_short_instances_submitted_during_a_long_activity_complete_long_before_it_ends(
    serving: Callable[..., App],
) -> None:
    app = serving(4)
    a = app.submit(sch_long, input="A")
    _wait_began("A")
    begun = time.monotonic()
    shorts = [app.submit(sch_short, input=f"s{n}") for n in range(20)]
    for n, iid in enumerate(shorts):
        assert app.wait(iid, timeout=BOUND) == f"s{n}"
    took = time.monotonic() - begun
    assert "A ended" not in marks, f"20 short instances took {took:.1f} s, longer than A"
    assert app.get_instance(a)["status"] == "running"
    assert app.wait(a, timeout=BOUND) == "A"


def test_a_busy_instance_does_not_starve_the_others(serving: Callable[..., App]) -> None:
    app = serving(2)
    busy = app.submit(sch_busy)
    deadline = time.monotonic() + BOUND
    while len(spins) < 5:  # it is looping: activity, Sleep(0), activity...
        assert time.monotonic() < deadline, "the busy instance never looped"
        time.sleep(0.01)
    others = [app.submit(sch_short, input=f"o{n}") for n in range(5)]
    for n, iid in enumerate(others):
        assert app.wait(iid, timeout=BOUND) == f"o{n}"  # before: never, while it looped
    looped = len(spins)
    deadline = time.monotonic() + BOUND
    while len(spins) == looped:  # and it still loops
        assert time.monotonic() < deadline, "the busy instance stopped looping"
        time.sleep(0.01)
    spin_stop.set()
    assert app.wait(busy, timeout=BOUND) >= 5


def test_a_stop_lets_every_driver_finish_its_step_and_leaves_nothing_leased(
    serving: Callable[..., App],
) -> None:
    app = serving(3)
    first = app.submit(sch_two_steps, input="A")
    _wait_began("A")
    later = [app.submit(sch_two_steps, input=name) for name in ("B", "C")]
    _wait_began("B", "C")  # before: B and C waited for A's activity to end
    thread = app._serving
    assert thread is not None
    stopped = time.monotonic()
    app.stop()
    thread.join(BOUND)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 1.5 + 3.0  # the steps in progress, no more
    ids = [first, *later]
    for name in ("A", "B", "C"):
        assert f"{name} ended" in marks  # finished, not cut short
        assert f"{name} next began" not in marks  # and no further step began
    for iid in ids:
        info = app.get_instance(iid)
        assert info["status"] == "running"
        assert info["lock_owner"] is None  # handed back, not left to expire
    assert app.run_due() == 3  # the next pass goes on at once
    assert [app.result(iid) for iid in ids] == [[n, f"{n} next"] for n in ("A", "B", "C")]


@pytest.fixture
def slow_sink() -> Iterator[tuple[str, threading.Event]]:
    """An HTTP sink that takes ``LONG`` seconds to answer: its URL, and an event set once a
    delivery has reached it."""
    reached = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reached.set()
            time.sleep(LONG)
            marks["sink answered"] = time.monotonic()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/events", reached
    finally:
        server.shutdown()
        server.server_close()


def test_a_slow_outbox_sink_does_not_delay_a_due_timer(
    serving: Callable[..., App], slow_sink: tuple[str, threading.Event]
) -> None:
    sink, reached = slow_sink
    app = serving(2, outbox_enabled=True, outbox_sink=sink, outbox_timeout_seconds=BOUND)
    assert app.result(app.start(sch_publish)) == "published"
    assert reached.wait(BOUND), "the relay never delivered"
    begun = time.monotonic()
    b = app.start(sch_timer)
    assert app.wait(b, timeout=BOUND) == "woke"
    took = time.monotonic() - begun
    assert "sink answered" not in marks, f"B woke {took:.1f} s after its start, after the sink"
    assert took < 2.5  # before: after the sink's answer, the relay ran in the pass
    deadline = time.monotonic() + BOUND
    while [r["status"] for r in app.storage.outbox.rows()] != ["sent"]:
        assert time.monotonic() < deadline, "the slow delivery was never marked sent"
        time.sleep(0.05)


SERVICE = """
import os, time
from pathlib import Path
from eddic import RetryPolicy, activity, workflow


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=0))
def sched_failover_work(n: int) -> int:
    marks = Path(os.environ["SCHEDULER_MARKS"])  # read here: the module is imported once
    with marks.open("a") as f:
        f.write(f"{os.getpid()}\\n")
    if len(marks.read_text().split()) == 1:
        time.sleep(120)  # the first attempt hangs until its worker is killed
    return 2 * n


@workflow
def sched_failover_flow(ctx, n: int) -> int:
    return (yield sched_failover_work(n))
"""


def test_a_dead_workers_instance_is_taken_over_by_a_serve_with_threads(
    serving: Callable[..., App],
    url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Recovery under the dispatcher: the dead worker's lease is released (failover look) and
    # the instance, running with no live lease (stale), is claimed by a recovery claim.
    marks_file = tmp_path / "marks"
    monkeypatch.setenv("SCHEDULER_MARKS", str(marks_file))
    service = write_service(tmp_path, "scheduler_failover_service", SERVICE)
    with App(db_url=url):  # `eddic serve` opens an existing database only
        pass
    first = serve(url, tmp_path, "scheduler_failover_service")
    try:
        with App(db_url=url) as starter:
            iid = starter.submit(service.sched_failover_flow, input=21)
        deadline = time.monotonic() + BOUND
        while not marks_file.exists() or not marks_file.read_text():
            assert time.monotonic() < deadline, "the first worker never ran the activity"
            time.sleep(0.01)
        app = serving(2)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert app.wait(iid, timeout=BOUND) == 42
        assert len(marks_file.read_text().split()) == 2
    finally:
        if first.poll() is None:
            first.terminate()
        try:
            first.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            first.kill()
