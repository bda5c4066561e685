"""Kills at every write of a story, for the lifecycle crash tests (not a test module).

A story is a script run as a subprocess: ``script DB MARKS MODE KILL_AT WHEN``. In mode ``start``
it calls :func:`count_writes` on its App's store, which SIGKILLs the process just ``before`` or
``after`` its ``KILL_AT``-th write (``Store.create`` or ``Store.commit_step``); in mode
``recover`` it runs what is left and prints its findings as JSON. :func:`each_kill` runs the
story once cleanly (to count its writes), then once per write and side, each in a fresh
database, each killed and recovered by another process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def count_writes(store: Any, mode: str, kill_at: int, when: str) -> dict[str, int]:
    """Wrap the store's writes to count them (and, starting, to be killed at one)."""
    writes = {"n": 0}
    for name in ("create", "commit_step"):
        real = getattr(store, name)

        def counted(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            writes["n"] += 1
            if mode == "start" and writes["n"] == kill_at and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            done = _real(*args, **kwargs)
            if mode == "start" and writes["n"] == kill_at and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return done

        setattr(store, name, counted)
    return writes


def run(
    script: Path, db: str, marks: Path, mode: str, n: int, when: str
) -> subprocess.CompletedProcess[str]:
    path = f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return subprocess.run(
        [sys.executable, str(script), db, str(marks), mode, str(n), when],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": path},
    )


def each_kill(
    script: Path, make_db: Callable[[str], str], folder: Path
) -> Iterator[tuple[int, str, Path, Any]]:
    """``(write number, "before"|"after", side-effect marks, the recovery's findings)`` for
    every write of the story; the clean run's findings carry ``writes``, its number of writes."""
    clean = run(script, make_db("clean"), folder / "clean.marks", "start", 0, "none")
    assert clean.returncode == 0, clean.stderr
    total = json.loads(clean.stdout)["writes"]
    for n in range(1, total + 1):
        for when in ("before", "after"):
            db = make_db(f"case-{n}-{when}")
            marks = folder / f"case-{n}-{when}.marks"
            killed = run(script, db, marks, "start", n, when)
            assert killed.returncode == -signal.SIGKILL, (n, when, killed.stderr)
            time.sleep(0.6)  # the dead worker's leases (0.5 s) expire
            done = run(script, db, marks, "recover", 0, "none")
            assert done.returncode == 0, (n, when, done.stderr)
            yield n, when, marks, json.loads(done.stdout)
