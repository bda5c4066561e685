"""The ``eddic`` command line, run as ``python -m eddic`` in subprocesses against a real file.

The database is recorded here, in the test process, under frozen time in 2100, so that for the
subprocesses (which run on real time) nothing in it is due yet: a timer fires or an event wins
only when a test makes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import dbg_workflows
import pytest
from dbg_activities import CALLS

from eddic import App
from eddic.testing import FrozenClock

HERE = Path(__file__).parent
T0 = "2100-03-01T12:00:00Z"
STARTED = "2100-03-01 12:00:00Z"


@dataclass
class Cli:
    db: Path
    url: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "EDDIC_DB"}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(HERE) + (os.pathsep + path if path else "")
        env["NO_COLOR"] = "1"
        env.update(extra)
        return env

    def run(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eddic", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(**env),
            cwd=self.db.parent,
            timeout=120,
        )

    def ok(self, *args: str, **env: str) -> str:
        done = self.run(*args, **env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def statuses(self) -> dict[str, str]:
        return {r["instance_id"]: r["status"] for r in self.json("list", "--db", self.url)}


def record_orders(url: str) -> None:
    """Four instances of dbg_order: waiting for payment, sleeping, completed, failed."""
    order = dbg_workflows.dbg_order
    with FrozenClock(T0) as clock, App(db_url=url, service_name="dbg") as app:
        for name in ("order-waiting", "order-done", "order-failed"):
            app.start(order, input={"order_id": name}, instance_id=name)
        clock.advance(30)
        app.run_due()
        app.send_event("payment.confirmed", data={"amount": 10}, instance_id="order-done")
        app.send_event("payment.confirmed", data={"amount": -1}, instance_id="order-failed")
        clock.advance(60)
        app.run_due()
        app.start(order, input={"order_id": "order-sleeping"}, instance_id="order-sleeping")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    db = tmp_path / "orders.db"
    url = f"sqlite:///{db}"
    record_orders(url)
    yield Cli(db, url)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- discovery ------------------------------------------------------------------------------------


def test_help_lists_every_subcommand_and_the_console_script_is_installed(cli: Cli) -> None:
    out = cli.ok("--help")
    for command in ("list", "show", "replay", "check", "send-event", "serve", "outbox"):
        assert f"    {command}" in out
    (script,) = entry_points(group="console_scripts", name="eddic")
    assert script.value == "eddic.cli:main"


# -- list and show, from the database alone ----------------------------------------------------


def test_list_shows_every_instance_with_its_status_from_the_database_alone(cli: Cli) -> None:
    lines = cli.ok("list", "--db", cli.url).splitlines()
    assert lines[0].split() == ["ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert rows == {
        "order-waiting": ["dbg_order", "waiting_for_event"],
        "order-done": ["dbg_order", "completed"],
        "order-failed": ["dbg_order", "failed"],
        "order-sleeping": ["dbg_order", "waiting_for_timer"],
    }


def test_list_filters_by_status_and_workflow_and_reads_eddic_db(cli: Cli) -> None:
    out = cli.ok(
        "list", "--status", "completed,failed", "--workflow", "dbg_order", EDDIC_DB=cli.url
    )
    assert sorted(line.split()[0] for line in out.splitlines()[1:]) == [
        "order-done",
        "order-failed",
    ]
    rows = json.loads(cli.ok("list", "--status", "waiting_for_timer", "--json", EDDIC_DB=cli.url))
    assert [(r["instance_id"], r["input_data"]) for r in rows] == [
        ("order-sleeping", {"order_id": "order-sleeping", "amount": 10})
    ]


def test_show_prints_the_instance_and_a_timeline_with_times_and_durations(cli: Cli) -> None:
    out = cli.ok("show", "order-done", "--db", str(cli.db))  # a plain path works too
    assert "status    completed" in out and f"created   {STARTED}" in out
    timeline = {line.split()[0]: line for line in out.splitlines() if line[:1].isdigit()}
    assert list(timeline) == [str(seq) for seq in range(1, 10)]
    reserve = timeline["1"].split()
    assert reserve[1:5] == ["2100-03-01", "12:00:00Z", "+0s", "activity"]
    assert 'dbg_reserve(order_id="order-done")' in timeline["1"]
    assert (
        "completed" in reserve
        and '-> {"order_id": "order-done", "code": "R-order-done"}' in timeline["1"]
    )
    assert timeline["2"].split()[4:9] == ["timer", "sleep", "30s", "fired", "30s"]
    assert timeline["3"].split()[2:6] == ["12:00:30Z", "+30s", "event", "payment.confirmed"]
    assert 'data {"amount": 10}' in timeline["3"]
    assert (
        timeline["8"].split()[4:6] == ["event", "order.cancelled"] and "cancelled" in timeline["8"]
    )
    assert timeline["9"].split()[4:9] == ["timer", "sleep", "1m00s", "fired", "1m00s"]


def test_show_of_a_failed_instance_names_the_error_and_the_compensation(cli: Cli) -> None:
    out = cli.ok("show", "order-failed", "--db", cli.url)
    assert "error     eddic.kernel.errors.ActivityFailed: activity 'dbg_charge' failed" in out
    assert "ValueError: card declined for order-failed" in out
    compensation = [line for line in out.splitlines() if " compensation " in line]
    assert len(compensation) == 1 and "dbg_release" in compensation[0]
    data = cli.json("show", "order-failed", "--db", cli.url)
    assert data["instance"]["status"] == "failed"
    assert [(e["kind"], e["state"]) for e in data["history"]] == [
        ("activity", "completed"),
        ("timer", "fired"),
        ("event", "received"),
        ("activity", "failed"),
        ("compensation", "completed"),
    ]


# -- replay -------------------------------------------------------------------------------------


def test_replay_prints_a_trace_of_every_step_and_runs_nothing(cli: Cli) -> None:
    before = digest(cli.db)
    out = cli.ok("replay", "order-done", "--db", cli.url, "--import", "dbg_workflows")
    lines = out.splitlines()
    assert lines[0].startswith("replaying order-done (workflow dbg_order, status completed")
    trace = [line.split() for line in lines[1:-1]]
    assert [(t[1], t[2]) for t in trace] == [
        ("1", "activity"),
        ("2", "timer"),
        ("3", "event"),
        ("4", "activity"),
        ("5", "publish"),
        ("6", "activity"),
        ("7", "activity"),
        ("8", "event"),
        ("9", "timer"),
    ]
    assert "-> Reservation(order_id='order-done', code='R-order-done')" in lines[1]
    assert "-> 'receipt-order-done'" in lines[4]
    assert lines[8].endswith("(cancelled)")
    assert lines[-1] == "ok: the current code replays all 9 steps; the code ends completed"
    assert digest(cli.db) == before


def test_replay_finds_the_code_through_an_app_attribute(cli: Cli) -> None:
    out = cli.ok("replay", "order-waiting", "--app", "dbg_service:app", DBG_DB_URL=cli.url)
    assert out.splitlines()[-1] == (
        "ok: the current code replays all 3 steps; the code now waits on event 'payment.confirmed'"
    )


def test_replay_with_changed_code_stops_at_the_divergence_and_exits_1(cli: Cli) -> None:
    done = cli.run("replay", "order-done", "--db", cli.url, "--import", "dbg_workflows_changed")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[1].split()[:3] == ["seq", "1", "activity"]
    assert lines[2].split()[:3] == ["seq", "2", "timer"] and lines[2].endswith("DIVERGED")
    assert "instance order-done diverges at seq 2" in done.stdout
    assert "recorded: timer 'sleep' at seq 2" in done.stdout
    assert "now:      activity 'dbg_charge' at seq 2" in done.stdout
    fields = {line.split()[0]: line for line in lines if line.startswith("  ") and "!=" in line}
    assert set(fields) == {"kind", "name", "args"}
    assert '{"order_id": "order-done", "amount": 10}' in fields["args"]
    assert "seq   3" not in done.stdout  # it stopped there


def test_replay_step_is_driven_through_stdin(cli: Cli) -> None:
    args = ("replay", "order-done", "--step", "--db", cli.url, "--import", "dbg_workflows")
    done = cli.run(*args, stdin="\n\nq\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[Enter] next step, c continue, q quit>") == 3
    assert "  sent in   Reservation(order_id='order-done', code='R-order-done')" in done.stdout
    assert "  recorded  event payment.confirmed (timeout 1h00m)" in done.stdout
    assert done.stdout.rstrip().endswith("quit at seq 3")
    assert "\x1b[" not in done.stdout  # plain text: not a terminal
    rest = cli.run(*args, stdin="c\n")
    assert rest.stdout.count("quit>") == 1 and "replays all 9 steps" in rest.stdout


def read_until(fd: int, marker: bytes) -> bytes:
    """Read the pseudo-terminal until ``marker`` (a guard against hanging, not a timing check)."""
    out = b""
    while marker not in out:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"no {marker!r} from the terminal; got {out!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    return out


def test_replay_step_on_a_terminal_prompts_and_quits(cli: Cli) -> None:
    master, slave = pty.openpty()
    env = cli.env()
    del env["NO_COLOR"]
    args = ["replay", "order-waiting", "--step", "--db", cli.url, "--import", "dbg_workflows"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "eddic", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    try:
        first = read_until(master, b"quit> ")
        os.write(master, b"\n")
        second = read_until(master, b"quit> ")
        os.write(master, b"q\n")
        rest = read_until(master, b"quit at seq 2")
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(master)
    assert b"seq   1  activity" in first and b"\x1b[1m[Enter] next step" in first
    assert b"seq   2  timer" in second
    assert b"quit at seq 2" in rest


# -- check ---------------------------------------------------------------------------------------


def test_check_passes_when_the_current_code_replays_every_unfinished_instance(cli: Cli) -> None:
    before = digest(cli.db)
    done = cli.run("check", "--db", cli.url, "--import", "dbg_workflows")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line.split()[:2] for line in lines[:2]) == [
        ["ok", "order-sleeping"],
        ["ok", "order-waiting"],
    ]
    assert lines[-1] == "checked 2 instance(s): 2 replay, 0 would not"
    assert digest(cli.db) == before


def test_check_names_each_instance_and_step_that_would_diverge_and_exits_1(cli: Cli) -> None:
    done = cli.run("check", "--db", cli.url, "--import", "dbg_workflows_changed")
    assert done.returncode == 1
    assert "DIVERGES  order-waiting  dbg_order  waiting_for_event  at seq 2" in done.stdout
    assert "instance order-waiting diverges at seq 2" in done.stdout
    assert "order-sleeping" in done.stdout  # recorded only seq 1-2: diverges at seq 2 as well
    assert done.stdout.splitlines()[-1] == "checked 2 instance(s): 0 replay, 2 would not"
    results = json.loads(
        cli.run(
            "check", "order-done", "--json", "--db", cli.url, "--import", "dbg_workflows_changed"
        ).stdout
    )
    assert [(r["instance_id"], r["ok"], r["seq"]) for r in results] == [("order-done", False, 2)]
    assert (results[0]["recorded"]["kind"], results[0]["now"]["kind"]) == ("timer", "activity")


def test_check_without_the_workflow_code_cannot_vouch_for_anything(cli: Cli) -> None:
    done = cli.run("check", "--db", cli.url)
    assert done.returncode == 1
    assert "workflow 'dbg_order' is not registered (import its module" in done.stdout


# -- errors --------------------------------------------------------------------------------------


def test_clear_errors_for_a_missing_database_an_unknown_id_and_code_that_does_not_import(
    cli: Cli, tmp_path: Path
) -> None:
    missing = cli.run("list", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no database at" in missing.stderr
    assert not (tmp_path / "nope.db").exists()
    unknown = cli.run("show", "order-nope", "--db", cli.url)
    assert unknown.returncode == 2
    assert (
        unknown.stderr.strip()
        == f"eddic: error: no workflow instance with id 'order-nope' in {cli.db}"
    )
    broken = cli.run("replay", "order-done", "--db", cli.url, "--import", "dbg_broken")
    assert broken.returncode == 2
    assert "cannot import module 'dbg_broken': RuntimeError: dbg_broken refuses" in broken.stderr
    (tmp_path / "notes.txt").write_text("not a database")
    foreign = cli.run("list", "--db", str(tmp_path / "notes.txt"))
    assert foreign.returncode == 2 and "notes.txt" in foreign.stderr
    assert (tmp_path / "notes.txt").read_text() == "not a database"
    nodb = cli.run("list")
    assert nodb.returncode == 2 and "no database: pass --db" in nodb.stderr


# -- operating: send-event, serve, outbox ----------------------------------------------------------


def test_send_event_resumes_the_instance_when_its_code_is_imported(cli: Cli) -> None:
    out = cli.ok(
        "send-event",
        "payment.confirmed",
        "--data",
        '{"amount": 5}',
        "--instance",
        "order-waiting",
        "--db",
        cli.url,
        "--import",
        "dbg_workflows",
    )
    assert out.splitlines() == ["event 'payment.confirmed' reached 1 instance(s)", "order-waiting"]
    assert cli.statuses()["order-waiting"] == "waiting_for_event"  # now in the First
    history = cli.json("show", "order-waiting", "--db", cli.url)["history"]
    assert [e["state"] for e in history][2:5] == ["received", "completed", "published"]


def test_an_event_sent_without_the_code_is_kept_and_a_worker_resumes_it(cli: Cli) -> None:
    CALLS.clear()
    sent = cli.run("send-event", "payment.confirmed", "--data", '{"amount": 7}', "--db", cli.url)
    assert sent.returncode == 0 and "reached 1 instance(s)" in sent.stdout  # the one waiting
    assert cli.statuses()["order-waiting"] == "waiting_for_event"
    assert cli.ok("serve", "--once", "--db", cli.url, "--import", "dbg_workflows") == (
        "advanced 1 instance(s)\n"
    )
    history = cli.json("show", "order-waiting", "--db", cli.url)["history"]
    assert history[3]["name"] == "dbg_charge" and history[3]["args"]["amount"] == 7
    assert CALLS == []  # the activities ran in the worker process, not here


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_runs_until_interrupted_and_stops_cleanly(cli: Cli, stop: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "eddic", "serve", "--db", cli.url, "--import", "dbg_workflows"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == f"serving {cli.url} (Ctrl-C to stop)\n"
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "stopping after the steps in progress (signal again to stop now)\nstopped\n"


def fail_outbox(url: str) -> str:
    """Relay the outbox to a sink that refuses everything: the one row ends failed."""

    def refuse(event: Any) -> None:
        raise ConnectionRefusedError("broker down")

    with (
        FrozenClock("2100-03-02T00:00:00Z"),  # a day after the row was written: it is due
        App(db_url=url, outbox_enabled=True, outbox_sink=refuse, outbox_max_attempts=1) as app,
    ):
        app.relay_outbox()
        (failed,) = _failed_rows(app)
    return failed


def outbox_statuses(url: str) -> list[str]:
    with App(db_url=url) as app, app.storage.reading() as db:
        return [r[0] for r in db.execute("SELECT status FROM outbox ORDER BY id").fetchall()]


def _failed_rows(app: App) -> list[str]:
    with app.storage.reading() as db:
        rows = db.execute("SELECT event_id FROM outbox WHERE status = 'failed'").fetchall()
    return [str(r[0]) for r in rows]


def test_outbox_lists_pending_rows_and_retries_or_discards_failed_ones(cli: Cli) -> None:
    (pending,) = cli.json("outbox", "--db", cli.url)
    assert (pending["instance_id"], pending["event_type"], pending["status"]) == (
        "order-done",
        "order.charged",
        "pending",
    )
    event_id = fail_outbox(cli.url)
    table = cli.ok("outbox", "--status", "failed", "--db", cli.url).splitlines()
    assert table[1].split()[:5] == [event_id, "order-done", "5", "order.charged", "failed"]
    assert "broker down" in table[1]
    assert (
        cli.ok("outbox", "retry", event_id, "--db", cli.url)
        == "1 failed row(s) put back to pending\n"
    )
    assert outbox_statuses(cli.url) == ["pending"]
    fail_outbox(cli.url)
    assert cli.ok("outbox", "discard", "--all", "--db", cli.url) == "1 failed row(s) discarded\n"
    assert [r["status"] for r in cli.json("outbox", "--all", "--db", cli.url)] == ["discarded"]
    vague = cli.run("outbox", "retry", "--db", cli.url)
    assert vague.returncode == 2 and "give one EVENT_ID or --all" in vague.stderr
