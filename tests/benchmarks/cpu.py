"""CPU per activity with the disk taken out: the part of a step that is eddic's own work.

    python tests/benchmarks/cpu.py                  # seconds: 9 rounds of 1,000 workflows
    python tests/benchmarks/cpu.py --instructions   # instructions per workflow (valgrind)
    python tests/benchmarks/cpu.py --empty-transactions  # per empty write transaction (valgrind)

The throughput benchmark mixes eddic's CPU with the disk's fsync, whose cost drifts by 2-4x on
a VM within minutes. Here the order workflow of ``throughput.py`` (3 trivial activities) runs
inline at ``synchronous=OFF`` (no fsync), so what is left is Python, pydantic and SQLite's
statements. Seconds are still noisy on a shared machine (the minimum is the steadiest figure);
``--instructions`` counts instructions under ``valgrind --tool=callgrind`` instead, which
repeats to within 2-3 % for the same code (the median of ``--counts`` counts is printed): each
count runs 100 and 600 workflows in two processes and divides the difference by 500, so
start-up and imports cancel out. Those workflows get ids drawn
as ``start`` draws them, from a seeded generator so that every count sees the same ids;
``--given-ids`` passes fixed ids to ``start`` instead, the path of a caller that names its
instances (a read of whether the id is taken comes first), which is what session 2 measured.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from throughput import bench_order, minimal_runtime, new_app, order

from eddic import App
from eddic.storage import Storage

try:
    from eddic.storage.sqlite.transactions import writer_cursor
except ImportError:  # code older than session 3, for before/after runs
    from eddic.storage import _writer as writer_cursor  # type: ignore[attr-defined,no-redef]


def run_rounds(app: App, rounds: int, per_round: int) -> list[float]:
    """CPU milliseconds per activity, one figure per round."""
    out = []
    for r in range(rounds):
        begin = time.process_time()
        for i in range(per_round):
            app.start(bench_order, input=order(r * per_round + i))
        out.append(1000 * (time.process_time() - begin) / (3 * per_round))
    return out


def count_instructions(workflows: int, given_ids: bool, minimal: bool = False) -> int:
    """Instructions of one process that starts ``workflows`` workflows (callgrind)."""
    flags = [*(["--given-ids"] if given_ids else []), *(["--minimal"] if minimal else [])]
    return callgrind(["--child", str(workflows), *flags])


def callgrind(child_args: list[str]) -> int:
    """Instructions of one run of this script with ``child_args`` under callgrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            os.path.abspath(__file__),
            *child_args,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    assert found, proc.stderr[-2000:]
    return int(found.group(1))


def child(workflows: int, given_ids: bool, minimal: bool) -> None:
    """The measured process: warm up, then start ``workflows``, all with reproducible ids."""
    logging.getLogger("eddic").setLevel(logging.ERROR)
    draws = random.Random(0)
    uuid.uuid4 = lambda: uuid.UUID(int=draws.getrandbits(128), version=4)  # this process only
    with tempfile.TemporaryDirectory() as folder:
        if minimal:
            runtime = minimal_runtime(folder, "OFF", "cpu", warm=30)
            for i in range(30):
                runtime.start(order(-100 - i))
            for i in range(workflows):
                runtime.start(order(i))
            runtime.close()
            return
        app = new_app(folder, "OFF", "cpu", warm=30)
        for i in range(workflows):
            iid = f"wf-{i:08d}" if given_ids else None
            app.start(bench_order, input=order(i), instance_id=iid)
        app.shutdown()


TRANSACTION_KINDS = ("statements", "Storage.transaction", "GroupCommit.run")


def child_transactions(kind: str, count: int) -> None:
    """The measured process for ``--empty-transactions``: ``count`` empty write transactions."""
    with tempfile.TemporaryDirectory() as folder:
        storage = Storage(f"sqlite:///{folder}/tx.db", synchronous="OFF")
        storage.open()
        cursor = writer_cursor(storage._db())
        nothing: Callable[[Any], None] = lambda db: None  # noqa: E731
        for _ in range(count):
            if kind == "statements":
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute("COMMIT")
            elif kind == "Storage.transaction":
                with storage.transaction():
                    pass
            else:
                storage.commits.run(nothing)
        storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument(
        "--given-ids", action="store_true", help="start with fixed ids (a read comes first)"
    )
    parser.add_argument(
        "--minimal",
        action="store_true",
        help="count minimal_runtime.py's inline starts instead of eddic's (the design's floor)",
    )
    parser.add_argument(
        "--counts", type=int, default=3, help="callgrind counts to take the median of"
    )
    parser.add_argument(
        "--empty-transactions",
        action="store_true",
        help="instructions per empty write transaction: the two statements alone, "
        "Storage.transaction(), GroupCommit.run",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-tx", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.given_ids, args.minimal)
        return 0
    if args.child_tx is not None:
        child_transactions(args.child_tx[0], int(args.child_tx[1]))
        return 0
    if args.empty_transactions:
        for kind in TRANSACTION_KINDS:
            counts = [
                (callgrind(["--child-tx", kind, "2500"]) - callgrind(["--child-tx", kind, "500"]))
                / 2000
                for _ in range(args.counts)
            ]
            each = ", ".join(f"{c:,.0f}" for c in counts)
            print(
                f"{kind:20} median {statistics.median(counts):7,.0f} instructions per empty "
                f"transaction, of {each}"
            )
        return 0
    if args.instructions:
        if shutil.which("valgrind") is None:
            print("valgrind is not installed (apt-get install valgrind)")
            return 1
        counts = []
        for _ in range(args.counts):
            small = count_instructions(100, args.given_ids, args.minimal)
            large = count_instructions(600, args.given_ids, args.minimal)
            counts.append((large - small) / 500)
        ids = "fixed ids given to start" if args.given_ids else "ids drawn by start"
        if args.minimal:
            ids += ", minimal_runtime.py"
        each = ", ".join(f"{c:,.0f}" for c in counts)
        print(
            f"instructions per workflow (3 activities, {ids}): "
            f"median {statistics.median(counts):,.0f} of {each}"
        )
        return 0
    logging.getLogger("eddic").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        app = new_app(folder, "OFF", "cpu")
        try:
            figures = run_rounds(app, args.rounds, args.per_round)
        finally:
            app.shutdown()
    print(
        f"CPU per activity at synchronous=OFF, {args.rounds} rounds of {args.per_round} "
        f"workflows: min {min(figures):.4f} ms, median {statistics.median(figures):.4f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
