"""Throughput against the physical limit: eddic activities/s vs raw SQLite commits/s, same run.

    python tests/benchmarks/throughput.py            # 1,000 workflows x 3 activities, 5 repeats
    python tests/benchmarks/throughput.py --quick    # a short smoke run
    python tests/benchmarks/throughput.py --profile  # also cProfile one eddic run per setting

For each repeat:

(a) raw SQLite: python ``sqlite3`` with the pragmas eddic sets (WAL, busy timeout, the given
    ``synchronous``), one small row per ``BEGIN IMMEDIATE`` ... ``COMMIT``;
(b) eddic: ``--workflows`` order-style workflows (3 trivial activities each, pydantic input and
    result) started inline with ``App.start`` on a fresh file database,

run in alternating chunks (raw, eddic, raw, eddic...) in the same folder, so that both see the
same disk (a VM disk's fsync latency drifts by 2-4x within minutes), at ``synchronous=FULL``
(the App default) and ``NORMAL`` (``App(synchronous="NORMAL")``). It prints medians and the
ratio eddic-activity-rate / raw-commit-rate (design target at FULL: >= 50 %).
Note the ceiling: the design allows one commit per activity plus one per start, so a 3-activity
workflow costs 4 commits and the ratio cannot exceed 3/4 = 75 % even with free CPU.

A separate, untimed pass counts what one workflow costs: write transactions, step commits,
read transactions, SQL statements, WAL frames (pages) per commit.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchlib import (
    SYNC_SETTINGS,
    connect_like_eddic,
    count_storage,
    describe_dir,
    median,
    profile,
    raw_wal_frames_per_commit,
    scratch_dir,
    spread,
    trace_statements,
)
from minimal_runtime import MinimalRuntime
from pydantic import BaseModel
from sqlfloor import Replayer, record

from eddic import App, activity, workflow

ACTIVITIES_PER_WORKFLOW = 3
Config = tuple[str, int, int]  # (synchronous, starting processes, threads in each)


# -- an order-style workflow of three trivial activities ---------------------------------------


class BenchOrder(BaseModel):
    order_id: str
    amount: float
    email: str


class BenchReceipt(BaseModel):
    order_id: str
    reservation: str
    transaction: str
    tracking: str


@activity
def bench_reserve(order_id: str, amount: float) -> dict[str, Any]:
    return {"reservation_id": f"RES-{order_id}", "total": amount}


@activity
def bench_charge(order_id: str, amount: float, email: str) -> dict[str, Any]:
    return {"transaction_id": f"TXN-{order_id}", "amount": amount, "email": email}


@activity
def bench_ship(order_id: str) -> str:
    return f"TRACK-{order_id}"


@workflow
def bench_order(ctx: Any, order: BenchOrder) -> BenchReceipt:
    reservation = yield bench_reserve(order.order_id, order.amount)
    payment = yield bench_charge(order.order_id, reservation["total"], order.email)
    tracking = yield bench_ship(order.order_id)
    return BenchReceipt(
        order_id=order.order_id,
        reservation=reservation["reservation_id"],
        transaction=payment["transaction_id"],
        tracking=tracking,
    )


def order(i: int) -> BenchOrder:
    return BenchOrder(order_id=f"ORD-{i}", amount=10.0 + i % 7, email=f"c{i}@example.com")


# -- measurements ----------------------------------------------------------------------------


WARM_WORKFLOWS = 250  # 1,000 commits: the WAL file reaches its steady size (autocheckpoint)
WARM_RAW_COMMITS = 1200


#: Indexes to drop after warm-up (``--drop-indexes``): what an index costs the write path.
DROP_INDEXES: list[str] = []


def new_app(folder: str, synchronous: str, tag: str, warm: int = WARM_WORKFLOWS) -> App:
    """An App on a fresh file, warmed up: imports, pydantic adapters, the file and its WAL.

    A WAL that is still growing costs more per fsync (the file size changes too) than one being
    rewritten after a checkpoint; both sides are measured once their WAL has wrapped.
    """
    app = App(
        db_url=f"sqlite:///{os.path.join(folder, f'eddic-{tag}.db')}", synchronous=synchronous
    )
    app.initialize()
    for i in range(warm):
        app.start(bench_order, input=order(-1 - i))
    if DROP_INDEXES:
        with app.storage.transaction() as db:
            for name in DROP_INDEXES:
                db.execute(f"DROP INDEX {name}")
    return app


class Starters:
    """Who starts the workflows: this process (inline, or from ``threads`` threads), or
    ``processes`` worker processes with ``threads`` threads each, all on one database file."""

    def __init__(self, app: App, threads: int, processes: int) -> None:
        self.app, self.threads, self.processes = app, threads, processes
        self.pool = ThreadPoolExecutor(threads) if threads > 1 and processes == 1 else None
        self.pipes: list[Any] = []
        self.workers: list[Any] = []
        if processes > 1:
            url, sync = app.storage.db_url, app.storage.synchronous
            app.shutdown()  # the workers own the file from here on
            ctx = multiprocessing.get_context("spawn")
            for _ in range(processes):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_process_worker, args=(theirs, url, sync, threads))
                proc.start()
                self.pipes.append(mine)
                self.workers.append(proc)
            for pipe in self.pipes:
                assert pipe.recv() == "ready"
        self.batches0, self.works0 = self.commits()

    def run(self, numbers: range) -> float:
        """Start workflows ``numbers``; returns the CPU seconds all starters spent."""
        if self.processes == 1:
            cpu0 = time.process_time()
            start_many(self.app, self.pool, self.threads, numbers)
            return time.process_time() - cpu0
        for k, pipe in enumerate(self.pipes):
            pipe.send(numbers[k :: self.processes])
        return sum(pipe.recv() for pipe in self.pipes)

    def commits(self) -> tuple[int, int]:
        if self.processes == 1:
            return self.app.storage.commits.batches, self.app.storage.commits.works
        for pipe in self.pipes:
            pipe.send("commits")
        counts = [pipe.recv() for pipe in self.pipes]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        for pipe in self.pipes:
            pipe.send(None)
        for proc in self.workers:
            proc.join(60)


def start_many(app: App, pool: ThreadPoolExecutor | None, threads: int, numbers: range) -> None:
    if pool is None:
        start_all(app, numbers)
        return
    for future in [pool.submit(start_all, app, numbers[k::threads]) for k in range(threads)]:
        future.result()


def _process_worker(pipe: Any, url: str, synchronous: str, threads: int) -> None:
    logging.getLogger("eddic").setLevel(logging.ERROR)
    app = App(db_url=url, synchronous=synchronous)
    app.initialize()
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    start_all(app, range(-(10**9), -(10**9) + 20))  # imports, adapters, this process's connection
    pipe.send("ready")
    while (msg := pipe.recv()) is not None:
        if msg == "commits":
            pipe.send((app.storage.commits.batches, app.storage.commits.works))
            continue
        cpu0 = time.process_time()
        start_many(app, pool, threads, msg)
        pipe.send(time.process_time() - cpu0)
    if pool is not None:
        pool.shutdown()
    app.shutdown()


def paired_run(
    folder: str,
    synchronous: str,
    workflows: int,
    raw_commits: int,
    chunks: int,
    tag: str,
    warm_wf: int = WARM_WORKFLOWS,
    warm_raw: int = WARM_RAW_COMMITS,
    threads: int = 1,
    processes: int = 1,
    extra_sides: bool = False,
) -> dict[str, float]:
    """Raw commits and eddic workflows in alternating chunks, so both see the same disk.

    ``threads`` > 1 starts the workflows from that many threads at once (group commit);
    ``processes`` > 1 from that many processes (each with ``threads`` threads) on one file.
    Returns raw commits/s, eddic activities/s (wall), workflows/s, CPU per activity, and
    commits per activity. ``extra_sides`` adds two more sides to each round: eddic's recorded
    statements replayed by plain sqlite3 (``sqlfloor``), as "floor activities/s", and the
    minimal runtime (``minimal_runtime``), as "minimal activities/s".
    """
    conn = connect_like_eddic(os.path.join(folder, f"raw-{tag}.db"), synchronous)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    payload = "x" * 64
    for _ in range(warm_raw):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", (payload,))
        conn.execute("COMMIT")
    floor = sql_floor(folder, synchronous, tag, workflows, warm_wf) if extra_sides else None
    minimal = minimal_runtime(folder, synchronous, tag, warm_wf) if extra_sides else None
    app = new_app(folder, synchronous, tag, warm_wf)
    raw_wall = wall = cpu = floor_wall = minimal_wall = 0.0
    done_wf = done_raw = 0
    starters = Starters(app, threads, processes)
    try:
        for c in range(chunks):
            n_raw = raw_commits * (c + 1) // chunks - done_raw
            begin = time.perf_counter()
            for _ in range(n_raw):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (v) VALUES (?)", (payload,))
                conn.execute("COMMIT")
            raw_wall += time.perf_counter() - begin
            done_raw += n_raw
            n_wf = workflows * (c + 1) // chunks - done_wf
            begin = time.perf_counter()
            cpu += starters.run(range(done_wf, done_wf + n_wf))
            wall += time.perf_counter() - begin
            if floor is not None:
                begin = time.perf_counter()
                floor.run(n_wf)
                floor_wall += time.perf_counter() - begin
            if minimal is not None:
                begin = time.perf_counter()
                for i in range(done_wf, done_wf + n_wf):
                    minimal.start(order(i))
                minimal_wall += time.perf_counter() - begin
            done_wf += n_wf
        batches, works = starters.commits()
        batches -= starters.batches0
        works -= starters.works0
    finally:
        starters.close()
    if processes > 1:  # the workers have closed the file; look at it afresh
        app = App(db_url=app.storage.db_url, synchronous=synchronous)
    try:
        finished = app.list_instances(status="completed", limit=None)
        total = workflows + warm_wf + (20 * processes if processes > 1 else 0)
        assert len(finished) == total, f"{len(finished)} of {total} workflows completed"
        for side in (floor, minimal):
            if side is not None:
                done = side.conn.execute(
                    "SELECT count(*) FROM instances WHERE status = 'completed'"
                ).fetchone()[0]
                expected = workflows + warm_wf
                assert done == expected, f"{type(side).__name__}: {done} of {expected} completed"
    finally:
        app.shutdown()
        conn.close()
        if floor is not None:
            floor.close()
        if minimal is not None:
            minimal.close()
    activities = workflows * ACTIVITIES_PER_WORKFLOW
    extra = {}
    if floor is not None and minimal is not None:
        extra["floor activities/s"] = activities / floor_wall
        extra["minimal activities/s"] = activities / minimal_wall
    return {
        **extra,
        "commits/activity": batches / activities,
        "steps/commit": works / max(1, batches),
        "raw commits/s": raw_commits / raw_wall,
        "activities/s": activities / wall,
        "workflows/s": workflows / wall,
        "wall ms/activity": 1000 * wall / activities,
        "cpu ms/activity": 1000 * cpu / activities,
    }


def sql_floor(folder: str, synchronous: str, tag: str, workflows: int, warm: int) -> Replayer:
    """Records eddic's statements for ``workflows`` workflows (untimed) on one warmed file, and
    returns a replayer of them on another file warmed up the same way."""
    source = new_app(folder, synchronous, f"{tag}-recorded", warm)
    try:
        per_workflow = record(
            source, lambda i: start_all(source, range(i, i + 1)), range(workflows)
        )
    finally:
        source.shutdown()
    return Replayer(
        warmed_file(folder, synchronous, f"{tag}-replayed", warm), synchronous, per_workflow
    )


def minimal_runtime(folder: str, synchronous: str, tag: str, warm: int) -> MinimalRuntime:
    """The least Python per step (``minimal_runtime``), on a file warmed up like eddic's."""
    path = warmed_file(folder, synchronous, f"{tag}-minimal", warm)
    return MinimalRuntime(path, synchronous, bench_order.func, BenchOrder, BenchReceipt)


