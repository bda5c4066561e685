"""Authoring mistakes and bad values fail where they are made, with a clear error, and never take
the worker down: commands, retry policies, decorators, activity arguments and bodies."""

from __future__ import annotations

import asyncio
import math
import os
import warnings
from collections.abc import Generator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from children import exit_code_or_hung
from freezegun import freeze_time
from pydantic import BaseModel, field_validator

from eddic import (
    ActivityContext,
    App,
    CallActivity,
    Publish,
    RetryPolicy,
    Sleep,
    WaitEvent,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.decorators import Activity
from eddic.runtime.executor import Outcome, run_attempt
from eddic.serde import dumps

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Opaque:
    """Not JSON-serialisable."""


class Item(BaseModel):
    sku: str
    qty: int


def outbox(app: App) -> list[tuple[Any, ...]]:
    """(seq, event type, data as compact JSON text) of each outbox row, by seq."""
    rows = sorted(app.storage.outbox.rows(limit=1000), key=lambda r: r["seq"])
    return [(r["seq"], r["event_type"], dumps(r["data"])) for r in rows]


# -- 1. a deadline no datetime holds: thrown in at the yield -------------------------------------


@workflow
def af_huge_sleep(ctx: WorkflowContext, seconds: float) -> str:
    try:
        yield Sleep(seconds)
    except ValueError as error:
        return f"refused: {error}"
    return "slept"


@workflow
def af_huge_timeout(ctx: WorkflowContext, _: None = None) -> str:
    yield WaitEvent("never", timeout=1e15)
    return "not reached"


def test_a_sleep_whose_deadline_overflows_is_thrown_into_the_workflow(app: App) -> None:
    iid = app.start(af_huge_sleep, input=1e15)

    result = app.result(iid)
    assert result.startswith("refused: ") and "Sleep" in result


def test_an_uncaught_deadline_overflow_fails_only_that_instance(app: App) -> None:
    bad = app.start(af_huge_timeout)
    good = app.start(af_huge_sleep, input=0)

    info = app.get_instance(bad)
    assert info["status"] == "failed"
    assert info["error"]["type"] == "ValueError"
    assert "WaitEvent" in info["error"]["message"]
    assert app.result(good) == "slept"


# -- 2. Publish data that cannot be serialised: thrown in at the yield ---------------------------


@activity
def af_step(n: int) -> int:
    return n + 1


@workflow
def af_publish_opaque(ctx: WorkflowContext, n: int) -> str:
    done = yield af_step(n)  # an activity ran first: its result must be kept
    try:
        yield Publish("af.opaque", data={"thing": Opaque()})
    except (TypeError, ValueError) as error:
        return f"{done}: {type(error).__name__}: {error}"
    return "published"


@workflow
def af_publish_uncaught(ctx: WorkflowContext, _: None = None) -> str:
    yield Publish("af.opaque", data=Opaque())
    return "not reached"


@workflow
def af_publish_models(ctx: WorkflowContext, _: None = None) -> str:
    data: dict[str, Any] = {"item": Item(sku="a", qty=1), "at": T0, "n": 1}
    event_id = yield Publish("af.models", data=data)
    data["n"] = 2  # after the yield: the recorded event keeps what was published
    yield Sleep(0)
    return str(event_id)


def test_unserialisable_publish_data_is_thrown_in_as_a_type_error(app: App) -> None:
    iid = app.start(af_publish_opaque, input=1)

    result = app.result(iid)
    assert result.startswith("2: TypeError: ")
    assert "af.opaque" in result and "cannot be serialised" in result
    assert outbox(app) == []
    assert [r["kind"] for r in app.history(iid) if r["record"] == "scheduled"] == ["activity"]


def test_uncaught_unserialisable_publish_data_fails_the_instance_normally(app: App) -> None:
    iid = app.start(af_publish_uncaught)

    info = app.get_instance(iid)
    assert info["status"] == "failed"
    assert info["error"]["type"] == "TypeError"
    assert "af.opaque" in info["error"]["message"]


def test_publish_data_with_models_and_datetimes_is_published_as_yielded(app: App) -> None:
    with freeze_time(T0):
        iid = app.start(af_publish_models)
        app.run_due()

    assert app.get_instance(iid)["status"] == "completed"
    ((_seq, event_type, data),) = outbox(app)
    assert event_type == "af.models"
    assert '"n":1' in data and '"sku":"a"' in data and "2026-03-01T12:00:00" in data


# -- ctx.publish in activities -------------------------------------------------------------------


@activity
def af_publishes(ctx: ActivityContext, what: str) -> str:
    data: dict[str, Any] = {"n": 1}
    if what == "opaque":
        try:
            ctx.publish("af.activity", data=Opaque())
        except TypeError as error:
            return f"refused at the call: {error}"
        return "accepted"
    if what == "source":
        try:
            ctx.publish("af.activity", source=42)  # type: ignore[arg-type]
        except TypeError as error:
            return f"refused at the call: {error}"
        return "accepted"
    ctx.publish("af.activity", data=data)
    data["n"] = 2  # after the call: the event keeps what was published
    return "published"


@workflow
def af_activity_publish(ctx: WorkflowContext, what: str) -> str:
    return (yield af_publishes(what))


@pytest.mark.parametrize("what", ["opaque", "source"])
def test_ctx_publish_refuses_bad_values_at_the_call(app: App, what: str) -> None:
    iid = app.start(af_activity_publish, input=what)

    assert app.result(iid).startswith("refused at the call: ")


def test_ctx_publish_records_the_data_as_it_was_at_the_call(app: App) -> None:
    iid = app.start(af_activity_publish, input="plain")

    assert app.result(iid) == "published"
    assert [data for _seq, _type, data in outbox(app)] == ['{"n":1}']


# -- 3. retry policies ---------------------------------------------------------------------------


def test_a_long_retry_policy_computes_every_interval_without_overflow() -> None:
    policy = RetryPolicy(max_attempts=5000)

    assert [policy.interval(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert policy.interval(1025) == 100.0
    assert policy.interval(4999) == 100.0
    assert policy.interval(10**9) == 100.0
    assert RetryPolicy(max_attempts=5000, initial_interval=0).interval(2000) == 0.0
    assert RetryPolicy(backoff=1e300, max_interval=5).interval(3) == 5.0
    assert RetryPolicy(backoff=1, initial_interval=3).interval(10**9) == 3.0
    tiny = RetryPolicy(initial_interval=1e-300, backoff=10.0, max_interval=1e9)
    assert tiny.interval(400) == 1e9
    assert math.isclose(tiny.interval(300), 1e-1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_attempts": True}, TypeError),
        ({"max_attempts": 2.0}, TypeError),
        ({"max_attempts": 0}, ValueError),
        ({"initial_interval": float("nan")}, ValueError),
        ({"initial_interval": float("inf")}, ValueError),
        ({"initial_interval": -1}, ValueError),
        ({"initial_interval": "1"}, TypeError),
        ({"max_interval": float("inf")}, ValueError),
        ({"max_interval": float("nan")}, ValueError),
        ({"max_interval": -1}, ValueError),
        ({"max_interval": 1e300}, ValueError),
        ({"backoff": float("nan")}, ValueError),
        ({"backoff": float("inf")}, ValueError),
        ({"backoff": 0.5}, ValueError),
        ({"backoff": "2"}, TypeError),
        ({"non_retryable": (ValueError, "KeyError")}, TypeError),
        ({"non_retryable": (int,)}, TypeError),
        ({"non_retryable": ValueError()}, TypeError),
    ],
)
def test_a_retry_policy_refuses_bad_values_at_construction(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        RetryPolicy(**kwargs)


def test_a_retry_policy_takes_one_exception_class_for_non_retryable() -> None:
    assert RetryPolicy(non_retryable=KeyError).non_retryable == (KeyError,)  # type: ignore[arg-type]
    assert RetryPolicy(non_retryable=[KeyError]).non_retryable == (KeyError,)  # type: ignore[arg-type]


# -- 4. an activity gets its own copies of its arguments -----------------------------------------


@activity
def af_mutates(item: Item, tags: list[str]) -> str:
    item.qty = 99
    tags.append("mutated")
    return "ok"


@workflow
def af_mutation(ctx: WorkflowContext, _: None = None) -> dict[str, Any]:
    item = Item(sku="a", qty=1)
    tags = ["x"]
    yield af_mutates(item, tags)
    yield WaitEvent("af.go")
    return {"item": item.model_dump(), "tags": tags}


def test_an_activity_mutating_its_arguments_leaves_the_workflow_and_its_replay_alone(
    db_path: Path,
) -> None:
    url = f"sqlite:///{db_path}"
    with App(db_url=url) as first:
        live = first.start(af_mutation, instance_id="af-live")
        first.start(af_mutation, instance_id="af-replayed")
        first.send_event("af.go", instance_id=live)  # goes on in the live interpreter
        live_result = first.result(live)
    with App(db_url=url) as fresh:
        fresh.send_event("af.go", instance_id="af-replayed")  # replayed from history first
        replayed_result = fresh.result("af-replayed")

    assert live_result == replayed_result == {"item": {"sku": "a", "qty": 1}, "tags": ["x"]}


@activity(retry=RetryPolicy(max_attempts=2, initial_interval=0))
def af_mutates_then_fails(ctx: ActivityContext, item: Item) -> Item:
    item.qty += 10
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return item


@workflow
def af_retry_copies(ctx: WorkflowContext, _: None = None) -> Item:
    return (yield af_mutates_then_fails(Item(sku="a", qty=1)))


def test_each_attempt_gets_fresh_copies_of_the_recorded_arguments(app: App) -> None:
    iid = app.start(af_retry_copies)

    assert app.result(iid) == Item(sku="a", qty=11)  # not 21: attempt 2 saw qty=1


_UNDONE: list[Any] = []


@compensation
def af_unreserve(items: list[Item], result: dict[str, Any]) -> None:
    _UNDONE.append({"items": [i.model_dump() for i in items], "result": result})


@activity
@on_failure(af_unreserve)
def af_reserve(items: list[Item]) -> dict[str, Any]:
    return {"reserved": len(items)}


@activity
def af_declines() -> None:
    raise RuntimeError("card declined")


@workflow
def af_saga_mutates(ctx: WorkflowContext, _: None = None) -> None:
    items = [Item(sku="a", qty=1)]
    reservation = yield af_reserve(items)
    items[0].qty = 50  # the workflow's own objects, changed after the call
    items.append(Item(sku="b", qty=2))
    reservation["reserved"] = 99
    yield af_declines()


def test_a_compensation_receives_the_values_of_the_call_not_the_workflow_changes(
    app: App,
) -> None:
    _UNDONE.clear()
    iid = app.start(af_saga_mutates)

    assert app.get_instance(iid)["status"] == "failed"
    assert _UNDONE == [{"items": [{"sku": "a", "qty": 1}], "result": {"reserved": 1}}]


# -- 5. a dict for a model-typed argument: validated, no pydantic warning ------------------------


@activity
def af_takes_item(item: Item) -> str:
    assert isinstance(item, Item)
    return f"{item.sku}x{item.qty}"


@workflow
def af_dict_argument(ctx: WorkflowContext, _: None = None) -> str:
    return (yield af_takes_item({"sku": "b", "qty": "3"}))


def test_a_dict_for_a_model_argument_is_validated_without_a_warning(app: App) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iid = app.start(af_dict_argument)

    assert app.result(iid) == "bx3"
    (scheduled,) = [r for r in app.history(iid) if r["record"] == "scheduled"]
    assert scheduled["args"] == {"item": {"sku": "b", "qty": 3}}


@activity
def af_var_arguments(first: int, /, *more: int, **named: str) -> list[Any]:
    return [first, list(more), named]


@workflow
def af_var_flow(ctx: WorkflowContext, _: None = None) -> list[Any]:
    return (yield af_var_arguments(1, 2, 3, colour="red"))


def test_positional_only_and_variadic_activity_parameters_are_passed_as_declared(
    app: App,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iid = app.start(af_var_flow)

    assert app.result(iid) == [1, [2, 3], {"colour": "red"}]


# -- 6. what @workflow and @activity refuse ------------------------------------------------------


def test_a_workflow_with_two_input_parameters_is_refused_at_decoration() -> None:
    def af_two_inputs(ctx: WorkflowContext, a: int, b: int) -> Generator[Any, Any, int]:
        yield Sleep(1)
        return a + b

    with pytest.raises(TypeError, match="one input"):
        workflow(af_two_inputs)


def test_a_workflow_that_is_not_a_function_is_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="workflow"):
        workflow(42)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="ctx"):
        workflow(lambda: (yield))


def test_a_plain_function_workflow_is_refused_with_a_hint_about_yield() -> None:
    def af_forgot_yield(ctx: WorkflowContext, n: int) -> Any:
        result = af_step(n)  # a CallActivity, never run
        return result

    with pytest.raises(TypeError, match="did you forget `yield`"):
        workflow(af_forgot_yield)


def test_bad_workflow_options_are_refused_at_decoration() -> None:
    def af_options(ctx: WorkflowContext, _: None = None) -> Iterator[Any]:
        yield Sleep(1)

    with pytest.raises(ValueError, match="name"):
        workflow(name="")(af_options)
    with pytest.raises(TypeError, match="name"):
        workflow(name=42)(af_options)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="lock_timeout_seconds"):
        workflow(lock_timeout_seconds=float("inf"))(af_options)
    with pytest.raises(ValueError, match="lock_timeout_seconds"):
        workflow(lock_timeout_seconds=0)(af_options)


def test_bad_activities_are_refused_at_decoration() -> None:
    def af_generator_activity(n: int) -> Iterator[int]:
        yield n

    with pytest.raises(TypeError, match="generator"):
        activity(af_generator_activity)
    with pytest.raises(TypeError, match="activity"):
        activity(42)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="RetryPolicy"):
        activity(retry=3)(lambda n: n)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="name"):
        activity(name="")(lambda n: n)


