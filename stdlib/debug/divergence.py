"""Divergences: what history recorded at a seq, what the code yields there now, field by field.

:func:`describe_command` states a command the way the runtime records it (kind, name, arguments
bound to parameter names and serialised), so the two sides compare like for like.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..kernel import CallActivity, Command, Publish, Scheduled, Sleep, SleepUntil, WaitEvent
from ..runtime.instance import resolve_activity
from ..serde import to_jsonable

__all__ = ["Divergence", "FieldDiff", "describe_command", "record_fields"]

_FIELDS = ("seq", "kind", "name", "args", "outcome")


@dataclass(frozen=True)
class FieldDiff:
    """One field of a divergence: what history recorded and what the code yields now."""

    field: str
    recorded: Any
    now: Any

    @property
    def differs(self) -> bool:
        return bool(self.recorded != self.now)


@dataclass(frozen=True)
class Divergence:
    """Where the current code parts from the recorded history.

    ``recorded`` and ``now`` map ``seq``/``kind``/``name``/``args`` (or ``outcome``) to values;
    either is None when that side has no command there (``recorded_text``/``now_text`` say what
    it has instead). ``message`` is the kernel's full explanation.
    """

    instance_id: str
    seq: int
    message: str
    recorded: Mapping[str, Any] | None
    now: Mapping[str, Any] | None
    recorded_text: str
    now_text: str

    @property
    def fields(self) -> list[FieldDiff]:
        """The fields either side has, in a fixed order."""
        recorded, now = self.recorded or {}, self.now or {}
        return [
            FieldDiff(name, recorded.get(name), now.get(name))
            for name in _FIELDS
            if name in recorded or name in now
        ]

    def report(self) -> str:
        """A plain-text report: the two sides, field by field, and the likely cause."""
        lines = [f"instance {self.instance_id} diverges at seq {self.seq}"]
        lines.append(f"  recorded: {self.recorded_text}")
        lines.append(f"  now:      {self.now_text}")
        rows = [(d.field, _show(d.recorded, self.recorded, d.field), d) for d in self.fields]
        if rows:
            width = max(len("recorded"), *(len(text) for _f, text, _d in rows))
            lines.append(f"  {'field':<8} {'recorded':<{width}}    now")
            for name, text, diff in rows:
                mark = "!=" if diff.differs else "  "
                lines.append(
                    f"  {name:<8} {text:<{width}} {mark} {_show(diff.now, self.now, name)}"
                )
        lines.append(textwrap.fill(self.message, 100, initial_indent="  ", subsequent_indent="  "))
        lines.append(
            textwrap.fill(self.fix(), 100, initial_indent="  fix: ", subsequent_indent="       ")
        )
        return "\n".join(lines)

    def fix(self) -> str:
        """How a ``ctx.patched`` guard would make the change safe for this instance."""
        new = self.now_text if self.now is not None else "the new code"
        old = self.recorded_text if self.recorded is not None else "what it did before"
        change = _change_id(self.now or self.recorded or {})
        return (
            f"if the change at seq {self.seq} is meant, guard it: put the new code ({new}) "
            f"under `if ctx.patched({change!r}):` and keep the old path ({old}) in its `else:`; "
            "instances recorded before the change replay the old path, new ones take the new. "
            "Once no instance is left before the change, drop the guard and call "
            f"ctx.deprecate_patch({change!r})."
        )


def _change_id(side: Mapping[str, Any]) -> str:
    """A change id to propose, from the command the change is about."""
    name = str(side.get("name") or "change")
    return f"{name}-v2".replace(" ", "-")


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any, side: Mapping[str, Any] | None, name: str) -> str:
    if side is None or name not in side:
        return "-"
    return _short(value)


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, str):
        return _clip(value, limit)
    try:
        return _clip(json.dumps(value, ensure_ascii=False), limit)
    except (TypeError, ValueError):
        return _clip(repr(value), limit)


def describe_command(command: Command, *, seq: int, compensating: bool = False) -> dict[str, Any]:
    """``seq``/``kind``/``name``/``args`` of a command, as the runtime would record them.

    Mirrors the kernel's handler table; activity arguments are bound to parameter names and
    serialised like the runtime does, so they compare equal to recorded ones.
    """
    args: dict[str, Any]
    if isinstance(command, CallActivity):
        kind = "compensation" if compensating else "activity"
        return {"seq": seq, "kind": kind, "name": command.name, "args": _activity_args(command)}
    if isinstance(command, Sleep):
        return {"seq": seq, "kind": "timer", "name": "sleep", "args": {"seconds": command.seconds}}
    if isinstance(command, SleepUntil):
        args = {"until": command.when.isoformat()}
        return {"seq": seq, "kind": "timer", "name": "sleep", "args": args}
    if isinstance(command, WaitEvent):
        args = {"timeout": command.timeout}
        return {"seq": seq, "kind": "event", "name": command.event_type, "args": args}
    if isinstance(command, Publish):
        args = {"data": _jsonable(command.data), "source": command.source}
        return {"seq": seq, "kind": "publish", "name": command.event_type, "args": args}
    return {"seq": seq, "kind": type(command).__name__, "name": "?", "args": repr(command)}


def _activity_args(command: CallActivity) -> Any:
    act = resolve_activity(command)
    if act is not None:
        try:
            return act.arguments_json(act.bind(command.args, command.kwargs))
        except Exception:
            pass  # shown raw below: the divergence report must not fail on odd arguments
    return {"args": _jsonable(list(command.args)), "kwargs": _jsonable(dict(command.kwargs))}


def _jsonable(value: Any) -> Any:
    try:
        return to_jsonable(value, what="a value")
    except Exception:
        return repr(value)


def record_fields(record: Scheduled) -> dict[str, Any]:
    return {"seq": record.seq, "kind": record.kind, "name": record.name, "args": record.args}
