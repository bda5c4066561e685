"""Checks for the numbers and names users pass in, so bad values fail at the call that made them.

Every check raises ``TypeError`` (wrong type) or ``ValueError`` (a value no deadline, lease or
id can be built from) with a message naming what was wrong, before anything is written.
"""

from __future__ import annotations

from typing import Any

from .kernel.commands import finite_seconds

#: The longest duration eddic accepts anywhere: a deadline this far out still fits a datetime
#: (``datetime.max`` is in the year 9999) from any present-day ``now``.
MAX_SECONDS = 100 * 365 * 86_400.0


def seconds(value: Any, what: str, *, allow_zero: bool = True, allow_none: bool = False) -> Any:
    """``value`` as a float number of seconds, finite, not negative, at most ``MAX_SECONDS``
    (zero only when ``allow_zero``; ``None`` only when ``allow_none``)."""
    if value is None and allow_none:
        return None
    number = finite_seconds(value, what)  # a number or timedelta, finite, not negative
    if number == 0 and not allow_zero:
        raise ValueError(f"{what} must be > 0 seconds, got {value!r}")
    if number > MAX_SECONDS:
        raise ValueError(
            f"{what} must be at most {MAX_SECONDS:.0f} seconds (100 years), got {value!r}"
        )
    return number


def count(value: Any, what: str, *, minimum: int = 0) -> int:
    """An int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return value


def name(value: Any, what: str) -> str:
    """A non-empty string (an instance id, an event type, a workflow name)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {value!r}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value
