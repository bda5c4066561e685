"""The physical limit on PostgreSQL: raw commits per second, with no eddic in between.

One small-row INSERT per transaction, ``synchronous_commit = on`` (each commit waits for its WAL
flush), from 1 connection and from 8 (one thread each), several rounds, medians printed. Two
ways to send it: ``autocommit`` (the INSERT is its own transaction: one round trip) and
``begin/commit`` (BEGIN, INSERT, COMMIT: what a driver in transaction mode sends, three round
trips). Run by hand, prints figures, asserts nothing::

    python tests/benchmarks/pg_raw_commits.py [--rounds 3] [--seconds 3] [--threads 1,8]
                                              [--ceiling] [--pgbench]

``--ceiling`` adds ``autocommit`` with ``synchronous_commit = off`` in the session (not durable:
what the Python client and the server's CPU allow without waiting for the disk); ``--pgbench``
adds the same INSERT from pgbench (C, from the wheel) with synchronous_commit on: the box's
limit without Python.

The server is the one of ``EDDIC_TEST_POSTGRES_URL`` if set, else an embedded one started for the
run (tests/pg_server.py: fsync and synchronous_commit on, data in the system temp directory). Each
measurement stops after ``--seconds`` or ``--max-commits`` commits, whichever comes first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server

import pg_server

MODES = ("autocommit", "begin/commit")
CEILING = "async (sc=off)"
PGBENCH = "pgbench (C)"


def filesystem_of(path: str) -> str:
    try:
        out = subprocess.run(["df", "-PT", path], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[-1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def measure(url: str, mode: str, threads: int, seconds: float, max_commits: int) -> float:
    """Commits per second from ``threads`` connections for at most ``seconds``."""
    conns = [psycopg.connect(url, autocommit=(mode != "begin/commit")) for _ in range(threads)]
    for conn in conns:  # same settings as eddic will use; fail loudly if the server differs
        if mode == CEILING:
            conn.execute("SET synchronous_commit = off")
        else:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        if mode == "begin/commit":
            conn.commit()
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    per_thread = max(1, max_commits // threads)
    deadline = 0.0

    def work(i: int) -> None:
        conn, n = conns[i], 0
        barrier.wait()
        if mode != "begin/commit":
            while n < per_thread and time.perf_counter() < deadline:
                conn.execute("INSERT INTO raw_commits (v) VALUES (%s)", ("x",))
                n += 1
        else:
            while n < per_thread and time.perf_counter() < deadline:
                conn.execute("INSERT INTO raw_commits (v) VALUES (%s)", ("x",))
                conn.commit()
                n += 1
        counts[i] = n

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    start = time.perf_counter()
    deadline = start + seconds
    barrier.wait()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return sum(counts) / elapsed


def pgbench(url: str, threads: int, seconds: float) -> float:
    """The same INSERT from pgbench, one transaction each, ``threads`` connections and threads."""
    script = Path(tempfile.mkdtemp(prefix="eddic-pgbench-")) / "insert.sql"
    script.write_text("INSERT INTO raw_commits (v) VALUES ('x');\n")
    try:
        out = subprocess.run(
            [
                str(pg_server.pginstall() / "bin" / "pgbench"),
                *("-n", "-M", "prepared", "-c", str(threads), "-j", str(threads)),
                *("-T", str(max(1, round(seconds))), "-f", str(script), url),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        shutil.rmtree(script.parent)
    tps = [line for line in out.splitlines() if line.startswith("tps = ")]
    return float(tps[0].split()[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--max-commits", type=int, default=200_000, help="per measurement")
    parser.add_argument("--threads", default="1,8", help="connection counts, comma-separated")
    parser.add_argument("--ceiling", action="store_true", help="also synchronous_commit=off")
    parser.add_argument("--pgbench", action="store_true", help="also pgbench (C client)")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]

    with pg_server.serving() as server:
        url = server.create_database(f"bench_raw_{os.getpid()}")
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE raw_commits (id bigserial PRIMARY KEY, v text NOT NULL)")
                version = conn.execute("SHOW server_version").fetchone()
                settings = {
                    name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                    for name in ("synchronous_commit", "fsync", "wal_sync_method", "data_directory")
                }
            where = settings.pop("data_directory")
            print(f"PostgreSQL {version[0] if version else '?'}, {server.url.split('@')[-1]}")
            print(", ".join(f"{k}={v}" for k, v in settings.items()))
            if isinstance(server, pg_server.EmbeddedServer):
                print(f"data directory {where} (filesystem {filesystem_of(where)})")
            print(f"{os.cpu_count()} CPUs; {args.rounds} rounds of {args.seconds:g} s each")
            print()
            measure(url, "autocommit", 1, 1.0, args.max_commits)  # warm-up
            results: dict[tuple[str, int], list[float]] = {}
            modes = [*MODES, CEILING] if args.ceiling else list(MODES)
            if args.pgbench:
                modes.append(PGBENCH)
            for r in range(args.rounds):  # rounds outermost: drift spreads over every figure
                for mode in modes:
                    for threads in thread_counts:
                        if mode == PGBENCH:
                            rate = pgbench(url, threads, args.seconds)
                        else:
                            rate = measure(url, mode, threads, args.seconds, args.max_commits)
                        results.setdefault((mode, threads), []).append(rate)
                        print(f"  round {r + 1}: {mode:<14} {threads:>2} conn: {rate:>9,.0f}/s")
            print()
            print("raw commits per second, median (min..max)")
            for (mode, threads), rates in results.items():
                med = statistics.median(rates)
                print(
                    f"  {mode:<14} {threads:>2} connection{'s' if threads > 1 else ' '}: "
                    f"{med:>9,.0f}/s  ({min(rates):,.0f}..{max(rates):,.0f})"
                )
        finally:
            server.drop_database(url)


if __name__ == "__main__":
    main()
