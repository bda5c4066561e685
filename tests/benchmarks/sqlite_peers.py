"""eddic and DBOS on SQLite at ``synchronous=FULL``: the same work, side by side, in one run.

Each measurement runs ``--workflows`` (1,000) workflows of 3 trivial activities (steps) in a
fresh process on a fresh database file, ``--rounds`` (3) times, rounds outermost and eddic's
and DBOS's measurements alternating within a round, so that the disk's drift (a VM disk's fsync
latency moves 2-4x within minutes) spreads over every figure. It prints activities/s per
measurement (median, min and max of the rounds), each framework's best, and eddic's best as a
ratio to DBOS's best. Asserts nothing. Run by hand, in a venv that has DBOS (never the
project's own venv)::

    python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install -e '.[test]' dbos
    /tmp/peers-venv/bin/python tests/benchmarks/sqlite_peers.py [--workflows 1000] [--rounds 3]
        [--threads 16] [--warm 50] [--dir PARENT] [--timeout 600]
    /tmp/peers-venv/bin/python tests/benchmarks/sqlite_peers.py --workflows 100 --rounds 1  # quick

Without ``dbos`` the eddic measurements run alone and the output says what to install. The
measurements (N = ``--threads``):

- **eddic, app.start from N threads**: ``throughput.py``'s ``bench_order`` (pydantic input, 3
  ``@activity`` calls) and ``order(i)``, on an App made and warmed by ``throughput.new_app``
  (``synchronous="FULL"``, 250 inline starts so the WAL has wrapped), N threads sharing it,
  each ``app.start`` running its workflow to completion inline (steps share commits).
- **eddic, serve(threads=N) draining**: the workflows ``app.submit``-ted first (timed apart and
  reported as "submit"), then ``app.serve(threads=N)`` in a thread; timed from the serve's
  start until a COUNT of completed instances (polled every 5 ms on a connection of its own)
  reaches them all. Also reported: submit + drain together.
- **eddic, app.start in one thread** (inline), for reference, not among eddic's best.
- **DBOS**: ``DBOS(config={"system_database_url": "sqlite:///..."})``, a ``@DBOS.workflow()``
  calling 3 ``@DBOS.step()`` functions that build what ``bench_order``'s activities return;
  sequential (one thread), N threads calling the workflow directly, and DBOS's own queue
  (``worker_concurrency=N``, polled every 10 ms instead of its default 1 s, which would cap
  dequeues at N per second): enqueued from one thread while the queue's workers run, timed
  from the first enqueue until every workflow has succeeded (the enqueue time is reported).
  DBOS's SQLite pragmas are its own (read back from its connection and printed).

Every measurement first runs ``--warm`` (50) untimed workflows at its own level (imports,
connections, threads), and counts only if the file shows every workflow completed and every
step recorded (eddic: ``instances`` completed, ``history`` resolved records; DBOS:
``workflow_status`` SUCCESS, ``operation_outputs``); otherwise it is reported as failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import throughput  # bench_order, order(i), new_app; DBOS gets the same order(i) as input
from benchlib import describe_dir, scratch_dir, spread
from pg_peers import INSTALL, RESULT_TAG, missing_modules, run_threads

STEPS = 3
TARGET_RATE = 8000.0  # the issue's: eddic activities/s, both app.start x16 and serve x16
TARGET_RATIO = 25.0  # the issue's: eddic's best over DBOS's best on SQLite
EDDIC_POLL = 0.005  # a COUNT on an index in WAL mode: cheap, and no writer waits for it
DBOS_POLL = 0.02  # DBOS keeps a rollback journal: a reader's lock can hold up its commits
DBOS_QUEUE_POLL = 0.01
EDDIC_DONE = "SELECT count(*) FROM instances WHERE status = 'completed'"
EDDIC_STEPS = "SELECT count(*) FROM history WHERE record = 'resolved'"
DBOS_DONE = "SELECT count(*) FROM workflow_status WHERE status = 'SUCCESS'"
DBOS_STEPS = "SELECT count(*) FROM operation_outputs"

Key = tuple[str, str]  # (framework, mode)
#: eddic's and DBOS's measurements alternate in each round, so that both sample the disk alike
LABELS: dict[Key, str] = {
    ("eddic", "threads"): "eddic app.start, {n} threads",
    ("dbos", "sequential"): "DBOS sequential",
    ("eddic", "serve"): "eddic serve(threads={n}) drain",
    ("dbos", "threads"): "DBOS {n} threads",
    ("eddic", "sequential"): "eddic app.start, 1 thread",
    ("dbos", "queue"): "DBOS queue x{n} (enqueue+drain)",
}
ISSUE = {("eddic", "threads"), ("eddic", "serve")}  # eddic's best is of these; 1 thread is context


def count(path: str, sql: str) -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def wait_for(path: str, sql: str, target: int, poll: float, deadline: float) -> None:
    """Until the COUNT ``sql`` reaches ``target`` (or ``time.monotonic()`` passes ``deadline``),
    on one connection of its own, so that the wait costs a query per poll and nothing else."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        while conn.execute(sql).fetchone()[0] < target and time.monotonic() < deadline:
            time.sleep(poll)
    finally:
        conn.close()


