"""An instance that continues as new, SIGKILLed before and after each of its writes (the
hand-over from one run to the next included), then recovered by another process, on both
backends: it ends in the run it would have, with the result it would have, every run's history
whole, and no activity run more than twice."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
from write_kills import each_kill

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from eddic import App, ContinueAsNew, RetryPolicy, WorkflowContext, activity, workflow
    from write_kills import count_writes

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
        writes = count_writes(app.storage, MODE, KILL_AT, WHEN)
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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_continue_as_new_survives_a_kill_at_every_write(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    script = tmp_path / "loop.py"
    script.write_text(SCRIPT)
    cases = 0
    for n, when, marks, out in each_kill(script, request.getfixturevalue("databases"), tmp_path):
        assert (out["status"], out["run"], out["result"]) == ("completed", 3, 3), (n, when)
        assert out["runs"] == [WHOLE_RUN, WHOLE_RUN, LAST_RUN], (n, when, out["runs"])
        ran = Counter(marks.read_text().split())
        assert set(ran) == {"0", "1", "2"} and max(ran.values()) <= 2, (n, when, ran)
        cases += 1
    assert cases == 12  # the start; per run its outcome (with the continue); two runs begun: x 2
