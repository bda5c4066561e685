"""``App.serve``: the worker loop, its listener, and looking for dead workers between passes.

A mixin of :class:`~eddic.runtime.app.App`, kept apart so that the loop's timing (when to pass,
how long to sleep, what wakes it) reads as one piece; it uses the App's storage, worker and
pass (``_run_pass``) and nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from ..clock import utcnow
from ..decorators import workflow_names
from ..storage import Store
from .worker import Worker

log = logging.getLogger("eddic")


class Serving:
    # What the loop uses of the App (set in App.__init__).
    storage: Store
    timer_poll_interval: float
    recovery_interval_seconds: float
    failover_check_seconds: float
    outbox_enabled: bool
    _worker: Worker
    _stop: threading.Event
    _wake: threading.Event
    _serve_done: threading.Event
    _serving: threading.Thread | None
    _pool: ThreadPoolExecutor | None
    _threads: int
    _last_recovery: datetime | None
    _recover_now: bool
    _dead_checked_at: float = float("-inf")  # when dead workers were last looked for

    def _ready(self) -> None:
        raise NotImplementedError  # App's

    def _run_pass(self, *, recover: bool, stop: threading.Event | None) -> int:
        raise NotImplementedError  # App's

    def serve(self, *, idle_sleep_max: float | None = None, threads: int = 1) -> None:
        """The worker loop: run what is due, sleep until the next timer (or a poll), repeat.

        ``threads`` > 1 advances up to that many instances at once (a slow activity then holds
        up only its own instance, and steps committed together share one transaction).
        Blocks until ``shutdown()`` is called from another thread (or a signal handler).
        """
        if threads < 1:
            raise ValueError(f"serve needs at least one thread, not {threads}")
        self._ready()
        # A stop asked before the loop begins (a signal just after start-up) is kept, not
        # cleared: it ends this serve() at once. The request is used up when serve() returns.
        self._serve_done.clear()
        self._serving = threading.current_thread()
        if threads > 1:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="eddic-worker")
            self._threads = threads
        poll = self.timer_poll_interval if idle_sleep_max is None else idle_sleep_max
        served = threading.Event()  # ends the listener however serve() ends
        listener = self._listen(served) if self.storage.notifies else None
        backoff = 0.0  # after a failed pass (disk full, database busy): 0.1 s doubling to 30 s
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    wait = self._serve_pass(poll)
                    backoff = 0.0
                except Exception:
                    backoff = min(30.0, max(0.1, backoff * 2))
                    log.exception("the worker's pass failed; trying again in %.1f s", backoff)
                    wait = backoff
                if self._stop.is_set():
                    break
                self._sleep(wait)
        finally:
            served.set()
            if listener is not None:
                self.storage.wake()  # ends the listener's wait at once
                listener.join(5)
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            self._serving = None
            self._stop.clear()
            self._serve_done.set()

    def _listen(self, served: threading.Event) -> threading.Thread:
        """Wake the serving loop when another process's commit creates work (the backend's
        notifications), so polling is only a safety net."""

        def listen() -> None:
            while not served.is_set():
                try:
                    # Long waits: an idle listener wakes up once a minute, and serve()
                    # ends this one with wake() when it returns.
                    if self.storage.wait(60.0) and not served.is_set():
                        self._wake.set()
                except Exception:  # the listener reconnects; meanwhile serve() polls
                    log.warning("waiting for notifications failed; polling", exc_info=True)
                    served.wait(1.0)

        thread = threading.Thread(target=listen, name="eddic-listener", daemon=True)
        thread.start()
        return thread

    def _sleep(self, seconds: float) -> None:
        """Until the next pass is due or ``_wake`` is set; meanwhile look for dead workers
        every ``failover_check_seconds`` (``Store.dead_owners``): a death ends the sleep, and
        the next pass recovers their instances. Looking costs no database query on SQLite (a
        few file locks tried); on PostgreSQL it is one read of ``pg_locks``."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if self._wake.wait(max(0.0, min(left, self.failover_check_seconds))) or left <= 0:
                return
            try:
                if self._take_over_the_dead():
                    self._recover_now = True
                    return
            except Exception:  # the next pass looks again, and logs what fails there
                return

    def _take_over_the_dead(self) -> bool:
        """Release the leases of workers whose processes have died (``Store.dead_owners``);
        True when there were any, so that recovery runs now rather than at the next interval.
        Looks at most once per ``failover_check_seconds``, however often passes run (a busy
        worker passes every few milliseconds; on PostgreSQL each look is a query)."""
        now = time.monotonic()
        if now - self._dead_checked_at < self.failover_check_seconds:
            return False
        self._dead_checked_at = now
        took = False
        for owner in self.storage.dead_owners():
            released = self.storage.expire_leases(owner, utcnow())
            if released:
                log.warning(
                    "worker %s has died: taking over the %d instance(s) it held", owner, released
                )
                took = True
        return took

    def _serve_pass(self, poll: float) -> float:
        """One pass of ``serve``; returns how long to sleep before the next."""
        last = self._last_recovery
        due = last is None or (utcnow() - last).total_seconds() >= self.recovery_interval_seconds
        due = self._take_over_the_dead() or self._recover_now or due
        self._recover_now = False
        self._run_pass(recover=due, stop=self._stop)
        if self._stop.is_set():
            return 0.0
        now = utcnow()
        last = self._last_recovery
        to_recovery = self.recovery_interval_seconds
        if last is not None:
            to_recovery -= (now - last).total_seconds()
        wait = max(0.0, min(poll, to_recovery))
        nxt = self.storage.next_wake(exclude=self._worker.skipped(), workflows=workflow_names())
        if nxt is not None:
            wait = min(wait, max(0.0, (nxt - now).total_seconds()))
        if self.outbox_enabled and self.storage.outbox.pending():
            wait = min(wait, 1.0)
        return wait
