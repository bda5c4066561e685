"""History records and the values they carry.

A history is an append-only list of two kinds of record: :class:`Scheduled`, written when the
workflow yields a command, and :class:`Resolved`, written when that command's outcome is known.
Both are plain frozen data; the kernel never reads or writes storage.
"""

from __future__ import annotations

import traceback as _traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Failure:
    """A recorded failure: what raised, what it said, after how many attempts."""

    type: str
    message: str
    attempts: int = 1
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, attempts: int = 1) -> Failure:
        kind = type(exc)
        name = kind.__qualname__
        if kind.__module__ not in ("builtins", "__main__"):
            name = f"{kind.__module__}.{name}"
        text = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(type=name, message=str(exc), attempts=attempts, traceback=text)


@dataclass(frozen=True, slots=True)
class Scheduled:
    """Written when the code yields a command: command number, kind, name, arguments, time.

    ``deadline`` is set for timers and event timeouts, so a replay reaches the same deadline.
    """

    seq: int
    kind: str
    name: str
    args: Any
    at: datetime
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    """Written when the outcome of command ``seq`` is known: a value, or a failure."""

    seq: int
    at: datetime
    value: Any = None
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Written when the instance is cancelled: from this point on, the workflow's current yield
    throws ``Cancelled(reason)`` (see the interpreter). It belongs to no command, so it has no
    seq; a replay throws it at the same point, after the same records."""

    at: datetime
    reason: str | None = None


Record = Scheduled | Resolved | Cancel


@dataclass(frozen=True, slots=True)
class Event:
    """An external event (CloudEvents attributes), the value of a ``WaitEvent``."""

    id: str
    type: str
    source: str
    time: datetime
    data: Any = field(default=None)
