"""Lifecycle benchmarks (issue 15): an eternal loop that continues as new, and a wide fan-out of
child workflows.

    python tests/benchmarks/lifecycle.py                       # both, SQLite file, FULL
    python tests/benchmarks/lifecycle.py --iterations 100000 --children 1000
    python tests/benchmarks/lifecycle.py --db postgresql://...  # another backend

**Eternal loop.** A workflow calls an activity, sleeps 1 s and loops, continuing as new every
100 iterations, under frozen time (``WorkflowEnvironment``; each timer fires at once). The
activity stamps ``time.perf_counter()``; an iteration's cost is the time between two stamps.
Printed: the median cost of iterations around 100, around the middle and at the end (windows of
``--window``), their ratio to the first window, the number of runs and the history length of the
last run (bounded: 100 iterations x 4 records + the continue record).

**Fan-out.** One parent yields ``All`` of ``--children`` ``CallWorkflow``\\s (each child one
trivial activity), driven by ``run_due`` passes in this process until the parent completes:
the time to all-complete, and the time to replay the parent's history (``App.replay``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time

from eddic import (
    All,
    App,
    CallWorkflow,
    ContinueAsNew,
    Sleep,
    WorkflowContext,
    activity,
    workflow,
)
from eddic.testing import WorkflowEnvironment

STAMPS: list[float] = []
PER_RUN = 100
# The real clock, taken before freezegun (WorkflowEnvironment) replaces time.perf_counter; kept
# in a tuple, where freezegun's scan of module attributes does not reach it.
_REAL = (time.perf_counter,)


def _clock() -> float:
    return _REAL[0]()


@activity
def bench_tick(n: int) -> int:
    STAMPS.append(_clock())
    return n + 1


@workflow
def bench_eternal(ctx: WorkflowContext, state: dict[str, int]) -> int:
    n = state["n"]
    for _ in range(PER_RUN):
        if n >= state["until"]:
            return n
        n = yield bench_tick(n)
        yield Sleep(1)
    yield ContinueAsNew({"n": n, "until": state["until"]})


@activity
def bench_leaf(i: int) -> int:
    return i * 2


@workflow
def bench_child(ctx: WorkflowContext, i: int) -> int:
    return (yield bench_leaf(i))


@workflow
def bench_fan_out(ctx: WorkflowContext, n: int) -> int:
    results = yield All(*[CallWorkflow(bench_child, i) for i in range(n)])
    return sum(results)


def eternal(db_url: str, iterations: int, window: int) -> None:
    STAMPS.clear()
    began = _clock()
    with WorkflowEnvironment(db_url=db_url, max_steps=10 * iterations + 100) as env:
        iid = env.start(bench_eternal, {"n": 0, "until": iterations})
        env.run_until_idle()
        assert env.result(iid) == iterations
        info = env.get_instance(iid)
        runs = info["run"]
        lengths = {len(env.app.history(iid, run=r)) for r in (1, runs // 2, max(1, runs - 1))}
    total = _clock() - began
    costs = [b - a for a, b in itertools.pairwise(STAMPS)]

    def around(i: int) -> float:
        lo = max(0, min(i - window // 2, len(costs) - window))
        return statistics.median(costs[lo : lo + window]) * 1000

    first = around(100)
    print(f"eternal loop: {iterations:,} iterations in {total:.1f} s on {db_url}")
    for at in (100, iterations // 2, iterations - window // 2):
        cost = around(at)
        print(f"  iteration ~{at:>7,}: median {cost:.3f} ms/iteration ({cost / first:.2f}x)")
    print(f"  runs: {runs:,}; records per run (first, middle, last full one): {sorted(lengths)}")


def fan_out(db_url: str, children: int) -> None:
    with App(db_url=db_url) as app:
        began = time.perf_counter()
        iid = app.submit(bench_fan_out, children)
        while app.get_instance(iid)["status"] != "completed":
            app.run_due()
        took = time.perf_counter() - began
        assert app.result(iid) == sum(2 * i for i in range(children))
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            replay = app.replay(iid)
            steps = len(replay.steps())
            timings.append(time.perf_counter() - t0)
    print(
        f"fan-out: {children:,} children to all-complete in {took:.2f} s "
        f"({children / took:,.0f} children/s, one process, run_due passes) on {db_url}"
    )
    replay_ms = statistics.median(timings) * 1000
    print(f"  the parent's replay ({steps:,} steps): median {replay_ms:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--children", type=int, default=1_000)
    parser.add_argument("--db", default=None, help="a database URL (default: a temporary file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eddic-life-") as folder:
        url = args.db or f"sqlite:///{os.path.join(folder, 'loop.db')}"
        eternal(url, args.iterations, args.window)
        url = args.db or f"sqlite:///{os.path.join(folder, 'fan.db')}"
        fan_out(url, args.children)


if __name__ == "__main__":
    main()
