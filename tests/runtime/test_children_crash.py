"""A parent with two children, SIGKILLed at each step boundary (before and after each commit of
the process, the parent's and the children's alike), then recovered by another process, on both
backends: the parent completes with both results, sees each child's outcome once, no child is
started twice, and only a body the kill interrupted ran twice."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
from write_kills import each_kill

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from eddic import All, App, CallWorkflow, RetryPolicy, WorkflowContext, activity, workflow
    from write_kills import count_writes

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
        writes = count_writes(app.storage, MODE, KILL_AT, WHEN)
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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_parent_and_two_children_survive_a_kill_at_every_step_boundary(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    script = tmp_path / "family.py"
    script.write_text(SCRIPT)
    cases = 0
    for n, when, marks, (status, result, resolved, kids) in each_kill(
        script, request.getfixturevalue("databases"), tmp_path
    ):
        assert (status, result, kids) == ("completed", ["A", "B"], ["completed", "completed"])
        assert sorted(resolved) == [1, 2], (n, when, resolved)  # each child's outcome once
        ran = Counter(marks.read_text().split()) if marks.exists() else Counter()
        assert set(ran) == {"a", "b"}, (n, when, ran)
        assert all(1 <= c <= 2 for c in ran.values()), (n, when, ran)
        cases += 1
    assert cases >= 12  # 6 writes or more (the start, the children's steps, the parent's), x 2
