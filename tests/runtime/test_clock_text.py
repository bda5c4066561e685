"""Times are stored as fixed-width UTC text, so that SQL's text order is time order."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from eddic.clock import from_text, to_text


def some_times(n: int = 500) -> list[datetime]:
    rng = random.Random(7)
    base = datetime(1, 1, 1, tzinfo=timezone.utc)
    span = (datetime(9999, 12, 31, tzinfo=timezone.utc) - base).total_seconds()
    return [base + timedelta(seconds=rng.random() * span) for _ in range(n)]


def test_the_text_is_isoformat_with_microseconds_in_utc() -> None:
    for when in some_times():
        assert to_text(when) == when.isoformat(timespec="microseconds")
    assert to_text(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == (
        "2026-01-02T03:04:05.000000+00:00"
    )


def test_a_time_in_another_zone_is_written_as_the_same_instant_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert to_text(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=paris)) == (
        "2026-01-02T02:04:05.000006+00:00"
    )


def test_text_order_is_time_order_and_the_text_reads_back_as_the_same_time() -> None:
    times = some_times()
    texts = [to_text(t) for t in times]
    assert sorted(texts) == [to_text(t) for t in sorted(times)]
    assert [from_text(t) for t in texts] == times
    assert to_text(None) is None and from_text(None) is None
