"""An instance's timeline as bars on one time axis, summarised when it is long.

Each command is a bar from when it was scheduled to when it ended (to now, or the instance's
last update, while unresolved). A long history is summarised rather than drawn row by row: runs
of consecutive commands with the same kind, name and outcome become one row (``×120``, with the
total and the longest duration), and when even those are many, the first and last rows are shown
with the number left out between them. So a 10,000-step instance is a page of about a hundred
rows, and its cost is one pass over the entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ...debug.timeline import Entry
from ..html import Html, duration, tag, text

__all__ = ["render_timeline"]

ROWS = 60  # rows drawn one command each, at most
GROUPS_SHOWN = 40  # rows of a summarised timeline: first and last halves


@dataclass
class _Row:
    kind: str
    name: str
    state: str
    start: datetime
    end: datetime
    count: int
    longest: timedelta
    total: timedelta
    first_seq: int
    last_seq: int


def _rows(entries: list[Entry], until: datetime) -> list[_Row]:
    rows: list[_Row] = []
    for e in entries:
        end = e.resolved_at or until
        took = max(end - e.scheduled_at, timedelta(0))
        last = rows[-1] if rows else None
        if (
            last is not None
            and len(entries) > ROWS
            and (last.kind, last.name, last.state) == (e.kind, e.name, e.state)
        ):
            last.count += 1
            last.end = max(last.end, end)
            last.total += took
            last.longest = max(last.longest, took)
            last.last_seq = e.seq
            continue
        rows.append(_Row(e.kind, e.name, e.state, e.scheduled_at, end, 1, took, took, e.seq, e.seq))
    return rows


def _bar(row: _Row, origin: datetime, span: float) -> Html:
    left = (row.start - origin).total_seconds() / span * 100
    width = max((row.end - row.start).total_seconds() / span * 100, 0.3)
    style = f"left:{min(left, 99.7):.2f}%;width:{min(width, 100 - min(left, 99.7)):.2f}%"
    title = f"{row.kind} {row.name}: {row.state}"
    return tag(
        "div",
        tag("div", class_=f"bar {row.state.replace(' ', '-')}", style=style, title=title),
        class_="track",
    )


def _line(row: _Row, origin: datetime, span: float) -> Html:
    seqs = f"seq {row.first_seq}" if row.count == 1 else f"seq {row.first_seq}–{row.last_seq}"
    label = f"{row.kind} {row.name}"
    times = f" ×{row.count}" if row.count > 1 else ""
    took = duration(row.longest) if row.count == 1 else f"≤ {duration(row.longest)}"
    return tag(
        "div",
        tag(
            "div",
            text(label, 60),
            tag("span", f"{times} · {row.state} · {seqs}", class_="muted"),
            class_="label",
            title=label,
        ),
        _bar(row, origin, span),
        tag("div", took, class_="muted"),
        class_="row",
        data_kind=row.kind,
        data_state=row.state,
    )


def render_timeline(entries: list[Entry], until: datetime) -> Html:
    """The timeline of ``entries`` (in seq order); ``until`` ends the unresolved bars."""
    if not entries:
        return tag("p", "no command yet", class_="muted")
    rows = _rows(entries, until)
    origin = min(r.start for r in rows)
    span = max((max(r.end for r in rows) - origin).total_seconds(), 1e-3)
    shown: list[Html] = []
    summary = None
    if len(rows) > GROUPS_SHOWN:
        half = GROUPS_SHOWN // 2
        left_out = rows[half:-half]
        commands = sum(r.count for r in left_out)
        shown = [_line(r, origin, span) for r in rows[:half]]
        shown.append(
            tag("div", f"… {commands} more commands in {len(left_out)} rows …", class_="gap")
        )
        shown += [_line(r, origin, span) for r in rows[-half:]]
    else:
        shown = [_line(r, origin, span) for r in rows]
    if len(entries) > ROWS:
        summary = tag(
            "p",
            f"{len(entries)} commands, summarised: consecutive commands with the same kind, name "
            "and outcome share a row",
            class_="muted",
        )
    total = duration(timedelta(seconds=span))
    return tag(
        "div",
        summary,
        tag("p", f"from the first command to the last: {total}", class_="muted"),
        *shown,
        class_="timeline",
        id="timeline",
    )
