"""Waiting for a forked child with a deadline, for tests that fork."""

from __future__ import annotations

import faulthandler
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_DUMPS = Path(tempfile.gettempdir())


def arm_stack_dump() -> None:
    """In a forked child: on SIGUSR1, write every thread's stack where ``exit_code_or_hung``
    finds it, so that a child that hangs says where it waits."""
    out = open(_DUMPS / f"eddic-child-{os.getpid()}.stacks", "w")  # noqa: SIM115 - kept open
    faulthandler.register(signal.SIGUSR1, file=out, all_threads=True)


def exit_code_or_hung(pid: int, seconds: float = 20) -> int | None:
    """The child's exit code, or None when it was still running after ``seconds`` (it is
    killed then, so a hung child never outlives the test; a child that called
    ``arm_stack_dump`` has its threads' stacks printed first, for the test's output)."""
    deadline = time.monotonic() + seconds
    dump = _DUMPS / f"eddic-child-{pid}.stacks"
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                if dump.exists():
                    os.kill(pid, signal.SIGUSR1)
                    time.sleep(0.5)
                    print(f"child {pid} hung; its threads:\n{dump.read_text()}")
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            time.sleep(0.01)
    finally:
        dump.unlink(missing_ok=True)


def hung_children(forks: int, child: Callable[[], bool], *, every: float, seconds: float) -> int:
    """Fork ``forks`` children, one after another, ``every`` seconds apart; each runs ``child``
    (exit 0 when it returns True, 3 when False, 4 when it raises) and is waited for up to
    ``seconds``. Returns how many were still running then (their stacks printed, then killed);
    asserts that every other one exited 0."""
    hung = 0
    for _ in range(forks):
        time.sleep(every)
        pid = os.fork()
        if pid == 0:
            try:
                arm_stack_dump()
                os._exit(0 if child() else 3)
            except BaseException:
                os._exit(4)
        code = exit_code_or_hung(pid, seconds)
        if code is None:
            hung += 1
        else:
            assert code == 0
    return hung
