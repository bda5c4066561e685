"""``App``: durable execution of workflows on SQLite.

The runtime is the kernel's I/O. For one instance it loops: run the oldest pending activity (or
fire what is due), feed the outcome to the interpreter, ask for decisions, and commit the outcome,
the decisions, outbox rows and the instance's new state in one ``BEGIN IMMEDIATE`` transaction,
fenced by the lease epoch. Live interpreters are cached between steps, so a step costs one commit
and no replay; a replay happens only after a crash, a takeover or an eviction.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import events
from .clock import to_text, utcnow
from .context import ActivityContext
from .decorators import Workflow, get_workflow
from .executor import run_attempt
from .instance import LiveInstance, decode_records, event_to_json, resolve_activity
from .kernel import (
    EddicError,
    Failure,
    InstanceExists,
    NonDeterminismError,
    Phase,
    Resolved,
    Scheduled,
    WorkflowFailed,
    derived_uuid,
)
from .leases import LeaseKeeper
from .outbox import relay
from .replay import Replay, replay_instance
from .serde import SerializationError, conform, dumps, from_jsonable, loads, to_jsonable
from .storage import LeaseLost, StepWrite, Storage

log = logging.getLogger("eddic")

_TERMINAL = ("completed", "failed", "cancelled")


class App:
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
    ) -> None:
        self.storage = Storage(
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
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._cache: OrderedDict[str, LiveInstance] = OrderedDict()
        self._cache_size = cache_size
        self._skip_until: dict[str, datetime] = {}  # unregistered workflows: not a hot loop
        self._last_recovery: datetime | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._serving: threading.Thread | None = None
        self._serve_done = threading.Event()
        self._initialized = False
        self._keeper = LeaseKeeper(self.storage)

    # -- lifecycle --

    def initialize(self) -> None:
        """Open the database and create or migrate its schema. Idempotent."""
        self.storage.open()
        self._initialized = True

    def shutdown(self) -> None:
        """Stop ``serve()`` and close the database connections."""
        self._stop.set()
        self._wake.set()
        if self._serving is not None and self._serving is not threading.current_thread():
            self._serve_done.wait(timeout=60)  # let serve() finish its pass before closing
        self._keeper.stop()
        self._keeper = LeaseKeeper(self.storage)
        self._cache.clear()
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
        self._ready()
        wf = get_workflow(workflow)
        input_json, input_value = self._validate_input(wf, input)
        iid = instance_id or str(uuid.uuid4())
        timeout = lock_timeout_seconds or wf.lock_timeout_seconds
        now = utcnow()
        live = LiveInstance.new(
            wf,
            input_value,
            instance_id=iid,
            started_at=now,
            epoch=1,
            lock_timeout=timeout or self.default_lock_timeout_seconds,
        )
        with self.storage.transaction() as db:
            existing = self.storage.instance_row(db, iid)
            if existing is not None:
                if existing["workflow_name"] != wf.name:
                    raise InstanceExists(
                        f"instance {iid!r} already exists and runs workflow "
                        f"{existing['workflow_name']!r}, not {wf.name!r}"
                    )
                return iid
            self.storage.insert_instance(
                db,
                {
                    "instance_id": iid,
                    "workflow_name": wf.name,
                    "status": "running",
                    "input_data": dumps(input_json),
                    "created_at": to_text(now),
                    "updated_at": to_text(now),
                    "started_at": to_text(now),
                    "service_name": self.service_name,
                    "lock_timeout_seconds": timeout,
                    "lock_owner": self.worker_id,
                    "lock_epoch": 1,
                    "lock_expires_at": to_text(now + timedelta(seconds=live.lock_timeout)),
                    "last_pos": 0,
                },
            )
            step = self._step(live, live.interp.decide(), {}, now)
            self.storage.write_step(db, step, now)
        self._after_commit(live, step)
        self._drive(live)
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

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        self._ready()
        return self.storage.history(instance_id)

    def replay(self, instance_id: str) -> Replay:
        """Replay the instance's history through the current code, one ``Step`` per command.

        Runs no activity, sends no event, writes nothing (see :mod:`eddic.replay`).
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
        raise EddicError(f"instance {instance_id!r} has not finished (status {status!r})")

    # -- the worker side --

    def run_due(self, *, recover: bool = True) -> int:
        """One pass: due timers and events, expired leases (recovery), then the outbox relay.

        Returns how many instances were advanced. ``serve()`` passes ``recover=False`` between
        recovery passes (every ``recovery_interval_seconds``).
        """
        self._ready()
        now = utcnow()
        advanced = 0
        for iid, name in self.storage.due_instances(now):
            advanced += self._resume(iid, name, now)
        if recover:
            for iid, name in self.storage.stale_instances(now):
                advanced += self._resume(iid, name, now)
            self._last_recovery = now
        if self.outbox_enabled:
            self.relay_outbox()
        return advanced

    def _resume(self, instance_id: str, workflow_name: str, now: datetime) -> int:
        skip = self._skip_until.get(instance_id)
        if skip is not None and skip > now:
            return 0
        try:
            wf = get_workflow(workflow_name)
        except EddicError:
            log.warning(
                "instance %s runs workflow %r, which is not registered in this process; "
                "leaving it alone for %ss",
                instance_id,
                workflow_name,
                self.recovery_interval_seconds,
            )
            self._skip_until[instance_id] = now + timedelta(seconds=self.recovery_interval_seconds)
            return 0
        got = self.storage.acquire(
            instance_id, self.worker_id, now, self.default_lock_timeout_seconds
        )
        if got is None:
            return 0
        epoch, row = got
        live = self._cache.pop(instance_id, None)
        if live is None or live.epoch + 1 != epoch or live.pos != row["last_pos"]:
            try:
                live = self._load(wf, row, epoch)
            except NonDeterminismError as exc:
                self._park_broken(instance_id, exc, now)
                return 0
        live.epoch = epoch
        self._drive(live)
        return 1

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
        )
        with self.storage.reading() as db:
            rows = self.storage.history_rows(db, iid)
            attempts = self.storage.attempts_of(db, iid)
            waits = db.execute("SELECT seq FROM event_waits WHERE instance_id = ?", [iid])
            live.waits = {r[0] for r in waits.fetchall()}
        live.interp.replay(decode_records(rows))
        live.pos = len(rows)
        for seq, (started_n, failures, next_at, _last) in attempts.items():
            live.attempts[seq] = [
                started_n,
                failures,
                datetime.fromisoformat(next_at) if next_at else None,
            ]
        return live

    def _park_broken(self, instance_id: str, exc: NonDeterminismError, now: datetime) -> None:
        log.error("instance %s cannot be resumed: %s", instance_id, exc)
        error = dumps({"type": "NonDeterminismError", "message": str(exc), "traceback": None})
        retry = now + timedelta(seconds=self.recovery_interval_seconds)
        self.storage.set_retry_after(instance_id, retry, error)

    def send_event(
        self,
        event_type: str,
        data: Any = None,
        *,
        source: str | None = None,
        id: str | None = None,
        instance_id: str | None = None,
    ) -> list[str]:
        """Deliver an event; returns the ids of the instances it reached (see ``events``).

        With ``instance_id`` the event goes to that instance's durable mailbox and is received by
        its next matching ``WaitEvent``; without, it reaches every instance whose pending
        ``WaitEvent`` matches when the send commits. A repeated ``(instance, id)`` is ignored.
        Reached instances are resumed here, in the calling thread.
        """
        return events.send_event(
            self, event_type, data, source=source, id=id, instance_id=instance_id
        )

    def relay_outbox(self) -> int:
        """Deliver due outbox rows to the sink; returns how many were delivered."""
        self._ready()
        return relay(
            self.storage,
            self.outbox_sink,
            max_attempts=self.outbox_max_attempts,
            timeout=self.outbox_timeout_seconds,
        )

    def serve(self, *, idle_sleep_max: float | None = None) -> None:
        """The worker loop: run what is due, sleep until the next timer (or a poll), repeat.

        Blocks until ``shutdown()`` is called from another thread (or a signal handler).
        """
        self._ready()
        self._stop.clear()
        self._serve_done.clear()
        self._serving = threading.current_thread()
        poll = self.timer_poll_interval if idle_sleep_max is None else idle_sleep_max
        try:
            while not self._stop.is_set():
                self._wake.clear()
                last = self._last_recovery
                due = last is None or (utcnow() - last).total_seconds() >= (
                    self.recovery_interval_seconds
                )
                self.run_due(recover=due)
                if self._stop.is_set():
                    break
                now = utcnow()
                wait = min(poll, self.recovery_interval_seconds)
                nxt = self.storage.next_wake()
                if nxt is not None:
                    wait = min(wait, max(0.0, (nxt - now).total_seconds()))
                if self.outbox_enabled and self.storage.outbox_pending():
                    wait = min(wait, 1.0)
                self._wake.wait(wait)
        finally:
            self._serving = None
            self._serve_done.set()

    # -- driving one instance --

    def _drive(self, live: LiveInstance) -> None:
        """Run the instance until it finishes or has nothing to do but wait (lease released)."""
        try:
            while not live.interp.finished:
                now = utcnow()
                runnable = self._runnable(live, now)
                if runnable is not None:
                    step = self._run_activity(live, runnable, now)
                else:
                    step = events.resolve_due(self, live, now) or self._park(live, now)
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
        except LeaseLost as exc:
            log.warning("%s", exc)
            self._cache.pop(live.instance_id, None)
        except NonDeterminismError as exc:
            self._cache.pop(live.instance_id, None)
            self._park_broken(live.instance_id, exc, utcnow())

    def _park(self, live: LiveInstance, now: datetime) -> StepWrite:
        """Nothing to do but wait: record the state and release the lease."""
        step = StepWrite(live.instance_id, self.worker_id, live.epoch)
        self._fill_state(live, step, now)
        step.release = True
        step.columns.pop("lock_expires_at", None)
        self.storage.commit_step(step, now)
        self._after_commit(live, step)
        return step

    def _runnable(self, live: LiveInstance, now: datetime) -> Any:
        for p in live.interp.pending:
            if p.kind in ("activity", "compensation") and live.backoff_until(p.seq, now) is None:
                return p
        return None

    def _run_activity(self, live: LiveInstance, pending: Any, now: datetime) -> StepWrite:
        seq = pending.seq
        act = resolve_activity(pending.command)
        state = live.attempts.get(seq)
        if seq in live.fresh:
            live.fresh.discard(seq)
            attempt = 1
        else:
            # Attempt 1 began when its scheduled record committed; a begun attempt with no
            # recorded outcome crashed. Either way this one is the next: record it first.
            started = state[0] if state else 1
            attempt = started + 1
            failures = state[1] if state else 0
            live.attempts[seq] = [attempt, failures, None]
            pre = StepWrite(live.instance_id, self.worker_id, live.epoch)
            pre.attempts.append((seq, attempt, failures, None, None))
            pre.columns = self._lease_columns(live, now)
            self.storage.commit_step(pre, now)
        ctx = ActivityContext(
            instance_id=live.instance_id,
            seq=seq,
            attempt=attempt,
            idempotency_key=f"{live.instance_id}:{seq}",
        )
        if act is None:
            error: BaseException = EddicError(
                f"activity {pending.name!r} is not registered in this process"
            )
            outcome = None
        elif seq in live.arg_errors:
            error = SerializationError(live.arg_errors[seq])
            outcome = None
        else:
            with self._keeper.holding(
                live.instance_id, self.worker_id, live.epoch, live.lock_timeout
            ):
                outcome = run_attempt(act, pending.command, ctx)
            error = outcome.error  # type: ignore[assignment]
        now = utcnow()
        failures = (live.attempts[seq][1] if seq in live.attempts else 0) + (error is not None)
        if error is not None and act is not None and outcome is not None and outcome.retryable:
            policy = act.retry
            # Attempts begun, crashed ones included, count against max_attempts. A crashed
            # attempt left no outcome, so recovery always runs the call once more.
            if policy.retries(error, attempt):
                wait = policy.interval(attempt)
                next_at = now + timedelta(seconds=wait)
                live.attempts[seq] = [attempt, failures, next_at if wait > 0 else None]
                step = StepWrite(live.instance_id, self.worker_id, live.epoch)
                step.attempts.append((seq, attempt, failures, to_text(next_at), dumps(str(error))))
                return self._finish_step(live, step, now)
        values: dict[int, Any] = {}
        resolved: Resolved
        if error is None and outcome is not None:
            resolved = Resolved(seq, now, outcome.value)
            values[seq] = outcome.json
        else:
            assert error is not None
            resolved = Resolved(seq, now, failure=Failure.from_exception(error, attempt))
        live.interp.feed(resolved)
        step = self._step(live, [resolved, *live.interp.decide()], values, now)
        if outcome is not None and outcome.published:
            # The activity's own events come before those of the commands it led to.
            step.outbox[:0] = [
                self._outbox_row(live, seq, e.event_type, e.data, e.source, now, index=i)
                for i, e in enumerate(outcome.published, start=1)
            ]
        if seq in live.attempts:
            del live.attempts[seq]
            step.attempts_done.append(seq)
        self.storage.commit_step(step, now)
        self._after_commit(live, step)
        return step

    def _finish_step(self, live: LiveInstance, step: StepWrite, now: datetime) -> StepWrite:
        self._fill_state(live, step, now)
        self.storage.commit_step(step, now)
        self._after_commit(live, step)
        return step

    def _step(
        self, live: LiveInstance, records: list[Any], values: dict[int, Any], now: datetime
    ) -> StepWrite:
        """The write for new records: history rows, outbox rows for publishes, new state."""
        step = StepWrite(live.instance_id, self.worker_id, live.epoch)
        step.history = live.rows(records, values)
        for record in records:
            if isinstance(record, Scheduled) and record.kind == "publish":
                args = record.args
                step.outbox.append(
                    self._outbox_row(
                        live, record.seq, record.name, args["data"], args["source"], now
                    )
                )
        self._fill_state(live, step, now)
        return step

    def _outbox_row(
        self,
        live: LiveInstance,
        seq: int,
        event_type: str,
        data: Any,
        source: str | None,
        now: datetime,
        index: int | None = None,
    ) -> tuple[Any, ...]:
        event_id = str(derived_uuid(live.instance_id, seq, index))
        payload = to_jsonable(data, what=f"data of event {event_type!r}")
        return (
            event_id,
            live.instance_id,
            seq,
            event_type,
            source or self.service_name,
            dumps(payload),
            to_text(now),
            to_text(now),
        )

    def _fill_state(self, live: LiveInstance, step: StepWrite, now: datetime) -> None:
        interp = live.interp
        status = live.status(now)
        columns: dict[str, Any] = {
            "status": status,
            "updated_at": to_text(now),
            "last_pos": live.pos,
        }
        if interp.phase is Phase.COMPLETED:
            try:
                adapter = live.workflow.result_adapter
                what = "the workflow result"
                output = to_jsonable(conform(interp.result, adapter, what=what), adapter, what=what)
                columns["output_data"] = dumps(output)
                columns["error"] = None
            except SerializationError as exc:
                columns["status"] = "failed"
                columns["error"] = dumps(_error_json(exc, []))
        elif interp.phase is Phase.FAILED:
            assert interp.error is not None
            columns["error"] = dumps(_error_json(interp.error, interp.compensation_errors))
        waits = {p.seq: p for p in interp.pending if p.kind == "event"}
        step.waits_added = [
            (seq, p.name, to_text(p.deadline)) for seq, p in waits.items() if seq not in live.waits
        ]
        step.waits_removed = [seq for seq in live.waits if seq not in waits]
        if interp.finished:
            columns["wake_at"] = None
            step.release = True
        else:
            wake = live.wake_at()
            columns["wake_at"] = to_text(wake)
            due = wake is not None and wake <= now
            step.release = self._runnable(live, now) is None and not due
            if not step.release:
                columns["lock_expires_at"] = to_text(now + timedelta(seconds=live.lock_timeout))
        columns["retry_after"] = None
        step.columns = columns

    def _lease_columns(self, live: LiveInstance, now: datetime) -> dict[str, Any]:
        return {"lock_expires_at": to_text(now + timedelta(seconds=live.lock_timeout))}

    def _after_commit(self, live: LiveInstance, step: StepWrite) -> None:
        live.waits.difference_update(step.waits_removed)
        live.waits.update(seq for seq, _t, _d in step.waits_added)
        if live.interp.finished:
            self._cache.pop(live.instance_id, None)
            if self.outbox_enabled and step.outbox:
                self._wake.set()
            return
        if step.release:
            self._cache[live.instance_id] = live
            self._cache.move_to_end(live.instance_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._wake.set()


def _error_json(error: BaseException, compensation_errors: list[Failure]) -> dict[str, Any]:
    failure = Failure.from_exception(error)
    out: dict[str, Any] = {
        "type": failure.type,
        "message": failure.message,
        "traceback": failure.traceback,
    }
    if compensation_errors:
        out["compensation_errors"] = [
            {"type": f.type, "message": f.message, "attempts": f.attempts}
            for f in compensation_errors
        ]
    return out


__all__ = ["App", "event_to_json"]
