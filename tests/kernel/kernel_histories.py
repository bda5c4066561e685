"""Helpers for the kernel tests: hand-written histories, fed to an interpreter durabletask-style.

A history is a list of ``Scheduled``/``Resolved`` records. ``replayed(workflow, history)`` feeds
it to a fresh interpreter with ``Interpreter.replay``; the test then asks ``decide()`` for what
the code does next, or goes on live with ``feed(Resolved(...))`` and ``decide()``.

Only ``eddic.kernel`` is imported: these tests need no database, thread or clock.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Iterable
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


#: The style the helpers run workflows in: "generator" as written, or "async", the generator
#: function turned into its ``async def`` twin (``async_twin``). tests/kernel/conftest.py runs
#: every test of a module that uses these helpers in both.
STYLE = ["generator"]


class _Awaiting:
    """What the twin awaits for one yielded object: it yields that very object out."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.obj)


def async_twin(gen_func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``async def`` twin of a generator workflow: it awaits what the generator yields (so
    the interpreter sees the same objects), sends back the values and throws back the errors."""

    async def twin(*args: Any, **kwargs: Any) -> Any:
        gen = gen_func(*args, **kwargs)
        if not inspect.isgenerator(gen):
            return gen
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = gen.send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = await _Awaiting(yielded), None
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:  # a command's failure, Cancelled, ...
                value, error = None, exc

    twin.__signature__ = inspect.signature(gen_func)  # type: ignore[attr-defined]
    twin.__name__ = getattr(gen_func, "__name__", "twin")
    twin.__qualname__ = getattr(gen_func, "__qualname__", "twin")
    return twin


def in_style(workflow: Callable[..., Any]) -> Callable[..., Any]:
    """``workflow`` in the style of this run of the test (see ``STYLE``)."""
    if STYLE[0] == "async" and inspect.isgeneratorfunction(workflow):
        return async_twin(workflow)
    return workflow


def interpreter(
    workflow: Callable[..., Any],
    input: Any = None,
    *,
    instance_id: str = INSTANCE,
    started_at: datetime = T0,
) -> Interpreter:
    return Interpreter(in_style(workflow), input, instance_id=instance_id, started_at=started_at)


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
