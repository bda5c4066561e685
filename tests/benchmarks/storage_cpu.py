"""The storage's share of ``cpu.py``: instructions of SQLite's step commits alone.

    python tests/benchmarks/storage_cpu.py             # storage calls, then the bare SQL
    python tests/benchmarks/storage_cpu.py --counts 3  # the median of 3 counts of each

``cpu.py --instructions`` counts a whole workflow: the runtime, the kernel, pydantic and the
storage. This counts only the storage's part of the inline path of the 3-activity order
workflow of ``throughput.py``: per workflow one ``Storage.create`` and three
``Storage.commit_step``, with ``StepWrite`` values shaped as the runtime builds them (a first
step scheduling an activity; two steps resolving one and scheduling the next, with no instance
column changed; a last step resolving the third, completing the instance and releasing its
lease), on a file at ``synchronous=OFF`` so that no fsync is in the figure. ``--sql`` counts
the statements that path ran before issue 14 item 8 (18), and then the 14 it runs today,
issued by hand through one cursor (``BEGIN IMMEDIATE`` ... ``COMMIT``, no locks, no group
commit, no Python around them): the floor the storage's own Python sits on.

Each count runs ``--small`` and ``--large`` workflows in two processes under
``valgrind --tool=callgrind`` and divides the difference, so start-up and imports cancel out.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

from eddic.storage import StepWrite
from eddic.storage.sqlite.store import Storage
from eddic.storage.sqlite.transactions import writer_cursor

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
OWNER = "vm:1234:abcdef01"
ACTIVITIES = (
    ("bench_reserve", '{"order_id":"ORD-%d","amount":11.0}', '{"reservation_id":"RES-%d"}'),
    ("bench_charge", '{"order_id":"ORD-%d","amount":11.0}', '{"transaction_id":"TXN-%d"}'),
    ("bench_ship", '{"order_id":"ORD-%d"}', '"TRACK-%d"'),
)


def workflow(storage: Storage, i: int) -> None:
    """What the runtime asks of the storage for one order workflow run inline."""
    iid = f"{i:08d}-3b81-407b-b7d6-9f2bc237b9a8"
    now = T0 + timedelta(milliseconds=i)
    row = {
        "instance_id": iid,
        "workflow_name": "bench_order",
        "status": "running",
        "input_data": f'{{"order_id":"ORD-{i}","amount":11.0,"email":"c1@example.com"}}',
        "created_at": now,
        "updated_at": now,
        "started_at": now,
        "service_name": "eddic",
        "lock_timeout_seconds": None,
        "lock_owner": OWNER,
        "lock_epoch": 1,
        "lock_expires_at": now + timedelta(minutes=5),
    }
    name, args, _ = ACTIVITIES[0]
    step = StepWrite(iid, OWNER, 1)
    step.history = [(iid, 1, 1, "scheduled", "activity", name, args % i, now, None, None, None)]
    step.columns = {
        "status": "running",
        "error": None,
        "wake_at": None,
        "retry_after": None,
        "updated_at": now,
    }
    _, key = storage.create(row, step, now, check_taken=False)
    for n in range(1, 4):
        now = now + timedelta(microseconds=500)
        step = StepWrite(iid, OWNER, 1, key)
        value = ACTIVITIES[n - 1][2] % i
        step.history = [(iid, 2 * n, n, "resolved", None, None, None, now, None, value, None)]
        if n < 3:
            name, args, _ = ACTIVITIES[n]
            step.history.append(
                (
                    iid,
                    2 * n + 1,
                    n + 1,
                    "scheduled",
                    "activity",
                    name,
                    args % i,
                    now,
                    None,
                    None,
                    None,
                )
            )
        else:
            step.columns = {
                "status": "completed",
                "output_data": f'{{"order_id":"ORD-{i}"}}',
                "error": None,
                "wake_at": None,
                "retry_after": None,
                "updated_at": now,
            }
            step.release = True
        storage.commit_step(step, now)


def _insert_instance(execute: Any, iid: str, now: str, input_data: str) -> None:
    """The new instance's row, as ``create`` writes it, by hand."""
    execute(
        "INSERT INTO instances (instance_id, workflow_name, status, input_data, created_at, "
        "updated_at, started_at, service_name, lock_timeout_seconds, lock_owner, lock_epoch, "
        "lock_expires_at, error, wake_at, retry_after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, NULL, NULL, NULL)",
        [iid, "bench_order", "running", input_data, now, now, now, "eddic", OWNER, 1, now],
    )


