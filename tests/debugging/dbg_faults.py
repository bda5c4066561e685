"""Workflows for the CLI fault tests (``--import dbg_faults``): one that parks, one that hangs.

``dbg_flaky`` parks its instance while :data:`UNPLUGGED` is set (its activity raises a
``BaseException``, which parks rather than fails); a fresh ``eddic`` process imports this module
with the flag clear, so ``eddic retry`` there runs it to completion. ``dbg_stuck`` sleeps a
second, then calls an activity that never returns: ``eddic serve`` must still stop on a second
signal.
"""

from __future__ import annotations

import sys
import threading

from eddic import RetryPolicy, Sleep, WorkflowContext, activity, workflow

#: Set by a test (in its own process) to make ``dbg_plug`` park its instance.
UNPLUGGED = False


class Unplugged(BaseException):
    """Not an Exception: the worker parks the instance instead of failing it."""


@activity(retry=RetryPolicy(max_attempts=3))  # the parked attempt counts as one
def dbg_plug(name: str) -> str:
    if UNPLUGGED:
        raise Unplugged(f"the cable of {name} is out")
    return f"plugged {name}"


@workflow
def dbg_flaky(ctx: WorkflowContext, name: str) -> str:
    result: str = yield dbg_plug(name)
    return result


@activity
def dbg_hang(name: str) -> None:
    # The test waits for this line; one write, so two threads' lines never interleave.
    sys.stdout.write(f"hanging {name}\n")
    sys.stdout.flush()
    threading.Event().wait()  # forever: a thread cannot be interrupted


@workflow
def dbg_stuck(ctx: WorkflowContext, name: str) -> None:
    yield Sleep(1)  # due at once for a worker on real time (the test records in 2000)
    yield dbg_hang(name)


def broken_app() -> None:
    """An ``--app`` factory that fails (``--app dbg_faults:broken_app``)."""
    raise RuntimeError("no configuration for the app")
