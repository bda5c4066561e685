"""Kernel benchmarks, run by hand: ``python tests/benchmarks/kernel_replay.py [--profile]``.

It prints figures and asserts nothing: timings are never tests. The targets (design, section 2,
"Cost") are a full replay of 10,000 records in < 20 ms with outcomes already decoded (plain
Python values: no pydantic, no JSON), and a per-record cost that stays flat from 10 to 100,000
records for a live interpreter.

1. Full replay: a fresh ``Interpreter`` replays a 10,000-record history. Two workloads: a
   sequential workflow (one activity after another) and a mixed one (activities with
   compensations, ``All``, ``First`` over an activity and a timer, ``Publish``, ``WaitEvent`` with
   a timeout). Median (and best) of ``--runs`` runs, in ms and records/s.
2. Incremental advance: a live interpreter is brought to a history of N records, then the time to
   advance the next ~N records (at least 1,000; ``feed(Resolved)`` + ``decide()``, two records
   per step) is measured, per record, for N = 10 ... 100,000 (repeated on fresh interpreters,
   median taken), with the ratio to the smallest size.

Wall-clock figures on a shared machine drift; the calibration line (a bare 1M-iteration Python
loop) lets figures taken at different moments or on different machines be compared.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from eddic.kernel import (
    ActivityRef,
    All,
    CallActivity,
    Event,
    First,
    Interpreter,
    Publish,
    Record,
    Resolved,
    Scheduled,
    Sleep,
    WaitEvent,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
RESERVE = ActivityRef("reserve", compensation="release")


# -- workloads -------------------------------------------------------------------------------------


def sequential(ctx: Any) -> Iterator[Any]:
    """One activity after another, forever (the caller stops feeding)."""
    i = 0
    while True:
        yield CallActivity("step", i)
        i += 1


def mixed(ctx: Any) -> Iterator[Any]:
    """A bit of everything, forever."""
    i = 0
    while True:
        reservation = yield CallActivity(RESERVE, f"sku-{i}", qty=1)
        yield All(CallActivity("price", reservation), CallActivity("tax", reservation))
        yield First(CallActivity("quote"), Sleep(30))
        yield Publish("order.priced", {"n": i})
        yield WaitEvent("order.approved", timeout=3600)
        i += 1


def outcome(record: Scheduled, at: datetime) -> Resolved:
    """A plain, already-decoded outcome for a scheduled command."""
    if record.kind == "event":
        return Resolved(record.seq, at, Event(f"e{record.seq}", record.name, "bench", at))
    return Resolved(record.seq, at, None if record.kind == "timer" else f"v{record.seq}")


def record_history(workflow: Callable[..., Any], size: int) -> list[Record]:
    """Run ``workflow`` live, resolving the oldest pending command each time: ``size`` records."""
    interp = Interpreter(workflow, instance_id="bench", started_at=T0)
    history: list[Record] = interp.decide()
    clock = T0
    while len(history) < size:
        oldest = interp.pending[0]
        clock += timedelta(seconds=1)
        resolved = outcome(oldest.record, clock)
        interp.feed(resolved)
        history.append(resolved)
        history.extend(interp.decide())
    return history[:size]


# -- measurements ----------------------------------------------------------------------------------


def calibration_ms() -> float:
    """Median time of a bare 1M-iteration loop: how fast this Python is right now."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(1_000_000):
            pass
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def full_replay(workflow: Callable[..., Any], history: list[Record]) -> Interpreter:
    interp = Interpreter(workflow, instance_id="bench", started_at=T0)
    interp.replay(history)
    return interp


def time_full_replay(
    workflow: Callable[..., Any], history: list[Record], runs: int
) -> tuple[float, float]:
    """(median, best) seconds of a full replay, from a fresh interpreter each time."""
    warm_until = time.perf_counter() + 0.5  # warm up (caches, and a CPU that may be ramping)
    while time.perf_counter() < warm_until:
        full_replay(workflow, history)
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        full_replay(workflow, history)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


class LiveSequential:
    """A live interpreter of ``sequential``, advanced the way a runtime would: feed, decide."""

    def __init__(self) -> None:
        self.interp = Interpreter(sequential, instance_id="bench", started_at=T0)
        (self.waiting,) = self.interp.decide()
        self.records = 1
        self.clock = T0

    def advance(self, records: int) -> None:
        """Append about ``records`` records: each step is one Resolved plus one Scheduled."""
        interp, waiting, clock = self.interp, self.waiting, self.clock
        second = timedelta(seconds=1)
        for _ in range(max(1, records // 2)):
            clock += second
            interp.feed(Resolved(waiting.seq, clock, waiting.seq))
            (waiting,) = interp.decide()
        self.waiting, self.clock = waiting, clock
        self.records += 2 * max(1, records // 2)


def per_record_us(size: int) -> tuple[float, int]:
    """Median µs per record to advance the next ~``size`` records from a ``size``-record history.

    At least 1,000 records are timed (a window of 10 would mostly time the timer), on fresh
    interpreters until some 20,000 records have been timed in all.
    """
    window = max(size, 1_000)
    repeats = max(3, 20_000 // window)
    samples = []
    timed = 0
    gc.collect()
    for _ in range(repeats):
        live = LiveSequential()
        live.advance(size - live.records)
        before = live.records
        start = time.perf_counter()
        live.advance(window)
        elapsed = time.perf_counter() - start
        timed = live.records - before
        samples.append(elapsed / timed * 1e6)
    return statistics.median(samples), timed


def profile_full_replay(history: list[Record]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        full_replay(sequential, history)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="full-replay runs (default 15)")
    parser.add_argument("--records", type=int, default=10_000, help="history size (10,000)")
    parser.add_argument("--profile", action="store_true", help="cProfile the full replay")
    args = parser.parse_args()

    print(f"eddic kernel benchmarks: Python {platform.python_version()} on {platform.machine()}")
    print(f"calibration: bare 1M-iteration loop = {calibration_ms():.1f} ms\n")

    print(f"1. Full replay of a {args.records:,}-record history (outcomes already decoded)")
    for name, workflow in (("sequential", sequential), ("mixed", mixed)):
        history = record_history(workflow, args.records)
        median, best = time_full_replay(workflow, history, args.runs)
        verdict = "meets" if median < 0.020 else "MISSES"
        print(
            f"   {name:<10} median {median * 1000:6.1f} ms  best {best * 1000:6.1f} ms  "
            f"{len(history) / median:>11,.0f} records/s  ({verdict} the 20 ms target; "
            f"{args.runs} runs)"
        )

    print("\n2. Incremental advance of a live interpreter (feed + decide), per record")
    print(f"   {'history size':>12}  {'records timed':>13}  {'µs/record':>9}  {'ratio':>5}")
    costs = []
    for size in (10, 100, 1_000, 10_000, 100_000):
        us, timed = per_record_us(size)
        costs.append(us)
        print(f"   {size:>12,}  {timed:>13,}  {us:>9.2f}  {us / costs[0]:>5.2f}")
    print(
        f"   slowest / fastest size: {max(costs) / min(costs):.2f} "
        "(flat: close to 1; O(n) per record would be ~10,000)"
    )

    if args.profile:
        print("\n3. cProfile of 5 full replays (sequential), by own time")
        print(profile_full_replay(record_history(sequential, args.records)))


if __name__ == "__main__":
    sys.exit(main())
