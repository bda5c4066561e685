"""Cost per step as an instance grows, and recovery of a long instance by a fresh App.

    python tests/benchmarks/steps.py                 # K = 10 .. 10,000; recovery of 10,000 steps
    python tests/benchmarks/steps.py --quick         # a short smoke run
    python tests/benchmarks/steps.py --profile       # also cProfile a K=1,000 run and a recovery

1. Live steps: one workflow of K trivial activities started inline with ``App.start`` (the live
   interpreter is cached and advanced in place). Per step is reported two ways: the whole
   ``start`` divided by K, and the steady state (first to last activity body, divided by K-1,
   which leaves the start and the completion out). Target: per-step(K=1000)/per-step(K=10) <= 1.2.
2. Recovery: an instance with 10,000 recorded activities waits on a ``Sleep``; a fresh App (empty
   cache) replays it and continues when the timer is due (one ``run_due``). The SQL load, the
   decoding (JSON, datetimes, pydantic), the kernel replay and the rest are timed separately.
3. Kernel replay alone (no storage, outcomes already decoded): per-record cost for histories of
   10 to 100,000 records (design targets: 10,000 records < 20 ms; per-record cost flat).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Any

from benchlib import describe_dir, median, profile, scratch_dir

from eddic import App, Sleep, activity, workflow
from eddic.clock import from_text
from eddic.kernel import CallActivity, Interpreter, Record, Resolved, Scheduled
from eddic.runtime.instance import decode_records
from eddic.serde import loads
from eddic.storage import Storage

STAMPS: list[float] = []  # perf_counter() at each activity body


@activity
def bench_step(i: int) -> int:
    STAMPS.append(time.perf_counter())
    return i + 1


@workflow
def bench_steps(ctx: Any, k: int) -> int:
    total = 0
    for i in range(k):
        total += yield bench_step(i)
    return total


@workflow
def bench_long(ctx: Any, k: int) -> int:
    total = 0
    for i in range(k):
        total += yield bench_step(i)
    yield Sleep(1.0)
    total += yield bench_step(-1)
    return total


# -- 1. live steps ---------------------------------------------------------------------------


def live_steps(folder: str, synchronous: str, k: int, workflows: int, tag: str) -> dict[str, float]:
    path = os.path.join(folder, f"steps-{synchronous}-{k}-{tag}.db")
    with App(db_url=f"sqlite:///{path}", synchronous=synchronous) as app:
        for _ in range(3):
            app.start(bench_steps, input=3)  # warm up
        steady: list[float] = []
        begin = time.perf_counter()
        for _ in range(workflows):
            STAMPS.clear()
            app.start(bench_steps, input=k)
            if k > 1:
                steady.append((STAMPS[-1] - STAMPS[0]) / (k - 1))
        elapsed = time.perf_counter() - begin
    return {
        "total/K us": 1e6 * elapsed / (workflows * k),
        "steady us": 1e6 * sum(steady) / len(steady),
    }


def report_live(folder: str, settings: list[str], ks: list[int], repeats: int, budget: int) -> None:
    print("1. live steps: one workflow of K trivial activities, App.start inline")
    for sync in settings:
        print(f"  synchronous={sync} ({repeats} repeat(s), medians; per step in microseconds)")
        per: dict[int, dict[str, float]] = {}
        for k in ks:
            workflows = max(1, budget // k)
            runs = [live_steps(folder, sync, k, workflows, str(r)) for r in range(repeats)]
            per[k] = {key: median([r[key] for r in runs]) for key in runs[0]}
            print(
                f"    K={k:>6,} x {workflows:>4} workflow(s): "
                f"total/K {per[k]['total/K us']:8.1f} us"
                f" | steady state {per[k]['steady us']:8.1f} us",
                flush=True,
            )
        if 10 in per and 1000 in per:
            for key, label in (("total/K us", "total/K"), ("steady us", "steady state")):
                ratio = per[1000][key] / per[10][key]
                verdict = "MET" if ratio <= 1.2 else "NOT MET"
                print(
                    f"    ratio per-step(K=1000)/per-step(K=10), {label}: {ratio:.2f} ({verdict})"
                )
        if 10_000 in per and 10 in per:
            ratio = per[10_000]["steady us"] / per[10]["steady us"]
            print(f"    ratio per-step(K=10000)/per-step(K=10), steady state: {ratio:.2f}")


# -- 2. recovery -----------------------------------------------------------------------------


@contextmanager
def timed(owner: Any, name: str, sink: dict[str, float], label: str) -> Iterator[None]:
    """Accumulate the wall time spent in ``owner.name`` into ``sink[label]`` while active."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            sink[label] = sink.get(label, 0.0) + time.perf_counter() - begin

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def timed_everywhere(func: Any, sink: dict[str, float], label: str) -> Iterator[None]:
    """``timed`` for a function in every ``eddic`` module that imported it by name."""
    with ExitStack() as stack:
        for name, module in list(sys.modules.items()):
            if (name == "eddic" or name.startswith("eddic.")) and getattr(
                module, func.__name__, None
            ) is func:
                stack.enter_context(timed(module, func.__name__, sink, label))
        yield


