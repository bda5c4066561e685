"""HTML built as text, where escaping is the default: :class:`Html` is markup we wrote, anything
else is data and goes through :func:`text` on the way in.

Every stored string (instance ids, workflow names, event types, values, error messages) can hold
``<script>``, quotes and control characters: ``text`` escapes the HTML specials, and writes each
character that could mislead a reader (controls, bidi overrides, zero-widths) as its visible
``\\x1b``-style escape, as the CLI does on a terminal. Attribute values are quoted with ``"`` and
escaped with ``quote=True``, so the same function is safe there. URLs are built by :func:`url`,
which percent-encodes every query value: an id holding ``&`` or ``#`` stays one value.
"""

from __future__ import annotations

import html as _html
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "Html",
    "attrs",
    "duration",
    "href",
    "join",
    "json_text",
    "lines",
    "tag",
    "text",
    "timestamp",
    "url",
]

# controls (C0, DEL, C1), bidi embeddings/overrides/isolates, zero-widths, line separators
_MISLEADING = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


class Html(str):
    """Text that is already markup: written by us, or built from escaped parts."""

    __slots__ = ()


def text(value: Any, limit: int | None = None) -> Html:
    """``value`` as escaped HTML text (``str()`` of it), cut to ``limit`` characters first."""
    if isinstance(value, Html):
        return value
    raw = value if isinstance(value, str) else str(value)
    if limit is not None and len(raw) > limit:
        raw = raw[: max(limit - 1, 0)] + "…"
    raw = _MISLEADING.sub(lambda m: repr(m.group())[1:-1], raw)
    return Html(_html.escape(raw, quote=True))


def lines(value: Any, limit: int | None = None) -> Html:
    """Like :func:`text`, keeping line breaks (a traceback, a message of several lines)."""
    raw = value if isinstance(value, str) else str(value)
    if limit is not None and len(raw) > limit:
        raw = raw[: max(limit - 1, 0)] + "…"
    return Html("\n".join(text(line) for line in raw.split("\n")))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    return Html(sep.join(text(p) for p in parts))


def attrs(values: Mapping[str, Any]) -> Html:
    """`` name="value"`` pairs; None and False leave the attribute out, True writes it bare."""
    out = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        key = name.rstrip("_").replace("_", "-")  # class_ -> class, data_x -> data-x
        out.append(f" {key}" if value is True else f' {key}="{text(value)}"')
    return Html("".join(out))


def tag(element: str, /, *children: Any, **attributes: Any) -> Html:
    """``<name attrs>children</name>``; children are escaped unless they are :class:`Html`."""
    inner = "".join(text(c) for c in children if c is not None)
    return Html(f"<{element}{attrs(attributes)}>{inner}</{element}>")


def href(path: str, **query: Any) -> str:
    """``path?k=v&...`` with every value percent-encoded; None values are left out."""
    items = [(k, str(v)) for k, v in query.items() if v is not None]
    return f"{path}?{urlencode(items)}" if items else path


def url(path: str, **query: Any) -> Html:
    """:func:`href`, escaped for an attribute."""
    return text(href(path, **query))


def json_text(value: Any, limit: int = 2_000, *, compact: bool = False) -> Html:
    """A stored JSON value, pretty-printed (or on one line) and escaped, cut at ``limit``."""
    try:
        indent = None if compact else 2
        shown = json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        shown = repr(value)
    if len(shown) > limit:
        shown = shown[: max(limit - 1, 0)] + "…"
    # our own line breaks stay (a newline inside a stored string is escaped as \n by dumps)
    return Html("\n".join(text(line) for line in shown.split("\n")))


def timestamp(when: datetime | None) -> Html:
    """``2026-03-01 12:00:00.123Z`` in a ``<time>`` element (UTC; ``-`` for None)."""
    if when is None:
        return Html("-")
    utc = when.astimezone(timezone.utc)
    shown = utc.strftime("%Y-%m-%d %H:%M:%S")
    if utc.microsecond:
        shown += f".{utc.microsecond // 1000:03d}"
    return tag("time", shown + "Z", datetime=utc.isoformat())


def duration(delta: timedelta | None) -> str:
    """``850 ms``, ``12.4 s``, ``3 min 05 s``, ``2 h 10 min``, ``4 d 3 h``; ``-`` for None."""
    if delta is None:
        return "-"
    seconds = delta.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
