"""Testing a workflow on the kernel alone: no database, no thread, no clock, no activity runs.

:class:`WorkflowDriver` plays the runtime by hand. It shows what the workflow waits on
(``pending``) and takes the outcomes you choose: ``complete`` or ``fail`` an activity,
``send_event``, ``advance`` the time (firing timers and event deadlines in time order). The input
of a decorated workflow is validated as ``App.start`` does; outcomes are sent in exactly as given
(no pydantic round trip), so a test states the world it wants::

    drv = WorkflowDriver(order, input="A1")
    assert drv.waiting_on == ["activity reserve_inventory"]
    drv.complete(reserve_inventory, {"reservation_id": "R1"})
    drv.advance(3600)                                   # the payment never came
    assert drv.waiting_on == ["compensation cancel_reservation"]
    drv.complete("cancel_reservation")
    assert drv.status == "failed" and isinstance(drv.error, EventTimeout)

``drv.history`` is the record list the runtime would have stored; hand it to
:class:`~eddic.debug.replay.Replay` to step through it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from typing import Any

from ..codec import check_for
from ..context import WorkflowContext
from ..decorators import Workflow
from ..kernel import (
    RUN_TO_COMPLETION,
    Cancel,
    EddicError,
    Event,
    Failure,
    Interpreter,
    Pending,
    Phase,
    Record,
    Resolved,
    activity_name,
)

__all__ = ["DEFAULT_START", "WorkflowDriver"]

#: Where frozen time starts unless a test says otherwise.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class WorkflowDriver:
    """One workflow instance driven through the pure kernel by the test itself."""

    def __init__(
        self,
        workflow: Any,
        input: Any = None,
        *,
        started_at: datetime = DEFAULT_START,
        instance_id: str = "test-instance",
    ) -> None:
        self._workflow = workflow
        self.instance_id = instance_id
        self.started_at = started_at
        self.now = started_at
        self.history: list[Record] = []
        #: the histories of the runs that ended with ContinueAsNew, oldest first
        self.runs: list[list[Record]] = []
        self.interp = self._interpreter(input, 1)
        self._decide()

    def _interpreter(self, input: Any, run: int) -> Interpreter:
        workflow = self._workflow
        func = workflow
        if isinstance(workflow, Workflow):  # validated as ``App.start`` does: a dict -> its model
            func = workflow.func
            if workflow.input_param is not None:
                input = workflow.input_adapter.validate_python(input)
        return Interpreter(
            func,
            input,
            instance_id=self.instance_id,
            started_at=self.now,
            context_factory=WorkflowContext,
            check=check_for(workflow),  # refuses what the runtime refuses
            run=run,
        )

    @property
    def run(self) -> int:
        """The run in progress, from 1 (each ``ContinueAsNew`` begins the next at once)."""
        return self.interp.run

    # -- state --

    @property
    def pending(self) -> list[Pending]:
        """Commands waiting for an outcome, oldest first."""
        return self.interp.pending

    @property
    def waiting_on(self) -> list[str]:
        """``"<kind> <name>"`` of each pending command, e.g. ``"event payment.confirmed"``."""
        return [f"{p.kind} {p.name}" for p in self.pending]

    @property
    def status(self) -> str:
        """``completed``, ``failed``, ``cancelled``, ``compensating`` or ``running`` (the
        kernel's phase)."""
        return self.interp.phase.value

    @property
    def finished(self) -> bool:
        return self.interp.finished

    @property
    def result(self) -> Any:
        if self.interp.phase is not Phase.COMPLETED:
            raise EddicError(f"the workflow has not completed (status {self.status!r})")
        return self.interp.result

    @property
    def error(self) -> BaseException | None:
        """The exception the workflow ended with (its compensations run afterwards)."""
        return self.interp.error

    @property
    def compensation_errors(self) -> list[Failure]:
        return self.interp.compensation_errors

    # -- outcomes --

    def complete(self, activity: Any = None, value: Any = None, *, seq: int | None = None) -> None:
        """Resolve the oldest pending activity (or compensation) of that name with ``value``."""
        pending = self._find(RUN_TO_COMPLETION, activity, seq)
        self._feed(Resolved(pending.seq, self.now, value))

    def fail(
        self,
        activity: Any = None,
        error: BaseException | str = "failed",
        *,
        attempts: int = 1,
        seq: int | None = None,
    ) -> None:
        """Fail the oldest pending activity of that name, as if its last attempt raised."""
        pending = self._find(RUN_TO_COMPLETION, activity, seq)
        failure = (
            Failure.from_exception(error, attempts)
            if isinstance(error, BaseException)
            else Failure("Exception", error, attempts)
        )
        self._feed(Resolved(pending.seq, self.now, failure=failure))

    def send_event(
        self, event_type: str, data: Any = None, *, source: str = "test", id: str | None = None
    ) -> Event:
        """Deliver an event to the oldest pending ``WaitEvent`` of that type; returns it.

        The kernel has no mailbox: an event nobody waits for is an error here.
        """
        pending = self._find(("event",), event_type, None)
        event = Event(id or str(uuid.uuid4()), event_type, source, self.now, data)
        self._feed(Resolved(pending.seq, self.now, event))
        return event

    def complete_child(
        self, workflow: Any = None, value: Any = None, *, seq: int | None = None
    ) -> None:
        """Resolve the oldest pending ``CallWorkflow`` of that workflow with ``value`` (its
        result, as the child returned it)."""
        pending = self._find(("child",), workflow, seq)
        self._feed(Resolved(pending.seq, self.now, value))

    def fail_child(
        self,
        workflow: Any = None,
        error: BaseException | str = "failed",
        *,
        seq: int | None = None,
    ) -> None:
        """Fail the oldest pending ``CallWorkflow`` of that workflow: the parent sees
        ``ChildWorkflowFailed`` with the error's type and message."""
        pending = self._find(("child",), workflow, seq)
        failure = (
            Failure.from_exception(error)
            if isinstance(error, BaseException)
            else Failure("Exception", error)
        )
        self._feed(Resolved(pending.seq, self.now, failure=failure))

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the instance: ``Cancelled(reason)`` is thrown in at its current yield (what
        it waits on is abandoned), as ``App.cancel`` does."""
        self._feed(Cancel(self.now, reason))

    def advance(self, by: float | timedelta) -> datetime:
        """Move time forward, firing each timer and event deadline it passes at its own time."""
        delta = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward, got {by!r}")
        target = self.now + delta
        while True:
            due = [p for p in self.pending if p.deadline is not None and p.deadline <= target]
            if not due:
                break
            first = min(due, key=lambda p: (p.deadline, p.seq))
            assert first.deadline is not None
            self.now = max(self.now, first.deadline)
            if first.kind == "event":
                message = f"no {first.name!r} event arrived by {first.deadline.isoformat()}"
                failure = Failure("eddic.EventTimeout", message)
                self._feed(Resolved(first.seq, self.now, failure=failure))
            else:
                self._feed(Resolved(first.seq, self.now))
        self.now = target
        return self.now

    # -- plumbing --

    def _find(self, kinds: Collection[str], name: Any, seq: int | None) -> Pending:
        wanted = None if name is None else activity_name(name)
        for p in self.pending:
            if p.kind not in kinds:
                continue
            if seq is not None and p.seq != seq:
                continue
            if wanted is not None and p.name != wanted:
                continue
            return p
        what = " or ".join(sorted(kinds)) + ("" if wanted is None else f" {wanted!r}")
        raise EddicError(
            f"the workflow is not waiting on any {what}"
            + ("" if seq is None else f" at seq {seq}")
            + f"; it waits on: {', '.join(self.waiting_on) or 'nothing'}"
        )

    def _feed(self, record: Resolved | Cancel) -> None:
        self.history.append(record)
        self.interp.feed(record)
        self._decide()

    def _decide(self) -> None:
        self.history.extend(self.interp.decide())
        while self.interp.phase is Phase.CONTINUED:  # the next run begins at once
            self.runs.append(self.history)
            self.history = []
            self.interp = self._interpreter(self.interp.continue_input, self.interp.run + 1)
            self.history.extend(self.interp.decide())
