"""Waiting for a forked child with a deadline, for tests that fork."""

from __future__ import annotations

import os
import signal
import time


def exit_code_or_hung(pid: int, seconds: float = 20) -> int | None:
    """The child's exit code, or None when it was still running after ``seconds`` (it is
    killed then, so a hung child never outlives the test)."""
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.01)
