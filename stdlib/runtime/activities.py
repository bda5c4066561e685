"""The worker's activity attempts: begin one, run it here or among others, settle its outcome.

A mixin of :class:`~eddic.runtime.worker.Worker`, on ``step_writes.StepWrites`` (which builds what
a step commits). An attempt has three parts, whichever thread runs its body (``bodies`` says
which):

- ``_begin``: the attempt's number, recorded before the body runs when it is not the first
  (attempt 1 began when its scheduled record committed); an activity whose every allowed attempt
  began and left no outcome is failed with ``eddic.AttemptLost`` instead of run again;
- the body, on the driver's thread (``_run_activity``, a lone activity) or started among others
  (``_start_bodies``) and awaited with deadlines (``_await_bodies``);
- ``_settle``: a retry scheduled, or the final outcome committed with the decisions it leads to
  (``_record_outcome``); a ``BaseException`` from the body parks the instance.

A settled attempt's body is never read again: a body that overran its timeout, or whose
instance moved on without it, returns into nothing.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from typing import Any

from ..clock import utcnow
from ..context import ActivityContext
from ..decorators import Activity
from ..errors import ActivityTimeout, SerializationError
from ..kernel import RUN_TO_COMPLETION, EddicError, Failure, Resolved
from ..serde import dumps, loads
from ..storage import StepWrite, Store
from .bodies import (
    BodyPool,
    Running,
    in_body_thread,
    outcome_of,
    wait_first,
)
from .executor import Outcome, run_attempt
from .faults import is_exit_request
from .instance import LiveInstance, resolve_activity
from .leases import LeaseKeeper
from .step_writes import StepWrites

#: While bodies run and the instance also waits on an event, its mailbox is read this often.
EVENT_POLL_SECONDS = 0.1
#: The longest a driver waits on running bodies before it looks again (a stop, a deadline).
AWAIT_SLICE_SECONDS = 1.0


class Activities(StepWrites):
    # What the mixin uses of the Worker (set in Worker.__init__, defined there).
    storage: Store
    worker_id: str
    _keeper: LeaseKeeper
    _bodies: BodyPool

    def _commit(self, live: LiveInstance, step: StepWrite, now: datetime) -> StepWrite:
        raise NotImplementedError

    def _finish_step(self, live: LiveInstance, step: StepWrite, now: datetime) -> StepWrite:
        raise NotImplementedError

    def _commit_park(
        self, live: LiveInstance, step: StepWrite, exc: BaseException, where: str, now: datetime
    ) -> StepWrite:
        raise NotImplementedError

    # -- which bodies run, and where --

    def _runnables(
        self, live: LiveInstance, pending: list[Any], now: datetime, running: dict[int, Running]
    ) -> list[Any]:
        """Of ``pending``, the activities and compensations that may begin now, oldest first."""
        return [
            p
            for p in pending
            if p.kind in RUN_TO_COMPLETION
            and p.seq not in running
            and live.backoff_until(p.seq, now) is None
        ]

    def _solo(
        self, pending: list[Any], runnable: list[Any], running: dict[int, Running]
    ) -> tuple[bool, Activity | None]:
        """Whether the driver runs the first of ``runnable`` itself (and its activity, looked
        up once): it is the one thing the instance waits on and has no timeout to watch (no
        hand-off: the common step), or the driver is itself a body (a nested ``start``), which
        runs its instance's bodies one at a time rather than wait on the pool from inside it."""
        act = None
        if not running and len(runnable) == 1 and len(pending) == 1:
            act = resolve_activity(runnable[0].command)
            if act is None or (act.timeout is None and act.heartbeat_timeout is None):
                return True, act
        return in_body_thread(), act

    # -- one attempt --

    def _begin(
        self, live: LiveInstance, pending: Any, now: datetime, act: Activity | None = None
    ) -> Running | StepWrite:
        """The next attempt of ``pending`` (of activity ``act``, when the caller has it), ready
        to run; or the step that settled it without running (every allowed attempt lost, the
        activity not registered, bad arguments)."""
        seq = pending.seq
        if act is None:
            act = resolve_activity(pending.command)
        state = live.attempts.get(seq)
        if seq in live.fresh:
            live.fresh.discard(seq)
            attempt = 1
        else:
            # Attempt 1 began when its scheduled record committed; a begun attempt with no
            # recorded outcome crashed. Either way this one is the next: record it first.
            started = state[0] if state else 1
            failures = state[1] if state else 0
            if act is not None and started >= act.retry.max_attempts:
                # Every attempt the policy allows has begun, the last left no outcome: a crash
                # counts as an attempt, so none beyond max_attempts ever begins.
                lost = _lost(act, started, state)
                return self._record_outcome(live, pending, started, lost, None, now)
            attempt = started + 1
            live.attempts[seq] = [attempt, failures, None, None]
            pre = self._new_step(live)
            pre.attempts.append((seq, attempt, failures, None, None))
            pre.columns = self._lease_columns(live, now)
            self.storage.commit_step(pre, now)
        if act is None:
            error: BaseException = EddicError(
                f"activity {pending.name!r} is not registered in this process"
            )
            return self._settle(live, pending, act, attempt, None, error, now)
        if seq in live.arg_errors:
            error = SerializationError(live.arg_errors[seq])
            return self._settle(live, pending, act, attempt, None, error, now)
        details = live.heartbeats.get(seq)
        iid = live.instance_id
        ctx = ActivityContext(  # instance_id, seq, attempt, idempotency_key, heartbeat_details
            iid, seq, attempt, f"{iid}:{seq}", None if details is None else loads(details)
        )
        run = Running(seq, attempt, act, ctx, pending, live, self._write_heartbeat)
        ctx._beat = run.heartbeat
        return run

    def _write_heartbeat(self, run: Running, details: str) -> bool:
        return self.storage.heartbeat(
            run.ctx.instance_id, self.worker_id, run.epoch, run.seq, run.attempt, details, utcnow()
        )

    def _hold(self, live: LiveInstance, run: Running) -> None:
        run.keeper_token = self._keeper.hold(
            live.instance_id, self.worker_id, live.epoch, live.lock_timeout
        )

    def _let_go(self, run: Running) -> None:
        token, run.keeper_token = run.keeper_token, None
        if token is not None:
            self._keeper.release(token)

    def _run_activity(
        self, live: LiveInstance, pending: Any, now: datetime, act: Activity | None = None
    ) -> StepWrite:
        """Run one attempt of ``pending`` on this thread and settle it (every step's path:
        kept flat)."""
        run = self._begin(live, pending, now, act)
        if isinstance(run, StepWrite):
            return run
        keeper = self._keeper
        token = keeper.hold(live.instance_id, self.worker_id, live.epoch, live.lock_timeout)
        try:
            outcome = run_attempt(
                run.act, pending.command, run.ctx, live.recorded_args.get(run.seq)
            )
        finally:
            keeper.release(token)
        if run._lock is not None:  # it heartbeated
            run.flush()
        return self._settle(live, pending, run.act, run.attempt, outcome, outcome.error, utcnow())

    def _start_bodies(
        self, live: LiveInstance, runnable: list[Any], running: dict[int, Running], now: datetime
    ) -> StepWrite | None:
        """Begin every runnable body among the others; the first step that settled one without
        running it (the caller looks at the instance again), else None."""
        for pending in runnable:
            begun = self._begin(live, pending, now)
            if isinstance(begun, StepWrite):
                return begun
            self._hold(live, begun)
            running[begun.seq] = begun
            self._bodies.start(begun, pending.command, live.recorded_args.get(begun.seq))
        return None

    def _await_bodies(self, live: LiveInstance, running: dict[int, Running]) -> StepWrite | None:
        """Wait for the first body to end or the next deadline, then settle, in the order they
        happened, every body that ended and every attempt that overran its timeout; the last
        step committed (the one that may have released the lease: the instance waits now), or
        None when none was."""
        last: StepWrite | None = None
        now = utcnow()
        survey = live.survey(now)
        wait = AWAIT_SLICE_SECONDS
        if survey.wake_at is not None:
            wait = min(wait, (survey.wake_at - now).total_seconds())
        if survey.events:
            wait = min(wait, EVENT_POLL_SECONDS)
        clock = time.monotonic()
        for run in running.values():
            due = run.deadline()
            if due is not None:
                wait = min(wait, due - clock)
        for run in wait_first(list(running.values()), wait):
            del running[run.seq]
            self._let_go(run)
            last = self._settle_run(live, run, outcome_of(run))
        clock = time.monotonic()
        for run in list(running.values()):
            overrun = run.overrun(clock)
            if overrun is None:
                continue
            # Its late result is never read; a heartbeat now raises.
            run.time_out(overrun)
            del running[run.seq]
            self._let_go(run)
            if run.act.is_async and run.future is not None:
                run.future.cancel()  # an async body can be stopped: its task is cancelled
            last = self._settle_run(live, run, Outcome(error=overrun))
        return last

    def abandon_bodies(self, running: dict[int, Running]) -> None:
        """The driver stops with bodies still running (lease lost, instance parked): they run
        on, unread, and their leases are no longer kept."""
        for run in running.values():
            self._let_go(run)
            if run.act.is_async and run.future is not None:
                run.future.cancel()
        running.clear()

    # -- outcomes --

    def _settle_run(self, live: LiveInstance, run: Running, outcome: Outcome) -> StepWrite:
        run.flush()  # details a spaced heartbeat left unwritten: the next attempt's
        return self._settle(
            live, run.pending, run.act, run.attempt, outcome, outcome.error, utcnow()
        )

    def _settle(
        self,
        live: LiveInstance,
        pending: Any,
        act: Activity | None,
        attempt: int,
        outcome: Outcome | None,
        error: BaseException | None,
        now: datetime,
    ) -> StepWrite:
        if error is None:  # the common case: the outcome is final, nothing to retry
            return self._record_outcome(live, pending, attempt, error, outcome, now)
        seq = pending.seq
        if not isinstance(error, Exception):
            if is_exit_request(error):
                raise error
            # SystemExit, CancelledError, ... from the body: this attempt is spent and recorded
            # as begun; the instance is parked rather than the worker stopped.
            return self._park_attempt(live, seq, attempt, error, now)
        failures = (live.attempts[seq][1] if seq in live.attempts else 0) + 1
        if act is not None and outcome is not None and outcome.retryable:
            policy = act.retry
            # Attempts begun, crashed ones included, count against max_attempts.
            if policy.retries(error, attempt):
                wait = policy.interval(attempt)
                next_at = now + timedelta(seconds=wait)
                live.attempts[seq] = [attempt, failures, next_at if wait > 0 else None, None]
                step = self._new_step(live)
                step.attempts.append((seq, attempt, failures, next_at, dumps(str(error))))
                return self._finish_step(live, step, now)
        return self._record_outcome(live, pending, attempt, error, outcome, now)

    def _record_outcome(
        self,
        live: LiveInstance,
        pending: Any,
        attempt: int,
        error: BaseException | Failure | None,
        outcome: Outcome | None,
        now: datetime,
    ) -> StepWrite:
        """Commit the activity's final outcome with the decisions it leads to. Should building
        those raise (the workflow's own code runs here), the outcome is committed alone and
        the instance parked: a finished activity is never run again for a later fault."""
        seq = pending.seq
        live.recorded_args.pop(seq, None)
        values: dict[int, Any] = {}
        if error is None and outcome is not None:
            resolved = Resolved(seq, now, outcome.value)
            values[seq] = outcome.json
        elif isinstance(error, Failure):
            resolved = Resolved(seq, now, failure=error)
        else:
            assert error is not None
            resolved = Resolved(seq, now, failure=_failure(error, attempt))
        published = outcome.published if outcome is not None else None
        pos = live.pos
        try:
            live.interp.feed(resolved)
            step = self._step(live, [resolved, *live.interp.decide()], values, now)
        except BaseException as exc:
            if is_exit_request(exc):
                raise
            live.pos = pos
            return self._park_with(live, seq, [resolved], values, published, exc, now)
        if published:
            # The activity's own events come before those of the commands it led to.
            step.outbox[:0] = self._published_rows(live, seq, published, now)
        if seq in live.attempts or seq in live.heartbeats:  # a heartbeat may have made its row
            live.attempts.pop(seq, None)
            live.heartbeats.pop(seq, None)
            step.attempts_done.append(seq)
        return self._commit(live, step, now)

    def _published_rows(
        self, live: LiveInstance, seq: int, published: list[Any], now: datetime
    ) -> list[tuple[Any, ...]]:
        return [
            self._outbox_row(live, seq, e.event_type, e.data, e.source, now, index=i)
            for i, e in enumerate(published, start=1)
        ]

    def _park_with(
        self,
        live: LiveInstance,
        seq: int,
        records: list[Any],
        values: dict[int, Any],
        published: list[Any] | None,
        exc: BaseException,
        now: datetime,
    ) -> StepWrite:
        """Commit ``records`` (an activity's outcome) and park the instance in one step."""
        step = self._new_step(live)
        step.history = live.rows(records, values)
        if published:
            step.outbox = self._published_rows(live, seq, published, now)
        if seq in live.attempts or seq in live.heartbeats:
            live.heartbeats.pop(seq, None)
            step.attempts_done.append(seq)
        return self._commit_park(live, step, exc, "running the workflow after an activity", now)

    def _park_attempt(
        self, live: LiveInstance, seq: int, attempt: int, exc: BaseException, now: datetime
    ) -> StepWrite:
        """An attempt ended by a ``BaseException``: keep it counted, park the instance."""
        failures = live.attempts[seq][1] if seq in live.attempts else 0
        text = f"{type(exc).__qualname__}: {exc}"
        step = self._new_step(live)
        step.attempts.append((seq, attempt, failures, None, dumps(text)))
        return self._commit_park(live, step, exc, f"running attempt {attempt} of seq {seq}", now)


def _failure(error: BaseException, attempt: int) -> Failure:
    failure = Failure.from_exception(error, attempt)
    if isinstance(error, ActivityTimeout):  # recorded by its public name (design §7)
        failure = dataclasses.replace(failure, type="eddic.ActivityTimeout")
    return failure


def _lost(act: Any, started: int, state: list[Any] | None) -> Failure:
    """The failure recorded for an activity whose last allowed attempt left no outcome."""
    last = f" (its last attempt that ended reported {state[3]})" if state and state[3] else ""
    return Failure(
        "eddic.AttemptLost",
        f"attempt {started} of {act.retry.max_attempts} began and recorded no outcome: its "
        f"worker stopped during it{last}. A crash counts as an attempt and no attempt beyond "
        "max_attempts begins; give the activity a RetryPolicy with more attempts if it "
        "should survive more crashes",
        started,
    )