@workflow
async def af_async_workflow(ctx: WorkflowContext, _: None = None) -> str:
    return "an async def workflow that awaits nothing returns its value"


@workflow
async def af_async_awaits_asyncio(ctx: WorkflowContext) -> str:
    import asyncio

    try:
        await asyncio.sleep(0)  # yields None, not an eddic command: a TypeError at the await
    except TypeError as exc:
        return str(exc)
    return "slept"


def test_an_async_def_workflow_runs_and_one_awaiting_asyncio_gets_a_type_error(app: App) -> None:
    iid = app.start(af_async_workflow)
    assert app.result(iid) == "an async def workflow that awaits nothing returns its value"
    message = app.result(app.start(af_async_awaits_asyncio))
    assert "not an eddic command" in message and "use Sleep and activities" in message


@workflow
def af_returns_command(ctx: WorkflowContext, n: int) -> Any:
    yield Sleep(0)
    return af_step(n)


def test_a_workflow_returning_a_command_instead_of_yielding_it_fails_clearly(app: App) -> None:
    with freeze_time(T0):
        iid = app.start(af_returns_command, input=1)
        app.run_due()

    info = app.get_instance(iid)
    assert info["status"] == "failed"
    assert "did you forget `yield`" in info["error"]["message"]


# -- 7. the activity's own traceback in the workflow's error -------------------------------------


