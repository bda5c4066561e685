"""Fencing with real processes: a worker frozen in the middle of an activity (SIGSTOP) loses its
lease to a recovering worker, and when it wakes up (SIGCONT) it can record nothing more.

The body it was running still finishes (at least once: it runs twice in all), but history,
outbox and the final result are exactly those of the worker that took over. On SQLite and on
PostgreSQL, where the frozen worker holds no row lock while it sleeps (a body runs outside any
transaction), so the takeover does not wait on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from crash_harness import (
    BACKENDS,
    WORKER,
    Database,
    Workers,
    check_bodies_are_consistent,
    check_deliveries,
    check_order_finished_with_everything_recorded_once,
    read_store,
)

ORDER = "ORD-1"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_woken_after_a_takeover_records_nothing(
    workers: Workers, request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    database = Database.open(request, backend, tmp_path / "fenced.db")
    frozen = subprocess.Popen(
        [sys.executable, str(WORKER), *database.worker_args(), "start", "--crash", "stop:pay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _, status = os.waitpid(frozen.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the worker should have stopped inside the pay body"

        takeover = workers.run(
            [*database.worker_args(), "recover", "--hours-ahead", "1"], database.log("takeover")
        )
        assert takeover.returncode == 0, str(takeover)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
        output, _ = frozen.communicate(timeout=60)
    assert frozen.returncode == 0, output
    assert "woken up inside the pay body" in output
    # It finished the pay body (its second end marker below) and then tried to commit: in vain.

    store = read_store(database)
    check_order_finished_with_everything_recorded_once(store, ORDER, fails=False)
    check_bodies_are_consistent(store, ORDER, fails=False)
    assert (store.runs(ORDER, "pay", "start"), store.runs(ORDER, "pay", "end")) == (2, 2)
    assert (store.runs(ORDER, "ship", "start"), store.runs(ORDER, "ship", "end")) == (1, 1)
    assert set(check_deliveries(store, ORDER).values()) == {1}
