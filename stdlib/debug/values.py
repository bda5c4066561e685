"""Rendering a workflow's values for a person to read, safely: ``render(value) -> str``.

What the debugger shows of a local variable or an argument: a ``repr``, bounded like
``reprlib``'s (long strings cut with an ellipsis, at most a few items of a container, a few
levels deep, the whole at most ``limit`` characters), and safe on any object. The built-in
scalars and containers (exact types only, never subclasses) are rendered here without running
any code of their contents; anything else is rendered by its own ``repr()`` and by nothing else
(no ``str``, no ``len``, no iteration, no sorting), and a ``repr`` that raises is shown as
``<repr failed: TypeError: ...>`` rather than propagated.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render"]

#: At most this many items of a list, tuple, set or dict are shown.
MAX_ITEMS = 10
#: Containers nested deeper than this are shown as ``[...]``, ``{...}``, ``(...)``.
MAX_DEPTH = 4

_ELLIPSIS = "..."
_SCALARS = (type(None), bool, int, float, complex)
# Exact type -> (opening, closing, the repr of an empty one).
_SEQUENCES: dict[type[Any], tuple[str, str, str]] = {
    list: ("[", "]", "[]"),
    tuple: ("(", ")", "()"),
    set: ("{", "}", "set()"),
    frozenset: ("frozenset({", "})", "frozenset()"),
}


def render(value: Any, limit: int = 200) -> str:
    """``value`` as a bounded, safe ``repr`` of at most ``limit`` characters (see the module)."""
    limit = max(limit, 8)
    return _cut(_render(value, limit, 0), limit)


def _render(value: Any, limit: int, depth: int) -> str:
    cls = type(value)
    if cls in _SCALARS:
        return _repr(value)
    if cls is str or cls is bytes or cls is bytearray:
        return _text(value, limit)
    if cls is dict:
        if depth >= MAX_DEPTH:
            return "{...}"
        items = ((_render(k, limit, depth + 1), v) for k, v in value.items())
        return _items("{", "}", ((f"{k}: ", v) for k, v in items), limit, depth)
    brackets = _SEQUENCES.get(cls)
    if brackets is not None:
        opening, closing, empty = brackets
        if not value:
            return empty
        if depth >= MAX_DEPTH:
            return f"{opening}...{closing}"
        text = _items(opening, closing, (("", v) for v in value), limit, depth)
        if cls is tuple and len(value) == 1:
            text = text[:-1] + ",)"
        return text
    return _cut(_repr(value), limit)


def _items(opening: str, closing: str, items: Any, limit: int, depth: int) -> str:
    """The items of a container, each rendered within what is left of ``limit``: rendering
    stops as soon as the text is full, so a huge container costs no more than a small one."""
    parts: list[str] = []
    used = len(opening) + len(closing)
    for count, (prefix, item) in enumerate(items):
        if count >= MAX_ITEMS or used >= limit:
            parts.append(_ELLIPSIS)
            break
        part = prefix + _render(item, max(limit - used, 8), depth + 1)
        parts.append(part)
        used += len(part) + 2
    return opening + ", ".join(parts) + closing


def _text(value: str | bytes | bytearray, limit: int) -> str:
    """A string's repr in at most ``limit`` characters: cut, with an ellipsis before its closing
    quote, from a slice (a long string is never copied, let alone escaped, whole)."""
    if len(value) <= limit:
        text = repr(value)
        if len(text) <= limit:
            return text
    closing = 2 if isinstance(value, bytearray) else 1  # bytearray(b'...')
    keep = limit
    while True:
        head = repr(value[:keep])
        over = len(head) + len(_ELLIPSIS) - limit
        if over <= 0 or keep == 0:
            return head[:-closing] + _ELLIPSIS + head[-closing:]
        # Escapes make a repr longer than its slice: shrink the slice in proportion.
        keep = min(keep - 1, keep * (limit - len(_ELLIPSIS)) // len(head))


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<repr failed: {type(exc).__name__}: {_message(exc)}>"


def _message(exc: Exception) -> str:
    """The message of what a ``repr`` raised, itself safe and short."""
    try:
        text = str(exc)
    except Exception:
        return "(its message cannot be shown either)"
    return _cut(text, 100)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS
