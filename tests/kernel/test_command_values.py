"""Bad command values fail where they are made, and nothing the workflow yields escapes the
interpreter: what cannot be scheduled is thrown into the workflow at its yield."""

from __future__ import annotations

import gc
import traceback
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kernel_histories import T0, activity, done, interpreter, replayed

from eddic.kernel import (
    ActivityFailed,
    ActivityRef,
    All,
    CallActivity,
    Command,
    EddicError,
    Failure,
    First,
    Interpreter,
    Phase,
    Publish,
    Resolved,
    Scheduled,
    Sleep,
    SleepUntil,
    WaitEvent,
)

INF = float("inf")
NAN = float("nan")

# -- constructors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds",
    [INF, -INF, NAN, -1, -0.5, timedelta(seconds=-1), pytest.param(10**400, id="huge-int")],
)
def test_sleep_refuses_a_value_no_deadline_can_be_built_from(seconds: Any) -> None:
    with pytest.raises(ValueError, match="Sleep"):
        Sleep(seconds)


@pytest.mark.parametrize("seconds", ["5", None, True, [1]])
def test_sleep_refuses_what_is_not_a_number_of_seconds(seconds: Any) -> None:
    with pytest.raises(TypeError, match="Sleep"):
        Sleep(seconds)


def test_sleep_takes_zero_ints_floats_and_timedeltas() -> None:
    assert Sleep(0).seconds == 0.0
    assert Sleep(3).seconds == 3.0
    assert Sleep(timedelta(minutes=2)).seconds == 120.0


@pytest.mark.parametrize("timeout", [INF, NAN, -1, timedelta(hours=-1)])
def test_wait_event_refuses_a_bad_timeout(timeout: Any) -> None:
    with pytest.raises(ValueError, match="WaitEvent timeout"):
        WaitEvent("x", timeout=timeout)


def test_wait_event_refuses_a_bad_event_type() -> None:
    with pytest.raises(TypeError, match="event type"):
        WaitEvent(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="event type"):
        WaitEvent("")
    with pytest.raises(TypeError, match="WaitEvent timeout"):
        WaitEvent("x", timeout="60")  # type: ignore[arg-type]


def test_sleep_until_refuses_a_naive_datetime_and_what_is_not_a_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        SleepUntil(datetime(2024, 5, 1, 12, 0))
    with pytest.raises(TypeError, match="SleepUntil"):
        SleepUntil("2024-05-01T12:00:00+00:00")  # type: ignore[arg-type]


def test_sleep_until_refuses_a_time_that_has_no_utc_equivalent() -> None:
    edge = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))  # after 9999-12-31 UTC

    with pytest.raises(ValueError, match="SleepUntil"):
        SleepUntil(edge)


@pytest.mark.parametrize("event_type", [None, 42, b"x"])
def test_publish_refuses_an_event_type_that_is_not_a_string(event_type: Any) -> None:
    with pytest.raises(TypeError, match="Publish"):
        Publish(event_type)


def test_publish_refuses_an_empty_event_type_and_a_bad_source() -> None:
    with pytest.raises(ValueError, match="Publish"):
        Publish("")
    with pytest.raises(TypeError, match="source"):
        Publish("x", source=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        Publish("x", source="")
    assert Publish("x", {"a": 1}, source="shop").source == "shop"


def test_call_activity_refuses_an_activity_it_cannot_name() -> None:
    with pytest.raises(TypeError, match="name"):
        CallActivity(42)
    with pytest.raises(ValueError, match="name"):
        CallActivity("")


# -- values that only fail against the workflow's time: thrown in at the yield -------------------


def caught(make: Any) -> Any:
    """A workflow that yields ``make()``, records what it raised there, then calls ``b``."""
    seen: list[BaseException] = []

    def workflow(ctx: Any) -> Any:
        try:
            yield make()
        except (ValueError, TypeError) as error:
            seen.append(error)
        return (yield CallActivity("b"))

    return workflow, seen


@pytest.mark.parametrize(
    "make",
    [lambda: Sleep(1e15), lambda: WaitEvent("paid", timeout=1e15)],
    ids=["sleep", "wait_event"],
)
def test_a_deadline_past_what_a_datetime_holds_is_thrown_in_at_the_yield(make: Any) -> None:
    workflow, seen = caught(make)
    interp = interpreter(workflow)

    decisions = interp.decide()

    assert [(r.seq, r.kind, r.name) for r in decisions if isinstance(r, Scheduled)] == [
        (1, "activity", "b")  # the refused command took no seq
    ]
    (error,) = seen
    assert isinstance(error, ValueError)
    assert type(make()).__name__ in str(error)
    assert "datetime" in str(error)


def test_an_uncaught_deadline_overflow_fails_the_workflow_normally() -> None:
    def workflow(ctx: Any) -> Any:
        yield Sleep(60 * 86_400)  # two months after a start in December 9999

    interp = interpreter(workflow, started_at=datetime(9999, 12, 1, tzinfo=timezone.utc))

    assert interp.decide() == []
    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, ValueError)
    assert "Sleep" in str(interp.error)


