"""Kernel records and events <-> what eddic stores: JSON texts, rebuilt as their recorded types.

The one place that knows how a record's value is encoded: the worker writes through it, and the
worker's recovery, replay (``eddic.debug``), the CLI and the viewer read through it, whatever
the backend. Values come back through the same pydantic adapters that wrote them (an activity's
declared result type, an event's fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .clock import from_text, to_text
from .decorators import find_activity, find_workflow
from .errors import SerializationError
from .kernel import (
    RUN_TO_COMPLETION,
    CallWorkflow,
    Cancel,
    Command,
    ContinueAsNew,
    Event,
    Failure,
    Publish,
    Record,
    Resolved,
    Scheduled,
    activity_name,
)
from .serde import from_jsonable, loads, to_jsonable


def check_command(command: Command) -> Command | None:
    """The runtime's look at each command a workflow yields (``Interpreter(check=...)``).

    ``Publish`` data must serialise to JSON (pydantic: models and datetimes are fine); when it
    does not, a ``TypeError`` is thrown into the workflow at its yield. The command is recorded
    with that JSON form, a snapshot: changing the object after the yield does not change the
    event. Pass this to every interpreter that replays the runtime's histories, so that a
    refused ``Publish`` is refused there too.
    """
    if type(command) is Publish:
        try:
            data = to_jsonable(command.data, what=f"data of event {command.event_type!r}")
        except SerializationError as exc:
            raise TypeError(str(exc)) from None
        return Publish(command.event_type, data, command.source)
    if type(command) is CallWorkflow:
        return CallWorkflow(command.workflow, child_input(command), instance_id=command.instance_id)
    return None


def check_for(workflow: Any) -> Callable[[Command], Command | None]:
    """``check_command`` for the interpreter of ``workflow`` (a ``Workflow``, or anything else
    for none known): a ``ContinueAsNew``'s input is also checked as a start's input of that
    workflow, at the yield, and recorded as its JSON."""

    def check(command: Command) -> Command | None:
        if type(command) is ContinueAsNew:
            return ContinueAsNew(_start_input(workflow, command.input, "ContinueAsNew"))
        return check_command(command)

    return check


def _start_input(wf: Any, value: Any, what: str) -> Any:
    name = getattr(wf, "name", "?")
    label = f"the input of {what} of workflow {name!r}"
    try:
        if getattr(wf, "input_adapter", None) is None:
            return to_jsonable(value, what=label)
        if wf.input_param is None:
            if value is not None:
                raise TypeError(f"workflow {name!r} takes no input, got {value!r}")
            return None
        return to_jsonable(wf.input_adapter.validate_python(value), wf.input_adapter, what=label)
    except SerializationError as exc:
        raise TypeError(str(exc)) from None


def child_input(command: CallWorkflow) -> Any:
    """The input of a child as JSON data, checked as ``App.start`` checks one when the child's
    workflow is registered here (a ``ValueError``/``TypeError`` thrown in at the yield)."""
    name = activity_name(command.workflow)
    wf = find_workflow(name)
    what = f"the input of child workflow {name!r}"
    try:
        if wf is None:
            return to_jsonable(command.input, what=what)
        if wf.input_param is None:
            if command.input is not None:
                raise TypeError(f"workflow {name!r} takes no input, got {command.input!r}")
            return None
        return to_jsonable(
            wf.input_adapter.validate_python(command.input), wf.input_adapter, what=what
        )
    except SerializationError as exc:
        raise TypeError(str(exc)) from None


def failure_json(failure: Failure) -> dict[str, Any]:
    return {
        "type": failure.type,
        "message": failure.message,
        "attempts": failure.attempts,
        "traceback": failure.traceback,
    }


def decode_records(rows: list[tuple[Any, ...]]) -> list[Record]:
    """Kernel records from history rows, values rebuilt as the types they were recorded as."""
    kinds: dict[int, tuple[str, str]] = {}
    records: list[Record] = []
    for _iid, _pos, seq, record, kind, name, args, at, deadline, value, failure in rows:
        when = from_text(at)
        assert when is not None
        if record == "scheduled":
            kinds[seq] = (kind, name)
            records.append(Scheduled(seq, kind, name, loads(args), when, from_text(deadline)))
            continue
        if record == "cancel":
            reason = loads(value) if value is not None else None
            records.append(Cancel(when, reason if isinstance(reason, str) else None))
            continue
        if failure is not None:
            f = loads(failure)
            records.append(
                Resolved(
                    seq,
                    when,
                    failure=Failure(
                        f["type"], f["message"], f.get("attempts", 1), f.get("traceback")
                    ),
                )
            )
            continue
        kind, name = kinds.get(seq, ("", ""))
        records.append(Resolved(seq, when, decode_value(kind, name, loads(value))))
    return records


def decode_value(kind: str, name: str, data: Any) -> Any:
    if kind in RUN_TO_COMPLETION:
        act = find_activity(name)
        if act is None:
            return data
        return from_jsonable(data, act.result_adapter, what=f"the recorded result of {name!r}")
    if kind == "event" and isinstance(data, dict):
        return event_from_json(data)
    if kind == "child":
        wf = find_workflow(name)
        if wf is None:
            return data
        return from_jsonable(data, wf.result_adapter, what=f"the recorded result of {name!r}")
    return data


def event_to_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "time": to_text(event.time),
        "data": event.data,
    }


def event_from_json(data: dict[str, Any]) -> Event:
    when = from_text(data["time"])
    assert when is not None
    return Event(data["id"], data["type"], data["source"], when, data.get("data"))


__all__ = [
    "check_command",
    "decode_records",
    "decode_value",
    "event_from_json",
    "event_to_json",
    "failure_json",
]
