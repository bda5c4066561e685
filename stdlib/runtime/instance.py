"""One live workflow instance: its interpreter plus the bookkeeping that maps records to rows.

Rows go out as tuples for ``history``; recorded rows come back as kernel records, with values
rebuilt through the same pydantic adapters that wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ..codec import check_for, failure_json
from ..context import WorkflowContext
from ..decorators import Activity, Workflow, find_activity
from ..errors import SerializationError
from ..kernel import (
    RUN_TO_COMPLETION,
    CallActivity,
    Cancel,
    Interpreter,
    Phase,
    Record,
    Scheduled,
)
from ..serde import dumps, to_jsonable


class Survey(NamedTuple):
    status: str
    wake_at: datetime | None  # earliest deadline or backoff end
    runnable: bool  # an activity or compensation may run now
    events: dict[int, Any]  # seq -> pending WaitEvent


_new_survey = tuple.__new__


@dataclass
class LiveInstance:
    instance_id: str
    workflow: Workflow[Any]
    interp: Interpreter
    epoch: int
    lock_timeout: float
    key: int = 0  # the storage's handle on the instance (SQLite: its ikey), for its steps
    pos: int = 0  # history rows written so far
    waits: set[int] = field(default_factory=set)  # seqs present in event_waits
    attempts: dict[int, list[Any]] = field(
        default_factory=dict
    )  # seq -> [started, failures, next_at]
    fresh: set[int] = field(default_factory=set)  # seqs decided here whose attempt 1 has not begun
    # seq -> JSON text of the last heartbeat details of its attempts (ctx.heartbeat_details)
    heartbeats: dict[int, str] = field(default_factory=dict)
    arg_errors: dict[int, str] = field(default_factory=dict)
    # seq -> the JSON data recorded for a call decided here: its attempts' arguments are rebuilt
    # from it, as a replay would
    recorded_args: dict[int, dict[str, Any]] = field(default_factory=dict)
    written: dict[str, Any] = field(default_factory=dict)  # columns committed under this lease
    # a cancel asked (App.cancel) and not fed to the interpreter yet: (reason,)
    cancel_asked: tuple[str | None] | None = None
    parent: tuple[str, int] | None = None  # a child's parent: (instance id, seq of the call)
    next_run_at: datetime | None = None  # when the step that ended the run began the next
    mailbox_seen: int = 0  # the newest mailbox row read for the instance (see StepWrite)

    def next_run(self, interp: Interpreter) -> None:
        """Go on with the next run (continue-as-new): its interpreter, none of the last run's
        commands; the lease, the history position and the columns written stay."""
        self.interp = interp
        self.waits = set()
        self.attempts = {}
        self.fresh = set()
        self.arg_errors = {}
        self.recorded_args = {}
        self.heartbeats = {}
        self.next_run_at = None

    lease_until: datetime | None = None  # lock_expires_at as last written by this worker

    @classmethod
    def new(
        cls,
        workflow: Workflow[Any],
        input_value: Any,
        *,
        instance_id: str,
        started_at: datetime,
        epoch: int,
        lock_timeout: float,
        run: int = 1,
    ) -> LiveInstance:
        interp = Interpreter(
            workflow.func,
            input_value,
            instance_id=instance_id,
            started_at=started_at,
            context_factory=WorkflowContext,
            check=check_for(workflow),
            run=run,
        )
        return cls(instance_id, workflow, interp, epoch, lock_timeout)

    # -- state --

    def survey(self, now: datetime) -> Survey:
        """Status, earliest wake time, runnable work and event waits, in one pass."""
        interp = self.interp
        attempts = self.attempts
        run = timer = child = False
        wake: datetime | None = None
        events: dict[int, Any] = {}
        for p in interp.pending:
            kind = p.kind
            if kind in RUN_TO_COMPLETION:
                state = attempts.get(p.seq)
                backoff = None if state is None else state[2]
                if backoff is None or backoff <= now:
                    run = True
                else:
                    timer = True
                if backoff is not None and (wake is None or backoff < wake):
                    wake = backoff
            elif kind == "event":
                events[p.seq] = p
            elif kind == "child":  # resolved through the mailbox, like an event
                events[p.seq] = p
                child = True
            else:
                timer = True
            deadline = p.deadline
            if deadline is not None and (wake is None or deadline < wake):
                wake = deadline
        phase = interp.phase
        if phase is Phase.COMPLETED:
            status = "completed"
        elif phase is Phase.FAILED:
            status = "failed"
        elif phase is Phase.CANCELLED:
            status = "cancelled"
        elif phase is Phase.COMPENSATING:
            status = "compensating"
        elif run:
            status = "running"
        elif child:
            status = "waiting_for_child"
        elif events:
            status = "waiting_for_event"
        elif timer:
            status = "waiting_for_timer"
        else:
            status = "running"
        return _new_survey(Survey, (status, wake, run, events))  # Survey(...) without its frame

    def backoff_until(self, seq: int, now: datetime) -> datetime | None:
        state = self.attempts.get(seq)
        if state is None or state[2] is None:
            return None
        when: datetime = state[2]
        return when if when > now else None

    # -- records <-> rows --

    def rows(self, records: list[Record], values: dict[int, Any]) -> list[tuple[Any, ...]]:
        """History rows for new records; ``values`` holds the JSON text of values the runtime
        fed (an activity's result, an event), by seq."""
        out: list[tuple[Any, ...]] = []
        iid = self.instance_id
        for record in records:
            self.pos += 1
            if isinstance(record, Scheduled):
                args = self._args_json(record)
                if record.kind in RUN_TO_COMPLETION:
                    self.fresh.add(record.seq)
                out.append(
                    (
                        iid,
                        self.pos,
                        record.seq,
                        "scheduled",
                        record.kind,
                        record.name,
                        dumps(args),
                        record.at,
                        record.deadline,
                        None,
                        None,
                    )
                )
            elif isinstance(record, Cancel):  # no seq of its own: 0, which no command has
                reason = None if record.reason is None else dumps(record.reason)
                out.append(
                    (iid, self.pos, 0, "cancel", None, None, None, record.at, None, reason, None)
                )
            else:
                failure = record.failure
                if failure is not None:
                    value = None
                elif record.seq in values:
                    value = values[record.seq]
                else:
                    value = dumps(to_jsonable(record.value, what="a recorded value"))
                out.append(
                    (
                        iid,
                        self.pos,
                        record.seq,
                        "resolved",
                        None,
                        None,
                        None,
                        record.at,
                        None,
                        value,
                        None if failure is None else dumps(failure_json(failure)),
                    )
                )
        return out

    def _args_json(self, record: Scheduled) -> Any:
        if record.kind not in RUN_TO_COMPLETION:
            return to_jsonable(record.args, what=f"arguments of {record.kind} {record.name!r}")
        args = record.args
        act = resolve_activity(self.interp.command(record.seq))
        if act is None:  # not registered: the worker fails the call for that
            try:
                return to_jsonable(args, what=f"arguments of {record.name!r}")
            except SerializationError as exc:
                self.arg_errors[record.seq] = str(exc)
                return {"__error__": str(exc)}
        try:
            # Validated by each parameter's type before it is dumped (a dict given for a model
            # is recorded as that model's JSON, with no serializer warning).
            data = act.arguments_json(act.bind(tuple(args["args"]), args["kwargs"]))
            self.recorded_args[record.seq] = data
            return data
        except (SerializationError, TypeError) as exc:
            self.arg_errors[record.seq] = str(exc)
            return {"__error__": str(exc)}


def resolve_activity(command: Any) -> Activity | None:
    if not isinstance(command, CallActivity):
        return None
    if isinstance(command.activity, Activity):
        return command.activity
    return find_activity(command.name)
