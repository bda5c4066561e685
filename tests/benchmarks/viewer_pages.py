"""The web viewer's pages, timed from request to rendered HTML (in process, through the ASGI app,
as a browser's request would be served, minus the socket).

1. The instance list with ``--instances`` instances (100,000 by default; filled as
   ``viewer_queries.py`` fills them): the first page, a status-filtered page, a page 90,000 deep
   through its cursor, an id search. Target: each <= 100 ms.
2. One instance with a ``--steps``-step history (10,000 by default: that many activities, run by
   a real App, then a wait on an event, so the instance is unfinished and its page replays the
   whole history through the kernel for "what it waits on now"): its page viewed first (the
   replay included) and again (the viewer keeps the answer until the history changes), a page
   of its history deep in, and a replay step. Target: the instance page <= 300 ms.

Medians of ``--runs`` requests after one untimed request, in ms. Run by hand; asserts nothing::

    python tests/benchmarks/viewer_pages.py [--instances 100000] [--steps 10000] [--runs 5]
        [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pg_server
import viewer_queries as vq
from starlette.testclient import TestClient

from eddic import App, WaitEvent, WorkflowContext, activity, workflow
from eddic.storage import open_store
from eddic.web import create_app

BASE = "http://127.0.0.1:8765"


@activity
def bench_page_step(n: int) -> int:
    return n * 2


@workflow
def bench_page_long(ctx: WorkflowContext, steps: int) -> int:
    total = 0
    for n in range(steps):
        total += yield bench_page_step(n)
    yield WaitEvent("bench.never", timeout=86_400)
    return total


def median_ms(get: Callable[[], Any], runs: int) -> float:
    get()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = get()
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.text[:300]
    return statistics.median(times)


def list_pages(url: str, ids: list[str], runs: int) -> dict[str, float]:
    deep = ids[-90_001] if len(ids) > 90_000 else ids[len(ids) // 10]  # ids are oldest first
    with TestClient(create_app(url), base_url=BASE) as client:
        return {
            "list: first page": median_ms(lambda: client.get("/"), runs),
            "list: status failed": median_ms(lambda: client.get("/?status=failed"), runs),
            "list: 90,000 deep (cursor)": median_ms(lambda: client.get(f"/?before={deep}"), runs),
            "list: id search": median_ms(lambda: client.get("/?q=0000042"), runs),
        }


def long_instance(url: str, steps: int, runs: int) -> dict[str, float]:
    app = App(db_url=url)
    app.initialize()
    t0 = time.perf_counter()
    iid = app.start(bench_page_long, steps)
    made = time.perf_counter() - t0
    print(f"  ({steps} activities run in {made:.1f} s; {len(app.history(iid))} records)")
    cold = []
    for _ in range(runs):  # a viewer that has not seen the instance replays its history first
        with TestClient(create_app(app), base_url=BASE) as fresh:
            t0 = time.perf_counter()
            assert fresh.get("/instance", params={"id": iid}).status_code == 200
            cold.append((time.perf_counter() - t0) * 1000)
    with TestClient(create_app(app), base_url=BASE) as client:
        figures = {
            f"instance page, {steps} steps, first view": statistics.median(cold),
            f"instance page, {steps} steps, again": median_ms(
                lambda: client.get("/instance", params={"id": iid}), runs
            ),
            "its history, a page deep in": median_ms(
                lambda: client.get("/instance", params={"id": iid, "hfrom": steps}), runs
            ),
            "a replay step, half way": median_ms(
                lambda: client.get("/replay", params={"id": iid, "step": steps // 2}), runs
            ),
        }
        size = len(client.get("/instance", params={"id": iid}).text)
        print(f"  (the instance page is {size / 1024:.0f} KiB)")
    app.send_event("bench.never", None, instance_id=iid)  # it completes: nothing to replay
    done = []
    for _ in range(runs):
        with TestClient(create_app(app), base_url=BASE) as fresh:
            t0 = time.perf_counter()
            assert fresh.get("/instance", params={"id": iid}).status_code == 200
            done.append((time.perf_counter() - t0) * 1000)
    figures[f"instance page, {steps} steps, completed, first view"] = statistics.median(done)
    app.shutdown()
    return figures


def report(label: str, figures: dict[str, float], target: dict[str, float]) -> None:
    print(f"\n{label}")
    for name, ms in figures.items():
        limit = next((v for k, v in target.items() if name.startswith(k)), None)
        verdict = "" if limit is None else ("  ok" if ms <= limit else f"  OVER {limit:.0f} ms")
        print(f"  {name:<34} {ms:8.1f} ms{verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    targets = {"list": 100.0, "instance page": 300.0}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder, vq.sqlite_store(folder) as (path, store):
                ids = vq.fill_sqlite(path, store, args.instances)
                url = f"sqlite:///{path}"
                report(
                    f"SQLite: {args.instances:,} instances",
                    list_pages(url, ids, args.runs),
                    targets,
                )
                long = long_instance(f"sqlite:///{folder}/long.db", args.steps, args.runs)
                report("SQLite: one long instance", long, targets)
            continue
        server = pg_server.server_for_tests()
        try:
            db = server.create_database(f"bench_pages_{os.getpid()}")
            url = pg_server.with_schema(db, vq.SCHEMA)
            store = open_store(url)
            store.open()
            try:
                ids = vq.fill_postgres(db, store, args.instances)
            finally:
                store.close()
            report(
                f"PostgreSQL: {args.instances:,} instances",
                list_pages(url, ids, args.runs),
                targets,
            )
            long = long_instance(pg_server.with_schema(db, "long"), args.steps, args.runs)
            report("PostgreSQL: one long instance", long, targets)
            server.drop_database(db)
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
