"""A fork waits for the threads inside SQLite (``storage.sqlite.forks``): a child forked while
one is would inherit SQLite's mutexes held and hang at its first SQLite call."""

from __future__ import annotations

import os
import threading
import time

import pytest

from eddic.storage.sqlite import writers
from eddic.storage.sqlite.forks import GATE

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _inside_for(seconds: float) -> tuple[threading.Thread, threading.Event, list[float]]:
    entered, left = threading.Event(), []

    def hold() -> None:
        with GATE:
            entered.set()
            time.sleep(seconds)
            left.append(time.time())

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait(10)
    return thread, entered, left


def _fork_and_note_when_the_child_began() -> float:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, str(time.time()).encode())
        os._exit(0)
    os.close(write)
    began = float(os.read(read, 100).decode())
    os.close(read)
    os.waitpid(pid, 0)
    return began


def test_a_fork_waits_for_a_thread_inside_sqlite_to_leave() -> None:
    thread, _entered, left = _inside_for(0.4)
    began = _fork_and_note_when_the_child_began()
    thread.join(10)
    assert left and began >= left[0]


def test_a_thread_entering_while_a_fork_waits_is_held_back_until_it_is_done() -> None:
    # Without the hold-back it would enter at 0.1 s, while the first thread is still inside.
    thread, _entered, left = _inside_for(0.4)
    entered_at: list[float] = []

    def enter_later() -> None:
        time.sleep(0.1)  # the fork is waiting by now
        with GATE:
            entered_at.append(time.time())

    late = threading.Thread(target=enter_later)
    late.start()
    _fork_and_note_when_the_child_began()
    thread.join(10)
    late.join(10)
    assert entered_at and left and entered_at[0] >= left[0]


def test_a_thread_that_forks_from_inside_does_not_wait_for_itself() -> None:
    begin = time.monotonic()
    with GATE:
        _fork_and_note_when_the_child_began()
        with GATE:  # and the gate still works in the parent afterwards, nested too
            pass
    assert time.monotonic() - begin < 5  # the wait would be 10 s


def test_a_fork_that_cannot_wait_for_a_reader_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writers, "_QUIESCE_SECONDS", 0.2)
    thread, _entered, _left = _inside_for(1.0)
    _fork_and_note_when_the_child_began()
    thread.join(10)
    warned = [r.getMessage() for r in caplog.records if "inside SQLite" in r.getMessage()]
    assert warned == [
        "forking while a thread has been inside SQLite (a read) for 0.2 s; the child's first "
        "SQLite call may wait for ever"
    ]
    with GATE:  # the parent's gate is open again
        pass
