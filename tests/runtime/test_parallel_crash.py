"""A worker SIGKILLed while three activities of one instance run in parallel: after recovery
each activity's outcome is recorded once and each body ran at most twice (the attempt the kill
cut short, and one more), and a heartbeat recorded before the kill reaches the next attempt.
Real processes, real SIGKILLs, on both backends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

FLOW = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from eddic import All, App, ActivityContext, RetryPolicy, activity, workflow

    DB, MARKS, MODE = sys.argv[1], sys.argv[2], sys.argv[3]

    def mark(line):
        with open(MARKS, "a") as f:
            f.write(line + "\\n")

    @activity(retry=RetryPolicy(max_attempts=3, initial_interval=0))
    def part(ctx: ActivityContext, name: str) -> str:
        done = (ctx.heartbeat_details or {}).get("done", 0)
        mark(json.dumps({"name": name, "attempt": ctx.attempt, "from": done}))
        ctx.heartbeat({"done": 5})
        if MODE == "start":
            time.sleep(30)  # killed meanwhile
        return f"{name}:{ctx.attempt}"

    @workflow
    def three_parts(ctx):
        return list((yield All(part("a"), part("b"), part("c"))))

    app = App(db_url=DB, recovery_interval_seconds=0.1)
    with app:
        if MODE == "start":
            app.start(three_parts, instance_id="three", lock_timeout_seconds=0.5)
        else:
            app.run_due()
            inst = app.get_instance("three")
            resolved = [r["seq"] for r in app.history("three") if r["record"] == "resolved"]
            print(json.dumps([inst["status"], app.result("three"), resolved]))
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_kill_while_three_activities_run_records_each_once(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    script = tmp_path / "three.py"
    script.write_text(FLOW)
    if backend == "postgres":
        db = str(request.getfixturevalue("postgres_schema_url"))
    else:
        db = f"sqlite:///{tmp_path / 'three.db'}"
    marks = tmp_path / "marks"

    def lines() -> list[dict[str, object]]:
        if not marks.exists():
            return []
        return [json.loads(line) for line in marks.read_text().splitlines()]

    starter = subprocess.Popen(
        [sys.executable, str(script), db, str(marks), "start"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(lines()) < 3:  # all three bodies are running now
        assert starter.poll() is None, starter.communicate()
        assert time.monotonic() < deadline, "the three activities never ran together"
        time.sleep(0.02)
    time.sleep(0.3)  # their first heartbeats are written
    starter.send_signal(signal.SIGKILL)
    starter.wait(10)
    assert starter.returncode == -signal.SIGKILL
    time.sleep(0.7)  # the dead worker's lease (0.5 s) expires
    done = subprocess.run(
        [sys.executable, str(script), db, str(marks), "recover"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    status, result, resolved = json.loads(done.stdout)
    assert status == "completed"
    assert result == ["a:2", "b:2", "c:2"]
    runs = lines()
    by_name = {name: [r for r in runs if r["name"] == name] for name in "abc"}
    for name, seen in by_name.items():
        # once cut short, once more: never a third time, and the second resumed from its heartbeat
        assert [(r["attempt"], r["from"]) for r in seen] == [(1, 0), (2, 5)], (name, runs)
    assert sorted(resolved) == [1, 2, 3]  # each activity's outcome recorded exactly once
