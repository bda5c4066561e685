"""The one clock of the runtime.

Every due time (timers, deadlines, leases, backoff) is computed from :func:`utcnow`, which reads
``datetime.now(timezone.utc)`` at call time, so freezegun's ``freeze_time`` controls the whole
runtime. Real waits (the busy timeout, a worker's idle sleep, HTTP timeouts) use real time.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_text(when: datetime | None) -> str | None:
    """A UTC time as fixed-width ISO text, so that text order is time order in SQL."""
    if when is None:
        return None
    last = _last_text
    if last[0] is when:  # one step writes its ``now`` several times
        return last[1]
    u = when if when.tzinfo is timezone.utc else when.astimezone(timezone.utc)
    # isoformat(timespec="microseconds") gives the same text at twice the cost (a step writes
    # a time five times or so)
    text = _FORMAT % (u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond)
    _remember(when, text)
    return text


_FORMAT = "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00"
_last_text: tuple[datetime | None, str] = (None, "")


def _remember(when: datetime, text: str) -> None:
    global _last_text
    _last_text = (when, text)


def from_text(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text)
