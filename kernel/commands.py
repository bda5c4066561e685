"""Every command a workflow may yield, in one module.

Commands are frozen data: they describe what the workflow wants, and the interpreter's handler
table (``handlers.LEAVES`` and its companions) decides what each one means. A new command is a
new class here and new entries there.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable


class Command:
    """Base of everything a workflow may yield (or, in an ``async def`` workflow, await)."""

    __slots__ = ()

    def __await__(self) -> Generator[Command, Any, Any]:
        # ``await command`` yields the command itself to the interpreter driving the
        # coroutine, and returns what the interpreter sends back: the command's value.
        return (yield self)


@runtime_checkable
class Compensable(Protocol):
    """An activity that knows its compensation (``@on_failure`` builds one)."""

    name: str

    def compensate(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
    ) -> CallActivity | None: ...


def activity_name(activity: Any) -> str:
    """The name an activity is recorded under: a string itself, ``.name``, or ``__name__``."""
    if isinstance(activity, str):
        return activity
    name = getattr(activity, "name", None)
    if isinstance(name, str):
        return name
    name = getattr(activity, "__name__", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"cannot tell the name of activity {activity!r}")


@dataclass(frozen=True, slots=True)
class ActivityRef:
    """A named activity for code that drives the kernel alone (no ``@activity`` registry).

    ``compensation`` names the activity to run, with the same arguments, when a workflow that
    completed this one fails.
    """

    name: str
    compensation: str | None = None

    def compensate(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
    ) -> CallActivity | None:
        if self.compensation is None:
            return None
        return CallActivity(ActivityRef(self.compensation), *args, **kwargs)


@dataclass(frozen=True, init=False)
class CallActivity(Command):
    """Run ``activity(*args, **kwargs)`` outside the workflow; its value is the result."""

    activity: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

    def __init__(self, activity: Any, /, *args: Any, **kwargs: Any) -> None:
        if not activity_name(activity):
            raise ValueError(
                f"CallActivity needs an activity with a non-empty name, got {activity!r}"
            )
        # One dict update instead of three object.__setattr__ calls: built once per command.
        self.__dict__.update(activity=activity, args=args, kwargs=kwargs)

    @property
    def name(self) -> str:
        return activity_name(self.activity)


_INFINITY = float("inf")


def finite_seconds(value: float | timedelta, what: str) -> float:
    """``value`` (a number or a ``timedelta``) as finite, non-negative float seconds.

    The kernel's own check (it imports nothing of eddic outside itself): a value no deadline can
    be built from fails where the command is made. A finite value whose deadline lies past what
    a ``datetime`` holds is found when the command is yielded (it depends on the workflow's time)
    and thrown into the workflow there.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            raise ValueError(f"{what} must be a finite number of seconds, got {value!r}") from None
    else:
        raise TypeError(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    if seconds != seconds or seconds in (_INFINITY, -_INFINITY):  # NaN, inf
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{what} must be a non-negative number of seconds, got {value!r}")
    return seconds


def _event_type(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} needs an event type that is a string, got {value!r}")
    if not value:
        raise ValueError(f"{what} needs a non-empty event type")
    return value


@dataclass(frozen=True, init=False)
class Sleep(Command):
    """Wait ``seconds`` (a number or a ``timedelta``) from the workflow's ``now()``."""

    seconds: float

    def __init__(self, seconds: float | timedelta) -> None:
        object.__setattr__(self, "seconds", finite_seconds(seconds, "Sleep"))


@dataclass(frozen=True)
class SleepUntil(Command):
    """Wait until ``when``, an aware datetime."""

    when: datetime

    def __post_init__(self) -> None:
        when = self.when
        if not isinstance(when, datetime):
            raise TypeError(f"SleepUntil needs an aware datetime, got {when!r}")
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"SleepUntil needs an aware datetime, got {when!r}")
        try:
            utc = when.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError(
                f"SleepUntil({when.isoformat()}) lies outside the times a datetime holds in UTC"
            ) from None
        object.__setattr__(self, "when", utc)


@dataclass(frozen=True, init=False)
class WaitEvent(Command):
    """Wait for an external event of ``event_type``; ``EventTimeout`` after ``timeout`` seconds.

    ``match`` (a mapping of field names to values) takes only an event whose ``data`` is an
    object holding every one of those fields with an equal value; the others wait for a later
    wait (first in, first out among the matching)."""

    event_type: str
    timeout: float | None
    match: Mapping[str, Any] | None

    def __init__(
        self,
        event_type: str,
        timeout: float | timedelta | None = None,
        *,
        match: Mapping[str, Any] | None = None,
    ) -> None:
        object.__setattr__(self, "event_type", _event_type(event_type, "WaitEvent"))
        object.__setattr__(
            self,
            "timeout",
            None if timeout is None else finite_seconds(timeout, "WaitEvent timeout"),
        )
        if match is not None:
            if not isinstance(match, Mapping):
                raise TypeError(f"WaitEvent match must be a mapping of fields, got {match!r}")
            if not match or not all(isinstance(k, str) and k for k in match):
                raise ValueError(
                    f"WaitEvent match must name at least one field, by non-empty strings: {match!r}"
                )
            match = dict(match)
        object.__setattr__(self, "match", match)


@dataclass(frozen=True)
class Publish(Command):
    """Publish an event through the transactional outbox; its value is the event id."""

    event_type: str
    data: Any = None
    source: str | None = None

    def __post_init__(self) -> None:
        _event_type(self.event_type, "Publish")
        source = self.source
        if source is not None:
            if not isinstance(source, str):
                raise TypeError(f"Publish source must be a string or None, got {source!r}")
            if not source:
                raise ValueError("Publish source must not be empty (pass None for the default)")


@dataclass(frozen=True, init=False)
class CallWorkflow(Command):
    """Run ``workflow`` as a child instance of its own; its value is the child's result.

    ``workflow`` is a workflow (anything with a ``name``) or its registered name. The child's id
    is ``instance_id``, or one derived from the parent's id and this command's seq
    (:func:`child_instance_id`), so a replay names the same child. A child that fails or is
    cancelled throws ``ChildWorkflowFailed``; a child abandoned by ``First`` (or by a cancel of
    the parent) is cancelled.
    """

    workflow: Any
    input: Any
    instance_id: str | None

    def __init__(self, workflow: Any, input: Any = None, *, instance_id: str | None = None) -> None:
        if not activity_name(workflow):
            raise ValueError(f"CallWorkflow needs a workflow with a name, got {workflow!r}")
        if instance_id is not None:
            if not isinstance(instance_id, str):
                raise TypeError(f"CallWorkflow instance_id must be a string, got {instance_id!r}")
            if not instance_id:
                raise ValueError("CallWorkflow instance_id must not be empty")
        self.__dict__.update(workflow=workflow, input=input, instance_id=instance_id)


@dataclass(frozen=True, init=False)
class ContinueAsNew(Command):
    """End this run of the instance and start the next at once, with ``input``: the same
    instance id, history restarting at seq 1, the saga stack dropped, unconsumed mailbox events
    carried over. The yield never returns. Yield it alone (not inside ``All``/``First``)."""

    input: Any

    def __init__(self, input: Any = None) -> None:
        self.__dict__.update(input=input)


@dataclass(frozen=True)
class Marker(Command):
    """What ``ctx.patched(change_id)`` records: never yielded by a workflow itself."""

    change_id: str


def event_matches(data: Any, match: Mapping[str, Any] | None) -> bool:
    """Whether an event's ``data`` satisfies a ``WaitEvent``'s ``match``: no match at all, or
    data that is an object holding every one of its fields with an equal value."""
    if match is None:
        return True
    return isinstance(data, Mapping) and all(
        key in data and data[key] == value for key, value in match.items()
    )


def run_key(instance_id: str, run: int) -> str:
    """What a run's derived ids (``ctx.uuid()``, event ids, child ids) are derived from: the
    instance id for the first run, ``<id>#<run>`` for the later ones, so runs never collide."""
    return instance_id if run == 1 else f"{instance_id}#{run}"


def child_instance_id(parent_id: str, seq: int) -> str:
    """The id of the child a parent starts at ``seq`` without naming it: ``<parent>/<seq>``."""
    return f"{parent_id}/{seq}"


@dataclass(frozen=True, init=False)
class All(Command):
    """Wait for every command; the value is the list of results in argument order."""

    commands: tuple[Any, ...]

    def __init__(self, *commands: Any) -> None:
        object.__setattr__(self, "commands", commands)


@dataclass(frozen=True, init=False)
class First(Command):
    """Wait for the first command to finish; the value is ``(index, result)``."""

    commands: tuple[Any, ...]

    def __init__(self, *commands: Any) -> None:
        if not commands:
            raise ValueError("First needs at least one command")
        object.__setattr__(self, "commands", commands)
