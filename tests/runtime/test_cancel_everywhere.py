"""Cancellation outside ``App.cancel``'s own tests: ``eddic cancel``, the testing helpers
(``WorkflowEnvironment.cancel`` under frozen time, ``WorkflowDriver.cancel`` on the bare kernel),
and real crashes: a worker SIGKILLed after a cancel was recorded and before it ran, or in the
middle of the compensations it set off, on both backends — every compensation runs once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eddic import (
    ActivityContext,
    Cancelled,
    WaitEvent,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.cli import main
from eddic.testing import WorkflowDriver, WorkflowEnvironment

undone: list[str] = []


@compensation(name="ce_unbook")
def ce_unbook(ctx: ActivityContext, room: str) -> None:
    undone.append(room)


@on_failure(ce_unbook)
@activity(name="ce_book")
def ce_book(room: str) -> str:
    return f"booked {room}"


@workflow(name="ce_trip")
def ce_trip(ctx: WorkflowContext, rooms: list[str]) -> str:
    for room in rooms:
        yield ce_book(room)
    try:
        yield WaitEvent("ce.confirmed", timeout=86_400)
    except Cancelled as exc:
        if exc.reason == "keep":
            return "kept"
        raise
    return "confirmed"


def test_the_testing_environment_cancels_under_frozen_time() -> None:
    undone.clear()
    with WorkflowEnvironment() as env:
        iid = env.start(ce_trip, ["a", "b"])
        env.advance(3600)
        assert env.cancel(iid, "plans changed") is True
        assert env.status(iid) == "cancelled"
        assert undone == ["b", "a"]
        kept = env.start(ce_trip, ["c"])
        assert env.cancel(kept, "keep") is True
        assert env.result(kept) == "kept"
        assert env.history(kept).lines[-1] == "event ce.confirmed: cancelled"


def test_the_kernel_driver_cancels_at_the_current_yield() -> None:
    driver = WorkflowDriver(ce_trip, ["a", "b"])
    driver.complete("ce_book", "booked a")
    driver.complete("ce_book", "booked b")
    assert driver.waiting_on == ["event ce.confirmed"]
    driver.cancel("plans changed")
    assert driver.waiting_on == ["compensation ce_unbook"]
    driver.complete("ce_unbook")
    driver.complete("ce_unbook")
    assert driver.status == "cancelled"
    assert isinstance(driver.error, Cancelled) and driver.error.reason == "plans changed"


def test_eddic_cancel_records_the_cancel_and_runs_it_with_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "ce_cli_flows.py"
    module.write_text(
        textwrap.dedent(
            """
            from eddic import Sleep, WorkflowContext, workflow

            @workflow
            def ce_cli_nap(ctx: WorkflowContext) -> str:
                yield Sleep(3600)
                return "rested"
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import ce_cli_flows  # noqa: F401 - registers the workflow for the start below

        from eddic import App

        url = f"sqlite:///{tmp_path / 'cli.db'}"
        with App(db_url=url) as app:
            for iid in ("n1", "n2"):
                app.start("ce_cli_nap", instance_id=iid)

        def run(*argv: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(list(argv))
            out, err = capsys.readouterr()
            return code, out, err

        code, out, _ = run("cancel", "n1", "--db", url, "--import", "ce_cli_flows")
        assert (code, out.strip()) == (0, "cancelled n1: now cancelled")
        code, out, _ = run("cancel", "n1", "--db", url)
        assert (code, out.strip()) == (0, "n1 is already cancelled: nothing to cancel")
        code, _, err = run("cancel", "nope", "--db", url)
        assert code == 2 and "'nope'" in err
        code, out, _ = run("cancel", "n2", "--db", url, "--reason", "no longer needed")
        assert (code, out.strip()) == (0, "cancelled n2: now cancelled")
        with App(db_url=url) as app:
            assert app.get_instance("n1")["error"]["type"] == "eddic.Cancelled"
            assert app.get_instance("n2")["cancel_reason"] == "no longer needed"
            app.start("ce_cli_nap", instance_id="n3")
        # Without the code (another process, no --import), the cancel is recorded for a worker.
        alone = subprocess.run(
            [sys.executable, "-m", "eddic", "cancel", "n3", "--db", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert alone.returncode == 0, alone.stderr
        assert alone.stdout.strip() == (
            "cancel of n3 recorded: a worker with its code throws it in next"
        )
        with App(db_url=url) as app:
            assert app.get_instance("n3")["status"] == "waiting_for_timer"
            app.run_due()
            assert app.get_instance("n3")["status"] == "cancelled"
    finally:
        sys.path.remove(str(tmp_path))


CRASHING = textwrap.dedent(
    """
    import json, os, signal, sys
    from eddic import (
        ActivityContext, App, RetryPolicy, Sleep, WorkflowContext, activity, compensation,
        on_failure, workflow,
    )

    DB, MARKS, MODE = sys.argv[1], sys.argv[2], sys.argv[3]

    def mark(line):
        with open(MARKS, "a") as f:
            f.write(line + "\\n")

    @compensation(retry=RetryPolicy(max_attempts=3, initial_interval=0))
    def unbook(ctx: ActivityContext, room: str) -> None:
        mark(f"unbook {room} attempt {ctx.attempt}")
        if MODE == "kill-in-compensation" and room == "b" and ctx.attempt == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    @on_failure(unbook)
    @activity
    def book(room: str) -> str:
        mark(f"book {room}")
        return room

    @workflow
    def trip(ctx: WorkflowContext) -> str:
        for room in ("a", "b", "c"):
            yield book(room)
        yield Sleep(3600)
        return "done"

    app = App(db_url=DB, recovery_interval_seconds=0.1)
    with app:
        if MODE == "start":
            app.start(trip, instance_id="trip", lock_timeout_seconds=0.5)
        elif MODE == "cancel-then-die":
            app.cancel("trip", reason="plans changed", inline=False)
            os.kill(os.getpid(), signal.SIGKILL)  # recorded, never run here
        elif MODE == "kill-in-compensation":
            app.cancel("trip", reason="plans changed")
        else:
            app.run_due()
            info = app.get_instance("trip")
            print(json.dumps([info["status"], info["error"]["reason"]]))
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("kill", ["cancel-then-die", "kill-in-compensation"])
def test_a_cancel_survives_a_sigkill_and_compensates_each_activity_once(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, kill: str
) -> None:
    script = tmp_path / "trip.py"
    script.write_text(CRASHING)
    if backend == "postgres":
        db = str(request.getfixturevalue("postgres_schema_url"))
    else:
        db = f"sqlite:///{tmp_path / 'trip.db'}"
    marks = tmp_path / "marks"

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), db, str(marks), mode],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run("start").returncode == 0
    killed = run(kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    time.sleep(0.7)  # a lease the dead worker held (0.5 s) expires
    done = run("recover")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["cancelled", "plans changed"]
    lines = marks.read_text().splitlines()
    assert lines[:3] == ["book a", "book b", "book c"]
    unbooks = [line.rsplit(" attempt ", 1)[0] for line in lines[3:]]
    if kill == "kill-in-compensation":  # b's first attempt was cut short: it ran again, once
        assert lines[3:] == [
            "unbook c attempt 1",
            "unbook b attempt 1",
            "unbook b attempt 2",
            "unbook a attempt 1",
        ]
    else:
        assert unbooks == ["unbook c", "unbook b", "unbook a"]
