"""The handler table: what each command a workflow yields means to the interpreter.

``commands`` defines the commands as frozen data; this module says, per command class, what
kind of record it makes, its name and deadline, its record's arguments, how a combinator
settles, which kinds resolve themselves and how a recorded failure is thrown back. The
interpreter finds everything here by a table lookup. A new command is a new class in
``commands`` and new entries here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from .commands import (
    All,
    CallActivity,
    CallWorkflow,
    ContinueAsNew,
    First,
    Marker,
    Publish,
    Sleep,
    SleepUntil,
    WaitEvent,
    activity_name,
    child_instance_id,
)
from .context import derived_uuid
from .errors import ActivityFailed, Cancelled, ChildWorkflowFailed, EventTimeout
from .history import Failure
from .waits import Leaf

__all__ = [
    "ARGS",
    "CANCELLED_ON_ABANDON",
    "COMBINATORS",
    "ENDS_RUN",
    "FAILURES",
    "LEAVES",
    "RUN_TO_COMPLETION",
    "SELF_RESOLVING",
    "ActivityTraceback",
    "Spec",
]

#: A leaf's (kind, name, deadline), which a handler gives from the command and the workflow's
#: current time. The arguments of its Scheduled record are built only when the record is new
#: (``ARGS``): a replay takes them from history and never needs them.
Spec = tuple[str, str, "datetime | None"]


def _call_activity(cmd: CallActivity, now: datetime) -> Spec:
    return ("activity", activity_name(cmd.activity), None)


def _deadline(now: datetime, seconds: float) -> datetime:
    """``now + seconds``; ``ValueError`` when that lies past what a ``datetime`` holds."""
    try:
        return now + timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"its deadline, {seconds:g} s after {now.isoformat()}, lies past the latest time a "
            f"datetime holds ({datetime.max.year})"
        ) from None


def _sleep(cmd: Sleep, now: datetime) -> Spec:
    return ("timer", "sleep", _deadline(now, cmd.seconds))


def _sleep_until(cmd: SleepUntil, now: datetime) -> Spec:
    return ("timer", "sleep", cmd.when)


def _wait_event(cmd: WaitEvent, now: datetime) -> Spec:
    deadline = None if cmd.timeout is None else _deadline(now, cmd.timeout)
    return ("event", cmd.event_type, deadline)


def _publish(cmd: Publish, now: datetime) -> Spec:
    return ("publish", cmd.event_type, None)


def _call_workflow(cmd: CallWorkflow, now: datetime) -> Spec:
    return ("child", activity_name(cmd.workflow), None)


def _continue_as_new(cmd: ContinueAsNew, now: datetime) -> Spec:
    return ("continue", "continue_as_new", None)


LEAVES: dict[type[Any], Callable[[Any, datetime], Spec]] = {
    CallActivity: _call_activity,
    Sleep: _sleep,
    SleepUntil: _sleep_until,
    WaitEvent: _wait_event,
    Publish: _publish,
    CallWorkflow: _call_workflow,
    ContinueAsNew: _continue_as_new,
}

#: The ``args`` of a new Scheduled record, per command class, from the command, the instance's
#: id and the command's seq (a child's id is derived from them).
ARGS: dict[type[Any], Callable[[Any, str, int], Any]] = {
    CallActivity: lambda cmd, iid, seq: {"args": cmd.args, "kwargs": dict(cmd.kwargs)},
    Sleep: lambda cmd, iid, seq: {"seconds": cmd.seconds},
    SleepUntil: lambda cmd, iid, seq: {"until": cmd.when.isoformat()},
    WaitEvent: lambda cmd, iid, seq: (
        {"timeout": cmd.timeout}
        if cmd.match is None
        else {"timeout": cmd.timeout, "match": cmd.match}
    ),
    Publish: lambda cmd, iid, seq: {"data": cmd.data, "source": cmd.source},
    CallWorkflow: lambda cmd, iid, seq: {
        "input": cmd.input,
        "instance_id": cmd.instance_id or child_instance_id(iid, seq),
    },
    ContinueAsNew: lambda cmd, iid, seq: {"input": cmd.input},
    Marker: lambda cmd, iid, seq: {},
}

#: Combinators: how a node settles once its children do.
COMBINATORS: dict[type[Any], str] = {All: "all", First: "first"}

#: Kinds whose value the kernel knows at decision time: seq -> value.
SELF_RESOLVING: dict[str, Callable[[str, int], Any]] = {
    "publish": lambda instance_id, seq: str(derived_uuid(instance_id, seq)),
}

#: Kinds that run to completion even when abandoned (the rest are cancelled).
RUN_TO_COMPLETION = frozenset({"activity", "compensation"})

#: Kinds whose cancellation, when abandoned, the host must carry out (a child instance runs
#: elsewhere): the interpreter lists them in ``Interpreter.abandoned`` for the host to take.
CANCELLED_ON_ABANDON = frozenset({"child"})

#: Kinds that end the run when yielded (recorded, never pending): the code is closed and the
#: interpreter ends ``CONTINUED`` once no activity is outstanding; the host starts the next run.
ENDS_RUN = frozenset({"continue"})


class ActivityTraceback(Exception):
    """The traceback an activity's failure was recorded with, as the ``__cause__`` of the
    ``ActivityFailed`` thrown into the workflow: a traceback of the workflow's error then shows
    the activity's own frames (the line that raised) before the workflow's."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'the activity raised:\n"""\n{self.text.rstrip()}\n"""'


def _activity_failed(leaf: Leaf, failure: Failure) -> BaseException:
    error = ActivityFailed(leaf.name, failure.type, failure.message, failure.attempts)
    if failure.traceback:
        error.__cause__ = ActivityTraceback(failure.traceback)  # also sets __suppress_context__
    return error


def _event_timeout(leaf: Leaf, failure: Failure) -> BaseException:
    return EventTimeout(leaf.name, leaf.deadline)


def _cancelled(leaf: Leaf | None, failure: Failure) -> BaseException:
    return Cancelled(failure.message or None)


def _child_failed(leaf: Leaf, failure: Failure) -> BaseException:
    record = leaf.record
    child = record.args.get("instance_id") if record is not None else None
    return ChildWorkflowFailed(str(child), leaf.name, failure.type, failure.message)


#: How a recorded failure of each kind is thrown into the workflow.
FAILURES: dict[str, Callable[[Leaf, Failure], BaseException]] = {
    "activity": _activity_failed,
    "compensation": _activity_failed,
    "event": _event_timeout,
    "child": _child_failed,
    # not a command: what a Cancel record throws in at the current yield
    "cancel": _cancelled,
}
