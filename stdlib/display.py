"""Plain-text rendering for the CLI: tables, timelines, replay steps and divergence reports."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from .replay import Divergence, Step
from .timeline import Entry

__all__ = [
    "call_text",
    "duration",
    "instance_text",
    "table",
    "timestamp",
    "to_json",
    "trace_line",
]


def timestamp(when: datetime | None) -> str:
    """``2026-03-01 12:00:00Z`` (milliseconds shown when not zero)."""
    if when is None:
        return "-"
    utc = when.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%d %H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def duration(delta: timedelta | None) -> str:
    """``0s``, ``250ms``, ``30s``, ``5m03s``, ``2h00m``, ``30d00h``."""
    if delta is None:
        return ""
    total = delta.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 1:
        return f"{sign}{round(total * 1000)}ms" if total else "0s"
    seconds = int(total)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m{secs:02d}s"
    return f"{sign}{secs}s"


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(value: Any, limit: int = 60) -> str:
    """A stored (JSON) value as compact JSON text, clipped."""
    return clip(json.dumps(value, default=_json_default, ensure_ascii=False), limit)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return repr(value)


def to_json(value: Any) -> str:
    """JSON for ``--json`` output: datetimes as ISO text, models as their JSON form."""
    return json.dumps(value, default=_json_default, indent=2, ensure_ascii=False)


def call_text(kind: str, name: str, args: Any) -> str:
    """A command in one short phrase: ``reserve(order_id="A1")``, ``sleep 30s``, ..."""
    if kind in ("activity", "compensation"):
        if isinstance(args, Mapping) and "__error__" not in args:
            inner = ", ".join(f"{k}={short(v, 30)}" for k, v in args.items())
        else:
            inner = short(args, 40)
        return f"{name}({clip(inner, 60)})"
    if kind == "timer" and isinstance(args, Mapping):
        if args.get("seconds") is not None:
            return f"sleep {duration(timedelta(seconds=float(args['seconds'])))}"
        if args.get("until") is not None:
            return f"sleep until {timestamp(datetime.fromisoformat(str(args['until'])))}"
    if kind == "event" and isinstance(args, Mapping) and args.get("timeout") is not None:
        return f"{name} (timeout {duration(timedelta(seconds=float(args['timeout'])))})"
    return name


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _outcome_text(entry: Entry) -> str:
    if entry.failure is not None:
        return f"{entry.failure.get('type', '?')}: {entry.failure.get('message', '')}"
    if entry.kind == "event" and isinstance(entry.value, Mapping) and "data" in entry.value:
        return f"data {short(entry.value['data'])}"
    if entry.state in ("waiting", "cancelled") and entry.deadline is not None:
        return f"deadline {timestamp(entry.deadline)}"
    if entry.kind in ("activity", "compensation") and entry.resolved:
        return f"-> {short(entry.value)}"
    return ""


def instance_text(info: Mapping[str, Any], entries: Sequence[Entry]) -> str:
    """``eddic show``: the instance's fields, then its history as a timeline."""
    head = [
        ("instance", str(info["instance_id"])),
        ("workflow", str(info["workflow_name"])),
        ("status", str(info["status"])),
        ("created", timestamp(info["created_at"])),
        ("updated", timestamp(info["updated_at"])),
        ("input", short(info["input_data"], 200)),
    ]
    if info.get("output_data") is not None:
        head.append(("output", short(info["output_data"], 200)))
    error = info.get("error")
    if error:
        head.append(("error", f"{error.get('type')}: {error.get('message')}"))
        for comp in error.get("compensation_errors") or []:
            head.append(("", f"compensation failed: {comp.get('type')}: {comp.get('message')}"))
    if info.get("wake_at") is not None and info["status"] not in ("completed", "failed"):
        head.append(("wakes", timestamp(info["wake_at"])))
    out = [f"{key:<9} {value}".rstrip() for key, value in head]
    start: datetime = info["created_at"]
    rows = [
        [
            str(e.seq),
            timestamp(e.scheduled_at),
            "+" + duration(e.scheduled_at - start),
            e.kind,
            call_text(e.kind, e.name, e.args),
            e.state,
            duration(e.duration),
            _outcome_text(e),
        ]
        for e in entries
    ]
    out.append("")
    if rows:
        headers = ["SEQ", "SCHEDULED", "AFTER", "KIND", "COMMAND", "STATE", "TOOK", "OUTCOME"]
        out.append(table(headers, rows))
    else:
        out.append("(no history)")
    return "\n".join(out)


def trace_line(step: Step) -> str:
    """One replay step: seq, command, and what was sent back into the workflow."""
    record = step.record
    command = "-" if record is None else call_text(record.kind, record.name, record.args)
    head = f"seq {step.seq:>3}  {step.kind:<12} {command}"
    if step.divergence is not None:
        return f"{head}  DIVERGED"
    if step.state == "completed":
        return f"{head}  -> {_repr(step.value)}"
    if step.state == "failed":
        return f"{head}  !! {type(step.error).__name__}: {step.error}"
    return f"{head}  ({step.state})"


def _repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def divergence_text(divergence: Divergence) -> str:
    return divergence.report()


def step_detail(step: Step) -> str:
    """One replay step in full, for ``eddic replay --step``."""
    lines = []
    if step.record is not None:
        record = step.record
        call = call_text(record.kind, record.name, record.args)
        lines.append(f"  recorded  {record.kind} {call}")
        lines.append(f"            scheduled {timestamp(record.at)}")
        if record.deadline is not None:
            lines.append(f"            deadline  {timestamp(record.deadline)}")
    if step.command is not None:
        lines.append(f"  yielded   {_repr(step.command, 100)}")
    if step.outcome is not None:
        lines.append(f"  resolved  {timestamp(step.outcome.at)}")
    if step.state == "completed":
        lines.append(f"  sent in   {_repr(step.value, 100)}")
    elif step.state == "failed":
        lines.append(f"  thrown in {type(step.error).__name__}: {step.error}")
    elif step.divergence is None:
        lines.append(f"  {step.state}")
    return "\n".join(lines)
