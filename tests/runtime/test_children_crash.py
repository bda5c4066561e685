"""A parent with two children, SIGKILLed at each step boundary (before and after each commit of
the process, the parent's and the children's alike), then recovered by another process, on both
backends: the parent completes with both results, sees each child's outcome once, no child is
started twice, and only a body the kill interrupted ran twice."""

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
    from eddic import All, App, CallWorkflow, RetryPolicy, WorkflowContext, activity, workflow

    DB, MARKS, MODE, WHEN = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
    KILL_AT = int(sys.argv[4])

    @activity(retry=RetryPolicy(max_attempts=3, initial_interval=0))  # a crash is an attempt
    def pack(name: str) -> str:
        with open(MARKS, "a") as f:
            f.write(name + "\\n")
            f.flush()
            os.fsync(f.fileno())
        return name.upper()

    @workflow
    def child(ctx: WorkflowContext, name: str) -> str:
        return (yield pack(name))

    @workflow
    def parent(ctx: WorkflowContext) -> list[str]:
        return list((yield All(CallWorkflow(child, "a"), CallWorkflow(child, "b"))))

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
        app.start(parent, instance_id="p")  # recovering: a no-op, unless the start was lost
        deadline = time.monotonic() + 30
        while True:
            app.run_due()
            try:
                status = app.get_instance("p")["status"]
            except Exception:
                status = None
            if status in ("completed", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if MODE == "start":
            print(json.dumps({"writes": writes["n"]}))
        else:
            history = app.history("p")
            resolved = [h["seq"] for h in history if h["record"] == "resolved"]
            kids = [app.get_instance(f"p/{s}")["status"] for s in (1, 2)]
            print(json.dumps([status, app.result("p"), resolved, kids]))
    """
)


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
def test_a_parent_and_two_children_survive_a_kill_at_every_step_boundary(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    script = tmp_path / "family.py"
    script.write_text(SCRIPT)
    databases = request.getfixturevalue("databases")
    # A clean run tells how many writes one story makes.
    clean = _run(script, databases("clean"), tmp_path / "clean.marks", "start", 0, "none")
    assert clean.returncode == 0, clean.stderr
    total = json.loads(clean.stdout)["writes"]
    assert total >= 7  # the start, the children's steps, the parent's two resolutions
    for n in range(1, total + 1):
        for when in ("before", "after"):
            db = databases(f"case-{n}-{when}")
            marks = tmp_path / f"case-{n}-{when}.marks"
            killed = _run(script, db, marks, "start", n, when)
            assert killed.returncode == -signal.SIGKILL, (n, when, killed.stderr)
            time.sleep(0.6)  # the dead worker's leases (0.5 s) expire
            done = _run(script, db, marks, "recover", 0, "none")
            assert done.returncode == 0, (n, when, done.stderr)
            status, result, resolved, kids = json.loads(done.stdout)
            assert (status, result, kids) == ("completed", ["A", "B"], ["completed", "completed"])
            assert sorted(resolved) == [1, 2], (n, when, resolved)  # each child's outcome once
            ran = Counter(marks.read_text().split()) if marks.exists() else Counter()
            assert set(ran) == {"a", "b"}, (n, when, ran)
            assert all(1 <= c <= 2 for c in ran.values()), (n, when, ran)