def pragmas(execute: Callable[[str], Any]) -> str:
    """``synchronous`` (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA) and ``journal_mode`` of a connection,
    given its ``execute``: synchronous is per connection, so only the framework's own shows it."""
    sync = execute("PRAGMA synchronous").fetchone()[0]
    journal = execute("PRAGMA journal_mode").fetchone()[0]
    return f"synchronous={sync}, journal_mode={journal}"


def checked(result: Any, path: str, done: str, steps: str, expected: int, what: str) -> Any:
    """``result`` with the workflows completed and the steps recorded, as the file shows them."""
    result.update(completed=count(path, done), steps=count(path, steps), expected=expected)
    result["check"] = f"{what}: {result['completed']}, {result['steps']}"
    return result


# -- eddic --------------------------------------------------------------------------------------


def run_eddic(
    mode: str, folder: str, workflows: int, threads: int, warm: int, timeout: float
) -> Any:
    logging.getLogger("eddic").setLevel(logging.ERROR)
    app = throughput.new_app(folder, "FULL", mode)
    store: Any = app.storage  # the SQLite store's own connection and path (benchmark-only peek)
    path = str(store.path)
    result: dict[str, Any] = {"pragmas": pragmas(store._db().conn.execute)}
    level = 1 if mode == "sequential" else threads

    def start(numbers: range) -> None:
        throughput.start_all(app, numbers)

    def drain(numbers: range) -> tuple[float, float]:
        target = count(path, EDDIC_DONE) + len(numbers)
        begin = time.perf_counter()
        for i in numbers:
            app.submit(throughput.bench_order, input=throughput.order(i))
        submitted = time.perf_counter() - begin
        serving = threading.Thread(target=app.serve, kwargs={"threads": level}, daemon=True)
        begin = time.perf_counter()
        serving.start()
        wait_for(path, EDDIC_DONE, target, EDDIC_POLL, time.monotonic() + timeout)
        elapsed = time.perf_counter() - begin
        app.stop()  # serve() returns after the steps in progress; a later serve() runs again
        serving.join(60)
        if serving.is_alive():
            raise RuntimeError("serve() did not return within 60 s of stop()")
        return submitted, elapsed

    try:
        if mode == "serve":
            drain(range(-warm, 0))
            result["submit"], result["elapsed"] = drain(range(workflows))
        else:
            run_threads(level, start, range(-warm, 0))
            result["elapsed"] = run_threads(level, start, range(workflows))
    finally:
        app.shutdown()
    expected = throughput.WARM_WORKFLOWS + warm + workflows
    return checked(result, path, EDDIC_DONE, EDDIC_STEPS, expected, "instances completed, resolved")


# -- DBOS ---------------------------------------------------------------------------------------


