"""Plain-text rendering for the CLI: tables, timelines, replay steps and divergence reports.

Stored text (ids, names, errors, values) is whatever a caller or a hand edit put there, and it
reaches a terminal: everything here passes it through :func:`escape`, so an instance id cannot
erase a line, move the cursor or reverse the text that follows it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from ..clock import utcnow
from ..debug.replay import Divergence, Step
from ..debug.timeline import FINISHED, Entry
from ..kernel import RUN_TO_COMPLETION

__all__ = [
    "call_text",
    "divergence_text",
    "duration",
    "escape",
    "instance_text",
    "parked_text",
    "table",
    "timestamp",
    "to_json",
    "trace_line",
]

#: What a terminal acts on instead of showing: C0 controls (the newline too), DEL, C1 controls,
#: the bidirectional marks, embeddings, overrides and isolates (they reorder what follows), the
#: line and paragraph separators, and lone surrogates (which cannot even be encoded).
_UNSAFE = r"\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_TEXT = re.compile(rf"[\x00-\x1f{_UNSAFE}]")
_UNSAFE_JSON = re.compile(f"[{_UNSAFE}]")  # json.dumps escapes C0 itself


def escape(text: Any) -> str:
    """``text`` with each character that could drive a terminal written as its ``repr`` escape
    (``\\x1b``, ``\\n``, ``\\u202e``); printable unicode is left as it is."""
    return _UNSAFE_TEXT.sub(_escaped_char, text if isinstance(text, str) else str(text))


def _escaped_char(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


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
    """JSON for ``--json`` output: datetimes as ISO text, models as their JSON form.

    Non-ASCII text stays readable; the characters :func:`escape` guards against are written as
    ``\\uXXXX``, which is the same JSON value (they can only occur inside strings).
    """
    text = json.dumps(value, default=_json_default, indent=2, ensure_ascii=False)
    return _UNSAFE_JSON.sub(_json_escape, text)


def call_text(kind: str, name: str, args: Any) -> str:
    """A command in one short phrase: ``reserve(order_id="A1")``, ``sleep 30s``, ..."""
    if kind in RUN_TO_COMPLETION:
        if isinstance(args, Mapping) and "__error__" not in args:
            inner = ", ".join(f"{k}={short(v, 30)}" for k, v in args.items())
        else:
            inner = short(args, 40)
        return f"{name}({clip(inner, 60)})"
    try:
        if kind == "timer" and isinstance(args, Mapping):
            if args.get("seconds") is not None:
                return f"sleep {duration(timedelta(seconds=float(args['seconds'])))}"
            if args.get("until") is not None:
                return f"sleep until {timestamp(_aware(args['until']))}"
        if kind == "child" and isinstance(args, Mapping):
            return f"{name}({short(args.get('input'), 40)}) as {short(args.get('instance_id'))}"
        if kind == "continue" and isinstance(args, Mapping):
            return f"continue as new with {short(args.get('input'), 60)}"
        if kind == "event" and isinstance(args, Mapping) and args.get("timeout") is not None:
            return f"{name} (timeout {duration(timedelta(seconds=float(args['timeout'])))})"
    except (TypeError, ValueError, OverflowError):  # not what eddic records: show it as stored
        return f"{name} {short(args)}"
    return name


def _aware(text: Any) -> datetime:
    when = datetime.fromisoformat(str(text))
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return when


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded.

    Cells are escaped (see :func:`escape`): they hold stored text.
    """
    rows = [[escape(cell) for cell in row] for row in rows]
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
    if (entry.kind in RUN_TO_COMPLETION or entry.kind == "child") and entry.resolved:
        return f"-> {short(entry.value)}"
    return ""


def instance_text(
    info: Mapping[str, Any], entries: Sequence[Entry], *, now: datetime | None = None
) -> str:
    """``eddic show``: the instance's fields, then its history as a timeline.

    Times to come are told against ``now`` (default: the clock), so one already past is shown
    as overdue, never as a wake-up still ahead.
    """
    now = utcnow() if now is None else now
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
    if info.get("custom_status") is not None:
        head.append(("custom", short(info["custom_status"], 200)))
    if info.get("parent_id") is not None:
        head.append(("parent", str(info["parent_id"])))
    if (info.get("run") or 1) > 1:
        head.append(("run", f"{info['run']} (continued as new {info['run'] - 1} times)"))
    if info.get("cancel_reason") is not None or info.get("cancel_requested"):
        head.append(("cancel", f"asked: {info.get('cancel_reason') or '(no reason given)'}"))
    unfinished = info["status"] not in FINISHED
    if unfinished and info.get("retry_after") is not None:
        head.extend(_parked_lines(info, now))
    else:
        head.extend(_error_lines(info.get("error")))
    if info.get("wake_at") is not None and unfinished:
        head.append(("wakes", _coming(info["wake_at"], now)))
    out = [_field(key, value) for key, value in head]
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


