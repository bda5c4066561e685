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
    global _last_text, _prior_text
    if when is None:
        return None
    # The last two times formatted, the latest first: a step writes its ``now`` several times,
    # with its lease's expiry between them.
    last = _last_text
    if last[0] is when:
        return last[1]
    prior = _prior_text
    if prior[0] is when:
        _prior_text, _last_text = last, prior
        return prior[1]
    u = when if when.tzinfo is timezone.utc else when.astimezone(timezone.utc)
    # Formatting the seven fields (``%`` or ``isoformat``) costs about 11k instructions, and
    # reading a datetime's fields one by one is dear too; the offset from the epoch gives the
    # seconds and microseconds, and the text up to the minute is kept (a step's times share it).
    since = u - _EPOCH
    seconds = since.seconds
    minute = since.days * 1440 + seconds // 60
    head = _minutes.get(minute)
    if head is None:
        head = _minute_text(u, minute)
    micro = since.microseconds
    text = f"{head}{_SECONDS[seconds % 60]}{_DIGITS[micro // 1000]}{_DIGITS_UTC[micro % 1000]}"
    _prior_text = last
    _last_text = (when, text)  # one tuple: a thread never sees one's time with another's text
    return text


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECONDS = [f"{n:02d}." for n in range(60)]
_DIGITS = [f"{n:03d}" for n in range(1000)]
_DIGITS_UTC = [f"{n:03d}+00:00" for n in range(1000)]
_minutes: dict[int, str] = {}  # "YYYY-MM-DDTHH:MM:" by minutes since the epoch, a few kept
_last_text: tuple[datetime | None, str] = (None, "")
_prior_text: tuple[datetime | None, str] = (None, "")


def _minute_text(u: datetime, minute: int) -> str:
    if len(_minutes) >= 16:
        _minutes.clear()
    head = _minutes[minute] = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:"
    return head


def from_text(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text)
