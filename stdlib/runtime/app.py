"""``App``: durable execution of workflows on SQLite — the public face of the runtime.

``App`` starts instances, answers questions about them, delivers events and runs the worker
loop; the step-by-step execution of an instance lives in :mod:`eddic.runtime.worker`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .. import validate
from ..clock import utcnow
from ..codec import event_to_json
from ..debug.replay import Replay, replay_instance
from ..decorators import Workflow, get_workflow, workflow_names
from ..kernel import (
    EddicError,
    InstanceExists,
    InstanceNotFound,
    WorkflowCancelled,
    WorkflowFailed,
)
from ..serde import dumps, from_jsonable, to_jsonable
from ..storage import StepWrite, open_store
from . import events
from .faults import is_exit_request
from .instance import LiveInstance
from .outbox import relay
from .serving import Serving
from .worker import Worker, new_worker_id

log = logging.getLogger("eddic")

_FINISHED = ("completed", "failed", "cancelled")
# At most this many instances are claimed by one pass (``run_due``), so that a pass ends.
_PASS_LIMIT = 200


class App(Serving):
    """A durable workflow runtime on one SQLite database."""

    def __init__(
        self,
        db_url: str = "sqlite:///eddic.db",
        service_name: str = "eddic",
        *,
        outbox_enabled: bool = False,
        outbox_sink: Callable[..., Any] | str | None = None,
        default_lock_timeout_seconds: float = 300.0,
        recovery_interval_seconds: float = 60.0,
        timer_poll_interval: float = 10.0,
        synchronous: str = "FULL",
        busy_timeout_seconds: float = 30.0,
        outbox_max_attempts: int = 10,
        outbox_timeout_seconds: float = 10.0,
        cache_size: int = 10_000,
        failover_check_seconds: float = 1.0,
        activity_threads: int = 16,
    ) -> None:
        seconds = validate.seconds
        default_lock_timeout_seconds = seconds(
            default_lock_timeout_seconds, "default_lock_timeout_seconds", allow_zero=False
        )
        recovery_interval_seconds = seconds(
            recovery_interval_seconds, "recovery_interval_seconds", allow_zero=False
        )
        timer_poll_interval = seconds(timer_poll_interval, "timer_poll_interval", allow_zero=False)
        self.failover_check_seconds = seconds(
            failover_check_seconds, "failover_check_seconds", allow_zero=False
        )
        busy_timeout_seconds = seconds(busy_timeout_seconds, "busy_timeout_seconds")
        outbox_timeout_seconds = seconds(
            outbox_timeout_seconds, "outbox_timeout_seconds", allow_zero=False
        )
        validate.count(outbox_max_attempts, "outbox_max_attempts")
        validate.count(cache_size, "cache_size")
        validate.count(activity_threads, "activity_threads", minimum=1)
        self.storage = open_store(
            db_url, synchronous=synchronous, busy_timeout_ms=int(busy_timeout_seconds * 1000)
        )
        self.service_name = service_name
        self.outbox_enabled = outbox_enabled
        self.outbox_sink = outbox_sink
        self.outbox_max_attempts = outbox_max_attempts
        self.outbox_timeout_seconds = outbox_timeout_seconds
        self.default_lock_timeout_seconds = default_lock_timeout_seconds
        self.recovery_interval_seconds = recovery_interval_seconds
        self.timer_poll_interval = timer_poll_interval
        self._last_recovery: datetime | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._serving: threading.Thread | None = None
        self._recover_now = False  # a dead worker's instances were released: recover them
        self._serve_done = threading.Event()
        self._initialized = False
        self._worker = Worker(
            self.storage,
            worker_id=new_worker_id(),
            service_name=service_name,
            default_lock_timeout_seconds=default_lock_timeout_seconds,
            recovery_interval_seconds=recovery_interval_seconds,
            cache_size=cache_size,
            wake=self._wake,
            activity_threads=activity_threads,
        )

    @property
    def worker_id(self) -> str:
        """Who this App's leases name: host, process and a random part (new in a forked child)."""
        return self._worker.worker_id

    # -- lifecycle --

    def initialize(self) -> None:
        """Open the database and create or migrate its schema. Idempotent."""
        if not self._initialized:
            self._stop.clear()  # a stop asked of an earlier, shut-down life of this App
        self.storage.open()
        self._initialized = True

    def stop(self) -> None:
        """Ask ``serve()`` to return after the steps in progress; each instance it was running
        hands its lease back, for the next recovery pass. Safe in a signal handler."""
        self._stop.set()
        self._wake.set()

    def shutdown(self) -> None:
        """Stop ``serve()`` and close the database connections."""
        self._stop.set()
        self._wake.set()
        if self._serving is not None and self._serving is not threading.current_thread():
            self._serve_done.wait(timeout=60)  # let serve() finish its pass before closing
        self._worker.close()
        self.storage.close()
        self._initialized = False

    def __enter__(self) -> App:
        self.initialize()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _ready(self) -> None:
        if not self._initialized:
            self.initialize()

    # -- starting and reading --

    def start(
        self,
        workflow: Workflow[Any] | str,
        input: Any = None,
        *,
        instance_id: str | None = None,
        lock_timeout_seconds: float | None = None,
    ) -> str:
        """Record a new instance and run it here until it completes, fails or waits."""
        checked = self._checked_start(workflow, input, instance_id, lock_timeout_seconds)
        if isinstance(checked, str):
            return checked
        wf, iid, input_json, input_value, timeout = checked
        now = utcnow()
        live = LiveInstance.new(
            wf,
            input_value,
            instance_id=iid,
            started_at=now,
            epoch=1,
            lock_timeout=timeout or self.default_lock_timeout_seconds,
        )
        live.lease_until = now + timedelta(seconds=live.lock_timeout)
        # The workflow runs to its first command outside the write transaction, which may be
        # shared with other threads' steps (group commit) and should hold no user code.
        worker = self._worker
        try:
            step = worker._step(live, live.interp.decide(), {}, now)
            parked = False
        except BaseException as exc:
            if is_exit_request(exc):
                raise
            # Recorded all the same, parked: the caller's start happened, the fault is the
            # workflow's; ``error`` says what went wrong and recovery (or retry) tries again.
            step, parked = worker._parked_start(live, exc, now), True
        row = self._new_row(wf, iid, input_json, timeout, now)
        row.update(lock_owner=worker.worker_id, lock_epoch=1, lock_expires_at=live.lease_until)
        self.storage.hold_liveness(worker.worker_id)  # before its first lease
        taken, live.key = self.storage.create(row, step, now, check_taken=instance_id is not None)
        if taken is not None:  # started meanwhile by another caller
            return self._started_already(iid, taken, wf)
        if parked:
            return iid
        # From here on the instance is durable: what goes wrong is the worker's to recover,
        # and raising would make a caller start it again.
        try:
            worker._after_commit(live, step)
            if not step.release:  # released: it waits; driving it would park it again
                worker._drive(live)
        except Exception:
            log.exception("instance %s was recorded; running it inline failed", iid)
        return iid

    def _checked_start(
        self,
        workflow: Workflow[Any] | str,
        input: Any,
        instance_id: str | None,
        lock_timeout_seconds: float | None,
    ) -> str | tuple[Workflow[Any], str, Any, Any, float | None]:
        """What ``start`` and ``submit`` check before writing anything: the id of an instance
        started already with this id, or ``(workflow, id, input JSON, input, lock timeout)``."""
        self._ready()
        wf = get_workflow(workflow)
        if instance_id is not None:
            validate.name(instance_id, "instance_id")
        timeout = validate.seconds(
            lock_timeout_seconds, "lock_timeout_seconds", allow_zero=False, allow_none=True
        )
        input_json, input_value = self._validate_input(wf, input)
        iid = str(uuid.uuid4()) if instance_id is None else instance_id
        if instance_id is not None:  # a start repeated with its id runs no workflow code again
            taken = self.storage.workflow_name(iid)
            if taken is not None:
                return self._started_already(iid, taken, wf)
        return (
            wf,
            iid,
            input_json,
            input_value,
            wf.lock_timeout_seconds if timeout is None else timeout,
        )

    def submit(
        self,
        workflow: Workflow[Any] | str,
        input: Any = None,
        *,
        instance_id: str | None = None,
        lock_timeout_seconds: float | None = None,
    ) -> str:
        """Record a new instance and return at once, running none of its code: a serving
        worker (in any process, on any machine) runs it. Checked and idempotent by id like
        ``start``; ``wait`` blocks until it has finished."""
        checked = self._checked_start(workflow, input, instance_id, lock_timeout_seconds)
        if isinstance(checked, str):
            return checked
        wf, iid, input_json, _input_value, timeout = checked
        now = utcnow()
        row = self._new_row(wf, iid, input_json, timeout, now)
        # No lease and no history: due now, so the first worker to claim it runs its code
        # from the start (as it would replay a start parked before its first command).
        first = StepWrite(iid, "", 0, columns={"wake_at": now})
        taken, _key = self.storage.create(row, first, now, check_taken=instance_id is not None)
        if taken is not None:  # submitted or started meanwhile by another caller
            return self._started_already(iid, taken, wf)
        self._wake.set()  # this process's serve(), if any, claims it now
        return iid

    def wait(self, instance_id: str, timeout: float | None = None) -> Any:
        """Block until the instance has finished; then what ``result`` returns (its typed
        result, or ``WorkflowFailed``). ``TimeoutError`` once ``timeout`` seconds have passed;
        ``InstanceNotFound`` for an unknown id. Reads the instance every few milliseconds at
        first, then every 0.1 s."""
        self._ready()
        limit = validate.seconds(timeout, "timeout", allow_none=True)
        deadline = None if limit is None else time.monotonic() + limit
        pause = 0.002
        while self.get_instance(instance_id)["status"] not in _FINISHED:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"instance {instance_id!r} did not finish in {limit} s")
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 0.1)
        return self.result(instance_id)

    def _new_row(
        self,
        wf: Workflow[Any],
        iid: str,
        input_json: Any,
        timeout: float | None,
        now: datetime,
    ) -> dict[str, Any]:
        """A new instance's row, with no lease (``start`` sets its own, epoch 1)."""
        return {
            "instance_id": iid,
            "workflow_name": wf.name,
            "status": "running",
            "input_data": dumps(input_json),
            "created_at": now,
            "updated_at": now,
            "started_at": now,
            "service_name": self.service_name,
            "lock_timeout_seconds": timeout,
            "lock_owner": None,
            "lock_epoch": 0,
            "lock_expires_at": None,
        }

    def _started_already(self, iid: str, taken: str, wf: Workflow[Any]) -> str:
        if taken != wf.name:
            raise InstanceExists(
                f"instance {iid!r} already exists and runs workflow {taken!r}, not {wf.name!r}"
            )
        return iid

    def _validate_input(self, wf: Workflow[Any], input: Any) -> tuple[Any, Any]:
        if wf.input_param is None:
            if input is not None:
                raise TypeError(f"workflow {wf.name!r} takes no input, got {input!r}")
            return None, None
        validated = wf.input_adapter.validate_python(input)  # pydantic.ValidationError
        data = to_jsonable(validated, wf.input_adapter, what=f"the input of {wf.name!r}")
        return data, from_jsonable(data, wf.input_adapter, what=f"the input of {wf.name!r}")

    def get_instance(self, instance_id: str) -> dict[str, Any]:
        self._ready()
        return self.storage.get_instance(instance_id)

    def list_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        self._ready()
        return self.storage.list_instances(status=status, workflow=workflow, limit=limit)

    def history(self, instance_id: str, run: int | None = None) -> list[dict[str, Any]]:
        """The decoded history of the run in progress, or of run ``run`` (from 1; see
        continue-as-new)."""
        self._ready()
        if run is not None:
            validate.count(run, "run", minimum=1)
        return self.storage.history(instance_id, run)

    def replay(self, instance_id: str) -> Replay:
        """Replay the instance's history through the current code, one ``Step`` per command.

        Runs no activity, sends no event, writes nothing (see :mod:`eddic.debug.replay`).
        """
        self._ready()
        return replay_instance(self.storage, instance_id)

    def result(self, instance_id: str) -> Any:
        """The result, rebuilt as the workflow's return annotation; ``WorkflowFailed`` if failed."""
        info = self.get_instance(instance_id)
        status = info["status"]
        if status == "completed":
            wf = get_workflow(info["workflow_name"])
            return from_jsonable(info["output_data"], wf.result_adapter, what="the result")
        if status == "failed":
            error = info["error"] or {}
            raise WorkflowFailed(error.get("type", "?"), error.get("message", ""))
        if status == "cancelled":
            error = info["error"] or {}
            raise WorkflowCancelled(error.get("reason"))
        raise EddicError(f"instance {instance_id!r} has not finished (status {status!r})")

    def cancel(self, instance_id: str, reason: str | None = None, *, inline: bool = True) -> bool:
        """Cancel an instance: ``Cancelled(reason)`` is thrown into the workflow at its current
        yield (design §8). True when the cancel is recorded (durably, before this returns; a
        repeated cancel is recorded already), False when the instance had finished;
        ``InstanceNotFound`` for an unknown id. Like ``send_event``, the instance then runs
        here until it waits or ends, unless ``inline=False`` or another worker holds it (that
        worker sees the cancel at its next step)."""
        self._ready()
        validate.name(instance_id, "instance_id")
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"the reason of a cancel must be a string or None, got {reason!r}")
        status = self.storage.request_cancel(instance_id, reason, utcnow())
        if status is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        if status in _FINISHED:
            return False
        # Durable from here on: nothing that goes wrong running the instance is raised.
        self._worker.note_cancel(instance_id)
        if inline:
            name = self.storage.workflow_name(instance_id)
            if name is not None:
                self._advance(instance_id, name, utcnow())
        else:
            self._wake.set()
        return True

    def retry(self, instance_id: str) -> bool:
        """Run an instance now: a parked one without waiting for its retry time, or any
        unfinished one whose lease is free. True when it was unfinished and was retried here;
        False when it has finished (or a live worker holds it). ``InstanceNotFound`` for an
        unknown id."""
        self._ready()
        validate.name(instance_id, "instance_id")
        now = utcnow()
        status = self.storage.unpark(instance_id, now)
        if status is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        if status in _FINISHED:
            return False
        name = self.storage.workflow_name(instance_id)
        self._worker._skip_until.pop(instance_id, None)
        return name is not None and self._worker._resume(instance_id, name, now) == 1

    # -- the worker side --

    def run_due(self, *, recover: bool = True) -> int:
        """One pass: due timers and events, expired leases (recovery), then the outbox relay.

        Returns how many instances were advanced. ``serve()`` passes ``recover=False`` between
        recovery passes (every ``recovery_interval_seconds``).
        """
        return self._run_pass(recover=recover, stop=None)

    def _run_pass(self, *, recover: bool, stop: threading.Event | None) -> int:
        """``run_due``, one instance after another in this thread; for ``serve``, ``stop`` ends
        the pass after the step in progress. (``serve(threads=N)`` runs no passes: its
        dispatcher, :mod:`eddic.runtime.scheduler`, claims for free threads as they come.)"""
        self._ready()
        self._worker.park_pending()
        self.storage.hold_liveness(self._worker.worker_id)
        now = utcnow()
        names = workflow_names()
        if recover:
            self._start_recovery(now, names)
        advanced = claimed = 0
        while claimed < _PASS_LIMIT and not (stop is not None and stop.is_set()):
            # One at a time: a lease is not held while the instance waits for its turn.
            work = self.storage.claim(
                now,
                self._worker.worker_id,
                limit=1,
                default_timeout=self.default_lock_timeout_seconds,
                workflows=names,
                stale=recover,
            )
            if not work:
                break
            claimed += len(work)
            advanced += sum(self._run_claimed(epoch, row, stop) for epoch, row in work)
            now = utcnow()
        if self.outbox_enabled:
            try:
                self.relay_outbox()
            except Exception:
                log.exception("the outbox relay failed; it runs again on the next pass")
        return advanced

    def _start_recovery(self, now: datetime, names: Sequence[str]) -> None:
        """A recovery pass begins (its claims take stale instances too): noted, and the work
        this process cannot run is left to one that can, with a line in the log."""
        self._last_recovery = now
        for instance_id, name in self.storage.due_elsewhere(now, names):
            self._worker._registered(instance_id, name, now)

    def send_event(
        self,
        event_type: str,
        data: Any = None,
        *,
        source: str | None = None,
        id: str | None = None,
        instance_id: str | None = None,
        inline: bool = True,
    ) -> list[str]:
        """Deliver an event; returns the ids of the instances it reached.

        With ``instance_id`` the event goes to that instance's durable mailbox and is received by
        its next matching ``WaitEvent``; without, it reaches every instance whose pending
        ``WaitEvent`` matches when the send commits. A repeated ``(instance, id)`` is ignored.
        Reached instances are resumed here, in the calling thread; with ``inline=False`` they
        are left to a serving worker (the send returns once the event is stored: the choice for
        a web handler).
        """
        self._ready()
        validate.name(event_type, "event type")
        if event_type.startswith(events.RESERVED_PREFIX):
            raise ValueError(
                f"event type {event_type!r}: types beginning {events.RESERVED_PREFIX!r} are "
                "eddic's own (a child workflow's outcome to its parent)"
            )
        for what, value in (
            ("event id", id),
            ("instance_id", instance_id),
            ("event source", source),
        ):
            if value is not None:
                validate.name(value, what)
        event_id = id or str(uuid.uuid4())
        payload = dumps(to_jsonable(data, what=f"data of event {event_type!r}"))
        reached = self.storage.deliver(
            event_type,
            payload,
            source=source or self.service_name,
            event_id=event_id,
            now=utcnow(),
            instance_id=instance_id,
        )
        # The event is durable now: nothing that goes wrong running its receivers may raise
        # here, or a caller's retry would send it again under a new id.
        if not inline:
            self._wake.set()  # this process's serve(), if any, claims them now
            return [target for target, _name in reached]
        for target, name in reached:
            self._advance(target, name, utcnow())
        return [target for target, _name in reached]

    def _run_claimed(
        self, epoch: int, row: dict[str, Any], stop: threading.Event | None = None
    ) -> int:
        """``_advance`` for an instance ``claim`` gave this worker."""
        try:
            return self._worker.run_claimed(epoch, row, stop)
        except Exception:
            log.exception("could not advance instance %s; recovery will", row["instance_id"])
            return 0

    def _advance(
        self, instance_id: str, workflow: str, now: datetime, stop: threading.Event | None = None
    ) -> int:
        """Resume one instance here; a storage error is logged, never raised, so that the
        caller's other instances (or its already durable send) go on."""
        try:
            return self._worker._resume(instance_id, workflow, now, stop)
        except Exception:
            log.exception("could not advance instance %s; recovery will", instance_id)
            return 0

    def relay_outbox(self) -> int:
        """Deliver due outbox rows to the sink; returns how many were delivered."""
        self._ready()
        return relay(
            self.storage,
            self.outbox_sink,
            max_attempts=self.outbox_max_attempts,
            timeout=self.outbox_timeout_seconds,
        )

    @property
    def _cache(self) -> OrderedDict[str, LiveInstance]:
        """The live interpreters kept between steps (tests and benchmarks peek at it)."""
        cache: OrderedDict[str, LiveInstance] = self._worker._cache
        return cache


__all__ = ["App", "event_to_json"]
