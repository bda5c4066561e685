"""Changed workflow code under a running instance: reported, nothing lost, resumable."""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime, timezone
from typing import Any

import pytest
from freezegun import freeze_time

from eddic import App, Sleep, WorkflowContext, activity, workflow

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
undo: list[str] = []


@activity
def cc_step(name: str) -> str:
    return name


@workflow
def cc_flow(ctx: WorkflowContext, _: None = None) -> str:
    first = yield cc_step("one")
    yield Sleep(10)
    second = yield cc_step("two")
    return first + second


def changed(ctx: WorkflowContext, _: None = None) -> Generator[Any, Any, str]:
    yield Sleep(10)  # the code now sleeps first: history recorded an activity there
    return "changed"


def test_changed_code_keeps_status_and_history_and_resumes_after_a_fix(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    original = cc_flow.func
    with freeze_time(T0) as clock:
        iid = app.start(cc_flow)
        history_before = app.history(iid)
        app._cache.clear()  # as after a redeploy: the next step replays from history
        cc_flow.func = changed
        try:
            clock.tick(10)
            app.run_due()
            info = app.get_instance(iid)
            assert info["status"] == "waiting_for_timer"
            assert info["error"]["type"] == "NonDeterminismError"
            message = info["error"]["message"]
            assert "seq 1" in message and "activity 'cc_step'" in message
            assert "timer 'sleep'" in message and "code changed" in message
            assert app.history(iid) == history_before
            clock.tick(1)
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="eddic"):
                assert app.run_due() == 0  # not retried before the recovery interval
            assert not [r for r in caplog.records if "cannot be resumed" in r.message]
            assert app.history(iid) == history_before
        finally:
            cc_flow.func = original
        clock.tick(app.recovery_interval_seconds)
        app.run_due()
    assert app.result(iid) == "onetwo"
    assert app.get_instance(iid)["error"] is None
