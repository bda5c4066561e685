"""``App.serve``: the worker loop, its listener, and looking for dead workers between passes.

A mixin of :class:`~eddic.runtime.app.App`, kept apart so that the loop's timing (when to pass,
how long to sleep, what wakes it) reads as one piece; it uses the App's storage, worker and
pass (``_run_pass``) and nothing else. ``serve(threads=N)`` for N > 1 hands the loop to the
continuous scheduler of :mod:`eddic.runtime.scheduler`, which times its rounds with the same
pieces (``_recovery_due``, ``_serve_wait``, ``_sleep``) and runs what it claims with the App's
``_run_claimed`` (``scheduler.ServingApp`` lists what it uses).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..clock import utcnow
from ..decorators import workflow_names
from ..storage import Store
from .scheduler import Dispatcher
from .worker import Worker

log = logging.getLogger("eddic")


class Serving:
    # What the loop uses of the App (set in App.__init__).
    storage: Store
    timer_poll_interval: float
    recovery_interval_seconds: float
    default_lock_timeout_seconds: float
    failover_check_seconds: float
    outbox_enabled: bool
    _worker: Worker
    _stop: threading.Event
    _wake: threading.Event
    _serve_done: threading.Event
    _serving: threading.Thread | None
    _last_recovery: datetime | None
    _recover_now: bool
    _dead_checked_at: float = float("-inf")  # when dead workers were last looked for

    def _ready(self) -> None:
        raise NotImplementedError  # App's

    def _run_pass(self, *, recover: bool, stop: threading.Event | None) -> int:
        raise NotImplementedError  # App's

    def _start_recovery(self, now: datetime, names: Sequence[str]) -> None:
        raise NotImplementedError  # App's

    def _run_claimed(
        self, epoch: int, row: dict[str, Any], stop: threading.Event | None = None
    ) -> int:
        raise NotImplementedError  # App's

    def relay_outbox(self) -> int:
        raise NotImplementedError  # App's

    def serve(self, *, idle_sleep_max: float | None = None, threads: int = 1) -> None:
        """The worker loop: run what is due, sleep until the next timer (or a poll), repeat.

        ``threads`` > 1 advances up to that many instances at once, each on a thread of its
        own, handed out as threads come free (:mod:`eddic.runtime.scheduler`): a slow activity
        holds up only its own instance, and steps committed together share one transaction.
        Blocks until ``shutdown()`` is called from another thread (or a signal handler).
        """
        if threads < 1:
            raise ValueError(f"serve needs at least one thread, not {threads}")
        self._ready()
        # A stop asked before the loop begins (a signal just after start-up) is kept, not
        # cleared: it ends this serve() at once. The request is used up when serve() returns.
        self._serve_done.clear()
        self._serving = threading.current_thread()
        # Each of the N instances in flight can run at least one sync body at once.
        self._worker.bodies_at_least(threads)
        poll = self.timer_poll_interval if idle_sleep_max is None else idle_sleep_max
        served = threading.Event()  # ends the listener however serve() ends
        listener = self._listen(served) if self.storage.notifies else None
        try:
            if threads > 1:
                Dispatcher(self, threads, poll).run()
            else:
                self._loop(poll)
        finally:
            served.set()
            if listener is not None:
                self.storage.wake()  # ends the listener's wait at once
                listener.join(5)
            self._serving = None
            self._stop.clear()
            self._serve_done.set()

    def _loop(self, poll: float) -> None:
        """``serve()`` in one thread: a pass (``_run_pass``), a sleep, until the stop."""
        backoff = 0.0  # after a failed pass (disk full, database busy): 0.1 s doubling to 30 s
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

    def _recovery_due(self) -> bool:
        """Whether the next pass recovers: every ``recovery_interval_seconds``, and at once
        when dead workers' instances were released."""
        last = self._last_recovery
        due = last is None or (utcnow() - last).total_seconds() >= self.recovery_interval_seconds
        due = self._take_over_the_dead() or self._recover_now or due
        self._recover_now = False
        return due

    def _serve_pass(self, poll: float) -> float:
        """One pass of ``serve``; returns how long to sleep before the next."""
        self._run_pass(recover=self._recovery_due(), stop=self._stop)
        if self._stop.is_set():
            return 0.0
        wait = self._serve_wait(poll, utcnow(), timers=True)
        if self.outbox_enabled and self.storage.outbox.pending():
            wait = min(wait, 1.0)
        return wait

    def _serve_wait(self, poll: float, now: datetime, *, timers: bool = False) -> float:
        """How long the loop may sleep: at most ``poll``, until the next recovery, and (with
        ``timers``, when nothing more is due now) until the earliest wake time."""
        last = self._last_recovery
        to_recovery = self.recovery_interval_seconds
        if last is not None:
            to_recovery -= (now - last).total_seconds()
        wait = max(0.0, min(poll, to_recovery))
        if timers:
            names = workflow_names()
            nxt = self.storage.next_wake(exclude=self._worker.skipped(), workflows=names)
            if nxt is not None:
                wait = min(wait, max(0.0, (nxt - now).total_seconds()))
        return wait
