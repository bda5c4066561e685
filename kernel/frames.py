"""Where a suspended workflow stands: its frames, from its own down to the innermost.

A generator workflow suspended at a ``yield from helper()`` is two frames deep (the workflow's and
the helper's, reached through ``gi_yieldfrom``); an ``async def`` workflow awaiting a helper
coroutine that awaits a command is three (``cr_await`` leads from each to the next, ending in
the command's ``__await__``). Frames of eddic's own code (a command's ``__await__``) are left
out: they say nothing about the workflow. Locals are a shallow snapshot, taken when asked.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Frame", "suspended_frames"]

# The package eddic is installed as ("eddic"): a frame whose module is it or below it is eddic's.
_PACKAGE = __name__.partition(".")[0]
_PREFIX = _PACKAGE + "."


@dataclass(frozen=True)
class Frame:
    """One frame a suspended workflow stands in.

    ``function`` is the code's name, ``filename``/``lineno`` where it is suspended (the line of
    the ``yield`` or ``await``), ``locals`` a snapshot of its local variables (a copy of the
    frame's; the objects themselves are the workflow's, not copies).
    """

    function: str
    filename: str
    lineno: int
    locals: Mapping[str, Any] = field(hash=False)


def suspended_frames(gen: Any) -> tuple[Frame, ...]:
    """The frames of a suspended generator or coroutine, outermost first (see the module)."""
    out: list[Frame] = []
    current = gen
    while current is not None:
        if inspect.isgenerator(current):
            frame, inner = current.gi_frame, current.gi_yieldfrom
        elif inspect.iscoroutine(current):
            frame, inner = current.cr_frame, current.cr_await
        else:  # an iterator of another kind (a user's awaitable): no frame to show
            break
        if frame is None:  # finished
            break
        if not _is_eddic(frame.f_globals.get("__name__")):
            lineno = frame.f_lineno
            out.append(
                Frame(
                    frame.f_code.co_name,
                    frame.f_code.co_filename,
                    lineno if isinstance(lineno, int) else frame.f_code.co_firstlineno,
                    dict(frame.f_locals),
                )
            )
        current = inner
    return tuple(out)


def _is_eddic(module: Any) -> bool:
    return isinstance(module, str) and (module == _PACKAGE or module.startswith(_PREFIX))
