"""Helpers shared by the benchmark scripts (not a test module: pytest never collects it).

The benchmarks are run by hand (``python tests/benchmarks/throughput.py``); they print figures
and never assert timings.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sqlite3
import statistics
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from eddic.storage import Storage

SYNC_SETTINGS = ("FULL", "NORMAL")


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """``median (min..max, n=N)`` for a list of figures."""
    low, high = min(values), max(values)
    return f"{median(values):,.1f} (min {low:,.1f}, max {high:,.1f}, n={len(values)})"


def filesystem_of(path: str) -> str:
    """The filesystem type holding ``path`` (``df -T``), to flag a tmpfs where fsync is free."""
    try:
        out = subprocess.run(
            ["df", "-PT", path], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return out[-1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


@contextmanager
def scratch_dir(parent: str | None) -> Iterator[str]:
    """A fresh directory for database files, on ``parent``'s filesystem (system temp by default)."""
    with tempfile.TemporaryDirectory(prefix="eddic-bench-", dir=parent) as folder:
        yield folder


def describe_dir(folder: str) -> str:
    fs = filesystem_of(folder)
    note = "  (WARNING: tmpfs, fsync costs nothing here)" if fs == "tmpfs" else ""
    return f"database files in {folder} (filesystem {fs}){note}"


# -- the physical limit ------------------------------------------------------------------------


def connect_like_eddic(path: str, synchronous: str) -> sqlite3.Connection:
    """A python sqlite3 connection with the pragmas ``eddic.storage.Storage`` sets."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def raw_wal_frames_per_commit(folder: str, commits: int = 200) -> float:
    """WAL frames (pages) written per raw single-row commit (autocheckpoint off)."""
    path = os.path.join(folder, "raw-frames.db")
    conn = connect_like_eddic(path, "NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for _ in range(commits):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * 64,))
        conn.execute("COMMIT")
    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    conn.close()
    return frames / commits


# -- counting what eddic does ------------------------------------------------------------------


@contextmanager
def count_storage() -> Iterator[Counter[str]]:
    """Count write transactions (``BEGIN IMMEDIATE``), step commits and read transactions.

    Wraps ``Storage.transaction``, ``Storage.commit_step`` and ``Storage.reading`` on the class for
    the duration (the benchmark's own process only; nothing under ``stdlib/`` is edited).
    """
    counts: Counter[str] = Counter()
    originals = {name: getattr(Storage, name) for name in ("transaction", "reading", "commit_step")}

    def transaction(self: Storage) -> Any:
        counts["write transactions"] += 1
        return originals["transaction"](self)

    def reading(self: Storage) -> Any:
        counts["read transactions"] += 1
        return originals["reading"](self)

    def commit_step(self: Storage, step: Any, now: Any) -> None:
        counts["commit_step calls"] += 1
        originals["commit_step"](self, step, now)

    Storage.transaction = transaction  # type: ignore[method-assign,assignment]
    Storage.reading = reading  # type: ignore[method-assign,assignment]
    Storage.commit_step = commit_step  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        for name, func in originals.items():
            setattr(Storage, name, func)


def trace_statements(conn: sqlite3.Connection, counts: Counter[str]) -> None:
    """Count SQL statements by their first word (``BEGIN``, ``INSERT``, ``ROLLBACK``...), and
    the transactions they begin: ``BEGIN IMMEDIATE`` a write, a plain ``BEGIN`` a read (what
    the storage's own transactions send; the group commit's shared one is built once, so a
    wrapped ``Storage.transaction`` does not see every write)."""

    def trace(sql: str) -> None:
        words = sql.split(None, 2) if sql.strip() else ["?"]
        word = words[0].upper()
        counts[f"sql {word}"] += 1
        if word == "BEGIN":
            write = len(words) > 1 and words[1].upper() == "IMMEDIATE"
            counts["traced write transactions" if write else "traced read transactions"] += 1

    conn.set_trace_callback(trace)


# -- profiling ---------------------------------------------------------------------------------


def profile(func: Callable[[], Any], *, top: int = 25, title: str = "") -> None:
    """Run ``func`` under cProfile and print the top functions by own time and by cumulative."""
    profiler = cProfile.Profile()
    profiler.enable()
    func()
    profiler.disable()
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(key).print_stats(top)
        text = out.getvalue()
        start = text.find("   ncalls")
        print(f"\n--- profile {title}: top {top} by {key} ---")
        print(_shorten_paths(text[start:] if start >= 0 else text).rstrip())


def _shorten_paths(text: str) -> str:
    for prefix in (os.getcwd() + os.sep, os.path.dirname(os.__file__) + os.sep):
        text = text.replace(prefix, "")
    return text