def loader_class() -> Any:
    """The class whose ``_load`` rebuilds an instance by replay (``Worker``; ``App`` earlier)."""
    try:
        from eddic.runtime.worker import Worker
    except ImportError:
        return App
    return Worker if hasattr(Worker, "_load") else App


def plain_decode(rows: list[tuple[Any, ...]]) -> list[Record]:
    """``decode_records`` without pydantic: JSON and datetimes only (to split the decode cost)."""
    out: list[Record] = []
    for _iid, _pos, seq, record, kind, name, args, at, deadline, value, _failure in rows:
        when = from_text(at)
        assert when is not None
        if record == "scheduled":
            out.append(Scheduled(seq, kind, name, loads(args), when, from_text(deadline)))
        else:
            out.append(Resolved(seq, when, loads(value)))
    return out


def build_long(folder: str, k: int, tag: str) -> tuple[str, str, float]:
    """An instance with ``k`` recorded activities, waiting on a 1 s Sleep: (db url, id, build s)."""
    path = os.path.join(folder, f"long-{k}-{tag}.db")
    url = f"sqlite:///{path}"
    begin = time.perf_counter()
    with App(db_url=url, synchronous="NORMAL") as app:
        iid = app.start(bench_long, input=k, instance_id=f"long-{k}")
        assert app.get_instance(iid)["status"] == "waiting_for_timer"
    return url, iid, time.perf_counter() - begin


def wait_until_due(url: str, iid: str) -> None:
    with App(db_url=url, synchronous="NORMAL") as app:
        wake = app.get_instance(iid)["wake_at"]
    assert wake is not None
    wait = (wake - datetime.now(timezone.utc)).total_seconds()
    if wait > 0:
        time.sleep(wait + 0.01)


def recover(url: str, iid: str) -> dict[str, float]:
    """A fresh App resumes the instance (its timer is due); the parts of run_due, in ms."""
    parts: dict[str, float] = {}
    gc.collect()
    with App(db_url=url, synchronous="NORMAL") as app:
        with (
            timed(Storage, "acquire", parts, "acquire the lease"),
            timed(Storage, "history_rows", parts, "SQL load of the history rows"),
            timed_everywhere(decode_records, parts, "decode (JSON, datetimes, pydantic)"),
            timed(Interpreter, "replay", parts, "kernel replay"),
            timed(loader_class(), "_load", parts, "_load total"),
        ):
            begin = time.perf_counter()
            advanced = app.run_due()
            parts["run_due total"] = time.perf_counter() - begin
        assert advanced == 1, f"run_due advanced {advanced} instances"
        assert app.get_instance(iid)["status"] == "completed"
        with app.storage.reading() as db:
            rows = app.storage.history_rows(db, iid)
    parts["rows"] = len(rows)
    return {k: (v if k == "rows" else 1000 * v) for k, v in parts.items()}


def direct_parts(url: str, iid: str, repeats: int) -> dict[str, float]:
    """Load, decode and replay measured directly (no runtime around them), medians in ms."""
    storage = Storage(url)
    storage.open()
    with storage.reading() as db:
        input_k = loads(db.execute("SELECT input_data FROM instances").fetchone()[0])
    samples: dict[str, list[float]] = {}

    def sample(label: str, func: Callable[[], Any]) -> Any:
        gc.collect()  # each sample starts from the same heap (GC pauses are part of the cost)
        begin = time.perf_counter()
        out = func()
        samples.setdefault(label, []).append(1000 * (time.perf_counter() - begin))
        return out

    for _ in range(max(5, repeats)):
        with storage.reading() as db:
            rows = sample("SQL load", lambda db=db: storage.history_rows(db, iid))
        records = sample(
            "decode_records (JSON+datetimes+pydantic)", lambda rows=rows: decode_records(rows)
        )
        sample("decode without pydantic (JSON+datetimes)", lambda rows=rows: plain_decode(rows))
        interp = Interpreter(bench_long.func, input_k, instance_id=iid, started_at=records[0].at)
        sample(
            "kernel replay (decoded records)",
            lambda interp=interp, records=records: interp.replay(records),
        )
    storage.close()
    out = {label: median(values) for label, values in samples.items()}
    out["records"] = len(rows)
    return out