def warmed_file(folder: str, synchronous: str, tag: str, warm: int) -> str:
    """The path of a database file warmed up by eddic as ``new_app`` does, and closed again."""
    app = new_app(folder, synchronous, tag, warm)
    app.shutdown()
    return app.storage.path


def start_all(app: App, numbers: range) -> None:
    for i in numbers:
        app.start(bench_order, input=order(i))


def eddic_run(folder: str, synchronous: str, workflows: int, tag: str) -> None:
    """eddic alone (for the profiler)."""
    app = new_app(folder, synchronous, tag)
    try:
        for i in range(workflows):
            app.start(bench_order, input=order(i))
    finally:
        app.shutdown()


def count_costs(folder: str, workflows: int = 100) -> tuple[Counter[str], float]:
    """Per-workflow costs, counted in an untimed pass; and WAL frames per eddic write commit."""
    app = new_app(folder, "NORMAL", "count", warm=20)
    statements: Counter[str] = Counter()
    conn = app.storage._db().conn  # this thread's connection (benchmark-only peek)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    trace_statements(conn, statements)
    try:
        with count_storage() as counts:
            for i in range(workflows):
                app.start(bench_order, input=order(10_000 + i))
        conn.set_trace_callback(None)
        frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        app.shutdown()
    counts.update(statements)
    # The counts of this thread's connection (every statement of an inline start runs on it).
    counts["write transactions"] = counts.pop("traced write transactions", 0)
    counts["read transactions"] = counts.pop("traced read transactions", 0)
    per_commit = frames / max(1, counts["write transactions"])
    return Counter({k: v / workflows for k, v in counts.items()}), per_commit


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--workflows", type=int, default=None, help="workflows per eddic run")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement")
    parser.add_argument("--raw-commits", type=int, default=None, help="commits per raw run")
    parser.add_argument("--dir", default=None, help="parent folder of the database files")
    parser.add_argument("--profile", action="store_true", help="cProfile one eddic run per setting")
    parser.add_argument(
        "--starters",
        default="1x1,1x8,2x8",
        help="comma-separated PROCESSESxTHREADS that start the workflows: 1x1 is inline in one "
        "thread (the issue's case); more threads share commits (group commit); more processes "
        "use more cores",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the extra sides of the 1x1 runs: eddic's recorded SQL replayed alone, and "
        "the minimal runtime",
    )
    parser.add_argument(
        "--drop-indexes",
        default="",
        help="comma-separated indexes to drop from every database after warm-up, to measure "
        "what they cost (e.g. instances_by_status,instances_by_workflow)",
    )
    args = parser.parse_args(argv)
    DROP_INDEXES[:] = [name for name in args.drop_indexes.split(",") if name]
    starters = [tuple(int(n) for n in spec.split("x")) for spec in args.starters.split(",")]
    workflows = args.workflows or (50 if args.quick else 1000)
    repeats = args.repeats or (1 if args.quick else 5)
    raw_commits = args.raw_commits or (200 if args.quick else 3000)
    chunks = 2 if args.quick else 10
    warm = (20, 100) if args.quick else (WARM_WORKFLOWS, WARM_RAW_COMMITS)
    logging.getLogger("eddic").setLevel(logging.ERROR)

    with scratch_dir(args.dir) as folder:
        print(
            f"eddic throughput benchmark: python {sys.version.split()[0]}, {describe_dir(folder)}"
        )
        print(
            f"{workflows} workflows x {ACTIVITIES_PER_WORKFLOW} activities per eddic run, "
            f"{raw_commits} raw commits per raw run, interleaved in {chunks} chunks; "
            f"{repeats} repeat(s), medians quoted\n"
        )
        configs = [(sync, p, n) for sync in SYNC_SETTINGS for p, n in starters]
        raw: dict[Config, list[float]] = {c: [] for c in configs}
        ours: dict[Config, list[dict[str, float]]] = {c: [] for c in configs}
        ratios: dict[Config, list[float]] = {c: [] for c in configs}
        for rep in range(repeats):
            for sync, p, n in configs:
                run = paired_run(
                    folder,
                    sync,
                    workflows,
                    raw_commits,
                    chunks,
                    f"{sync}-{p}x{n}-{rep}",
                    *warm,
                    threads=n,
                    processes=p,
                    extra_sides=(p, n) == (1, 1) and not args.no_floor,
                )
                rate = run["raw commits/s"]
                raw[sync, p, n].append(rate)
                ours[sync, p, n].append(run)
                ratios[sync, p, n].append(run["activities/s"] / rate)
                print(
                    f"  repeat {rep + 1} {sync:6} {p}x{n}: raw {rate:7,.0f} commits/s | "
                    f"eddic {run['activities/s']:6,.0f} activities/s "
                    f"(cpu {run['cpu ms/activity']:.3f} ms/activity, "
                    f"{run['commits/activity']:.2f} commits/activity) | ratio "
                    f"{100 * run['activities/s'] / rate:5.1f} %"
                    + (
                        f" | SQL alone {100 * run['floor activities/s'] / rate:5.1f} %"
                        f" | minimal runtime {100 * run['minimal activities/s'] / rate:5.1f} %"
                        if "floor activities/s" in run
                        else ""
                    ),
                    flush=True,
                )

        print("\nmedians")
        for sync, p, n in configs:
            runs = ours[sync, p, n]
            acts = [r["activities/s"] for r in runs]
            wall = median([r["wall ms/activity"] for r in runs])
            cpu = median([r["cpu ms/activity"] for r in runs])
            ratio = median(acts) / median(raw[sync, p, n])
            target = "  target >= 50 %: " + ("MET" if ratio >= 0.5 else "NOT MET")
            how = (
                "started inline, one thread"
                if (p, n) == (1, 1)
                else f"started from {p} process(es) x {n} thread(s)"
            )
            print(f"  synchronous={sync}, {how}")
            print(f"    raw SQLite commits/s      {spread(raw[sync, p, n])}")
            print(f"    eddic activities/s        {spread(acts)}")
            print(f"    eddic workflows/s         {spread([r['workflows/s'] for r in runs])}")
            print(
                f"    eddic per activity        wall {wall:.3f} ms, cpu {cpu:.3f} ms "
                f"(cpu counts every thread; with one thread wall - cpu = {wall - cpu:.3f} ms "
                "is time waiting on I/O)"
                if (p, n) == (1, 1)
                else f"    eddic per activity        wall {wall:.3f} ms, cpu {cpu:.3f} ms (all)"
            )
            print(
                f"    commits                   {median([r['commits/activity'] for r in runs]):.2f}"
                f" per activity, {median([r['steps/commit'] for r in runs]):.2f} steps per commit"
            )
            print(
                f"    ratio eddic/raw           {100 * ratio:.1f} % of medians; median of paired "
                f"ratios {100 * median(ratios[sync, p, n]):.1f} %"
                + (target if sync == "FULL" else "")
            )
            if "floor activities/s" in runs[0]:
                floor = [r["floor activities/s"] for r in runs]
                print(f"    eddic's SQL alone, act/s  {spread(floor)}")
                ceiling = median(floor) / median(raw[sync, p, n])
                print(
                    f"    ratio SQL alone/raw       {100 * ceiling:.1f} % of medians: the ceiling"
                    " for code that writes these rows (sqlfloor.py)"
                )
                least = [r["minimal activities/s"] for r in runs]
                print(f"    minimal runtime, act/s    {spread(least)}")
                print(
                    "    ratio minimal/raw         "
                    f"{100 * median(least) / median(raw[sync, p, n]):.1f} % of medians: the least "
                    "Python per step (minimal_runtime.py)"
                )

        costs, frames = count_costs(folder, workflows=20 if args.quick else 100)
        raw_frames = raw_wal_frames_per_commit(folder)
        print("\ncosts per workflow (untimed counting pass, 3 activities each)")
        for name in ("write transactions", "commit_step calls", "read transactions"):
            print(f"  {name:26} {costs[name]:.2f}")
        commits = costs["write transactions"]
        print(
            f"  write commits per activity {commits / ACTIVITIES_PER_WORKFLOW:.2f} "
            f"(design: 1 per activity + 1 per start = "
            f"{(ACTIVITIES_PER_WORKFLOW + 1) / ACTIVITIES_PER_WORKFLOW:.2f})"
        )
        sql = {k[4:]: v for k, v in costs.items() if k.startswith("sql ")}
        total = sum(sql.values())
        detail = ", ".join(f"{k} {v:.1f}" for k, v in sorted(sql.items(), key=lambda kv: -kv[1]))
        print(f"  SQL statements             {total:.1f} ({detail})")
        print(f"  WAL frames per commit      eddic {frames:.1f}, raw single-row {raw_frames:.1f}")

        if args.profile:
            for sync in SYNC_SETTINGS:
                count = 100 if args.quick else 500
                profile(
                    lambda sync=sync, count=count: eddic_run(folder, sync, count, f"prof-{sync}"),
                    title=f"eddic_run {count} workflows, synchronous={sync}",
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
