"""The PostgreSQL storage's share of a workflow: client CPU and wall time of its steps alone.

    python tests/benchmarks/pg_storage_cpu.py                  # 5 rounds of 500 workflows
    python tests/benchmarks/pg_storage_cpu.py --threads 8      # the same from 8 threads

``pg_throughput.py`` measures whole workflows, where eddic's runtime, the kernel and pydantic
share the client's CPU with the driver. This runs only what the runtime asks of the storage
for the 3-activity order workflow run inline (``storage_cpu.workflow``: one ``create`` and
three ``commit_step``, shaped as the runtime builds them) on one embedded server
(``tests/pg_server.py``: fsync and ``synchronous_commit`` on), and prints per workflow the
client's CPU (``time.process_time``, every thread of this process) and the wall time, with the
raw commit rate measured in the same round (one small-row ``INSERT`` per transaction) for
scale. Rounds alternate with the raw measurement; medians of the rounds are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server

import pg_server
import psycopg
from storage_cpu import workflow

from eddic.storage.postgres.store import PostgresStorage


def run_round(
    storage: PostgresStorage, start: int, count: int, threads: int
) -> tuple[float, float]:
    """CPU and wall milliseconds per workflow for ``count`` workflows from ``threads`` threads."""
    share = count // threads

    def work(t: int) -> None:
        for i in range(start + t * share, start + (t + 1) * share):
            workflow(storage, i)  # type: ignore[arg-type]

    cpu, wall = time.process_time(), time.perf_counter()
    if threads == 1:
        work(0)
    else:
        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    done = share * threads
    return (
        1000 * (time.process_time() - cpu) / done,
        1000 * (time.perf_counter() - wall) / done,
    )


def raw_commits(url: str, seconds: float) -> float:
    """Commits per second of one connection, one small-row INSERT each (autocommit)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS raw_commits (id bigserial PRIMARY KEY, v text)")
        n, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            conn.execute("INSERT INTO raw_commits (v) VALUES (%s)", ["x"])
            n += 1
        return n / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workflows", type=int, default=500, help="per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with pg_server.serving() as server:
        url = server.create_database(f"bench_storage_{os.getpid()}")
        try:
            storage = PostgresStorage(pg_server.with_schema(url, "bench"))
            storage.open()
            run_round(storage, 10**7, 100, args.threads)  # warm-up: connections, prepares
            cpus, walls, raws = [], [], []
            for r in range(args.rounds):
                raws.append(raw_commits(url, 2.0))
                cpu, wall = run_round(storage, r * args.workflows, args.workflows, args.threads)
                cpus.append(cpu)
                walls.append(wall)
                print(
                    f"  round {r + 1}: cpu {cpu:.3f} ms/workflow, wall {wall:.3f} ms/workflow, "
                    f"raw x1 {raws[-1]:,.0f} commits/s",
                    flush=True,
                )
            storage.close()
        finally:
            server.drop_database(url)
    cpu, wall, raw = (statistics.median(v) for v in (cpus, walls, raws))
    print(
        f"storage alone, {args.threads} thread(s), medians of {args.rounds} rounds: "
        f"client CPU {cpu:.3f} ms per workflow ({cpu / 3:.3f} per activity), "
        f"wall {wall:.3f} ms per workflow ({3000 / wall:,.0f} activities/s); "
        f"raw x1 {raw:,.0f} commits/s (4 commits would take {4000 / raw:.3f} ms)"
    )


if __name__ == "__main__":
    main()