def report_recovery(folder: str, k: int, repeats: int) -> None:
    print(f"\n2. recovery: an instance with {k:,} recorded activities, fresh App, run_due")
    runs, builds = [], []
    for r in range(repeats):
        # Each round needs its own waiting instance, built outside the timings.
        url, iid, build = build_long(folder, k, str(r))
        builds.append(build)
        wait_until_due(url, iid)
        runs.append(recover(url, iid))
    print(f"  built in {median(builds):.2f} s (synchronous=NORMAL, median)")
    labels = [key for key in runs[0] if key != "rows"]
    print(
        f"  resumed {runs[0]['rows'] - 4:,.0f} -> {runs[0]['rows']:,.0f} history rows; "
        f"ms, median of {len(runs)}:"
    )
    for label in labels:
        print(f"    {label:38} {median([r[label] for r in runs]):9.1f} ms")
    total = median([r["run_due total"] for r in runs])
    load = median([r["_load total"] for r in runs])
    print(f"    {'rest of run_due (queries, 2 commits...)':38} {total - load:9.1f} ms")
    direct = direct_parts(url, iid, max(3, repeats))
    records = direct.pop("records")
    print(f"  measured directly on the finished instance ({records:,.0f} records), medians:")
    for label, value in direct.items():
        print(f"    {label:42} {value:9.1f} ms  ({1000 * value / records:6.2f} us/record)")
    pyd = (
        direct["decode_records (JSON+datetimes+pydantic)"]
        - direct["decode without pydantic (JSON+datetimes)"]
    )
    print(f"    {'=> pydantic share of decoding':42} {pyd:9.1f} ms")
    per10k = direct["kernel replay (decoded records)"] * 10_000 / records
    verdict = "MET" if per10k < 20 else "NOT MET"
    print(
        f"    kernel replay scaled to 10,000 records: {per10k:.1f} ms (target < 20 ms: {verdict})"
    )


# -- 3. kernel replay alone --------------------------------------------------------------------


def kernel_wf(ctx: Any, n: int) -> Any:
    total = 0
    for i in range(n):
        total += yield CallActivity("step", i)
    return total


def kernel_history(n: int) -> list[Record]:
    """The history of ``n`` activities, built by driving a live interpreter."""
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    interp = Interpreter(kernel_wf, n, instance_id="k", started_at=at)
    history: list[Record] = []
    new = interp.decide()
    history.extend(new)
    while not interp.finished:
        pending = interp.pending[0]
        resolved = Resolved(pending.seq, at, pending.seq)
        interp.feed(resolved)
        history.append(resolved)
        history.extend(interp.decide())
    return history


def report_kernel(sizes: list[int]) -> None:
    print("\n3. kernel replay alone (outcomes already decoded), per record (median of rounds)")
    per: dict[int, float] = {}
    for records in sizes:
        history = kernel_history(records // 2)
        rounds = max(3, 200_000 // max(1, len(history)))
        samples = []
        gc.collect()
        for _ in range(min(rounds, 50)):
            interp = Interpreter(kernel_wf, records // 2, instance_id="k", started_at=history[0].at)
            begin = time.perf_counter()
            interp.replay(history)
            samples.append(time.perf_counter() - begin)
            assert interp.finished
        per[len(history)] = 1e6 * median(samples) / len(history)
        print(
            f"  {len(history):>7,} records: {1000 * median(samples):8.2f} ms total, "
            f"{per[len(history)]:5.2f} us/record",
            flush=True,
        )
    ref = per.get(1000)
    if ref:
        flat = ", ".join(f"{n:,}: {v / ref:.2f}x" for n, v in per.items())
        print(f"  per-record cost relative to 1,000 records: {flat}")
    if 10 in per and ref:
        print(f"  fixed cost per replay (new Interpreter, start): ~{10 * (per[10] - ref):.0f} us")


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--synchronous",
        choices=("FULL", "NORMAL", "both"),
        default="both",
        help="setting for the live-step runs (recovery always builds at NORMAL)",
    )
    parser.add_argument("--dir", default=None, help="parent folder of the database files")
    parser.add_argument("--profile", action="store_true", help="cProfile K=1,000 and a recovery")
    args = parser.parse_args(argv)
    logging.getLogger("eddic").setLevel(logging.ERROR)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    settings = ["FULL", "NORMAL"] if args.synchronous == "both" else [args.synchronous]
    ks = [10, 100, 1000] if quick else [10, 100, 1000, 10_000]
    long_k = 1000 if quick else 10_000
    kernel_sizes = [10, 100, 1000, 10_000] if quick else [10, 100, 1000, 10_000, 100_000]

    with scratch_dir(args.dir) as folder:
        print(f"eddic step benchmark: python {sys.version.split()[0]}, {describe_dir(folder)}\n")
        report_live(folder, settings, ks, repeats, budget=200 if quick else 1000)
        report_recovery(folder, long_k, repeats)
        report_kernel(kernel_sizes)
        if args.profile:
            profile(
                lambda: live_steps(folder, "NORMAL", 1000, 1, "prof"),
                title="one workflow of K=1,000 activities, synchronous=NORMAL",
            )
            url, iid, _ = build_long(folder, long_k, "prof")
            wait_until_due(url, iid)
            profile(lambda: recover(url, iid), title=f"recovery of {long_k:,} steps (run_due)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
