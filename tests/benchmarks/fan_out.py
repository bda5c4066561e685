"""Fan-out wall time: one workflow yielding ``All`` of N activities that each sleep, started inline.

Issue 14's target: ``All`` of 100 activities each sleeping 10 ms in ≤ 0.3 s wall with 16
activity threads (the bodies alone need 100 × 10 ms / 16 ≈ 63 ms; the rest is scheduling and
the commits of 100 outcomes). Prints the median of ``--rounds`` runs per backend, and the time
the same work takes one activity after another (the old worker), measured in the same run.

    python tests/benchmarks/fan_out.py                 # SQLite (FULL) and embedded PostgreSQL
    python tests/benchmarks/fan_out.py --sqlite-only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server

from eddic import All, App, WorkflowContext, activity, workflow


@activity
def fan_nap(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


@workflow
def fan_out(ctx: WorkflowContext, spec: list[float]) -> int:
    n, seconds = int(spec[0]), spec[1]
    results = yield All(*[fan_nap(i, seconds) for i in range(n)])
    return len(results)


@workflow
def one_by_one(ctx: WorkflowContext, spec: list[float]) -> int:
    n, seconds = int(spec[0]), spec[1]
    for i in range(n):
        yield fan_nap(i, seconds)
    return n


def measure(url: str, n: int, seconds: float, threads: int, rounds: int) -> dict[str, float]:
    out: dict[str, list[float]] = {"fan_out": [], "one_by_one": []}
    with App(db_url=url, activity_threads=threads) as app:
        app.start(fan_out, [4, 0.0])  # warm-up: threads made, schema cached
        for _ in range(rounds):
            for name, wf in (("fan_out", fan_out), ("one_by_one", one_by_one)):
                began = time.perf_counter()
                iid = app.start(wf, [n, seconds])
                took = time.perf_counter() - began
                assert app.result(iid) == n
                out[name].append(took)
    return {name: statistics.median(values) for name, values in out.items()}


def report(label: str, figures: dict[str, float], n: int, seconds: float) -> None:
    print(
        f"{label:<12} All of {n} x {seconds * 1000:g} ms: {figures['fan_out'] * 1000:7.1f} ms"
        f"   one after another: {figures['one_by_one'] * 1000:7.1f} ms"
        f"   ({figures['one_by_one'] / figures['fan_out']:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    seconds = args.ms / 1000
    print(f"activity_threads={args.threads}, median of {args.rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="eddic-fan-") as folder:
        url = f"sqlite:///{os.path.join(folder, 'fan.db')}"
        report(
            "sqlite FULL", measure(url, args.n, seconds, args.threads, args.rounds), args.n, seconds
        )
    if args.sqlite_only:
        return
    import pg_server

    with pg_server.serving() as server:
        url = server.create_database(f"bench_fan_{os.getpid()}")
        try:
            figures = measure(url, args.n, seconds, args.threads, args.rounds)
            report("postgres", figures, args.n, seconds)
        finally:
            server.drop_database(url)


if __name__ == "__main__":
    main()
