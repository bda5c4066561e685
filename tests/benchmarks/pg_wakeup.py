"""Wake-up latency on PostgreSQL: from an event's NOTIFY to the instance resumed in another process.

    python tests/benchmarks/pg_wakeup.py [--wakeups 60] [--gap-ms 50,150]

A serving worker process (this script with ``--serve-worker``: ``App(...).serve()``, its
``timer_poll_interval`` at 120 s so that polling cannot be what wakes it) starts ``--wakeups``
instances of ``wakeup_bench``, each of which waits for one ``bench.wake`` event and then runs
one activity that appends ``time.monotonic()`` to a file, and serves. This process sends each
instance its event with ``App.send_event(..., instance_id=...)``, one at a time, the worker
idle between them (a random pause of ``--gap-ms``).

Who resumes the instance: ``send_event`` resumes the instances it reached in the caller's
thread, but this process never imports the worker's workflow (it is defined only in
``serve_worker``), so its ``send_event`` stores the event (one transaction, whose ``NOTIFY``
reaches the worker at commit), finds ``wakeup_bench`` not registered here and leaves it alone.
The worker's listener hears the ``NOTIFY``, its loop runs a pass (due instances, the lease,
the mailbox, the step that consumes the event and schedules the activity: committed before the
activity body runs), and the activity's first line takes the time. ``time.monotonic()`` is
``CLOCK_MONOTONIC``, one clock for every process on the machine.

Two figures per wake-up: from just before ``send_event`` (the sender's commit included), and
from just after it returned (the event durable, the ``NOTIFY`` sent). Three wake-ups are sent
first as a warm-up and left out. The design's target (§7): within 50 ms on PostgreSQL.

The server is the one of ``EDDIC_TEST_POSTGRES_URL`` if set, else an embedded one
(tests/pg_server.py). ``tests/benchmarks/pg_throughput.py`` runs ``measure_wakeups`` on its own
server after its throughput rounds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server

import pg_server

from eddic import App

HERE = Path(__file__).resolve()
WARMUP = 3
WORKFLOW = "wakeup_bench"


def serve_worker(db_url: str, stamps: str, instances: int) -> None:
    """The other process: start ``instances`` waiting instances, print their ids, serve."""
    from eddic import WaitEvent, activity, workflow

    @activity(name="wakeup_stamp")
    def wakeup_stamp(n: int) -> float:
        now = time.monotonic()
        with open(stamps, "a") as out:
            out.write(f"{n} {now!r}\n")
        return now

    @workflow(name=WORKFLOW)
    def wakeup_bench(ctx: Any, n: int) -> float:
        yield WaitEvent("bench.wake")
        stamp = yield wakeup_stamp(n)
        return float(stamp)

    logging.getLogger("eddic").setLevel(logging.ERROR)
    app = App(db_url=db_url, timer_poll_interval=120.0)
    app.initialize()
    ids = [app.start(wakeup_bench, input=n) for n in range(instances)]
    print(json.dumps(ids), flush=True)
    try:
        app.serve()  # until SIGTERM ends the process
    finally:
        app.shutdown()


def measure_wakeups(
    db_url: str, wakeups: int = 60, gap_ms: tuple[float, float] = (50.0, 150.0)
) -> dict[str, list[float]]:
    """Latencies in milliseconds: ``from send`` and ``from commit`` (see the module's text)."""
    total = wakeups + WARMUP
    folder = tempfile.mkdtemp(prefix="eddic-wakeup-")
    stamps = os.path.join(folder, "stamps")
    Path(stamps).touch()
    worker = subprocess.Popen(
        [sys.executable, str(HERE), "--serve-worker", db_url, stamps, str(total)],
        stdout=subprocess.PIPE,
        text=True,
    )
    sender: App | None = None
    try:
        assert worker.stdout is not None
        ids = json.loads(worker.stdout.readline())
        assert len(ids) == total, ids
        logging.getLogger("eddic").setLevel(logging.ERROR)  # "not registered here": expected
        sender = App(db_url=db_url)
        sender.initialize()
        time.sleep(0.5)  # the worker's loop is waiting, its listener connected
        from_send: list[float] = []
        from_commit: list[float] = []
        with open(stamps) as feed:
            for n, iid in enumerate(ids):
                time.sleep(random.uniform(*gap_ms) / 1000)
                t0 = time.monotonic()
                reached = sender.send_event("bench.wake", data={"n": n}, instance_id=iid)
                t1 = time.monotonic()
                assert reached == [iid], reached
                stamp = _next_stamp(feed, n, deadline=t1 + 10.0)
                if n >= WARMUP:
                    from_send.append(1000 * (stamp - t0))
                    from_commit.append(1000 * (stamp - t1))
        _wait_completed(sender, ids)
        return {"from send": from_send, "from commit": from_commit}
    finally:
        if sender is not None:
            sender.shutdown()
        worker.terminate()
        worker.wait(30)
        os.unlink(stamps)
        os.rmdir(folder)


def _next_stamp(feed: Any, n: int, deadline: float) -> float:
    line = ""
    while True:
        line += feed.readline()
        if line.endswith("\n"):
            got, stamp = line.split()
            assert int(got) == n, (got, n)
            return float(stamp)
        if time.monotonic() > deadline:
            raise TimeoutError(f"wake-up {n}: the worker did not resume the instance in 10 s")
        time.sleep(0.0005)


def _wait_completed(app: App, ids: list[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(app.get_instance(i)["status"] == "completed" for i in ids[-3:]):
            return
        time.sleep(0.05)
    raise AssertionError("the last instances did not complete")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def report(results: dict[str, list[float]]) -> list[str]:
    lines = []
    for name, values in results.items():
        lines.append(
            f"  {name:<12} p50 {percentile(values, 50):6.1f} ms  p90 {percentile(values, 90):6.1f}"
            f" ms  min {min(values):6.1f}  max {max(values):6.1f}  mean "
            f"{statistics.mean(values):6.1f}  (n={len(values)})"
        )
    return lines


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-worker":
        serve_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wakeups", type=int, default=60)
    parser.add_argument("--gap-ms", default="50,150", help="random pause between sends: LO,HI")
    parser.add_argument(
        "--db",
        help="measure on this database instead (e.g. sqlite:////tmp/w.db: SQLite's "
        "wake-up, a serving worker polling PRAGMA data_version)",
    )
    args = parser.parse_args()
    lo, hi = (float(x) for x in args.gap_ms.split(","))
    if args.db:
        print(f"wake-up latency on {args.db}, {args.wakeups} wake-ups (+{WARMUP} warm-up)")
        for line in report(measure_wakeups(args.db, args.wakeups, (lo, hi))):
            print(line)
        return
    with pg_server.serving() as server:
        url = server.create_database(f"bench_wakeup_{os.getpid()}")
        try:
            print(
                f"wake-up latency, {args.wakeups} wake-ups (+{WARMUP} warm-up), "
                f"gaps {lo:g}-{hi:g} ms"
            )
            for line in report(measure_wakeups(url, args.wakeups, (lo, hi))):
                print(line)
        finally:
            server.drop_database(url)


if __name__ == "__main__":
    main()