@activity
def af_raises(n: int) -> int:
    raise LookupError(f"no stock for item {n}")  # the line the traceback must show


@workflow
def af_failing(ctx: WorkflowContext, n: int) -> int:
    return (yield af_raises(n))


def test_a_failed_workflow_shows_the_line_of_the_activity_that_raised(app: App) -> None:
    iid = app.start(af_failing, input=7)

    error = app.get_instance(iid)["error"]
    assert error["type"].endswith("ActivityFailed")
    assert 'raise LookupError(f"no stock for item {n}")' in error["traceback"]
    assert "in af_raises" in error["traceback"]
    assert "in af_failing" in error["traceback"]


# -- 8. async activities share one long-lived event loop -----------------------------------------

_QUEUE: list[asyncio.Queue[int]] = []


@activity
async def af_uses_queue(n: int) -> int:
    if not _QUEUE:
        _QUEUE.append(asyncio.Queue())
    queue = _QUEUE[0]
    asyncio.get_running_loop().call_soon(queue.put_nowait, n)
    return await queue.get()  # waiting binds the queue to the loop it runs on


@workflow
def af_queue_flow(ctx: WorkflowContext, _: None = None) -> list[int]:
    first = yield af_uses_queue(1)
    second = yield af_uses_queue(2)
    return [first, second]


