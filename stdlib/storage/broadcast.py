"""Which instances a broadcast event reaches, on every backend: those waiting on its type with
no ``match``, or with one its data satisfies (``WaitEvent(match=)``)."""

from __future__ import annotations

from typing import Any

from ..kernel import event_matches
from ..serde import loads


def matching_targets(waiting: list[Any], payload: str) -> list[tuple[str, str]]:
    """Of ``(instance id, workflow name, match JSON)`` waits, the instances a broadcast of
    ``payload`` reaches: those with a wait that has no match, or one the data satisfies."""
    data = loads(payload)
    out: dict[str, str] = {}
    for target, name, match in waiting:
        if target not in out and event_matches(data, None if match is None else loads(match)):
            out[target] = str(name)
    return list(out.items())
