"""An instance's history read as a timeline: one entry per command, with how and when it ended.

The history is two streams of records (scheduled, resolved) keyed by ``seq``; people think in
commands. :func:`build` pairs them up, names each outcome in plain words (an activity
``completed``, a timer ``fired``, an event ``timed out``, ...) and keeps the times, so the CLI can
print a timeline and tests can assert on ``"activity reserve_inventory: completed"``.

It needs no workflow code. Whether an unresolved timer or event wait is still ``waiting`` or was
``cancelled`` (a losing ``First`` branch) is read from the shape of the history: the commands of
one yield are written together, so a wait that stays unresolved while the workflow went on to
yield something else (or finished) was cancelled. One case stays ambiguous without the code: a
wait inside a nested ``First`` that lost while an enclosing ``All`` is still waiting shows as
``waiting`` until the workflow moves on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..kernel import RUN_TO_COMPLETION

__all__ = ["FINISHED", "STATUSES", "Entry", "build"]

#: Every status an instance can have, in the order of its life (the CLI's and viewer's filters).
STATUSES = (
    "running",
    "waiting_for_timer",
    "waiting_for_event",
    "compensating",
    "completed",
    "failed",
    "cancelled",
)
#: Statuses after which nothing more is recorded.
FINISHED = frozenset({"completed", "failed", "cancelled"})


#: How each kind of command ended, by kind: (with a value, with a failure).
_ENDINGS: dict[str, tuple[str, str]] = {
    "activity": ("completed", "failed"),
    "compensation": ("completed", "failed"),
    "timer": ("fired", "failed"),
    "event": ("received", "timed out"),
    "publish": ("published", "failed"),
    "child": ("completed", "failed"),
}


@dataclass(frozen=True)
class Entry:
    """One command of an instance: what was asked, when, and how it ended.

    ``state`` is one of ``completed``, ``failed`` (activities and compensations), ``fired``
    (timers), ``received`` / ``timed out`` (event waits), ``published``, ``running`` (an activity
    without a recorded outcome yet), ``waiting`` (a timer or event wait still pending) and
    ``cancelled`` (a wait the workflow stopped waiting for). ``value`` and ``failure`` are the
    stored JSON.
    """

    seq: int
    kind: str
    name: str
    args: Any
    scheduled_at: datetime
    deadline: datetime | None
    state: str
    resolved_at: datetime | None = None
    value: Any = None
    failure: Mapping[str, Any] | None = None

    @property
    def line(self) -> str:
        """``"<kind> <name>: <state>"``, e.g. ``"event payment.confirmed: timed out"``."""
        return f"{self.kind} {self.name}: {self.state}"

    @property
    def duration(self) -> timedelta | None:
        """From scheduled to resolved; None while unresolved."""
        if self.resolved_at is None:
            return None
        return self.resolved_at - self.scheduled_at

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


def build(history: Iterable[Mapping[str, Any]], *, status: str) -> list[Entry]:
    """Entries in seq order from decoded history rows (``App.history``) and the instance status."""
    scheduled: dict[int, Mapping[str, Any]] = {}
    resolved: dict[int, Mapping[str, Any]] = {}
    group_of: dict[int, int] = {}  # seq -> the yield (run of scheduled records) it belongs to
    group = 0
    after_outcome = True
    for row in history:
        seq = int(row["seq"])
        if row["record"] == "scheduled":
            if after_outcome:
                group += 1
                after_outcome = False
            scheduled[seq] = row
            group_of[seq] = group
        elif row["record"] == "resolved":  # (a cancel record belongs to no command)
            resolved.setdefault(seq, row)
            after_outcome = True
    finished = status in FINISHED
    entries = []
    for seq in sorted(scheduled):
        row = scheduled[seq]
        outcome = resolved.get(seq)
        moved_on = finished or group_of[seq] < group
        entries.append(_entry(row, outcome, moved_on))
    return entries


def _entry(row: Mapping[str, Any], outcome: Mapping[str, Any] | None, moved_on: bool) -> Entry:
    kind = str(row["kind"])
    common: dict[str, Any] = {
        "seq": int(row["seq"]),
        "kind": kind,
        "name": str(row["name"]),
        "args": row["args"],
        "scheduled_at": row["at"],
        "deadline": row["deadline"],
    }
    if outcome is not None:
        ok, bad = _ENDINGS.get(kind, ("resolved", "failed"))
        failure = outcome["failure"]
        return Entry(
            **common,
            state=bad if failure is not None else ok,
            resolved_at=outcome["at"],
            value=outcome["value"],
            failure=failure,
        )
    if kind == "continue":  # the run's last record: the next run began with its input
        return Entry(**common, state="continued")
    state = "running" if kind in RUN_TO_COMPLETION else "cancelled" if moved_on else "waiting"
    return Entry(**common, state=state)
