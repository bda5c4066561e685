"""``serve(threads=N)``: a continuous scheduler, with no barrier between batches.

The dispatcher (``serve``'s own thread) keeps up to N instances in flight on N driver threads.
Whenever a driver is free and work is due it claims up to as many instances as there are free
drivers (``Store.claim``: the longest-waiting first) and hands each to a driver; a driver that
finishes frees its place and wakes the dispatcher. An instance a driver runs holds a live lease,
so a claim passes it over: an activity that runs long holds up only its own instance, and a busy
instance cannot starve the others. When nothing more is due the dispatcher sleeps as the
one-thread loop does (``Serving._sleep``: until the next wake time, a wake-up, the poll, or a
dead worker found). While more is due than the drivers can take, a driver that comes free may
wait a few milliseconds for others (``GATHER``), so that one claim serves several. The outbox
relay runs on a thread of its own, one relay at a time, so that a slow sink never holds up a
due timer.

A stop (``App.stop``, ``shutdown``) ends the claiming; the drivers, which are given the same
stop, return after the step in progress and hand their leases back, and ``serve`` returns once
they all have.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol

from ..clock import utcnow
from ..decorators import workflow_names
from ..storage import Store
from .worker import Worker

log = logging.getLogger("eddic")

#: After a claim that found less than it asked for (all that was due is taken), the next one
#: waits at least this long. Every step a driver commits wakes the dispatcher (it may have set
#: an earlier wake time); without the gap each would cost a claim and a read of the next wake.
RECLAIM_GAP = 0.01
#: While more is due than the drivers took, a driver that comes free waits this long at most
#: for others (half of the drivers free) before the dispatcher claims for them all: every claim
#: is a commit of its own (on SQLite an fsync outside the steps' group commit), and one claim
#: per instance cost a fifth of ``serve(threads=8)``'s throughput there. A wait in which no
#: driver came free turns the waiting off (the others are in long activities: a driver would
#: idle for nothing) until enough come free together again.
GATHER = 0.02
#: The relay starts at most this often (each relay reads the outbox, even when nothing is due).
RELAY_GAP = 0.05
#: While rows are still pending (a failed delivery's backoff), the relay looks again this often.
RELAY_RETRY = 1.0


class ServingApp(Protocol):
    """What the dispatcher uses of the App (``Serving``'s loop pieces and the App's own)."""

    storage: Store
    outbox_enabled: bool
    default_lock_timeout_seconds: float
    _worker: Worker
    _stop: threading.Event
    _wake: threading.Event

    def _recovery_due(self) -> bool: ...

    def _start_recovery(self, now: datetime, names: Sequence[str]) -> None: ...

    def _serve_wait(self, poll: float, now: datetime, *, timers: bool = False) -> float: ...

    def _sleep(self, seconds: float) -> None: ...

    def _run_claimed(
        self, epoch: int, row: dict[str, Any], stop: threading.Event | None = None
    ) -> int: ...

    def relay_outbox(self) -> int: ...


class Dispatcher:
    """One ``serve(threads=N)``: ``run()`` claims and hands out work until the App's stop."""

    def __init__(self, app: ServingApp, threads: int, poll: float) -> None:
        self.app = app
        self.threads = threads
        self.poll = poll
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)  # notified when ``_gather`` drivers are free
        self._running = 0  # instances on a driver now
        self._gather = max(2, threads // 2)  # free drivers worth a claim in a backlog
        self._gathering = True  # the last wait for them was not in vain
        self._exit: BaseException | None = None  # an exit request (Ctrl-C) raised by a driver
        self._recovering = False  # a recovery is on: claims take stale instances too
        self._short = False  # the last claim found less than it asked for
        self._backlog = False  # the last claim took as many as it asked for: more may be due
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="eddic-worker")
        self._relay = _Relay(app, self._exit_request) if app.outbox_enabled else None

    def run(self) -> None:
        app = self.app
        backoff = 0.0  # after a failed round (disk full, database busy): 0.1 s doubling to 30 s
        try:
            while not app._stop.is_set():
                app._wake.clear()
                self._raise_exit_request()
                try:
                    wait = self._round()
                    backoff = 0.0
                except Exception:
                    backoff = min(30.0, max(0.1, backoff * 2))
                    log.exception("the worker's pass failed; trying again in %.1f s", backoff)
                    wait, self._short = backoff, False
                if app._stop.is_set():
                    break
                self._pause(wait)
        except BaseException:
            app._stop.set()  # the drivers return after the step in progress
            raise
        finally:
            self._pool.shutdown()  # waits for the drivers' steps in progress
            if self._relay is not None:
                self._relay.close()
        self._raise_exit_request()

    def _round(self) -> float:
        """Hand due work to the free drivers; how long to sleep before the next round."""
        app = self.app
        worker = app._worker
        worker.park_pending()
        app.storage.hold_liveness(worker.worker_id)  # before its first lease
        names = workflow_names()
        if app._recovery_due():
            self._recovering = True  # until a claim with stale instances comes up short
            app._start_recovery(utcnow(), names)
        if self._relay is not None:
            self._relay.ask()
        with self._lock:
            free = self.threads - self._running
            if self._backlog and self._gathering and 0 < free < self._gather:
                self._freed.wait(GATHER)  # real time: under freezegun too
                before, free = free, self.threads - self._running
                self._gathering = free > before
            elif free >= self._gather:
                self._gathering = True
        self._short = False
        if free <= 0:  # a driver that finishes wakes the dispatcher
            return app._serve_wait(self.poll, utcnow())
        work = app.storage.claim(
            utcnow(),
            worker.worker_id,
            limit=free,
            default_timeout=app.default_lock_timeout_seconds,
            workflows=names,
            stale=self._recovering,
        )
        self._hand_out(work)
        self._backlog = len(work) == free
        if self._backlog:  # every driver busy: more may be due
            return app._serve_wait(self.poll, utcnow())
        self._short = True
        self._recovering = False  # all that was stale is taken
        return app._serve_wait(self.poll, utcnow(), timers=True)

    def _hand_out(self, work: list[tuple[int, dict[str, Any]]]) -> None:
        for n, (epoch, row) in enumerate(work):
            with self._lock:
                self._running += 1
            try:
                future = self._pool.submit(self.app._run_claimed, epoch, row, self.app._stop)
            except BaseException:  # no thread to run it (out of threads): hand the rest back
                with self._lock:
                    self._running -= 1
                for epoch_left, row_left in work[n:]:
                    try:
                        self.app.storage.release(
                            row_left["instance_id"], self.app._worker.worker_id, epoch_left
                        )
                    except Exception:  # its lease expires, and recovery takes it over
                        log.warning("could not hand back %s", row_left["instance_id"])
                raise
            future.add_done_callback(self._finished)

    def _finished(self, future: Future[int]) -> None:
        """A driver's instance has advanced (in the driver's thread): free its place."""
        with self._lock:
            self._running -= 1
            if self.threads - self._running == self._gather:
                self._freed.notify()
        exc = future.exception()  # only an exit request: _run_claimed logs every Exception
        if exc is not None:
            self._exit_request(exc)
        self.app._wake.set()

    def _exit_request(self, exc: BaseException) -> None:
        if self._exit is None:
            self._exit = exc
        self.app._wake.set()

    def _raise_exit_request(self) -> None:
        if self._exit is not None:
            exc, self._exit = self._exit, None
            raise exc

    def _pause(self, wait: float) -> None:
        """Sleep ``wait`` seconds (``Serving._sleep``: a wake-up ends it); after a short claim,
        ``RECLAIM_GAP`` at least, however soon something wakes the dispatcher."""
        if self._short:
            if self.app._stop.wait(RECLAIM_GAP):  # real time: under freezegun too
                return
            wait -= RECLAIM_GAP
        if wait > 0:
            self.app._sleep(wait)


class _Relay:
    """The outbox relay of one ``serve(threads=N)``, on a thread of its own: relays when asked
    (every round of the dispatcher), at most every ``RELAY_GAP``, and every ``RELAY_RETRY``
    while rows are pending. ``close`` lets the relay in progress finish."""

    def __init__(self, app: ServingApp, on_exit_request: Callable[[BaseException], None]) -> None:
        self.app = app
        self._on_exit_request = on_exit_request
        self._asked = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eddic-relay", daemon=True)
        self._thread.start()

    def ask(self) -> None:
        if not self._asked.is_set():
            self._asked.set()

    def close(self) -> None:
        self._closed.set()
        self._asked.set()
        self._thread.join()

    def _run(self) -> None:
        pending = False
        while True:
            self._asked.wait(RELAY_RETRY if pending else None)
            if self._closed.is_set():
                return
            self._asked.clear()
            try:
                self.app.relay_outbox()
                pending = self.app.storage.outbox.pending()
            except Exception:
                log.exception("the outbox relay failed; it runs again on the next pass")
                pending = True
            except BaseException as exc:  # a callable sink's Ctrl-C: serve() raises it
                self._on_exit_request(exc)
                return
            if self._closed.wait(RELAY_GAP):
                return
