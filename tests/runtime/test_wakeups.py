"""Wake-ups across processes on SQLite: the doorbell beside the database file.

A serving worker in another process picks up work this process creates (a submit, an event)
at once, though its poll interval is a minute; a socket left by a killed process is removed by
the next ring; where no socket can be made, ``wait`` reads ``PRAGMA data_version`` instead.
PostgreSQL's LISTEN/NOTIFY has its own tests (tests/postgres/test_listener.py).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from service_process import serve, write_service

from eddic import App
from eddic.storage import StepWrite, open_store
from eddic.storage.sqlite.doorbell import Doorbell

BOUND = 20.0  # a liveness bound, far above the milliseconds a wake-up takes

SERVICE = """
from eddic import WaitEvent, activity, workflow


@activity
def doorbell_double(n: int) -> int:
    return 2 * n


@workflow
def doorbell_flow(ctx, n: int) -> int:
    doubled = yield doorbell_double(n)
    event = yield WaitEvent("doorbell.go")
    return doubled + event.data
"""


def test_a_worker_in_another_process_wakes_for_a_submit_and_an_event(tmp_path: Path) -> None:
    service = write_service(tmp_path, "doorbell_service", SERVICE)
    url = f"sqlite:///{tmp_path / 'bell.db'}"
    with App(db_url=url) as app:
        worker = serve(url, tmp_path, "doorbell_service")
        try:
            time.sleep(0.3)  # its first pass is over: it waits for a minute now
            started = time.monotonic()
            iid = app.submit(service.doorbell_flow, input=20)
            deadline = time.monotonic() + BOUND
            while app.get_instance(iid)["status"] != "waiting_for_event":
                assert time.monotonic() < deadline, "the serving worker never woke for it"
                time.sleep(0.005)
            submitted = time.monotonic() - started
            started = time.monotonic()
            app.send_event("doorbell.go", 2, instance_id=iid, inline=False)
            assert app.wait(iid, timeout=BOUND) == 42
            sent = time.monotonic() - started
            print(
                f"\nwoken by a submit in {submitted * 1000:.0f} ms, by an event in "
                f"{sent * 1000:.0f} ms (poll: 60 s)"
            )
        finally:
            worker.terminate()
            worker.communicate(timeout=30)


def test_a_socket_left_by_a_killed_process_is_removed_by_the_next_ring(tmp_path: Path) -> None:
    db = str(tmp_path / "left.db")
    left = Doorbell(db)
    sock = left.listen()
    assert sock is not None
    (stale,) = os.listdir(left.folder)
    sock.close()  # as a SIGKILL leaves it: the file stays, nobody reads it
    live = Doorbell(db)
    assert live.listen() is not None
    live.ring()
    assert os.listdir(live.folder) != [stale] and stale not in os.listdir(live.folder)
    assert live.wait(0) is True  # the live one was rung all the same
    live.close()
    assert not os.path.exists(live.folder)  # the last one out removes the empty folder


def _step_that_leaves_work(iid: str) -> tuple[dict[str, object], StepWrite]:
    now = datetime.now(timezone.utc)
    row = {
        "instance_id": iid,
        "workflow_name": "wf",
        "status": "running",
        "input_data": "null",
        "created_at": now,
        "updated_at": now,
        "started_at": now,
        "service_name": "t",
        "lock_timeout_seconds": 60.0,
        "lock_owner": None,
        "lock_epoch": 0,
        "lock_expires_at": None,
    }
    return row, StepWrite(iid, "", 0, columns={"wake_at": now})


@pytest.mark.parametrize("long_path", [False, True], ids=["doorbell", "data_version"])
def test_wait_returns_when_another_store_creates_work(tmp_path: Path, long_path: bool) -> None:
    folder = tmp_path / ("d" * 60) / ("e" * 60) if long_path else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'w.db'}"
    waiter, writer = open_store(url), open_store(url)
    waiter.open()
    writer.open()
    try:
        assert (waiter._doorbell.listen() is None) is long_path  # type: ignore[attr-defined]
        assert waiter.wait(0.05) is False  # nothing yet (and its starting point read)
        got: list[bool] = []
        thread = threading.Thread(target=lambda: got.append(waiter.wait(BOUND)))
        thread.start()
        time.sleep(0.1)
        started = time.monotonic()
        writer.create(*_step_that_leaves_work("i1"), datetime.now(timezone.utc))
        thread.join(BOUND)
        assert got == [True]
        assert time.monotonic() - started < BOUND
        waiter.wait(0)  # this thread catches up (by data_version, the create is news here)
        waiter.wake()
        assert waiter.wait(BOUND) is True  # its own wake()
        assert waiter.wait(0.05) is False  # once: a wake() is one wake-up, not two
    finally:
        waiter.close()
        writer.close()


def test_no_socket_is_made_where_the_path_is_too_long(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 100)
    deep.mkdir()
    assert Doorbell(str(deep / "db")).listen() is None
    assert hasattr(socket, "AF_UNIX")
