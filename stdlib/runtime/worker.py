"""The worker: drives live instances step by step, one fenced commit per step.

For one instance it loops: run the oldest pending activity (or fire what is due), feed the
outcome to the interpreter, ask for decisions, and commit the outcome, the decisions, outbox rows
and the instance's new state in one ``BEGIN IMMEDIATE`` transaction fenced by the lease epoch.
Live interpreters are cached between steps, so a step costs one commit and no replay; a replay
happens only after a crash, a takeover or an eviction (``_load``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
import weakref
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from ..clock import to_text, utcnow
from ..codec import decode_records
from ..decorators import Workflow, find_workflow
from ..kernel import (
    Cancel,
    NonDeterminismError,
    Phase,
)
from ..serde import dumps, from_jsonable, loads
from ..storage import LeaseLost, StepWrite, Store
from . import events
from .activities import Activities
from .bodies import BodyPool, Running
from .faults import is_exit_request, parked_json
from .instance import LiveInstance
from .leases import LeaseKeeper

log = logging.getLogger("eddic")


class Worker(Activities):
    """Executes instances for one ``App``: resumption, replay, activities, step commits."""

    def __init__(
        self,
        storage: Store,
        *,
        worker_id: str,
        service_name: str,
        default_lock_timeout_seconds: float,
        recovery_interval_seconds: float,
        cache_size: int,
        wake: threading.Event,
        activity_threads: int = 16,
    ) -> None:
        self.storage = storage
        self.worker_id = worker_id
        self.service_name = service_name
        self.default_lock_timeout_seconds = default_lock_timeout_seconds
        self.recovery_interval_seconds = recovery_interval_seconds
        self._cache: OrderedDict[str, LiveInstance] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._skip_until: dict[str, datetime] = {}  # unregistered workflows: not a hot loop
        # parks the storage refused: id -> (epoch, retry time, error)
        self._unparked: dict[str, tuple[int, datetime, str]] = {}
        self._keeper = LeaseKeeper(storage)
        self._bodies = BodyPool(activity_threads)
        # cancels asked in this process, for instances its drivers may be running (the ids; the
        # reason is the stored one: the first request's, whoever asked it)
        self._cancels: dict[str, None] = {}
        self._wake = wake
        _WORKERS.add(self)

    def _after_fork(self) -> None:
        # A forked child is another worker: a lease the parent holds is not the child's to use,
        # and locks or a keeper thread held in the parent at the fork are not there to release.
        self.worker_id = new_worker_id()
        self._cache = OrderedDict()
        self._cache_lock = threading.Lock()
        self._skip_until = {}
        self._unparked = {}
        self._keeper = LeaseKeeper(self.storage)

    def close(self) -> None:
        self._bodies.close()
        self._keeper.stop()
        self._keeper = LeaseKeeper(self.storage)
        self._cache.clear()

    def _resume(
        self,
        instance_id: str,
        workflow_name: str,
        now: datetime,
        stop: threading.Event | None = None,
    ) -> int:
        """Advance one instance as far as it goes; 1 when this worker took it on, else 0.

        Raises nothing for what goes wrong inside the instance (it is parked, see ``faults``);
        a storage error while taking the lease propagates to the caller's loop.
        """
        wf = self._registered(instance_id, workflow_name, now)
        if wf is None:
            return 0
        self.storage.hold_liveness(self.worker_id)  # before its first lease
        got = self.storage.acquire(
            instance_id, self.worker_id, now, self.default_lock_timeout_seconds
        )
        if got is None:
            return 0
        return self._take_on(wf, *got, stop)

    def run_claimed(
        self, epoch: int, row: dict[str, Any], stop: threading.Event | None = None
    ) -> int:
        """Advance an instance whose lease ``Store.claim`` gave this worker: 1, or 0 when it
        was handed back unrun (``stop`` set, or its workflow unregistered since the claim)."""
        wf = find_workflow(row["workflow_name"])
        if wf is None or (stop is not None and stop.is_set()):
            self.storage.release(row["instance_id"], self.worker_id, epoch)
            return 0
        return self._take_on(wf, epoch, row, stop)

    def _registered(
        self, instance_id: str, workflow_name: str, now: datetime
    ) -> Workflow[Any] | None:
        """The workflow, or None (logged once per recovery interval) when it is not
        registered in this process: another process with its code will run the instance."""
        skip = self._skip_until.get(instance_id)
        if skip is not None:
            if skip > now:
                return None
            del self._skip_until[instance_id]
        wf = find_workflow(workflow_name)
        if wf is None:
            log.warning(
                "instance %s runs workflow %r, which is not registered in this process; "
                "leaving it alone for %ss",
                instance_id,
                workflow_name,
                self.recovery_interval_seconds,
            )
            self._skip_until[instance_id] = now + timedelta(seconds=self.recovery_interval_seconds)
        return wf

    def _take_on(
        self,
        wf: Workflow[Any],
        epoch: int,
        row: dict[str, Any],
        stop: threading.Event | None,
    ) -> int:
        """Run an instance this worker now holds the lease of (epoch ``epoch``)."""
        instance_id = row["instance_id"]
        live = self._cache.pop(instance_id, None)
        replayed = live is None or live.epoch + 1 != epoch or live.pos != row["last_pos"]
        if replayed:
            try:
                live = self._load(wf, row, epoch)
            except BaseException as exc:
                if is_exit_request(exc):
                    raise
                self._park(instance_id, epoch, exc, "replaying its history")
                return 1  # taken on, and parked again
        assert live is not None
        live.epoch = epoch
        # What the row holds now, so that the first step clears a park's error and retry time.
        live.written = {"error": row["error"], "retry_after": row["retry_after"]}
        live.lease_until = None  # renewed by the first step
        _note_cancel(live, row)
        if row.get("parent_id") is not None:
            live.parent = (row["parent_id"], int(row["parent_seq"]))
        self._drive(live, stop, catch_up=replayed)
        return 1

    def skipped(self) -> list[str]:
        """Instances this worker leaves alone for now (their workflow is not registered)."""
        now = utcnow()
        return [iid for iid, until in self._skip_until.items() if until > now]

    def _load(self, wf: Workflow[Any], row: dict[str, Any], epoch: int) -> LiveInstance:
        """Rebuild a live instance by replaying its history."""
        iid = row["instance_id"]
        input_value = (
            from_jsonable(loads(row["input_data"]), wf.input_adapter, what="the stored input")
            if wf.input_param is not None
            else None
        )
        started = datetime.fromisoformat(row["started_at"] or row["created_at"])
        live = LiveInstance.new(
            wf,
            input_value,
            instance_id=iid,
            started_at=started,
            epoch=epoch,
            lock_timeout=row["lock_timeout_seconds"] or self.default_lock_timeout_seconds,
            run=int(row.get("run") or 1),
        )
        live.key = row["ikey"]
        if not row["last_pos"]:
            # Never stepped (submitted, or a child its parent created): no history, so no
            # attempt or wait rows either, and nothing to read. ``last_pos`` was read as the
            # lease was taken, so no step of another worker can have landed since.
            return live
        _row, rows, attempts, live.waits = self.storage.stored(iid)
        live.interp.replay(decode_records(rows))
        # The cancels of children abandoned in those steps were written with them.
        live.interp.abandoned.clear()
        live.pos = int(row.get("run_start_pos") or 0) + len(rows)
        for seq, (started_n, failures, next_at, _last, *rest) in attempts.items():
            live.attempts[seq] = [
                started_n,
                failures,
                datetime.fromisoformat(next_at) if next_at else None,
                loads(_last) if _last else None,
            ]
            if rest and rest[0] is not None:
                live.heartbeats[seq] = rest[0]
        return live

    def _park_columns(
        self, instance_id: str, exc: BaseException, where: str, now: datetime
    ) -> tuple[datetime, dict[str, Any]]:
        """A park's retry time and the instance columns that record it; logged once here."""
        retry_at = now + timedelta(seconds=self.recovery_interval_seconds)
        log.error(
            "instance %s is parked until %s: %s while %s: %s",
            instance_id,
            to_text(retry_at),
            type(exc).__name__,
            where,
            exc,
            exc_info=not isinstance(exc, NonDeterminismError),
        )
        return retry_at, {
            "error": dumps(parked_json(exc, retry_at, where)),
            "retry_after": retry_at,
            "updated_at": now,
        }

    def _park(self, instance_id: str, epoch: int, exc: BaseException, where: str) -> None:
        """Park an instance this worker holds no live state of (see ``faults``); never raises."""
        self._cache.pop(instance_id, None)
        retry_at, columns = self._park_columns(instance_id, exc, where, utcnow())
        self._unparked[instance_id] = (epoch, retry_at, columns["error"])
        self.park_pending()

    def park_pending(self) -> None:
        """Park what could not be parked when its step failed (the storage failing too: disk
        full, say); until then this worker's lease would keep every other worker out."""
        for instance_id, (epoch, retry_at, error) in list(self._unparked.items()):
            try:
                self.storage.park(instance_id, self.worker_id, epoch, retry_at, error)
            except Exception as exc:
                log.warning("could not park instance %s yet: %s", instance_id, exc)
                return  # the storage is still failing: the next pass tries again
            self._unparked.pop(instance_id, None)  # the dispatcher and a driver may both park

    def _drive(
        self, live: LiveInstance, stop: threading.Event | None = None, *, catch_up: bool = False
    ) -> None:
        """Run the instance until it finishes or has nothing to do but wait (lease released).

        When ``stop`` is set (a serving worker shutting down), return after the step in progress
        and hand the lease back, so that any worker's next recovery pass goes on from there.
        """
        running: dict[int, Running] = {}  # bodies started among others, by seq
        try:
            if catch_up:
                # A park may have committed an outcome without what the code decided after it
                # (that is what failed): decide it now, and record a finish not yet recorded.
                records = live.interp.decide()
                if records or live.interp.finished:
                    now = utcnow()
                    done = self._commit(live, self._step(live, records, {}, now), now)
                    if done.release:  # it waits now (a woken one is due: the next claim)
                        return
            while True:
                if live.interp.finished:
                    if live.interp.phase is not Phase.CONTINUED:
                        break
                    self._begin_next_run(live)
                    continue
                if self._cancels and live.instance_id in self._cancels:
                    del self._cancels[live.instance_id]
                    if live.interp.cancel is None:
                        reason = self.storage.get_instance(live.instance_id)["cancel_reason"]
                        live.cancel_asked = (reason if isinstance(reason, str) else None,)
                if live.cancel_asked is not None:
                    self._apply_cancel(live)
                    continue
                stopping = stop is not None and stop.is_set()
                if stopping and not running:
                    self._hand_back(live, utcnow())
                    return
                now = utcnow()
                # Stopping, no new body begins; the running ones end and are recorded first.
                pending = live.interp.pending
                runnable = [] if stopping else self._runnables(live, pending, now, running)
                step: StepWrite | None
                solo, act = self._solo(pending, runnable, running) if runnable else (False, None)
                if solo:
                    step = self._run_activity(live, runnable[0], now, act)
                else:
                    step = self._start_bodies(live, runnable, running, now)
                    step = step or self._resolve_due(live, now)
                    if step is None:
                        if running:
                            step = self._await_bodies(live, running)
                            if step is None:
                                continue
                        else:
                            step = self._wait(live, now)
                if not step.release:
                    continue
                if not step.woke:
                    return
                # An event reached the mailbox while we worked: take the lease again.
                got = self.storage.acquire(
                    live.instance_id, self.worker_id, utcnow(), self.default_lock_timeout_seconds
                )
                if got is None or got[1]["last_pos"] != live.pos:
                    return
                self._cache.pop(live.instance_id, None)
                live.epoch = got[0]
                live.written = {}
                live.lease_until = None
                _note_cancel(live, got[1])
        except LeaseLost as exc:
            log.warning("%s", exc)
            self._cache.pop(live.instance_id, None)
        except BaseException as exc:
            if is_exit_request(exc):
                raise
            self._park_live(live, exc, "running a step")
        finally:
            if running:
                self.abandon_bodies(running)

    def bodies_at_least(self, size: int) -> None:
        """Let at least ``size`` sync activity bodies run at once (``serve(threads=N)``)."""
        self._bodies.at_least(size)

    def note_cancel(self, instance_id: str) -> None:
        """A cancel of ``instance_id`` was recorded in this process: a driver running it here
        throws it in at its next step (or within a second while activities run among others)."""
        cancels = self._cancels
        cancels[instance_id] = None
        while len(cancels) > 10_000:  # instances this process never runs: the oldest go
            del cancels[next(iter(cancels))]

    def _apply_cancel(self, live: LiveInstance) -> StepWrite:
        """Feed the asked cancel and commit it with what the code decides after it, clearing
        the request; a cancel the interpreter has already seen is only cleared."""
        (reason,) = live.cancel_asked or (None,)
        live.cancel_asked = None
        now = utcnow()
        records: list[Any] = []
        if live.interp.cancel is None:
            record = Cancel(now, reason)
            live.interp.feed(record)
            records = [record, *live.interp.decide()]
        step = self._step(live, records, {}, now)
        step.columns["cancel_requested_at"] = None
        return self._commit(live, step, now)

    def _new_step(self, live: LiveInstance) -> StepWrite:
        """An empty step of ``live``, fenced by this worker's lease on it."""
        step = StepWrite(live.instance_id, self.worker_id, live.epoch, live.key)
        step.mailbox_seen = live.mailbox_seen
        return step

    def _hand_back(self, live: LiveInstance, now: datetime) -> None:
        """Release the lease of an instance this worker stops running (``App.stop``)."""
        self._cache.pop(live.instance_id, None)
        step = self._new_step(live)
        step.attempts = _not_begun(live)
        step.columns = {"updated_at": now}
        step.release = True
        self.storage.commit_step(step, now)

    def _park_live(self, live: LiveInstance, exc: BaseException, where: str) -> None:
        """Park a running instance after ``exc``; never raises."""
        now = utcnow()
        step = self._new_step(live)
        try:
            self._commit_park(live, step, exc, where, now)
        except Exception:  # the storage is failing too: park it once it works again
            self._park(live.instance_id, live.epoch, exc, where)

    def _parked_start(self, live: LiveInstance, exc: BaseException, now: datetime) -> StepWrite:
        """The first step of a start whose workflow code failed to reach its first command
        (a ``SystemExit``, a value that cannot be recorded): no history, the instance parked."""
        step = self._new_step(live)
        _retry_at, step.columns = self._park_columns(
            live.instance_id, exc, "starting the workflow", now
        )
        step.release = True
        return step

    def _resolve_due(self, live: LiveInstance, now: datetime) -> StepWrite | None:
        """Feed the earliest due timer, event, timeout or child outcome and commit it; None
        when none is due. While what it leads to decides nothing new (a fan-in: an ``All``
        collecting children or events), the next due ones go into the same step, up to
        ``_RESOLVE_BATCH``: one commit for many outcomes, in the order a replay feeds them."""
        pending = live.interp.pending
        types = events.event_types(pending)
        mailbox = self.storage.mailbox(live.instance_id, types) if types else {}
        for queue in mailbox.values():
            if queue:
                live.mailbox_seen = max(live.mailbox_seen, queue[-1][0])
        records: list[Any] = []
        values: dict[int, Any] = {}
        consumed: list[tuple[int, int]] = []
        for _ in range(_RESOLVE_BATCH):
            due = events.next_due(pending, mailbox, now)
            if due is None:
                break
            resolved = due.resolved
            live.interp.feed(resolved)
            if due.value_json is not None:
                values[resolved.seq] = due.value_json
            if due.mailbox_id is not None:
                consumed.append((due.mailbox_id, resolved.seq))
                mailbox = _without(mailbox, due.mailbox_id)
            decided = live.interp.decide()
            records += [resolved, *decided]
            if decided or live.interp.finished:
                break
            pending = live.interp.pending
        if not records:
            return None
        step = self._step(live, records, values, now)
        step.mailbox_consumed += consumed
        return self._commit(live, step, now)

    def _wait(self, live: LiveInstance, now: datetime) -> StepWrite:
        """Nothing to do but wait: record the state and release the lease."""
        step = self._new_step(live)
        self._fill_state(live, step, now)
        step.release = True
        step.columns.pop("lock_expires_at", None)
        return self._commit(live, step, now)

    def _commit_park(
        self, live: LiveInstance, step: StepWrite, exc: BaseException, where: str, now: datetime
    ) -> StepWrite:
        _retry_at, step.columns = self._park_columns(live.instance_id, exc, where, now)
        step.release = True
        done = {a[0] for a in step.attempts} | set(step.attempts_done)
        step.attempts += [a for a in _not_begun(live) if a[0] not in done]
        self._cache.pop(live.instance_id, None)  # its interpreter may be half-way: replay it
        self.storage.commit_step(step, now)
        return step

    def _finish_step(self, live: LiveInstance, step: StepWrite, now: datetime) -> StepWrite:
        self._fill_state(live, step, now)
        return self._commit(live, step, now)

    def _commit(self, live: LiveInstance, step: StepWrite, now: datetime) -> StepWrite:
        """Commit one step (fenced; ``LeaseLost`` writes nothing) and update the live state."""
        self.storage.commit_step(step, now)
        self._after_commit(live, step)
        return step

    def _begin_next_run(self, live: LiveInstance) -> None:
        """Go on with the run the last step began: a fresh interpreter on the new input, its
        first decisions committed as the new run's first step."""
        wf = live.workflow
        interp = live.interp
        data = interp.continue_input
        value = (
            from_jsonable(data, wf.input_adapter, what="the input of ContinueAsNew")
            if wf.input_param is not None
            else None
        )
        now = live.next_run_at or utcnow()
        fresh = LiveInstance.new(
            wf,
            value,
            instance_id=live.instance_id,
            started_at=now,
            epoch=live.epoch,
            lock_timeout=live.lock_timeout,
            run=interp.run + 1,
        )
        live.next_run(fresh.interp)
        self._commit(live, self._step(live, live.interp.decide(), {}, utcnow()), utcnow())

    def _after_commit(self, live: LiveInstance, step: StepWrite) -> None:
        live.written.update(step.columns)
        if step.waits_removed:
            live.waits.difference_update(step.waits_removed)
        if step.waits_added:
            live.waits.update(seq for seq, _t, _d, _m in step.waits_added)
        if live.interp.finished:
            self._cache.pop(live.instance_id, None)
            if step.outbox and not self._wake.is_set():
                self._wake.set()  # a serving loop relays the new outbox rows
            return
        if step.release:
            with self._cache_lock:  # start() may run in several threads at once
                cache = self._cache
                cache.pop(live.instance_id, None)
                cache[live.instance_id] = live
                while len(cache) > self._cache_size:
                    cache.popitem(last=False)
        if not self._wake.is_set():
            self._wake.set()


#: At most this many outcomes go into one step of a fan-in (``Worker._resolve_due``).
_RESOLVE_BATCH = 100


def _without(mailbox: dict[str, list[tuple[int, Any]]], mailbox_id: int) -> dict[str, Any]:
    """The mailbox less the event just consumed (the next pick must not take it again)."""
    return {t: [e for e in queue if e[0] != mailbox_id] for t, queue in mailbox.items()}


def _note_cancel(live: LiveInstance, row: dict[str, Any]) -> None:
    """Whether ``row`` (the instance as stored) asks for a cancel its interpreter has not seen."""
    if row.get("cancel_requested_at") is not None:
        reason = row.get("cancel_reason")
        live.cancel_asked = (loads(reason) if isinstance(reason, str) else None,)


def _not_begun(live: LiveInstance) -> list[tuple[int, int, int, datetime | None, str | None]]:
    """Attempt rows saying "attempt 1 has not begun" for activities scheduled under this lease
    and never started: the scheduled record stands for attempt 1 having begun, which would
    otherwise count against max_attempts for a body that never ran."""
    return [(seq, 0, 0, None, None) for seq in sorted(live.fresh)]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_WORKERS: weakref.WeakSet[Worker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for worker in list(_WORKERS):
        worker._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
