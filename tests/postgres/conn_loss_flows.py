"""Workflows for ``test_connection_loss.py`` that worker processes import too (not a test
module): ``eddic serve --import conn_loss_flows`` in another network namespace runs them.

Every activity body appends one line, ``instance seq attempt host pid``, to the file named by
``EDDIC_CL_EFFECTS`` (one ``write`` of one line in append mode, so lines of several processes
never mix), ``host`` being ``EDDIC_CL_HOST`` (the namespace a worker runs in). The test reads
the file to prove that no body ran twice and to see which host ran what.
"""

from __future__ import annotations

import os
import time

from eddic import ActivityContext, Sleep, WorkflowContext, activity, workflow


def record_effect(ctx: ActivityContext) -> None:
    path = os.environ.get("EDDIC_CL_EFFECTS")
    if not path:
        return
    host = os.environ.get("EDDIC_CL_HOST", "local")
    line = f"{ctx.instance_id} {ctx.seq} {ctx.attempt} {host} {os.getpid()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@activity
def cl_host_work(ctx: ActivityContext, n: int) -> int:
    record_effect(ctx)
    time.sleep(0.05)  # long enough for the other host to claim something meanwhile
    return n + 1


@workflow
def cl_hosts_flow(ctx: WorkflowContext, n: int) -> int:
    """Waits first, so ``start`` runs no body in the test's process: the hosts run them."""
    yield Sleep(0.2)
    a = yield cl_host_work(n)
    yield Sleep(0.1)
    b = yield cl_host_work(a)
    return int(b)