def test_an_object_bound_to_the_loop_of_one_async_call_works_in_the_next(app: App) -> None:
    iid = app.start(af_queue_flow)

    assert app.result(iid) == [1, 2]


def test_async_activities_run_when_the_caller_is_inside_an_event_loop(app: App) -> None:
    async def main() -> str:
        return app.start(af_queue_flow)

    assert app.result(asyncio.run(main())) == [1, 2]


# -- 9. a BaseException from an activity body is returned, never raised --------------------------


class Halt(BaseException):
    pass


def af_raise(error: BaseException) -> None:
    raise error


def attempt(func: Any, *args: Any) -> Outcome:
    act = Activity(func, name=f"af_{func.__name__}")
    ctx = ActivityContext(instance_id="af", seq=1, attempt=1, idempotency_key="af:1")
    return run_attempt(act, CallActivity(act, *args), ctx)


@pytest.mark.parametrize(
    "error", [SystemExit(3), asyncio.CancelledError(), GeneratorExit(), Halt("halt")]
)
def test_a_base_exception_from_a_sync_body_is_returned_and_not_retried(
    error: BaseException,
) -> None:
    def body() -> None:
        raise error

    outcome = attempt(body)

    assert outcome.error is error
    assert not outcome.retryable


@pytest.mark.parametrize("error", [SystemExit(3), asyncio.CancelledError(), Halt("halt")])
def test_a_base_exception_from_an_async_body_is_returned_and_the_loop_survives(
    error: BaseException,
) -> None:
    async def body() -> None:
        await asyncio.sleep(0)
        raise error

    async def fine() -> int:
        await asyncio.sleep(0)
        return 5

    outcome = attempt(body)

    assert outcome.error is error
    assert not outcome.retryable
    assert attempt(fine).value == 5


