"""An instance that continues as new, SIGKILLed before and after each of its writes (the
hand-over from one run to the next included), then recovered by another process, on both
backends: it ends in the run it would have, with the result it would have, every run's history
whole, and no activity run more than twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from eddic import App, ContinueAsNew, RetryPolicy, WorkflowContext, activity, workflow

    DB, MARKS, MODE, WHEN = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
    KILL_AT = int(sys.argv[4])

    @activity(retry=RetryPolicy(max_attempts=3, initial_interval=0))  # a crash is an attempt
    def tick(n: int) -> int:
        with open(MARKS, "a") as f:
            f.write(f"{n}\\n")
            f.flush()
            os.fsync(f.fileno())
        return n + 1

    @workflow
    def loop(ctx: WorkflowContext, n: int) -> int:
        n = yield tick(n)
        if n < 3:
            yield ContinueAsNew(n)
        return n

    app = App(db_url=DB, recovery_interval_seconds=0.1, default_lock_timeout_seconds=0.5)
    with app:
        store = app.storage
        writes = {"n": 0}
        for name in ("create", "commit_step"):
            real = getattr(store, name)

            def counted(*args, _real=real, **kwargs):
                writes["n"] += 1
                if MODE == "start" and writes["n"] == KILL_AT and WHEN == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
                done = _real(*args, **kwargs)
                if MODE == "start" and writes["n"] == KILL_AT and WHEN == "after":
                    os.kill(os.getpid(), signal.SIGKILL)
                return done

            setattr(store, name, counted)
        app.start(loop, 0, instance_id="loop")  # recovering: a no-op unless the start was lost
        deadline = time.monotonic() + 30
        while app.get_instance("loop")["status"] != "completed" and time.monotonic() < deadline:
            app.run_due()
            time.sleep(0.05)
        info = app.get_instance("loop")
        runs = [[(h["record"], h["kind"]) for h in app.history("loop", run=r)] for r in (1, 2, 3)]
        print(json.dumps({"writes": writes["n"], "status": info["status"], "run": info["run"],
                          "result": app.result("loop"), "runs": runs}))
    """
)

WHOLE_RUN = [["scheduled", "activity"], ["resolved", None], ["scheduled", "continue"]]
LAST_RUN = [["scheduled", "activity"], ["resolved", None]]


def _run(
    script: Path, db: str, marks: Path, mode: str, n: int, when: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), db, str(marks), mode, str(n), when],
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_continue_as_new_survives_a_kill_at_every_write(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    script = tmp_path / "loop.py"
    script.write_text(SCRIPT)
    make = request.getfixturevalue("databases")
    clean = _run(script, make("clean"), tmp_path / "clean.marks", "start", 0, "none")
    assert clean.returncode == 0, clean.stderr
    total = json.loads(clean.stdout)["writes"]
    assert total == 6  # the start; per run its outcome (with the continue); two runs begun
    for n in range(1, total + 1):
        for when in ("before", "after"):
            db = make(f"case-{n}-{when}")
            marks = tmp_path / f"case-{n}-{when}.marks"
            killed = _run(script, db, marks, "start", n, when)
            assert killed.returncode == -signal.SIGKILL, (n, when, killed.stderr)
            time.sleep(0.6)  # the dead worker's lease (0.5 s) expires
            done = _run(script, db, marks, "recover", 0, "none")
            assert done.returncode == 0, (n, when, done.stderr)
            out = json.loads(done.stdout)
            assert (out["status"], out["run"], out["result"]) == ("completed", 3, 3), (n, when)
            assert out["runs"] == [WHOLE_RUN, WHOLE_RUN, LAST_RUN], (n, when, out["runs"])
            ran = Counter(marks.read_text().split())
            assert set(ran) == {"0", "1", "2"} and max(ran.values()) <= 2, (n, when, ran)