def run_dbos(
    mode: str, folder: str, workflows: int, threads: int, warm: int, timeout: float
) -> Any:
    dbos: Any = importlib.import_module("dbos")  # Any: the project's venv has no dbos to type
    DBOS = dbos.DBOS
    path = os.path.join(folder, "dbos.db")
    DBOS(
        config={
            "name": "sqlite-peers",
            "system_database_url": f"sqlite:///{path}",
            "log_level": "WARNING",
        }
    )
    logging.getLogger("dbos").setLevel(logging.WARNING)

    # What bench_reserve, bench_charge and bench_ship return, with no pydantic on DBOS's side.
    def reserve(order_id: str, amount: float) -> dict[str, Any]:
        return {"reservation_id": f"RES-{order_id}", "total": amount}

    def charge(order_id: str, amount: float, email: str) -> dict[str, Any]:
        return {"transaction_id": f"TXN-{order_id}", "amount": amount, "email": email}

    def ship(order_id: str) -> str:
        return f"TRACK-{order_id}"

    step_reserve, step_charge, step_ship = (DBOS.step()(f) for f in (reserve, charge, ship))

    def peers_order(order: dict[str, Any]) -> dict[str, Any]:
        reservation = step_reserve(order["order_id"], order["amount"])
        payment = step_charge(order["order_id"], reservation["total"], order["email"])
        tracking = step_ship(order["order_id"])
        return {
            "order_id": order["order_id"],
            "reservation": reservation["reservation_id"],
            "transaction": payment["transaction_id"],
            "tracking": tracking,
        }

    workflow = DBOS.workflow()(peers_order)
    DBOS.launch()
    result: dict[str, Any] = {}
    try:
        with dbos._dbos._get_dbos_instance()._sys_db.engine.connect() as conn:  # private: a peek
            result["pragmas"] = pragmas(conn.exec_driver_sql)
    except Exception as exc:
        result["pragmas"] = f"? ({type(exc).__name__}: {exc})"

    def call(numbers: range) -> None:
        for i in numbers:
            workflow(throughput.order(i).model_dump())

    def enqueue(numbers: range) -> tuple[float, float]:
        target = count(path, DBOS_DONE) + len(numbers)
        begin = time.perf_counter()
        for i in numbers:
            queue.enqueue(workflow, throughput.order(i).model_dump())
        enqueued = time.perf_counter() - begin
        wait_for(path, DBOS_DONE, target, DBOS_POLL, time.monotonic() + timeout)
        return enqueued, time.perf_counter() - begin

    try:
        if mode == "queue":
            queue = DBOS.register_queue(
                "sqlite-peers", worker_concurrency=threads, polling_interval_sec=DBOS_QUEUE_POLL
            )
            enqueue(range(-warm, 0))
            result["submit"], result["elapsed"] = enqueue(range(workflows))
        else:
            level = 1 if mode == "sequential" else threads
            run_threads(level, call, range(-warm, 0))
            result["elapsed"] = run_threads(level, call, range(workflows))
    finally:
        DBOS.destroy()
    what = "workflow_status SUCCESS, operation_outputs"
    return checked(result, path, DBOS_DONE, DBOS_STEPS, warm + workflows, what)


RUNNERS: dict[str, Callable[[str, str, int, int, int, float], Any]] = {
    "eddic": run_eddic,
    "dbos": run_dbos,
}


# -- the parent: fresh processes and files, rounds, figures --------------------------------------


