"""The authoring API: async activities, ctx in activities, registry rules, logging on replay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from datetime import datetime, timezone
from typing import Any

import pytest
from freezegun import freeze_time

from eddic import (
    ActivityContext,
    All,
    App,
    CallActivity,
    First,
    Sleep,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@activity
async def auth_async_double(ctx: ActivityContext, n: int) -> int:
    await asyncio.sleep(0)
    return 2 * n


@activity
def auth_context(ctx: ActivityContext, tag: str) -> dict[str, object]:
    return {"tag": tag, "seq": ctx.seq, "attempt": ctx.attempt, "key": ctx.idempotency_key}


@workflow
def auth_flow(ctx: WorkflowContext, n: int) -> dict[str, object]:
    doubled = yield auth_async_double(n)
    explicit = yield CallActivity(auth_async_double, doubled)
    both = yield All(auth_context("a"), auth_context("b"))
    index, value = yield First(auth_context("c"), Sleep(60))
    return {"explicit": explicit, "both": both, "first": [index, value], "id": ctx.instance_id}


def test_async_and_sync_activities_run_and_receive_their_context(app: App) -> None:
    iid = app.start(auth_flow, input=3, instance_id="auth-1")
    result = app.result(iid)
    assert result["explicit"] == 12
    assert result["both"] == [
        {"tag": "a", "seq": 3, "attempt": 1, "key": "auth-1:3"},
        {"tag": "b", "seq": 4, "attempt": 1, "key": "auth-1:4"},
    ]
    assert result["first"] == [0, {"tag": "c", "seq": 5, "attempt": 1, "key": "auth-1:5"}]


def test_an_async_activity_runs_when_the_caller_is_inside_an_event_loop(app: App) -> None:
    async def main() -> str:
        return app.start(auth_flow, input=1)

    iid = asyncio.run(main())
    assert app.result(iid)["explicit"] == 4


def test_registering_a_different_function_under_a_taken_name_raises() -> None:
    def auth_flow(ctx: WorkflowContext, n: int) -> None:  # same name, other function
        pass

    with pytest.raises(ValueError, match="already registered"):
        workflow(auth_flow)


def test_on_failure_refuses_a_compensation_needing_a_parameter_the_activity_lacks() -> None:
    @compensation
    def auth_undo(order_id: str, missing: int) -> None:
        pass

    with pytest.raises(TypeError, match="needs parameter 'missing'"):

        @activity
        @on_failure(auth_undo)
        def auth_do(order_id: str) -> None:
            pass


@activity
def auth_noop() -> None:
    return None


@workflow
def auth_logging(ctx: WorkflowContext, _: None = None) -> None:
    ctx.log.info("before sleep")
    yield Sleep(5)
    ctx.log.info("after sleep")
    yield auth_noop()


def test_the_workflow_logger_is_silent_while_replaying(
    db_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{db_path}"
    with caplog.at_level(logging.INFO, logger="eddic.workflow"), freeze_time(T0) as clock:
        with App(db_url=url) as first:
            first.start(auth_logging)
        clock.tick(5)
        with App(db_url=url) as second:  # a fresh App replays the history first
            second.run_due()
    messages = [r.getMessage() for r in caplog.records if r.name == "eddic.workflow"]
    assert [m.split("] ")[1] for m in messages] == ["before sleep", "after sleep"]


def test_list_instances_filters_by_status_and_workflow(app: App) -> None:
    with freeze_time(T0):
        done = app.start(auth_flow, input=1)
        waiting = app.start(auth_logging)
    assert [i["instance_id"] for i in app.list_instances(status="completed")] == [done]
    assert [i["instance_id"] for i in app.list_instances(workflow="auth_logging")] == [waiting]
    assert len(app.list_instances(limit=1)) == 1


@workflow
def auth_annotated(ctx: WorkflowContext, n: int) -> Generator[Any, Any, list[int]]:
    doubled = yield auth_async_double(n)
    return (doubled, doubled)  # type: ignore[return-value] - rebuilt as list[int]


def test_a_generator_return_annotation_types_the_result_by_its_return_part(app: App) -> None:
    iid = app.start(auth_annotated, input=2)
    assert app.result(iid) == [4, 4]
