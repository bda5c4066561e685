"""What threads cost a process: the same inline starts from one thread and from N, with no fsync.

    python tests/benchmarks/handoffs.py                      # 1, 4 and 16 threads, 3 rounds
    python tests/benchmarks/handoffs.py --threads 1,16 --workflows 3000 --rounds 5

``throughput.py``'s order workflow (3 trivial activities) is started with ``App.start`` at
``synchronous=OFF``, so no commit waits for the disk and every figure is CPU: from one thread,
then from N threads sharing the App (their steps share commits, ``commits.py``). Each run is a
fresh file warmed up as ``throughput.new_app`` does; the thread counts alternate within each
round. Printed per thread count, medians of the rounds: activities/s, CPU per activity (user and
system), voluntary and involuntary context switches per activity (``getrusage``) and commits per
activity. With one thread the process never switches; with N, each call into SQLite releases the
GIL to a thread that waits for it, and the caller waits to get it back. Asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from throughput import bench_order, new_app, order

ACTIVITIES = 3  # per workflow


def one_run(folder: str, threads: int, workflows: int) -> dict[str, float]:
    app = new_app(folder, "OFF", f"handoffs-{threads}")
    try:
        batches = app.storage.commits.batches
        before = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        if threads == 1:
            for i in range(workflows):
                app.start(bench_order, input=order(i))
        else:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(
                    lambda i: app.start(bench_order, input=order(i)), range(workflows)
                ):
                    pass
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
        commits = app.storage.commits.batches - batches
    finally:
        app.shutdown()
    n = ACTIVITIES * workflows
    return {
        "activities/s": n / wall,
        "cpu ms/activity": 1000
        * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        / n,
        "user ms/activity": 1000 * (after.ru_utime - before.ru_utime) / n,
        "sys ms/activity": 1000 * (after.ru_stime - before.ru_stime) / n,
        "voluntary switches/activity": (after.ru_nvcsw - before.ru_nvcsw) / n,
        "involuntary switches/activity": (after.ru_nivcsw - before.ru_nivcsw) / n,
        "commits/activity": commits / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,4,16", help="comma-separated thread counts")
    parser.add_argument("--workflows", type=int, default=2000, help="workflows per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.threads.split(",")]
    logging.getLogger("eddic").setLevel(logging.ERROR)
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            for n in counts if r % 2 == 0 else reversed(counts):
                got = one_run(folder, n, args.workflows)
                runs[n].append(got)
                print(
                    f"round {r + 1} threads={n:2}: {got['activities/s']:7,.0f} act/s, "
                    f"CPU {got['cpu ms/activity']:.3f} ms/act, "
                    f"{got['voluntary switches/activity']:.1f} voluntary switches/act",
                    flush=True,
                )
    print(f"\nmedians of {args.rounds} rounds, {args.workflows} workflows each, synchronous=OFF")
    for n in counts:
        print(f"  threads={n}")
        for key in runs[n][0]:
            value = statistics.median(run[key] for run in runs[n])
            print(f"    {key:30} {value:9,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
