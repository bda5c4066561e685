"""``async def`` workflows against generator workflows, side by side (issue 16's target: the async
style costs at most 10 % more per activity).

    python tests/benchmarks/async_style.py [--workflows 1000] [--rounds 5]

The same 3-activity workflow written both ways (sync activities, so only the workflow's style
differs), started inline one after another, rounds alternating the two styles (and their order)
so that drift falls on both: in memory with ``synchronous=OFF`` (what is left is CPU) and on a
file at ``synchronous=FULL`` (the default, fsync per commit). Prints the median activities/s of
each and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from eddic import App, WorkflowContext, activity, workflow


@activity
def bump(n: int) -> int:
    return n + 1


@workflow
def as_generator(ctx: WorkflowContext, n: int) -> int:
    n = yield bump(n)
    n = yield bump(n)
    n = yield bump(n)
    return n


@workflow
async def as_coroutine(ctx: WorkflowContext, n: int) -> int:
    n = await bump(n)
    n = await bump(n)
    n = await bump(n)
    return n


def rate(app: App, wf: object, workflows: int) -> float:
    began = time.perf_counter()
    for i in range(workflows):
        app.start(wf, i)  # type: ignore[arg-type]
    return 3 * workflows / (time.perf_counter() - began)


def measure(url: str, synchronous: str, workflows: int, rounds: int) -> tuple[float, float]:
    figures: dict[str, list[float]] = {"generator": [], "async": []}
    with App(db_url=url, synchronous=synchronous) as app:
        rate(app, as_generator, 50)  # warm-up
        rate(app, as_coroutine, 50)
        for r in range(rounds):
            order = [("generator", as_generator), ("async", as_coroutine)]
            for name, wf in order if r % 2 == 0 else reversed(order):
                figures[name].append(rate(app, wf, workflows))
    return statistics.median(figures["generator"]), statistics.median(figures["async"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eddic-style-") as folder:
        cases = [
            ("in memory, OFF", "sqlite:///:memory:", "OFF"),
            ("file, FULL", f"sqlite:///{os.path.join(folder, 's.db')}", "FULL"),
        ]
        for label, url, sync in cases:
            gen, coro = measure(url, sync, args.workflows, args.rounds)
            print(
                f"{label:<15} generator {gen:8,.0f} act/s   async def {coro:8,.0f} act/s   "
                f"async costs {100 * (gen / coro - 1):+.1f} % per activity"
            )


if __name__ == "__main__":
    main()
