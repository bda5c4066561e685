"""Memory held by one App for 10,000 waiting instances (its cache of live interpreters).

    python tests/benchmarks/memory.py           # 10,000 instances per child process
    python tests/benchmarks/memory.py --quick   # 500 instances

Each measurement runs in a fresh child process (``sys.executable``): it starts N instances inline
with ``App.start`` on a file database (synchronous=NORMAL; memory does not depend on it), each one
left waiting, then reports:

* ``rss`` mode: VmRSS before/after and the peak (``ru_maxrss``), without tracemalloc;
* ``tracemalloc`` mode: Python allocations still held after ``gc.collect()`` and their peak,
  per instance, plus the top allocation sites.

Workflow shapes: ``event`` (one activity, then ``WaitEvent``), ``sleep`` (one activity, then
``Sleep(3600)``) and ``event-first`` (``WaitEvent`` as the very first command). Cache sizes: the
default (10,000) and 0 (nothing cached: the cost of the bookkeeping alone).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

from pydantic import BaseModel

from eddic import App, Sleep, WaitEvent, activity, workflow

HERE = os.path.abspath(__file__)


class BenchWaitInput(BaseModel):
    order_id: str
    amount: float


@activity
def bench_prepare(order_id: str) -> dict[str, str]:
    return {"ticket": f"T-{order_id}"}


@workflow
def bench_wait_event(ctx: Any, order: BenchWaitInput) -> str:
    ticket = yield bench_prepare(order.order_id)
    event = yield WaitEvent("bench.go")
    return f"{ticket['ticket']}:{event.id}"


@workflow
def bench_wait_sleep(ctx: Any, order: BenchWaitInput) -> str:
    ticket = yield bench_prepare(order.order_id)
    yield Sleep(3600)
    return str(ticket["ticket"])


@workflow
def bench_wait_first(ctx: Any, order: BenchWaitInput) -> str:
    event = yield WaitEvent("bench.go")
    return str(event.id)


KINDS = {"event": bench_wait_event, "sleep": bench_wait_sleep, "event-first": bench_wait_first}


def vm_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.first is None:
            self.first = record.getMessage()


def child(mode: str, kind: str, n: int, cache: int, folder: str) -> dict[str, Any]:
    warnings = _Counter()
    log = logging.getLogger("eddic")
    log.addHandler(warnings)
    log.propagate = False
    wf = KINDS[kind]
    path = os.path.join(folder, f"mem-{mode}-{kind}-{cache}.db")
    app = App(db_url=f"sqlite:///{path}", synchronous="NORMAL", cache_size=cache)
    app.initialize()
    for i in range(10):  # warm up (pydantic adapters, statements, the file)
        app.start(wf, input={"order_id": f"warm-{i}", "amount": 1.0})
    gc.collect()
    before = vm_status()
    if mode == "tracemalloc":
        tracemalloc.start(1)
        snap0 = tracemalloc.take_snapshot()
        base, _ = tracemalloc.get_traced_memory()
    begin = time.perf_counter()
    for i in range(n):
        app.start(wf, input={"order_id": f"ORD-{i}", "amount": 1.0 + i % 10})
    elapsed = time.perf_counter() - begin
    gc.collect()
    out: dict[str, Any] = {
        "mode": mode,
        "kind": kind,
        "n": n,
        "cache_size": cache,
        "cached": len(app._cache),  # benchmark-only peek at the live-interpreter cache
        "start_s": elapsed,
        "warnings": warnings.count,
        "first_warning": warnings.first,
    }
    if mode == "tracemalloc":
        current, peak = tracemalloc.get_traced_memory()
        snap1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
        out["held_bytes"] = current - base
        out["peak_bytes"] = peak - base
        stats = snap1.compare_to(snap0, "lineno")[:8]
        out["top"] = [
            (str(s.traceback[0]).replace(os.getcwd() + os.sep, ""), s.size_diff, s.count_diff)
            for s in stats
        ]
    else:
        after = vm_status()
        out["rss_before_kib"] = before["VmRSS"]
        out["rss_after_kib"] = after["VmRSS"]
        out["hwm_kib"] = after["VmHWM"]
        out["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["waiting"] = len(
        app.list_instances(
            status=["waiting_for_event", "waiting_for_timer"], workflow=wf.name, limit=None
        )
    )
    app.shutdown()
    return out


def run_child(mode: str, kind: str, n: int, cache: int, folder: str) -> dict[str, Any]:
    cmd = [sys.executable, HERE, "--child", mode, kind, str(n), str(cache), folder]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {cmd} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 instances instead of 10,000")
    parser.add_argument("--instances", type=int, default=None)
    parser.add_argument("--dir", default=None, help="parent folder of the database files")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "KIND", "N", "CACHE", "DIR"))
    args = parser.parse_args(argv)
    if args.child:
        mode, kind, n, cache, folder = args.child
        print(json.dumps(child(mode, kind, int(n), int(cache), folder)))
        return 0
    n = args.instances or (500 if args.quick else 10_000)
    plan = [
        ("rss", "event", 10_000),
        ("rss", "event", 0),
        ("rss", "sleep", 10_000),
        ("rss", "event-first", 10_000),
        ("tracemalloc", "event", 10_000),
        ("tracemalloc", "event", 0),
    ]
    with tempfile.TemporaryDirectory(prefix="eddic-bench-", dir=args.dir) as folder:
        print(f"eddic memory benchmark: {n:,} waiting instances per child process, one App\n")
        results = []
        for mode, kind, cache in plan:
            r = run_child(mode, kind, n, cache, folder)
            results.append(r)
            head = (
                f"  {mode:11} {kind:11} cache_size={cache:<6} cached={r['cached']:<6} "
                f"waiting={r['waiting']:<6} start {1000 * r['start_s'] / n:.2f} ms/instance"
            )
            if mode == "rss":
                grown = r["rss_after_kib"] - r["rss_before_kib"]
                print(
                    f"{head} | RSS {r['rss_before_kib'] / 1024:.1f} -> "
                    f"{r['rss_after_kib'] / 1024:.1f} MiB (+{grown / 1024:.1f} MiB, "
                    f"{1024 * grown / n:,.0f} B/instance), peak ru_maxrss "
                    f"{r['ru_maxrss_kib'] / 1024:.1f} MiB",
                    flush=True,
                )
            else:
                print(
                    f"{head} | held {r['held_bytes'] / 2**20:.1f} MiB "
                    f"({r['held_bytes'] / n:,.0f} B/instance), peak "
                    f"{r['peak_bytes'] / 2**20:.1f} MiB",
                    flush=True,
                )
            if r["warnings"]:
                print(f"      {r['warnings']:,} eddic warnings, first: {r['first_warning']}")
        print("\n  top allocation sites still held (tracemalloc, event, cache_size=10000):")
        for site, size, count in next(
            r["top"] for r in results if r["mode"] == "tracemalloc" and r["cache_size"]
        ):
            print(f"    {size / n:8,.0f} B/instance {count / n:6.1f} blocks/instance  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
