"""Every command a workflow may yield, in one module.

Commands are frozen data: they describe what the workflow wants, and the interpreter's handler
table (``handlers.LEAVES`` and its companions) decides what each one means. A new command is a
new class here and new entries there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable


class Command:
    """Base of everything a workflow may yield."""

    __slots__ = ()


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
        # One dict update instead of three object.__setattr__ calls: built once per command.
        self.__dict__.update(activity=activity, args=args, kwargs=kwargs)

    @property
    def name(self) -> str:
        return activity_name(self.activity)


def _seconds(value: float | timedelta, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds >= 0:  # also rejects NaN
        raise ValueError(f"{what} must be a non-negative number of seconds, got {value!r}")
    return seconds


@dataclass(frozen=True, init=False)
class Sleep(Command):
    """Wait ``seconds`` (a number or a ``timedelta``) from the workflow's ``now()``."""

    seconds: float

    def __init__(self, seconds: float | timedelta) -> None:
        object.__setattr__(self, "seconds", _seconds(seconds, "Sleep"))


@dataclass(frozen=True)
class SleepUntil(Command):
    """Wait until ``when``, an aware datetime."""

    when: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.when, datetime) or self.when.tzinfo is None:
            raise ValueError(f"SleepUntil needs an aware datetime, got {self.when!r}")
        object.__setattr__(self, "when", self.when.astimezone(timezone.utc))


@dataclass(frozen=True, init=False)
class WaitEvent(Command):
    """Wait for an external event of ``event_type``; ``EventTimeout`` after ``timeout`` seconds."""

    event_type: str
    timeout: float | None

    def __init__(self, event_type: str, timeout: float | timedelta | None = None) -> None:
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"WaitEvent needs a non-empty event type, got {event_type!r}")
        object.__setattr__(self, "event_type", event_type)
        object.__setattr__(
            self, "timeout", None if timeout is None else _seconds(timeout, "WaitEvent timeout")
        )


@dataclass(frozen=True)
class Publish(Command):
    """Publish an event through the transactional outbox; its value is the event id."""

    event_type: str
    data: Any = None
    source: str | None = None


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
