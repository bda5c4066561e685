"""Keeping a lease alive while an activity body runs.

A worker renews its lease at every commit. An activity body can outlast the lease, so while one
runs, a keeper thread renews the lease every third of its timeout. The thread is started the
first time an activity runs, runs no user code, and stops with ``App.shutdown()``. While no
activity runs it looks once per third of the shortest timeout it has seen, so that a short
activity never has to wake it (a thread switch per step costs more than the rest of the step).
A renewal that finds the lease taken over stops renewing; the step's commit then fails its
fencing check and records nothing.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from ..clock import utcnow
from ..storage import Store

log = logging.getLogger("eddic")


@dataclass
class _Held:
    instance_id: str
    owner: str
    epoch: int
    timeout: float
    next_renewal: float  # time.monotonic()


class LeaseKeeper:
    def __init__(self, storage: Store) -> None:
        self._storage = storage
        self._cond = threading.Condition()
        self._held: dict[int, _Held] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        # When the keeper thread looks next (monotonic). It stays finite while idle (a third of
        # the shortest timeout seen), so a new hold wakes the thread only when it needs renewing
        # sooner than that: waking it on every activity costs a thread switch per step.
        self._next_wake = 0.0
        self._period = float("inf")

    def hold(self, instance_id: str, owner: str, epoch: int, timeout: float) -> int:
        """Start renewing ``instance_id``'s lease; returns a token for :meth:`release`."""
        token = next(self._tokens)
        held = _Held(instance_id, owner, epoch, timeout, time.monotonic() + timeout / 3)
        with self._cond:
            self._held[token] = held
            self._period = min(self._period, timeout / 3)
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="eddic-lease-keeper", daemon=True
                )
                self._thread.start()
            elif held.next_renewal < self._next_wake:
                self._cond.notify()
        return token

    def release(self, token: int) -> None:
        with self._cond:
            del self._held[token]

    @contextmanager
    def holding(self, instance_id: str, owner: str, epoch: int, timeout: float) -> Iterator[None]:
        """Renew ``instance_id``'s lease while the block runs."""
        token = self.hold(instance_id, owner, epoch, timeout)
        try:
            yield
        finally:
            self.release(token)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                due = [h for h in self._held.values() if h.next_renewal <= now]
                if not due:
                    wake = min(
                        (h.next_renewal for h in self._held.values()), default=now + self._period
                    )
                    self._next_wake = wake
                    self._cond.wait(wake - now)
                    continue
                for held in due:
                    held.next_renewal = now + held.timeout / 3
            for held in due:
                self._renew(held)

    def _renew(self, held: _Held) -> None:
        expires = utcnow() + timedelta(seconds=held.timeout)
        try:
            kept = self._storage.renew(held.instance_id, held.owner, held.epoch, expires)
        except Exception as exc:  # the next commit will tell; keep the thread alive
            log.warning("could not renew the lease on %s: %s", held.instance_id, exc)
            return
        if not kept:
            log.warning(
                "lease on %s was taken over while an activity ran; its outcome will not be "
                "recorded by this worker",
                held.instance_id,
            )
            held.next_renewal = float("inf")
