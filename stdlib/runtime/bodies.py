"""Where activity bodies run while their instance's driver goes on: the attempts in flight.

A driver (the thread advancing one instance, see ``worker``) runs a lone activity itself, on its
own thread, as it always did: nothing else can happen to the instance meanwhile, and a hand-off
would only cost time. When more than that is pending (several activities at one yield, a race
against a timer or an event, an attempt with a timeout or a heartbeat timeout to watch) it
starts each body here and waits for the first of: a body finishing, a deadline (a timer, an
event's timeout, a backoff ending, an attempt's timeout), or a poll for events. Each outcome is
committed as it arrives, in the order the bodies finished.

Sync bodies run on the process's body threads (:class:`BodyPool`, bounded); ``async def``
bodies on the process's activity event loop, taking no thread while they wait. A thread cannot
be killed: a body that overran its timeout runs on, and what it returns is never read (an
async body is cancelled instead). A body that calls ``App.start`` (a nested workflow) runs that
instance's bodies itself, one at a time: waiting on the pool from inside the pool could leave
every body thread waiting for a free one.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..context import ActivityContext
from ..decorators import Activity
from ..errors import ActivityTimeout
from ..kernel import CallActivity
from ..serde import dumps
from .executor import Outcome, in_activity_loop, run_attempt, start_async_attempt

log = logging.getLogger("eddic")

#: Durable heartbeat writes of one attempt are at least this far apart (seconds).
HEARTBEAT_WRITE_INTERVAL = 1.0

_local = threading.local()


def in_body_thread() -> bool:
    """Whether the calling thread is one of the body threads or the activity event loop."""
    return bool(getattr(_local, "body", False)) or in_activity_loop()


class Running:
    """One attempt of an activity or compensation, from its start to its outcome (or timeout),
    and its heartbeats: ``ctx.heartbeat`` is :meth:`heartbeat`.

    Heartbeat details go to ``write(run, details_json)`` (``Store.heartbeat``, fenced by the
    lease and the attempt number), at most once per ``HEARTBEAT_WRITE_INTERVAL``, and to the
    instance's ``heartbeats`` (the next attempt in this process reads them there). Built for
    every attempt, so it is kept cheap: slots, and a lock made on the first heartbeat.
    """

    __slots__ = (
        "_lock",
        "act",
        "attempt",
        "began",
        "ctx",
        "ended",
        "epoch",
        "future",
        "keeper_token",
        "last_beat",
        "live",
        "pending",
        "seq",
        "timed_out",
        "unwritten",
        "write",
        "written_at",
    )

    def __init__(
        self,
        seq: int,
        attempt: int,
        act: Activity,
        ctx: ActivityContext,
        pending: Any,
        live: Any = None,
        write: Callable[[Running, str], Any] | None = None,
    ) -> None:
        self.seq = seq
        self.attempt = attempt
        self.act = act
        self.ctx = ctx
        self.pending = pending  # the kernel's Pending of the call
        self.live = live  # the LiveInstance
        self.epoch = 0 if live is None else live.epoch  # the lease the attempt runs under
        self.write = write
        self.future: Future[Outcome] | None = None
        self.began: float | None = None  # time.monotonic() when the body began (None: queued)
        self.ended: float | None = None  # ... and when it returned
        self.last_beat: float | None = None  # the last ctx.heartbeat()
        self.timed_out: ActivityTimeout | None = None  # set once; the result is then ignored
        self.written_at = float("-inf")  # the last durable heartbeat write
        self.unwritten: str | None = None  # details of a heartbeat not written yet
        self.keeper_token: Any = None
        self._lock: threading.Lock | None = None

    def deadline(self) -> float | None:
        """When this attempt times out (monotonic), or None: it has no limit, or is queued."""
        began = self.began
        if began is None:
            return None
        act = self.act
        due: float | None = None if act.timeout is None else began + act.timeout
        if act.heartbeat_timeout is not None:
            beat = (self.last_beat or began) + act.heartbeat_timeout
            due = beat if due is None else min(due, beat)
        return due

    def overrun(self, now: float) -> ActivityTimeout | None:
        """The timeout this attempt has passed at ``now``, or None."""
        began = self.began
        if began is None or (self.future is not None and self.future.done()):
            return None
        act = self.act
        if act.timeout is not None and now >= began + act.timeout:
            return ActivityTimeout(
                f"attempt {self.attempt} of {act.name!r} (seq {self.seq}) ran longer than its "
                f"timeout of {act.timeout:g} s",
                "timeout",
                act.timeout,
            )
        if act.heartbeat_timeout is not None and now >= (
            (self.last_beat or began) + act.heartbeat_timeout
        ):
            since = "it began" if self.last_beat is None else "its last heartbeat"
            return ActivityTimeout(
                f"attempt {self.attempt} of {act.name!r} (seq {self.seq}) sent no heartbeat for "
                f"{act.heartbeat_timeout:g} s (its heartbeat_timeout) since {since}",
                "heartbeat_timeout",
                act.heartbeat_timeout,
            )
        return None

    # -- heartbeats --

    def _locked(self) -> threading.Lock:
        lock = self._lock
        if lock is None:
            with _LOCKS:
                lock = self._lock
                if lock is None:
                    lock = self._lock = threading.Lock()
        return lock

    def heartbeat(self, details: Any) -> None:
        """``ctx.heartbeat``: liveness at once, details durably and spaced."""
        text = dumps(details)
        # Under the attempt's lock: once the driver has timed the attempt out (under it too),
        # no write of this attempt begins, and none is in flight while its outcome commits.
        with self._locked():
            if self.timed_out is not None:
                raise self.timed_out
            now = time.monotonic()
            self.last_beat = now
            if self.live is not None:
                self.live.heartbeats[self.seq] = text
            if now - self.written_at < HEARTBEAT_WRITE_INTERVAL:
                self.unwritten = text
                return
            self.written_at = now
            self.unwritten = None
            self._store(text)

    def flush(self) -> None:
        """Write the details a spaced heartbeat left unwritten (before the attempt's outcome)."""
        if self._lock is None:  # no heartbeat at all: nothing to write
            return
        with self._lock:
            text, self.unwritten = self.unwritten, None
            if text is not None:
                self._store(text)

    def time_out(self, overrun: ActivityTimeout) -> None:
        """Mark the attempt timed out: its next heartbeat raises ``overrun``."""
        with self._locked():
            self.timed_out = overrun

    def _store(self, text: str) -> None:
        if self.write is None:
            return
        try:
            self.write(self, text)
        except Exception as exc:  # liveness still counts; the next heartbeat writes again
            log.warning(
                "could not record a heartbeat of seq %d of instance %s: %s",
                self.seq,
                self.ctx.instance_id,
                exc,
            )


_LOCKS = threading.Lock()  # guards the lazy making of each attempt's lock


def _body(run: Running, command: CallActivity, recorded: Mapping[str, Any] | None) -> Outcome:
    """A sync body, on a body thread."""
    _local.body = True
    run.began = time.monotonic()
    try:
        return run_attempt(run.act, command, run.ctx, recorded)
    finally:
        run.ended = time.monotonic()
        _local.body = False


class BodyPool:
    """The process's body threads for one worker: up to ``size`` sync bodies at once (made on
    demand), grown by ``serve(threads=N)`` to at least N."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def size(self) -> int:
        return self._size

    def at_least(self, size: int) -> None:
        with self._lock:
            if size <= self._size:
                return
            self._size = size
            old, self._pool = self._pool, None
        if old is not None:
            old.shutdown(wait=False)  # its threads finish what they run, then end

    def start(
        self, run: Running, command: CallActivity, recorded: Mapping[str, Any] | None
    ) -> None:
        """Begin ``run``'s body: on the event loop for an ``async def``, else on a thread."""
        if run.act.is_async:
            run.began = time.monotonic()
            future = start_async_attempt(run.act, command, run.ctx, recorded)

            def ended(_f: Future[Outcome]) -> None:
                run.ended = time.monotonic()

            future.add_done_callback(ended)
            run.future = future
            return
        run.future = self._executor().submit(_body, run, command, recorded)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's threads are not here
                self._pool, self._pid = None, os.getpid()
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(
                    self._size, thread_name_prefix="eddic-activity"
                )
            return pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


def wait_first(runs: list[Running], timeout: float) -> list[Running]:
    """Wait up to ``timeout`` seconds for a body to end: those ended, in the order they did."""
    futures = [run.future for run in runs if run.future is not None]
    if futures:
        concurrent.futures.wait(
            futures, timeout=max(0.0, timeout), return_when=concurrent.futures.FIRST_COMPLETED
        )
    else:
        time.sleep(max(0.0, timeout))
    done = [run for run in runs if run.future is not None and run.future.done()]
    done.sort(key=lambda run: run.ended or 0.0)
    return done


def outcome_of(run: Running) -> Outcome:
    """The outcome of a finished body (a body never raises but ``KeyboardInterrupt``)."""
    assert run.future is not None
    try:
        return run.future.result()
    except concurrent.futures.CancelledError as exc:
        return Outcome(error=exc)
