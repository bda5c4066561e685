"""The ``eddic`` command line facing what goes wrong: damaged records, hostile stored strings,
long lists, parked instances and a worker stuck in an activity.

Most tests call :func:`eddic.cli.main` in this process (an exception escaping it is the
traceback an operator would see); the ones about signals and retrying run ``python -m eddic``.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dbg_faults
import dbg_workflows
import pytest
from test_dbg_cli import Cli, fail_outbox, record_orders

from eddic import App
from eddic.cli import main
from eddic.storage.sqlite.dbfile import StorageError
from eddic.testing import FrozenClock

#: What a terminal must never receive from stored text: C0 (but the newline), DEL, C1, bidi.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: Erases the line, returns the cursor, starts a C1 sequence, flips the text, ...; then "✓é".
HOSTILE = "evil\x1b[2K\r\x9b\u202efake\x7f\u2066 ✓é"
ESCAPED = "evil\\x1b[2K\\r\\x9b\\u202efake\\x7f\\u2066 ✓é"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four dbg_order instances of test_dbg_cli, recorded once; each test gets a copy."""
    path = tmp_path_factory.mktemp("recorded") / "orders.db"
    record_orders(f"sqlite:///{path}")
    return path


@pytest.fixture
def cli(recorded: Path, tmp_path: Path) -> Cli:
    db = tmp_path / "orders.db"
    shutil.copy(recorded, db)
    return Cli(db, f"sqlite:///{db}")


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``eddic ARGV`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exit:  # argparse refusing an argument
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def damage(db: Path, sql: str, *params: Any) -> None:
    """Change the file by hand, as an operator with sqlite3 might."""
    conn = sqlite3.connect(db)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


# -- 1. damaged records -----------------------------------------------------------------------

#: (instance, column, SQL fragment) for the instance rows.
INSTANCE_DAMAGE = [
    ("order-waiting", "input_data", "input_data = '{\"order_id\": x}'"),
    ("order-done", "output_data", "output_data = '{'"),
    ("order-failed", "error", "error = 'nope'"),
    ("order-failed", "error", "error = '\"valid JSON, but not an object\"'"),
    ("order-waiting", "created_at", "created_at = 'yesterday'"),
    ("order-sleeping", "updated_at", "updated_at = '2100-03-01T12:00:00'"),  # no time zone
    ("order-sleeping", "wake_at", "wake_at = 'soon'"),
]

#: (pos, seq, column, SQL fragment) for the history rows of order-waiting.
HISTORY_DAMAGE = [
    (3, 2, "args", "args = '{\"seconds\": '"),
    (2, 1, "value", "value = '['"),
    (4, 2, "failure", 'failure = \'{"type": "X"\''),
    (4, 2, "failure", "failure = '[1, 2]'"),
    (4, 2, "at", "at = 'noon'"),
    (1, 1, "kind", "kind = NULL"),
    (5, 3, "name", "name = NULL"),
]


def damage_instance(cli: Cli, instance_id: str, fragment: str) -> None:
    damage(cli.db, f"UPDATE instances SET {fragment} WHERE instance_id = ?", instance_id)


def damage_history(cli: Cli, pos: int, fragment: str) -> None:
    damage(
        cli.db,
        f"UPDATE history SET {fragment} WHERE instance_id = 'order-waiting' AND pos = ?",
        pos,
    )


def names_the_record(err: str, instance_id: str, column: str, *where: str) -> bool:
    line = err.strip()
    return (
        "\n" not in line
        and line.startswith("eddic: error:")
        and f"'{instance_id}'" in line
        and column in line
        and all(w in line for w in where)
    )


@pytest.mark.parametrize(("instance_id", "column", "fragment"), INSTANCE_DAMAGE)
def test_show_of_a_damaged_instance_row_names_instance_and_column_and_exits_2(
    cli: Cli, capsys: pytest.CaptureFixture[str], instance_id: str, column: str, fragment: str
) -> None:
    damage_instance(cli, instance_id, fragment)
    code, out, err = run("show", instance_id, "--db", cli.url, capsys=capsys)
    assert code == 2 and out == ""
    assert names_the_record(err, instance_id, column, "instances"), err


@pytest.mark.parametrize(("pos", "seq", "column", "fragment"), HISTORY_DAMAGE)
def test_show_of_a_damaged_history_record_names_its_pos_seq_and_column_and_exits_2(
    cli: Cli, capsys: pytest.CaptureFixture[str], pos: int, seq: int, column: str, fragment: str
) -> None:
    damage_history(cli, pos, fragment)
    code, out, err = run("show", "order-waiting", "--db", cli.url, capsys=capsys)
    assert code == 2 and out == ""
    assert names_the_record(err, "order-waiting", column, f"pos {pos}", f"seq {seq}"), err


@pytest.mark.parametrize(("instance_id", "column", "fragment"), INSTANCE_DAMAGE)
def test_list_shows_the_other_instances_and_the_damaged_one_as_damaged(
    cli: Cli, capsys: pytest.CaptureFixture[str], instance_id: str, column: str, fragment: str
) -> None:
    damage_instance(cli, instance_id, fragment)
    code, out, err = run("list", "--db", cli.url, capsys=capsys)
    assert code == 2
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"order-waiting", "order-done", "order-failed", "order-sleeping"}
    assert "DAMAGED" in rows[instance_id]
    assert sum("DAMAGED" in row for row in rows.values()) == 1
    assert names_the_record(err, instance_id, column, "instances"), err
    code, out, _ = run("list", "--json", "--db", cli.url, capsys=capsys)
    listed = {r["instance_id"]: r for r in json.loads(out)}
    assert code == 2 and len(listed) == 4
    assert column in listed[instance_id]["damaged"]
    assert [r for r in listed.values() if "damaged" in r] == [listed[instance_id]]


@pytest.mark.parametrize(
    ("damaged", "where"),
    [
        (lambda c: damage_instance(c, "order-waiting", INSTANCE_DAMAGE[0][2]), ["input_data"]),
        (lambda c: damage_instance(c, "order-waiting", INSTANCE_DAMAGE[4][2]), ["created_at"]),
        *[
            ((lambda c, p=pos, f=fragment: damage_history(c, p, f)), [column, f"pos {pos}"])
            for pos, _seq, column, fragment in HISTORY_DAMAGE
        ],
    ],
)
def test_check_checks_the_others_and_reports_the_damaged_instance_with_exit_2(
    cli: Cli, capsys: pytest.CaptureFixture[str], damaged: Any, where: list[str]
) -> None:
    damaged(cli)
    code, out, err = run("check", "--db", cli.url, "--import", "dbg_workflows", capsys=capsys)
    assert code == 2, out + err
    verdicts = ("ok", "DAMAGED", "DIVERGES", "ERROR")
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith(verdicts)}
    assert lines["order-sleeping"].startswith("ok ")
    assert lines["order-waiting"].startswith("DAMAGED ")
    assert all(w in lines["order-waiting"] for w in where), lines["order-waiting"]
    assert out.splitlines()[-1] == "checked 2 instance(s): 1 replay, 0 would not, 1 damaged"
    code, out, _ = run(
        "check", "--json", "--db", cli.url, "--import", "dbg_workflows", capsys=capsys
    )
    results = {r["instance_id"]: r for r in json.loads(out)}
    assert code == 2 and results["order-sleeping"]["ok"] is True
    assert results["order-waiting"]["damaged"] is True


def test_replay_of_a_damaged_instance_names_the_record_and_exits_2(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    damage_history(cli, 2, "value = '['")
    code, out, err = run(
        "replay", "order-waiting", "--db", cli.url, "--import", "dbg_workflows", capsys=capsys
    )
    assert code == 2 and out == ""
    assert names_the_record(err, "order-waiting", "value", "pos 2", "seq 1"), err


def test_app_get_instance_and_history_raise_a_storage_error_naming_the_record(cli: Cli) -> None:
    damage_instance(cli, "order-waiting", INSTANCE_DAMAGE[0][2])
    damage_history(cli, 4, "at = 'noon'")
    with App(db_url=cli.url) as app:
        with pytest.raises(StorageError, match=r"'order-waiting'.*input_data") as caught:
            app.get_instance("order-waiting")
        assert "Expecting value" in str(caught.value)  # why, after where
        with pytest.raises(StorageError, match=r"'order-waiting'.*pos 4.*seq 2.*\bat\b"):
            app.history("order-waiting")
        with pytest.raises(StorageError, match=r"'order-waiting'.*input_data"):
            app.list_instances()
        assert app.get_instance("order-done")["status"] == "completed"  # the others read fine


def test_a_damaged_outbox_row_and_a_missing_table_are_named_without_a_traceback(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    damage(cli.db, "UPDATE outbox SET data = '{oops'")
    code, _, err = run("outbox", "--db", cli.url, capsys=capsys)
    assert code == 2
    assert names_the_record(err, "order-done", "data", "outbox", "seq 5"), err
    damage(cli.db, "DROP TABLE outbox")
    code, _, err = run("outbox", "--db", cli.url, capsys=capsys)
    assert code == 2 and "no such table: outbox" in err and cli.db.name in err


def test_a_timer_with_unreadable_arguments_is_shown_as_recorded(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid JSON, but not what a timer records: ``show`` prints it rather than failing."""
    damage_history(cli, 3, 'args = \'{"seconds": "soon"}\'')
    code, out, err = run("show", "order-waiting", "--db", cli.url, capsys=capsys)
    assert code == 0, err
    assert 'sleep {"seconds": "soon"}' in out
    damage_history(cli, 3, 'args = \'{"until": "tomorrow"}\'')
    code, out, err = run("show", "order-waiting", "--db", cli.url, capsys=capsys)
    assert code == 0 and 'sleep {"until": "tomorrow"}' in out


def test_text_that_is_not_utf8_is_shown_escaped_and_hides_no_other_row(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    error = b'{"type": "Bad\xffBytes", "message": "m"}'
    damage(
        cli.db,
        "UPDATE instances SET error = CAST(? AS TEXT) WHERE instance_id = 'order-failed'",
        error,
    )
    code, out, err = run("list", "--db", cli.url, capsys=capsys)
    assert code == 0 and len(out.splitlines()) == 5, err
    code, out, err = run("show", "order-failed", "--db", cli.url, capsys=capsys)
    assert code == 0 and "error     Bad\\udcffBytes: m" in out, err


def test_an_app_factory_that_raises_is_an_error_not_a_traceback(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run("list", "--app", "dbg_faults:broken_app", capsys=capsys)
    assert code == 2
    assert "dbg_faults:broken_app" in err and "RuntimeError: no configuration" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--limit", "-1"],
        ["outbox", "--limit", "-5"],
        ["serve", "--threads", "0"],
        ["serve", "--poll", "-1"],  # a busy loop, waiting -1 s between passes
        ["serve", "--poll", "nan"],
    ],
)
def test_counts_and_seconds_out_of_range_are_refused(cli: Cli, argv: list[str]) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "eddic", *argv, "--db", cli.url],
            capture_output=True,
            text=True,
            env=cli.env(),
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"eddic {' '.join(argv)} ran instead of refusing its argument")
    assert done.returncode == 2 and argv[1] in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# -- 2. control characters in stored strings --------------------------------------------------


def rename(db: Path, old: str, new: str) -> None:
    """Give an instance a new id in every table that names it."""
    for table in ("instances", "history", "mailbox", "event_waits", "attempts", "outbox"):
        damage(db, f"UPDATE {table} SET instance_id = ? WHERE instance_id = ?", new, old)


@pytest.fixture
def hostile(cli: Cli) -> Cli:
    """Control characters in an id, a workflow name, an error, an event type, an outbox error."""
    fail_outbox(cli.url)  # order-done's row: failed, last_error "...broker down"
    damage(cli.db, "UPDATE outbox SET event_type = ?, last_error = ?", HOSTILE, HOSTILE)
    for instance_id in ("order-waiting", "order-failed", "order-done"):
        rename(cli.db, instance_id, f"{instance_id}-{HOSTILE}")
    error = {"type": HOSTILE, "message": HOSTILE, "traceback": None}
    damage(
        cli.db,
        "UPDATE instances SET error = ?, workflow_name = ? WHERE instance_id = 'order-sleeping'",
        json.dumps(error),
        HOSTILE,
    )
    damage(cli.db, "UPDATE history SET name = ? WHERE kind = 'event'", HOSTILE)
    return cli


def assert_escaped(text: str, *, as_json: bool = False) -> None:
    assert not RAW_CONTROL.search(text), ascii(text)
    shown = repr(json.loads(text)) if as_json else text  # JSON escapes its own way
    assert ESCAPED in shown


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["list", "--json"],
        ["show", f"order-failed-{HOSTILE}"],
        ["show", f"order-waiting-{HOSTILE}", "--json"],
        ["show", "order-sleeping"],
        ["replay", f"order-failed-{HOSTILE}", "--import", "dbg_workflows"],
        ["check", f"order-waiting-{HOSTILE}", "order-sleeping", "--import", "dbg_workflows"],
        ["check", f"order-waiting-{HOSTILE}", "--json", "--import", "dbg_workflows"],
        ["outbox", "--all"],
        ["outbox", "--json"],
        ["show", f"no-such-{HOSTILE}"],
    ],
)
def test_control_characters_in_stored_strings_are_escaped_in_every_output(
    hostile: Cli, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    _code, out, err = run(*argv, "--db", hostile.url, capsys=capsys)
    assert_escaped(out or err, as_json="--json" in argv)
    assert not RAW_CONTROL.search(err)


def test_replay_step_details_and_event_names_are_escaped(
    hostile: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("replay", f"order-done-{HOSTILE}", "--step", "--db", hostile.url)
    capsys.readouterr()
    import io

    sys_stdin = sys.stdin
    sys.stdin = io.StringIO("c\n")
    try:
        code = main([*args, "--import", "dbg_workflows"])
    finally:
        sys.stdin = sys_stdin
    out, err = capsys.readouterr()
    assert code == 1  # the event names no longer match the code: a divergence, escaped too
    assert_escaped(out)
    assert not RAW_CONTROL.search(err)


def test_send_event_prints_the_ids_it_reached_escaped(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    rename(cli.db, "order-waiting", f"order-waiting-{HOSTILE}")
    code, out, err = run(
        "send-event", "payment.confirmed", "--db", cli.url, "--data", '{"amount": 1}',
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert_escaped(out)


def test_log_lines_escape_what_they_quote(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    main(["list", "--db", cli.url])  # installs the CLI's log format
    capsys.readouterr()
    logging.getLogger("eddic.test").warning("instance %s is parked", HOSTILE)
    assert_escaped(capsys.readouterr().err)


def test_printable_unicode_is_left_as_it_is(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    rename(cli.db, "order-done", "commande-réglée-✓-注文")
    code, out, _ = run("list", "--db", cli.url, capsys=capsys)
    assert code == 0 and "commande-réglée-✓-注文" in out


# -- 3. the newest instances first, and a word when the list is cut --------------------------


@pytest.fixture
def many(tmp_path: Path) -> Cli:
    db = tmp_path / "many.db"
    url = f"sqlite:///{db}"
    with FrozenClock("2100-01-01T00:00:00Z") as clock, App(db_url=url) as app:
        for n in range(105):
            app.start(dbg_workflows.dbg_order, input={"order_id": "x"}, instance_id=f"o{n:03d}")
            clock.advance(1 if n != 50 else 0)  # o050 and o051: the same time
    return Cli(db, url)


def test_list_shows_the_newest_first_and_says_when_it_was_cut(
    many: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run("list", "--db", many.url, capsys=capsys)
    ids = [line.split()[0] for line in out.splitlines()[1:]]
    assert code == 0 and len(ids) == 100
    assert ids[:3] == ["o104", "o103", "o102"] and ids[-1] == "o005"
    assert ids.index("o051") < ids.index("o050")  # the same time: the later start first
    assert "showing the newest 100 of 105" in err and "--limit N or --all" in err
    code, out, err = run("list", "--all", "--db", many.url, capsys=capsys)
    assert len(out.splitlines()) == 106 and err == ""
    code, out, err = run("list", "--limit", "3", "--json", "--db", many.url, capsys=capsys)
    assert [r["instance_id"] for r in json.loads(out)] == ["o104", "o103", "o102"]
    assert "showing the newest 3 of 105" in err
    code, out, err = run("list", "--limit", "-1", "--db", many.url, capsys=capsys)
    assert code == 2 and "--limit" in err


def test_app_list_instances_is_newest_first(many: Cli) -> None:
    with App(db_url=many.url) as app:
        assert [i["instance_id"] for i in app.list_instances(limit=2)] == ["o104", "o103"]


# -- 4. parked instances ----------------------------------------------------------------------


def park(cli: Cli, retry_at: datetime) -> str:
    """An instance whose step raised a BaseException: parked until ``retry_at``."""
    dbg_faults.UNPLUGGED = True
    try:
        with (
            FrozenClock(retry_at - timedelta(minutes=1)),
            App(db_url=cli.url, recovery_interval_seconds=60) as app,
        ):
            iid = app.start(dbg_faults.dbg_flaky, input="lamp", instance_id="parked-1")
            info = app.get_instance(iid)
    finally:
        dbg_faults.UNPLUGGED = False
    assert info["retry_after"] is not None and info["error"] is not None, info
    return iid


def test_show_of_a_parked_instance_says_why_and_when_it_is_retried(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    park(cli, datetime(2100, 1, 1, tzinfo=timezone.utc))
    code, out, _ = run("show", "parked-1", "--db", cli.url, capsys=capsys)
    assert code == 0
    fields = {line[:10].strip(): line[10:] for line in out.splitlines() if line[:1].islower()}
    assert "Unplugged: the cable of lamp is out" in fields["parked"]
    assert "2100-01-01 00:00:00Z" in fields["retry"] and "automatically" in fields["retry"]
    assert "eddic retry parked-1" in out


def test_list_marks_a_parked_instance(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    park(cli, datetime(2100, 1, 1, tzinfo=timezone.utc))
    code, out, _ = run("list", "--db", cli.url, capsys=capsys)
    statuses = {line.split()[0]: line.split()[2:4] for line in out.splitlines()[1:]}
    assert code == 0 and statuses["parked-1"] == ["running", "(parked)"]
    assert "(parked)" not in " ".join(" ".join(v) for k, v in statuses.items() if k != "parked-1")


def test_show_never_presents_a_past_wake_or_retry_time_as_a_future_one(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    park(cli, datetime(2001, 1, 1, tzinfo=timezone.utc))
    code, out, _ = run("show", "parked-1", "--db", cli.url, capsys=capsys)
    fields = {line[:10].strip(): line[10:] for line in out.splitlines() if line[:1].islower()}
    assert code == 0 and "overdue since 2001-01-01 00:00:00Z" in fields["retry"]
    damage(cli.db, "UPDATE instances SET wake_at = '2001-01-01T00:00:00.000000+00:00'")
    code, out, _ = run("show", "order-sleeping", "--db", cli.url, capsys=capsys)
    fields = {line[:10].strip(): line[10:] for line in out.splitlines() if line[:1].islower()}
    assert "overdue since 2001-01-01 00:00:00Z" in fields["wakes"]


def test_eddic_retry_runs_a_parked_instance_at_once(cli: Cli) -> None:
    iid = park(cli, datetime(2100, 1, 1, tzinfo=timezone.utc))
    done = cli.run("retry", iid, "--db", cli.url, "--import", "dbg_faults")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "retried parked-1: now completed"
    with App(db_url=cli.url) as app:
        info = app.get_instance(iid)
    assert (info["status"], info["output_data"], info["retry_after"]) == (
        "completed",
        "plugged lamp",
        None,
    )
    again = cli.run("retry", iid, "--db", cli.url, "--import", "dbg_faults")
    assert again.returncode == 0 and "already completed: nothing to retry" in again.stdout
    unknown = cli.run("retry", "nope", "--db", cli.url, "--import", "dbg_faults")
    assert unknown.returncode == 2 and "'nope'" in unknown.stderr


def test_eddic_retry_without_the_code_says_what_to_import(cli: Cli) -> None:
    iid = park(cli, datetime(2100, 1, 1, tzinfo=timezone.utc))
    done = cli.run("retry", iid, "--db", cli.url)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'dbg_flaky' is not registered" in done.stderr and "--import" in done.stderr


# -- 5. a second signal stops serve at once -----------------------------------------------------


@pytest.fixture
def stuck(tmp_path: Path) -> Cli:
    """Two dbg_stuck instances recorded in 2000: a worker on real time runs them at once."""
    db = tmp_path / "stuck.db"
    url = f"sqlite:///{db}"
    with FrozenClock("2000-01-01T00:00:00Z"), App(db_url=url) as app:
        for name in ("a", "b"):
            app.start(dbg_faults.dbg_stuck, input=name, instance_id=f"stuck-{name}")
    return Cli(db, url)


def serve_stuck(stuck: Cli) -> Iterator[subprocess.Popen[str]]:
    args = ["serve", "--threads", "2", "--db", stuck.url, "--import", "dbg_faults"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "eddic", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=stuck.env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_second_signal_stops_serve_at_once_while_an_activity_hangs(
    stuck: Cli, stop: signal.Signals, status: int
) -> None:
    for proc in serve_stuck(stuck):
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("serving ")
        # both worker threads are stuck now (their lines come in either order)
        hanging = sorted(proc.stdout.readline().strip() for _ in range(2))
        assert hanging == ["hanging a", "hanging b"]
        proc.send_signal(stop)
        assert proc.stdout.readline().startswith("stopping after the steps in progress")
        proc.send_signal(stop)
        started = time.monotonic()
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("serve ignored the second signal")
        assert time.monotonic() - started < 10
        assert proc.returncode == status, err
        assert "stopping now" in out
