"""Workflows shared by the test process and the subprocesses of test_serve.py."""

from __future__ import annotations

import sys

from eddic import App, Sleep, WorkflowContext, workflow


@workflow
def serve_nap(ctx: WorkflowContext, seconds: float) -> str:
    yield Sleep(seconds)
    return "woke"


if __name__ == "__main__":  # python serve_workflows.py DB_URL SECONDS: start one and exit
    with App(db_url=sys.argv[1]) as app:
        print(app.start(serve_nap, input=float(sys.argv[2])))
