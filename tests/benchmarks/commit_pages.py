"""What a commit costs by the number of pages it writes (raw SQLite, eddic's pragmas).

    python tests/benchmarks/commit_pages.py            # synchronous=FULL
    python tests/benchmarks/commit_pages.py NORMAL

Each transaction inserts one small row into each of k tables, so it writes k b-tree pages to the
WAL (plus the fsync at FULL). The settings are measured in alternating rounds of 1,000 commits,
so that all of them see the same disk; the medians say how much a page per commit costs, which
is why eddic keeps a step's commit to as few pages as it can.
"""

from __future__ import annotations

import os
import sys
import time

from benchlib import connect_like_eddic, median, scratch_dir

PAGES = (1, 2, 3, 4, 6)


def main(argv: list[str]) -> int:
    synchronous = argv[0] if argv else "FULL"
    with scratch_dir(None) as folder:
        conns = {}
        for k in PAGES:
            conn = connect_like_eddic(os.path.join(folder, f"pages-{k}.db"), synchronous)
            for j in range(k):
                conn.execute(f"CREATE TABLE t{j} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            conns[k] = conn

        def commits(k: int, n: int) -> None:
            conn = conns[k]
            for _ in range(n):
                conn.execute("BEGIN IMMEDIATE")
                for j in range(k):
                    conn.execute(f"INSERT INTO t{j} (v) VALUES (?)", ("x" * 64,))
                conn.execute("COMMIT")

        for k in PAGES:
            commits(k, 1500)  # the WAL reaches its steady size
        times: dict[int, list[float]] = {k: [] for k in PAGES}
        for _ in range(5):
            for k in PAGES:
                begin = time.perf_counter()
                commits(k, 1000)
                times[k].append((time.perf_counter() - begin) / 1000 * 1e6)
        base = median(times[1])
        print(f"commit cost by pages written, synchronous={synchronous}, medians of 5 rounds")
        for k in PAGES:
            cost = median(times[k])
            print(f"  {k} page(s): {cost:7.1f} us per commit ({cost / base:.2f}x)")
        for conn in conns.values():
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
