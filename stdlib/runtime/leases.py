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


@dataclass(slots=True)
class _Held:
    instance_id: str
    owner: str
    epoch: int
    timeout: float
    next_renewal: float  # time.monotonic()


class LeaseKeeper:
    """Renews the leases of running activity bodies from one thread.

    ``hold`` and ``release`` run around every activity body, so their common case takes no lock
    (a dict insert and a pop, each atomic): the thread never sleeps longer than a third of the
    shortest timeout it has been given (``_period``), so a hold whose timeout is no shorter
    than one seen before is renewed in time without waking it. Only a hold that shortens
    ``_period`` (and the first, which starts the thread) takes the condition and wakes it.
    """

    def __init__(self, storage: Store) -> None:
        self._storage = storage
        self._cond = threading.Condition()
        self._held: dict[int, _Held] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._period = float("inf")

    def hold(self, instance_id: str, owner: str, epoch: int, timeout: float) -> int:
        """Start renewing ``instance_id``'s lease; returns a token for :meth:`release`."""
        token = next(self._tokens)
        third = timeout / 3
        self._held[token] = _Held(instance_id, owner, epoch, timeout, time.monotonic() + third)
        if third < self._period:  # rare: a shorter timeout than any so far, or the first
            with self._cond:
                self._period = min(self._period, third)
                if self._thread is None and not self._stopped:
                    self._thread = threading.Thread(
                        target=self._run, name="eddic-lease-keeper", daemon=True
                    )
                    self._thread.start()
                else:
                    self._cond.notify()
        return token

    def release(self, token: int) -> None:
        self._held.pop(token, None)

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
                held = list(self._held.items())  # one C call: holds come and go meanwhile
                due = [(t, h) for t, h in held if h.next_renewal <= now]
                if not due:
                    # Never past now + _period: that bound is what lets hold() skip the lock.
                    wake = min((h.next_renewal for _, h in held), default=now + self._period)
                    self._cond.wait(min(wake, now + self._period) - now)
                    continue
                for _, one in due:
                    one.next_renewal = now + one.timeout / 3
            for token, one in due:
                self._renew(token, one)

    def _renew(self, token: int, held: _Held) -> None:
        if token not in self._held:
            return  # released since it was found due: its step has renewed or let go the lease
        expires = utcnow() + timedelta(seconds=held.timeout)
        try:
            kept = self._storage.renew(held.instance_id, held.owner, held.epoch, expires)
        except Exception as exc:  # the next commit will tell; keep the thread alive
            log.warning("could not renew the lease on %s: %s", held.instance_id, exc)
            return
        if not kept and token in self._held:  # not a step that let it go meanwhile
            log.warning(
                "lease on %s was taken over while an activity ran; its outcome will not be "
                "recorded by this worker",
                held.instance_id,
            )
            held.next_renewal = float("inf")