def sql_workflow(cur: object, i: int) -> None:
    """The statements of ``workflow`` as the storage ran them before issue 14 item 8, by hand."""
    execute = cur.execute  # type: ignore[attr-defined]
    iid = f"{i:08d}-3b81-407b-b7d6-9f2bc237b9a8"
    now = f"2026-12-01T00:00:00.{i:06d}+00:00"
    execute("BEGIN IMMEDIATE")
    _insert_instance(execute, iid, now, '{"order_id":"ORD-1"}')
    key = cur.lastrowid << 24  # type: ignore[attr-defined]
    execute(
        "INSERT INTO history (id, instance_id, pos, seq, record, kind, name, args, at) "
        "VALUES (?,?,?,?,'scheduled',?,?,?,?)",
        (key | 1, iid, 1, 1, "activity", "bench_reserve", '{"order_id":"ORD-1"}', now),
    )
    execute("COMMIT")
    for n in range(1, 4):
        execute("BEGIN IMMEDIATE")
        if n < 3:
            execute(
                "SELECT 1 FROM instances WHERE instance_id = ? AND lock_owner = ? "
                "AND lock_epoch = ?",
                (iid, OWNER, 1),
            ).fetchall()
        else:
            execute(
                "UPDATE instances SET status = ?, output_data = ?, error = NULL, wake_at = NULL, "
                "retry_after = NULL, updated_at = ?, lock_owner = NULL, lock_expires_at = NULL "
                "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?",
                ["completed", '"done"', now, iid, OWNER, 1],
            )
        execute(
            "INSERT INTO history (id, instance_id, pos, seq, record, at, value) "
            "VALUES (?,?,?,?,'resolved',?,?)",
            (key | 2 * n, iid, 2 * n, n, now, '"x"'),
        )
        if n < 3:
            execute(
                "INSERT INTO history (id, instance_id, pos, seq, record, kind, name, args, at) "
                "VALUES (?,?,?,?,'scheduled',?,?,?,?)",
                (key | 2 * n + 1, iid, 2 * n + 1, n + 1, "activity", "bench_charge", "{}", now),
            )
        execute("COMMIT")


_HISTORY = (
    "INSERT INTO history (id, instance_id, pos, seq, record, kind, name, args, at, deadline, "
    "value, failure) "
)
_SCHEDULED = "(?,?,?,?,'scheduled',?,?,?,?,NULL,NULL,NULL)"
_RESOLVED = "(?,?,?,?,'resolved',NULL,NULL,NULL,?,NULL,?,NULL)"
_FENCED_PAIR = (
    f"{_HISTORY}SELECT * FROM (VALUES {_RESOLVED}, {_SCHEDULED}) WHERE EXISTS (SELECT 1 FROM "
    "instances WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?)"
)


