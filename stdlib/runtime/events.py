"""Timers and external events: which due outcome an instance receives next.

A timer is due when ``now >= deadline``. An event in the instance's mailbox resolves the oldest
matching ``WaitEvent`` (first in, first out per type). When an event and a deadline compete, the
earlier of (event time, deadline) wins, and the event wins a tie, even if it is processed after
the deadline passed.

This module decides; it does no I/O. The worker reads the mailbox from storage, asks
:func:`next_due` what to feed, and commits it (``Worker._resolve_due``); ``App.send_event``
stores events through ``Storage.deliver``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ..codec import decode_value, event_to_json
from ..kernel import Event, Failure, Pending, Resolved, event_matches
from ..serde import dumps

#: Event types a sender may not use: eddic's own deliveries (a child's outcome to its parent).
RESERVED_PREFIX = "eddic."


class Due(NamedTuple):
    """What to feed next: the record, the JSON text of its value (for history), the mailbox
    row it consumes."""

    resolved: Resolved
    value_json: str | None
    mailbox_id: int | None


def child_event_type(child_id: str) -> str:
    """The mailbox event type a child's outcome reaches its parent's ``CallWorkflow`` under
    (by the child's id, which no other call of any run of the parent shares)."""
    return f"{RESERVED_PREFIX}child:{child_id}"


def wait_match(p: Pending) -> str | None:
    """The JSON text of a ``WaitEvent``'s ``match`` (stored with its wait, for broadcasts)."""
    args = p.record.args
    match = args.get("match") if p.kind == "event" and isinstance(args, Mapping) else None
    return None if match is None else dumps(match)


def wait_type(p: Pending) -> str:
    """The mailbox event type that resolves ``p`` (a ``WaitEvent`` or a ``CallWorkflow``)."""
    if p.kind == "event":
        return p.name
    return child_event_type(str(p.record.args["instance_id"]))


def event_types(pending: Sequence[Pending]) -> list[str]:
    """The event types the instance waits on now (its mailbox is read for these only)."""
    return sorted({wait_type(p) for p in pending if p.kind in _MAILBOX_KINDS})


_Candidate = tuple[datetime, int, int, Due]  # (when, event first on a tie, seq, what)


def _timer_due(
    p: Pending,
    mailbox: Mapping[str, Sequence[tuple[int, Event]]],
    taken: set[int],
    now: datetime,
) -> _Candidate | None:
    deadline = p.deadline
    if deadline is not None and deadline <= now:
        return deadline, 1, p.seq, Due(Resolved(p.seq, now), None, None)
    return None


def _child_due(
    p: Pending,
    mailbox: Mapping[str, Sequence[tuple[int, Event]]],
    taken: set[int],
    now: datetime,
) -> _Candidate | None:
    queue = mailbox.get(wait_type(p), ())
    if not queue:
        return None
    mid, event = queue[0]
    data = event.data if isinstance(event.data, dict) else {}
    if data.get("status") == "completed":
        output = data.get("output")
        value = decode_value("child", p.name, output)
        return event.time, 0, p.seq, Due(Resolved(p.seq, now, value), dumps(output), mid)
    found = data.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    failure = Failure(
        str(error.get("type", "eddic.EddicError")),
        str(error.get("message", "the child workflow failed")),
    )
    return event.time, 0, p.seq, Due(Resolved(p.seq, now, failure=failure), None, mid)


def _event_due(
    p: Pending,
    mailbox: Mapping[str, Sequence[tuple[int, Event]]],
    taken: set[int],
    now: datetime,
) -> _Candidate | None:
    deadline = p.deadline
    args = p.record.args
    match = args.get("match") if isinstance(args, Mapping) else None
    for mid, event in mailbox.get(p.name, ()):
        if mid in taken or not event_matches(event.data, match):
            continue
        if deadline is not None and event.time > deadline:
            break  # the oldest that fits came after the deadline: the timeout wins
        taken.add(mid)
        resolved = Resolved(p.seq, now, event)
        return event.time, 0, p.seq, Due(resolved, dumps(event_to_json(event)), mid)
    if deadline is not None and deadline <= now:
        failure = Failure(
            "eddic.EventTimeout", f"no {p.name!r} event arrived by {deadline.isoformat()}"
        )
        return deadline, 1, p.seq, Due(Resolved(p.seq, now, failure=failure), None, None)
    return None


#: What can fall due by itself, by the kind of the pending command (the rest, activities, are
#: run by the worker and resolved by their outcome).
_DUE_BY_KIND = {"timer": _timer_due, "event": _event_due, "child": _child_due}
#: Kinds resolved through the instance's mailbox.
_MAILBOX_KINDS = frozenset({"event", "child"})


def next_due(
    pending: Sequence[Pending], mailbox: Mapping[str, Sequence[tuple[int, Event]]], now: datetime
) -> Due | None:
    """The earliest due timer, delivered event or event timeout among ``pending``, or None.

    ``mailbox`` holds the unconsumed events by type, oldest first, as ``(mailbox id, event)``.
    """
    candidates: list[_Candidate] = []
    taken: set[int] = set()  # mailbox events already given to an earlier wait
    for p in pending:
        rule = _DUE_BY_KIND.get(p.kind)
        found = None if rule is None else rule(p, mailbox, taken, now)
        if found is not None:
            candidates.append(found)
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c[0], c[1], c[2]))[3]