def test_a_keyboard_interrupt_from_an_activity_still_stops_the_process() -> None:
    def body() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attempt(body)


class Picky(BaseModel):
    value: int

    @field_validator("value")
    @classmethod
    def halt(cls, value: int) -> int:
        raise Halt("the validator halts")


def test_a_base_exception_while_binding_the_arguments_is_returned() -> None:
    def body(picky: Picky) -> None:
        raise AssertionError("not reached")

    outcome = attempt(body, {"value": 1})

    assert isinstance(outcome.error, Halt)
    assert not outcome.retryable


@activity
async def af_async_pid() -> int:
    await asyncio.sleep(0)
    return os.getpid()


@workflow
def af_async_pid_flow(ctx: WorkflowContext, _: None = None) -> int:
    return (yield af_async_pid())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_async_activities_on_a_loop_of_its_own(db_path: Path) -> None:
    with App(db_url=f"sqlite:///{db_path}") as app:
        assert app.result(app.start(af_async_pid_flow)) == os.getpid()  # the loop is started
        pid = os.fork()
        if pid == 0:
            try:
                with App(db_url=f"sqlite:///{db_path}") as child:
                    ok = child.result(child.start(af_async_pid_flow)) == os.getpid()
                os._exit(0 if ok else 3)
            except BaseException:
                os._exit(4)
        code = exit_code_or_hung(pid)
        assert code is not None, "the child hung on the parent's activity loop"
        assert code == 0


class StrictStamp(BaseModel):
    model_config = {"strict": True}
    at: datetime
    tags: tuple[str, ...]


_STAMPS: list[StrictStamp] = []


@activity
def af_strict(stamp: StrictStamp) -> str:
    _STAMPS.append(stamp)
    stamp.tags = ("changed",)
    return stamp.at.isoformat()


@workflow
def af_strict_flow(ctx: WorkflowContext, _: None = None) -> list[str]:
    stamp = StrictStamp(at=datetime(2026, 1, 2, tzinfo=timezone.utc), tags=("a",))
    first = yield af_strict(stamp)
    return [first, *stamp.tags]


def test_a_strict_model_argument_is_rebuilt_from_its_json_too(app: App) -> None:
    # Its recorded JSON data (a time as text, a tuple as a list) does not validate as Python
    # data in strict mode: the attempt's copy is rebuilt from the JSON text instead.
    _STAMPS.clear()
    iid = app.start(af_strict_flow)
    assert app.result(iid) == ["2026-01-02T00:00:00+00:00", "a"]
    assert _STAMPS[0] == StrictStamp(
        at=datetime(2026, 1, 2, tzinfo=timezone.utc), tags=("changed",)
    )