def measure(framework: str, mode: str, parent: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in a fresh process on a fresh file; ``rate`` (activities/s) is None if it
    failed."""
    folder = os.path.join(parent, f"{framework}-{mode}-{time.monotonic_ns()}")
    os.mkdir(folder)
    cmd = [sys.executable, __file__, "--child", f"{framework}:{mode}", "--dir", folder]
    for name in ("workflows", "threads", "warm", "timeout"):
        cmd += [f"--{name}", str(getattr(args, name))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout + 120)
    except subprocess.TimeoutExpired:
        return {"rate": None, "error": f"timed out after {args.timeout + 120:g} s"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"rate": None, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    res: dict[str, Any] = json.loads(lines[-1][len(RESULT_TAG) :])
    if res["completed"] != res["expected"] or res["steps"] < STEPS * res["expected"]:
        res.update(rate=None, error=f"incomplete: {res['check']} (expected {res['expected']})")
    else:
        res["rate"] = STEPS * args.workflows / res["elapsed"]
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16, help="starting / serving threads")
    parser.add_argument("--warm", type=int, default=50, help="untimed workflows first")
    parser.add_argument("--timeout", type=float, default=600.0, help="per measurement, seconds")
    parser.add_argument("--dir", default=None, help="parent folder of the database files")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        framework, mode = args.child.split(":")
        res = RUNNERS[framework](
            mode, args.dir, args.workflows, args.threads, args.warm, args.timeout
        )
        print(RESULT_TAG + json.dumps(res), flush=True)
        return
    todo = list(LABELS)
    if missing_modules("dbos"):
        print(f"MISSING dbos: no module dbos ({INSTALL['dbos']}); DBOS skipped")
        todo = [k for k in todo if k[0] != "dbos"]
    with scratch_dir(args.dir) as parent:
        found = []
        for dist in ("eddic", "dbos", "SQLAlchemy"):
            with contextlib.suppress(PackageNotFoundError):
                found.append(f"{dist} {version(dist)}")
        print(
            f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {', '.join(found)}"
        )
        print(
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {describe_dir(parent)}"
        )
        print(
            f"{args.workflows:,} workflows x {STEPS} activities per measurement, {args.warm} "
            f"untimed first, {args.rounds} round(s)\n"
        )
        rates: dict[Key, list[float]] = {}
        submits: dict[Key, list[float]] = {}
        failures: dict[Key, list[str]] = {}
        seen_pragmas: dict[str, str] = {}
        by_round: list[dict[Key, float]] = []
        for r in range(args.rounds):
            by_round.append({})
            for key in todo:
                label = LABELS[key].format(n=args.threads)
                res = measure(*key, parent, args)
                load = os.getloadavg()[0]
                if res["rate"] is None:
                    failures.setdefault(key, []).append(res["error"])
                    print(f"  round {r + 1}: {label:<34} FAILED {res['error']}", flush=True)
                    continue
                rates.setdefault(key, []).append(res["rate"])
                by_round[r][key] = res["rate"]
                seen_pragmas.setdefault(key[0], res["pragmas"])
                extra = ""
                if "submit" in res:
                    submits.setdefault(key, []).append(res["submit"])
                    total = STEPS * args.workflows / (res["submit"] + res["elapsed"])
                    if key[0] == "eddic":
                        extra = f"  submit {res['submit']:.2f} s, submit+drain {total:,.0f} act/s"
                    else:
                        extra = f"  (enqueueing took {res['submit']:.2f} s of it)"
                print(
                    f"  round {r + 1}: {label:<34} {res['rate']:>8,.0f} act/s  "
                    f"{res['elapsed']:6.2f} s  load {load:.2f}{extra}  ({res['check']})",
                    flush=True,
                )
        report(rates, submits, failures, seen_pragmas, by_round, args)


def best(framework: str, rates: dict[Key, float]) -> tuple[Key, float] | None:
    """The framework's highest rate, of eddic's the issue's two (16 threads, serve)."""
    mine = [kv for kv in rates.items() if kv[0][0] == framework]
    mine = [kv for kv in mine if framework != "eddic" or kv[0] in ISSUE]
    return max(mine, key=lambda kv: kv[1]) if mine else None


def report(
    rates: dict[Key, list[float]],
    submits: dict[Key, list[float]],
    failures: dict[Key, list[str]],
    seen_pragmas: dict[str, str],
    by_round: list[dict[Key, float]],
    args: argparse.Namespace,
) -> None:
    def label(key: Key) -> str:
        return LABELS[key].format(n=args.threads)

    print("\nactivities/s: median (min, max) of the rounds")
    for key in sorted(
        set(rates) | set(failures), key=lambda k: (k[0] != "eddic", list(LABELS).index(k))
    ):
        failed = len(failures.get(key, []))
        note = f"  ({failed} round(s) failed, not counted)" if failed else ""
        if key not in rates:
            print(f"  {label(key):<34} failed{note}")
            continue
        if key in submits:
            sub = statistics.median(submits[key])
            note += f"  submit/enqueue {sub:.2f} s ({args.workflows / sub:,.0f} wf/s)"
        print(f"  {label(key):<34} {spread(rates[key])}{note}")
    print("\npragmas of each framework's connection (synchronous: 1 NORMAL, 2 FULL)")
    for framework, text in seen_pragmas.items():
        print(f"  {framework:<6} {text}")
    medians = {k: statistics.median(v) for k, v in rates.items()}
    ours, theirs = best("eddic", medians), best("dbos", medians)
    print("\nbest, activities/s (medians)")
    for key in (k for k in LABELS if k in ISSUE and k in medians):
        met = "met" if medians[key] >= TARGET_RATE else "NOT met"
        print(f"  {label(key):<34} {medians[key]:>7,.0f}  (target >= {TARGET_RATE:,.0f}: {met})")
    for name, top in (("eddic", ours), ("DBOS", theirs)):
        if top:
            print(f"  {name} best: {label(top[0])}, {top[1]:,.0f}")
    if ours and theirs:
        ratio = ours[1] / theirs[1]
        met = "met" if ratio >= TARGET_RATIO else "NOT met"
        pairs = [(best("eddic", row), best("dbos", row)) for row in by_round]
        paired = "/".join(f"{a[1] / b[1]:.1f}" for a, b in pairs if a and b)
        print(
            f"  eddic best / DBOS best: {ratio:.1f}x (target >= {TARGET_RATIO:g}x: {met}); "
            f"each round's best vs best: {paired}"
        )


if __name__ == "__main__":
    main()
