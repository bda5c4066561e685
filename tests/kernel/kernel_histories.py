"""Helpers for the kernel tests: hand-written histories, fed to an interpreter durabletask-style.

A history is a list of ``Scheduled``/``Resolved`` records. ``replayed(workflow, history)`` feeds
it to a fresh interpreter with ``Interpreter.replay``; the test then asks ``decide()`` for what
the code does next, or goes on live with ``feed(Resolved(...))`` and ``decide()``.

Only ``eddic.kernel`` is imported: these tests need no database, thread or clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from eddic.kernel import Failure, Interpreter, Record, Resolved, Scheduled

#: The start time of every instance in these tests.
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
INSTANCE = "order-42"


def at(seconds: float) -> datetime:
    """``seconds`` after ``T0``."""
    return T0 + timedelta(seconds=seconds)


def activity(seq: int, name: str, *args: Any, t: float = 0, **kwargs: Any) -> Scheduled:
    """The record of an activity call, as the kernel writes it."""
    return Scheduled(seq, "activity", name, {"args": args, "kwargs": kwargs}, at(t))


def compensation(seq: int, name: str, *args: Any, t: float = 0, **kwargs: Any) -> Scheduled:
    """The record of a compensation the kernel emitted."""
    return Scheduled(seq, "compensation", name, {"args": args, "kwargs": kwargs}, at(t))


def timer(seq: int, seconds: float, *, t: float = 0) -> Scheduled:
    """The record of ``Sleep(seconds)`` yielded at ``at(t)``."""
    return Scheduled(seq, "timer", "sleep", {"seconds": float(seconds)}, at(t), at(t + seconds))


def event(seq: int, event_type: str, timeout: float | None = None, *, t: float = 0) -> Scheduled:
    """The record of ``WaitEvent(event_type, timeout)`` yielded at ``at(t)``."""
    deadline = None if timeout is None else at(t + timeout)
    return Scheduled(seq, "event", event_type, {"timeout": timeout}, at(t), deadline)


def done(seq: int, value: Any = None, *, t: float = 0) -> Resolved:
    """A successful outcome of command ``seq``, recorded at ``at(t)``."""
    return Resolved(seq, at(t), value)


def failed(
    seq: int,
    type: str = "ValueError",
    message: str = "boom",
    *,
    attempts: int = 1,
    t: float = 0,
) -> Resolved:
    """A failed outcome of command ``seq``, recorded at ``at(t)``."""
    return Resolved(seq, at(t), failure=Failure(type, message, attempts))


def interpreter(
    workflow: Callable[..., Any],
    input: Any = None,
    *,
    instance_id: str = INSTANCE,
    started_at: datetime = T0,
) -> Interpreter:
    return Interpreter(workflow, input, instance_id=instance_id, started_at=started_at)


def replayed(
    workflow: Callable[..., Any],
    history: Iterable[Record],
    input: Any = None,
    *,
    instance_id: str = INSTANCE,
    started_at: datetime = T0,
) -> Interpreter:
    """A fresh interpreter that has replayed ``history``."""
    interp = interpreter(workflow, input, instance_id=instance_id, started_at=started_at)
    interp.replay(history)
    return interp


def pending_seqs(interp: Interpreter) -> list[int]:
    return [p.seq for p in interp.pending]


def kinds_and_names(records: Iterable[Record]) -> list[tuple[str, str] | tuple[str, int]]:
    """``("activity", "charge")`` for a scheduled record, ``("resolved", seq)`` for an outcome."""
    out: list[tuple[str, str] | tuple[str, int]] = []
    for record in records:
        if isinstance(record, Scheduled):
            out.append((record.kind, record.name))
        else:
            out.append(("resolved", record.seq))
    return out