def test_a_refused_command_is_refused_again_on_replay() -> None:
    workflow, seen = caught(lambda: Sleep(1e15))

    interp = replayed(workflow, [activity(1, "b"), done(1, "B")])

    assert interp.phase is Phase.COMPLETED and interp.result == "B"
    assert len(seen) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: All(CallActivity("a"), Sleep(1), Sleep(1e15)),
        lambda: First(CallActivity("a"), All(WaitEvent("x"), WaitEvent("y", timeout=1e15))),
    ],
    ids=["all", "nested"],
)
def test_a_bad_child_of_all_or_first_leaves_no_half_built_tree(make: Any) -> None:
    workflow, seen = caught(make)
    interp = interpreter(workflow)

    decisions = interp.decide()

    assert [(r.seq, r.name) for r in decisions if isinstance(r, Scheduled)] == [(1, "b")]
    assert [p.seq for p in interp.pending] == [1]
    assert len(seen) == 1 and isinstance(seen[0], ValueError)
    interp.feed(done(1, "B"))
    assert interp.phase is Phase.COMPLETED


# -- the host's check ----------------------------------------------------------------------------


def checked(workflow: Any, check: Any) -> Interpreter:
    return Interpreter(workflow, instance_id="checked", started_at=T0, check=check)


def refuse_publish(command: Command) -> None:
    if isinstance(command, Publish) and command.data == "bad":
        raise TypeError("data of event 'x' cannot be serialised")
    return None


def test_a_check_error_is_thrown_into_the_workflow_at_its_yield() -> None:
    workflow, seen = caught(lambda: Publish("x", "bad"))
    interp = checked(workflow, refuse_publish)

    decisions = interp.decide()

    assert [(r.seq, r.kind) for r in decisions if isinstance(r, Scheduled)] == [(1, "activity")]
    (error,) = seen
    assert isinstance(error, TypeError) and "cannot be serialised" in str(error)
    assert "Publish" in str(error)


def test_a_check_error_inside_all_leaves_no_half_built_tree() -> None:
    calls: list[Command] = []

    def check(command: Command) -> None:
        calls.append(command)
        refuse_publish(command)

    workflow, seen = caught(lambda: All(CallActivity("a"), Publish("x", "bad")))
    interp = checked(workflow, check)

    decisions = interp.decide()

    assert [r.name for r in decisions if isinstance(r, Scheduled)] == ["b"]
    assert len(seen) == 1
    assert [type(c).__name__ for c in calls] == ["CallActivity", "Publish", "CallActivity"]


def test_a_check_may_put_a_command_of_its_own_in_place_of_the_one_yielded() -> None:
    data = {"n": 1}

    def workflow(ctx: Any) -> Any:
        event_id = yield Publish("x", data)
        data["n"] = 2  # the workflow's own object: the recorded event must not change
        yield Sleep(1)
        return event_id

    def snapshot(command: Command) -> Command | None:
        if isinstance(command, Publish):
            return Publish(command.event_type, dict(command.data), command.source)
        return None

    interp = checked(workflow, snapshot)

    (publish, _resolved, _sleep) = interp.decide()
    assert isinstance(publish, Scheduled)
    assert publish.args == {"data": {"n": 1}, "source": None}


def test_an_error_other_than_type_or_value_error_from_the_check_reaches_the_host() -> None:
    def check(command: Command) -> None:
        raise RuntimeError("the host's own bug")

    workflow, _ = caught(lambda: Sleep(1))

    with pytest.raises(RuntimeError, match="host's own bug"):
        checked(workflow, check).decide()


# -- workflows the interpreter cannot run --------------------------------------------------------


def test_an_async_def_workflow_that_awaits_nothing_completes_with_no_unawaited_warning() -> None:
    async def workflow(ctx: Any) -> Any:
        return 1

    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        interp = interpreter(workflow)
        assert interp.decide() == []
        gc.collect()

    assert interp.phase is Phase.COMPLETED and interp.result == 1
    assert [str(w.message) for w in caught_warnings if "never awaited" in str(w.message)] == []


def test_an_async_generator_workflow_fails_with_a_clear_type_error() -> None:
    async def workflow(ctx: Any) -> Any:
        yield Sleep(1)

    interp = interpreter(workflow)

    assert interp.decide() == []
    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, TypeError)
    assert "async" in str(interp.error)


