"""The transactional outbox relay: pending rows to a sink, at least once, in order per instance.

Rows are written by ``Publish`` and ``ctx.publish`` in the same transaction as the history record
that produced them. The relay claims the head row of each instance's queue, delivers it, and marks
it sent; on failure it backs off (a durable next-attempt time) and after ``max_attempts`` marks the
row failed, which holds back that instance's later rows (never another instance's) until
``retry_failed`` or ``discard``.

Whatever a sink does (refuses, redirects, answers garbage, raises, hangs, trickles) is one failed
attempt, bounded by the timeout from end to end, and never an exception out of the relay; an
error text never holds a URL's credentials or query (:mod:`eddic.runtime.http_sink`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..clock import from_text, utcnow
from ..errors import SinkError, SinkTimeout
from ..kernel import Event
from ..serde import loads
from ..storage import Store
from .http_sink import Exchange, cut, redact, target_of

#: How long a claim outlasts the delivery's timeout: room for the commit that follows it.
_CLAIM_MARGIN = 30.0


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failures: 1 s, doubling, 5 min cap."""
    # the exponent is capped too: 2.0 ** 1024 overflows, and max_attempts may be that large
    return float(min(300.0, 2.0 ** min(attempts - 1, 16)))


def event_of(row: tuple[Any, ...]) -> Event:
    _id, event_id, _iid, event_type, source, data, time, _attempts = row
    when = from_text(time)
    if when is None:
        raise ValueError("the row has no time")
    return Event(event_id, event_type, source, when, loads(data))


def cloudevent_json(event: Event) -> bytes:
    """CloudEvents 1.0, structured mode."""
    body = {
        "specversion": "1.0",
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "time": event.time.isoformat(),
        "datacontenttype": "application/json",
        "data": event.data,
    }
    return json.dumps(body).encode()


def deliver(sink: Callable[[Event], Any] | str, event: Event, timeout: float) -> None:
    """Hand one event to the sink within ``timeout`` seconds, from start to answer.

    Raises ``SinkError`` (``SinkTimeout`` when it ran out of time) for a refusal or any failure;
    only a ``KeyboardInterrupt`` raised by a callable sink is passed on as it is.
    """
    if isinstance(sink, str):
        exchange = Exchange(target_of(sink), cloudevent_json(event))
        what = f"POST {exchange.target.shown}"
        _within(lambda: exchange.run(timeout), timeout, what, abort=exchange.abort, url=sink)
    elif callable(sink):
        _within(lambda: sink(event), timeout, f"sink {_name_of(sink)}")
    else:
        raise SinkError(f"the sink must be an http(s) URL or a callable, not {type(sink).__name__}")