def sql_now_workflow(cur: object, i: int) -> None:
    """The statements of ``workflow`` as the storage runs them today (14: one INSERT of the
    instance and one of its first record; then a fenced INSERT of two records per step, and the
    last step's UPDATE and INSERT), by hand through one cursor: the floor under ``workflow``."""
    execute = cur.execute  # type: ignore[attr-defined]
    iid = f"{i:08d}-3b81-407b-b7d6-9f2bc237b9a8"
    now = f"2026-12-01T00:00:00.{i % 1_000_000:06d}+00:00"
    execute("BEGIN IMMEDIATE")
    _insert_instance(
        execute, iid, now, f'{{"order_id":"ORD-{i}","amount":11.0,"email":"c1@example.com"}}'
    )
    key = cur.lastrowid << 24  # type: ignore[attr-defined]
    name, args, _ = ACTIVITIES[0]
    execute(
        f"{_HISTORY}VALUES {_SCHEDULED}",
        (key | 1, iid, 1, 1, "activity", name, args % i, now),
    )
    execute("COMMIT")
    for n in range(1, 4):
        execute("BEGIN IMMEDIATE")
        value = ACTIVITIES[n - 1][2] % i
        if n < 3:
            name, args, _ = ACTIVITIES[n]
            execute(
                _FENCED_PAIR,
                (
                    *(key | 2 * n, iid, 2 * n, n, now, value),
                    *(key | 2 * n + 1, iid, 2 * n + 1, n + 1, "activity", name, args % i, now),
                    *(iid, OWNER, 1),
                ),
            )
        else:
            execute(
                "UPDATE instances SET status = ?, output_data = ?, error = NULL, wake_at = NULL, "
                "retry_after = NULL, updated_at = ?, lock_owner = NULL, lock_expires_at = NULL "
                "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?",
                ["completed", f'{{"order_id":"ORD-{i}"}}', now, iid, OWNER, 1],
            )
            execute(f"{_HISTORY}VALUES {_RESOLVED}", (key | 2 * n, iid, 2 * n, n, now, value))
        execute("COMMIT")


class NoStorage:
    """Takes the calls and does nothing: what building the values costs (``--harness``)."""

    def create(self, row: object, step: object, now: object, **kw: object) -> tuple[None, int]:
        return None, 1

    def commit_step(self, step: object, now: object) -> None:
        pass


def child(workflows: int, sql: bool, harness: bool = False, sql_now: bool = False) -> None:
    if harness:
        nothing: Any = NoStorage()
        for i in range(30):
            workflow(nothing, 10_000_000 + i)
        for i in range(workflows):
            workflow(nothing, i)
        return
    with tempfile.TemporaryDirectory() as folder:
        storage = Storage(f"sqlite:///{folder}/storage.db", synchronous="OFF")
        storage.open()
        if sql or sql_now:
            cur = writer_cursor(storage._db())
            by_hand = sql_now_workflow if sql_now else sql_workflow
            for i in range(30):
                by_hand(cur, 10_000_000 + i)
            for i in range(workflows):
                by_hand(cur, i)
        else:
            for i in range(30):
                workflow(storage, 10_000_000 + i)
            for i in range(workflows):
                workflow(storage, i)
        storage.close()


def callgrind(child_args: list[str]) -> int:
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            os.path.abspath(__file__),
            *child_args,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
        check=True,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    assert found, proc.stderr[-2000:]
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, default=1, help="counts to take the median of")
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=600)
    parser.add_argument("--sql", action="store_true", help="only the bare SQL")
    parser.add_argument("--no-sql", action="store_true", help="only the storage calls")
    parser.add_argument("--harness", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sql-now", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.sql, args.harness, args.sql_now)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 1

    def count(flag: list[str]) -> float:
        counts = []
        for _ in range(args.counts):
            small = callgrind(["--child", str(args.small), *flag])
            large = callgrind(["--child", str(args.large), *flag])
            counts.append((large - small) / (args.large - args.small))
        return statistics.median(counts)

    harness = count(["--harness"]) if not args.sql else 0.0
    if not args.sql:
        print(f"{'building the values (harness)':34} {harness:9,.0f} instructions per workflow")
    if not args.sql:
        figure = count([])
        print(
            f"{'create + 3 commit_step':34} {figure:9,.0f} instructions per workflow, "
            f"{figure - harness:,.0f} without the harness"
        )
    if not args.no_sql:
        print(f"{'bare SQL (18 statements)':34} {count(['--sql']):9,.0f} instructions per workflow")
        print(
            f"{'bare SQL, today (14 statements)':34} {count(['--sql-now']):9,.0f} instructions "
            "per workflow"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