def test_a_workflow_that_returns_a_command_instead_of_yielding_it_fails_clearly() -> None:
    def plain(ctx: Any) -> Any:
        return CallActivity("charge")

    def generator(ctx: Any) -> Any:
        yield Sleep(0)
        return CallActivity("charge")

    first = interpreter(plain)
    assert first.decide() == []
    assert first.phase is Phase.FAILED
    assert isinstance(first.error, TypeError)
    assert "did you forget `yield`" in str(first.error)
    assert "charge" in str(first.error)

    second = interpreter(generator)
    second.decide()
    second.feed(Resolved(1, T0))
    assert second.phase is Phase.FAILED
    assert isinstance(second.error, TypeError)


class Stop(BaseException):
    """Not an Exception: the host decides what happens (the runtime parks the instance)."""


def test_a_base_exception_from_the_workflow_reaches_the_host_and_stops_the_interpreter() -> None:
    def workflow(ctx: Any) -> Any:
        yield CallActivity("a")
        raise Stop()

    interp = interpreter(workflow)
    interp.decide()

    with pytest.raises(Stop):
        interp.feed(done(1))
    assert interp.phase is Phase.BROKEN
    with pytest.raises(EddicError, match="Stop"):
        interp.decide()  # not "completed with None"
    assert not interp.finished


def test_a_base_exception_when_the_workflow_is_called_stops_the_interpreter() -> None:
    def workflow(ctx: Any) -> Any:
        raise Stop()

    interp = interpreter(workflow)

    with pytest.raises(Stop):
        interp.decide()
    with pytest.raises(EddicError, match="Stop"):
        interp.decide()


def test_a_start_time_that_is_not_a_datetime_is_refused_with_a_type_error() -> None:
    with pytest.raises(TypeError, match="started_at"):
        Interpreter(lambda ctx: None, instance_id="x", started_at="2024-05-01")  # type: ignore[arg-type]


def test_an_unhashable_workflow_callable_is_called_like_any_other() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, ctx: Any, n: int) -> Any:
            return (yield CallActivity("a", n))

    interp = interpreter(Unhashable(), 3)

    assert [r.args for r in interp.decide() if isinstance(r, Scheduled)] == [
        {"args": (3,), "kwargs": {}}
    ]


# -- compensations and failures ------------------------------------------------------------------


class BrokenCompensable:
    name = "reserve"

    def compensate(self, args: Any, kwargs: Any, result: Any) -> CallActivity | None:
        raise TypeError("reserve's compensation needs an argument it was not given")


def test_a_compensation_that_cannot_be_built_is_thrown_in_at_the_activity_yield() -> None:
    seen: list[BaseException] = []

    def workflow(ctx: Any) -> Any:
        try:
            yield CallActivity(BrokenCompensable())
        except TypeError as error:
            seen.append(error)
            return "handled"
        return "not reached"

    interp = interpreter(workflow)
    interp.decide()

    interp.feed(done(1, "R"))

    assert interp.phase is Phase.COMPLETED and interp.result == "handled"
    assert "compensation" in str(seen[0]) and "reserve" in str(seen[0])


def test_an_abandoned_activity_whose_compensation_cannot_be_built_is_listed() -> None:
    def workflow(ctx: Any) -> Any:
        yield First(CallActivity(BrokenCompensable()), Sleep(5))
        raise RuntimeError("fails after the race")

    interp = interpreter(workflow)
    interp.decide()
    interp.feed(done(2, None, t=5))  # the timer wins; the workflow raises
    interp.feed(done(1, "R", t=6))  # the abandoned activity completes

    assert interp.phase is Phase.FAILED
    assert [f.type for f in interp.compensation_errors] == ["TypeError"]
    assert "reserve" in interp.compensation_errors[0].message


ACTIVITY_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "shop.py", line 12, in charge\n'
    '    raise CardDeclined("insufficient funds")\n'
    "shop.CardDeclined: insufficient funds\n"
)


def test_an_activity_failure_thrown_in_carries_the_activity_traceback() -> None:
    def workflow(ctx: Any) -> Any:
        yield CallActivity(ActivityRef("charge"))

    failure = Failure("shop.CardDeclined", "insufficient funds", 1, ACTIVITY_TRACEBACK)
    interp = replayed(workflow, [activity(1, "charge"), Resolved(1, T0, failure=failure)])

    assert interp.phase is Phase.FAILED
    assert isinstance(interp.error, ActivityFailed)
    text = "".join(traceback.format_exception(interp.error))
    assert 'raise CardDeclined("insufficient funds")' in text
    assert "the activity raised" in text
    assert text.index("CardDeclined(") < text.index("ActivityFailed")  # the cause comes first