def _within(
    work: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    abort: Callable[[], None] | None = None,
    url: str | None = None,
) -> None:
    """Run ``work`` on a helper thread and wait for it at most ``timeout`` seconds.

    A thread because nothing else bounds a call from the outside: a callable sink may block
    anywhere, an HTTP one in name resolution. ``abort`` then ends an HTTP exchange; a callable
    that never returns keeps its daemon thread (Python cannot stop a thread), but nothing waits
    for it, and its row is retried after the backoff like any other failure.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
        except KeyboardInterrupt as exc:
            outcome.append(exc)
        except BaseException as exc:  # SystemExit, CancelledError...: a failed delivery too
            # the text is taken here, in the helper, because a sink's exception may hang or fail
            # at that too; only an HTTP refusal's own text is kept as it is
            outcome.append(exc if type(exc) is SinkError else SinkError(describe(exc)))
        else:
            outcome.append(None)

    helper = threading.Thread(target=run, name="eddic-outbox-sink", daemon=True)
    helper.start()
    helper.join(timeout)
    if not outcome:
        if abort is not None:
            abort()
        raise SinkTimeout(f"{what} did not return within {timeout}s")
    error = outcome[0]
    if isinstance(error, KeyboardInterrupt):
        raise error
    if error is not None:
        raise SinkError(f"{what}: {redact(str(error), url)}")


def describe(exc: BaseException) -> str:
    """``Type: message``, even for an exception whose message cannot be made into text."""
    try:
        text = str(exc)
    except KeyboardInterrupt:
        raise
    except BaseException:
        text = "(its message could not be printed)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _name_of(sink: object) -> str:
    """The sink's qualified name, or its type's: never its repr (a partial's shows arguments)."""
    try:
        name = getattr(sink, "__qualname__", None)
    except Exception:
        name = None
    return name if isinstance(name, str) else type(sink).__qualname__


def relay(
    storage: Store,
    sink: Callable[[Event], Any] | str | None,
    *,
    max_attempts: int,
    timeout: float,
    batch: int = 100,
) -> int:
    """Deliver due pending rows; returns how many were delivered. No sink: rows stay pending.

    Never raises for a delivery (every failure is a counted attempt). A pass takes only the rows
    that existed when it began (a sink whose deliveries publish events would otherwise keep it
    going for ever) and ends after a delivery that timed out (a sink that hangs for one row likely
    hangs for the next: one timeout per pass, not one per instance); the rest wait for the next
    pass, uncounted.
    """
    if sink is None:
        return 0
    delivered = 0
    newest: int | None = None
    while True:
        newest, heads = storage.outbox.due_heads(utcnow(), newest, batch)
        progress, timed_out = _relay_heads(storage, sink, heads, max_attempts, timeout)
        delivered += progress
        if timed_out or not progress:
            return delivered


def _relay_heads(
    storage: Store,
    sink: Callable[[Event], Any] | str,
    heads: list[tuple[Any, ...]],
    max_attempts: int,
    timeout: float,
) -> tuple[int, bool]:
    """One round: the head row of each instance's queue. Returns (delivered, one timed out)."""
    delivered = 0
    for row in heads:
        row_id, attempts = row[0], row[7]
        if not _claim(storage, row_id, attempts, timeout):
            continue  # another relay has it
        error = _attempt(sink, row, timeout)
        if error is not None:
            _record_failure(storage, row_id, attempts + 1, str(error), max_attempts)
            if isinstance(error, SinkTimeout):
                return delivered, True
            continue
        storage.outbox.sent(row_id, attempts + 1, utcnow())
        delivered += 1
    return delivered, False


def _claim(storage: Store, row_id: int, attempts: int, timeout: float) -> bool:
    """Take the row for one delivery: its next attempt moves past the delivery's end, so another
    relay leaves it alone meanwhile. Counted from now, not from the round's start: the deliveries
    before it in the round may each have taken their timeout."""
    now = utcnow()
    until = now + timedelta(seconds=timeout + _CLAIM_MARGIN)
    return storage.outbox.claim(row_id, attempts, until, now)


def _attempt(
    sink: Callable[[Event], Any] | str, row: tuple[Any, ...], timeout: float
) -> SinkError | None:
    """Deliver one row; the error if that failed in any way (returned: it is only an attempt)."""
    try:
        event = event_of(row)
    except Exception as exc:  # a damaged row: it still counts, and is given up in the end
        return SinkError(f"the row does not hold a readable event: {describe(exc)}")
    try:
        deliver(sink, event, timeout)
    except SinkError as exc:
        return exc
    except Exception as exc:  # from building the request: still one failed attempt
        return SinkError(f"the delivery could not be made: {describe(exc)}")
    return None


def _record_failure(
    storage: Store, row_id: int, attempts: int, error: str, max_attempts: int
) -> None:
    next_at = utcnow() + timedelta(seconds=backoff(attempts))
    storage.outbox.failed_attempt(
        row_id,
        attempts=attempts,
        error=cut(error),
        next_at=next_at,
        give_up=attempts >= max_attempts,
    )


def outbox_rows(
    storage: Store, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Outbox rows as dicts (``data`` decoded), in delivery order."""
    return storage.outbox.rows(None if status is None else [status], limit)


def retry_failed(storage: Store, event_id: str | None = None) -> int:
    """Put failed rows (all, or one) back to pending with a fresh attempt count."""
    return storage.outbox.retry_failed(utcnow(), event_id)


def discard(storage: Store, event_id: str | None = None) -> int:
    """Mark failed rows (all, or one) discarded, releasing the rows held behind them."""
    return storage.outbox.discard(event_id)