def now_text(
    waiting: Sequence[Mapping[str, Any]], compensations: Sequence[Mapping[str, Any]]
) -> str:
    """``eddic show`` with the code loaded: what the instance waits on now and what a failure
    would compensate now, in that order (``Replay.waiting`` and ``Replay.compensations``)."""
    out = []
    for title, entries in (
        ("waits on now", waiting),
        ("a failure would compensate", compensations),
    ):
        out.append(title if entries else f"{title}: nothing")
        for e in entries:
            seq = "" if e["seq"] is None else f"seq {e['seq']} "
            out.append(escape(f"  {seq}{e['kind']} {e['name']} {clip(str(e['args']), 100)}"))
    return "\n".join(out)


def _field(key: str, value: str) -> str:
    return f"{key:<9} {escape(value)}".rstrip()


def parked_text(info: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """Why and until when an instance is parked, as ``eddic show`` prints it."""
    lines = _parked_lines(info, utcnow() if now is None else now)
    return "\n".join(_field(key, value) for key, value in lines)


def _error_text(error: Mapping[str, Any]) -> str:
    return f"{error.get('type')}: {error.get('message')}"


def _error_lines(error: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not error:
        return []
    lines = [("error", _error_text(error))]
    for comp in error.get("compensation_errors") or []:
        if isinstance(comp, Mapping):
            lines.append(("", f"compensation failed: {_error_text(comp)}"))
    return lines


def _parked_lines(info: Mapping[str, Any], now: datetime) -> list[tuple[str, str]]:
    """A parked instance: a step failed in a way that stops it (not the workflow's own failure);
    it stays as it was until recovery retries it, or an operator does."""
    error = info.get("error") or {}
    reason = _error_text(error) if error else "(no error recorded)"
    if error.get("where"):
        reason += f" (while {error['where']})"
    retry_at: datetime = info["retry_after"]
    if retry_at > now:
        retry = f"automatically at {_coming(retry_at, now)}, by a serving worker's recovery pass"
    else:
        retry = f"{_coming(retry_at, now)}: a serving worker's next recovery pass retries it"
    command = f"eddic retry {shlex.quote(escape(info['instance_id']))} --import MODULE"
    return [("parked", reason), ("retry", retry), ("", f"to retry it now: {command}")]


def _coming(when: datetime, now: datetime) -> str:
    """A time that was to come: ``<time> (in 5m00s)``, or ``due now (overdue since <time>)``."""
    if when > now:
        return f"{timestamp(when)} (in {duration(when - now)})"
    return f"due now (overdue since {timestamp(when)})"


def trace_line(step: Step) -> str:
    """One replay step: seq, command, and what was sent back into the workflow (escaped)."""
    return escape(_trace_line(step))


def _trace_line(step: Step) -> str:
    record = step.record
    command = "-" if record is None else call_text(record.kind, record.name, record.args)
    head = f"seq {step.seq:>3}  {step.kind:<12} {command}"
    if step.divergence is not None:
        return f"{head}  DIVERGED"
    if step.state == "completed":
        return f"{head}  -> {_repr(step.value)}"
    if step.state == "failed":
        return f"{head}  !! {_exception_text(step.error)}"
    return f"{head}  ({step.state})"


def _repr(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user type's __repr__ must not stop the trace
        text = f"<{type(value).__name__}: repr failed with {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exception_text(error: BaseException | None) -> str:
    try:
        message = str(error)
    except Exception:
        message = "(its message cannot be shown)"
    return f"{type(error).__name__}: {message}"


def divergence_text(divergence: Divergence) -> str:
    """The divergence report with every stored text in it escaped.

    The sides' names and texts are escaped before the report is laid out, so none can add a
    line of its own; each line is escaped after, for what the report quotes inside values.
    """
    safe = replace(
        divergence,
        instance_id=escape(divergence.instance_id),
        message=escape(divergence.message),
        recorded_text=escape(divergence.recorded_text),
        now_text=escape(divergence.now_text),
        recorded=_escaped_side(divergence.recorded),
        now=_escaped_side(divergence.now),
    )
    return "\n".join(escape(line) for line in safe.report().split("\n"))


def _escaped_side(side: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if side is None:
        return None
    return {key: escape(v) if isinstance(v, str) else v for key, v in side.items()}


def step_detail(step: Step) -> str:
    """One replay step in full, for ``eddic replay --step`` (escaped)."""
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
        lines.append(f"  thrown in {_exception_text(step.error)}")
    elif step.divergence is None:
        lines.append(f"  {step.state}")
    return "\n".join(escape(line) for line in lines)
