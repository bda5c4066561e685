"""What a step writes: its history rows, outbox rows, children, cancels and the instance's state.

A mixin of :class:`~eddic.runtime.worker.Worker`, which commits what these build. ``_step``
turns the interpreter's new records into one :class:`~eddic.storage.StepWrite`; ``_fill_state``
adds the instance's new columns (status, wake time, output or error, the lease renewed when
little of it is left) and which event waits the step adds or drops. Most steps change none of
the instance's columns: the commit then only appends history, and the lease check is a read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..decorators import find_workflow
from ..errors import SerializationError
from ..kernel import Phase, Scheduled, derived_uuid, run_key
from ..serde import conform, dumps, loads, to_jsonable
from ..storage import StepWrite
from . import events
from .faults import error_json
from .instance import LiveInstance


class StepWrites:
    # What the mixin uses of the Worker (set in Worker.__init__, defined there).
    service_name: str

    def _new_step(self, live: LiveInstance) -> StepWrite:
        raise NotImplementedError

    def _step(
        self, live: LiveInstance, records: list[Any], values: dict[int, Any], now: datetime
    ) -> StepWrite:
        """The write for new records: history rows, outbox rows for publishes, new state."""
        # One pass for the records that need more than their history row (most steps: none).
        others = [r for r in records if isinstance(r, Scheduled) and r.kind in _OTHER_ROWS]
        if others and any(r.kind == "event" for r in others):
            live.mailbox_seen = 0  # a new wait may take an event the others left: look again
        step = self._new_step(live)
        step.history = live.rows(records, values)
        for record in others:
            if record.kind == "publish":
                args = record.args
                step.outbox.append(
                    self._outbox_row(
                        live, record.seq, record.name, args["data"], args["source"], now
                    )
                )
            elif record.kind == "child":
                step.children.append(self._child_row(live, record))
        abandoned = live.interp.abandoned
        if abandoned:  # children the workflow stopped waiting on: cancel them in this step
            why = dumps(f"its parent {live.instance_id!r} no longer waits on it")
            step.cancels = [(p.record.args["instance_id"], why) for p in abandoned]
            abandoned.clear()
        self._fill_state(live, step, now)
        return step

    def _child_row(self, live: LiveInstance, record: Scheduled) -> dict[str, Any]:
        """The row of a child instance a ``CallWorkflow`` starts: no lease, due now, so any
        worker with its code claims it; created in the parent's step."""
        wf = find_workflow(record.name)
        return {
            "instance_id": record.args["instance_id"],
            "workflow_name": record.name,
            "status": "running",
            "input_data": dumps(record.args["input"]),
            "service_name": self.service_name,
            "lock_timeout_seconds": None if wf is None else wf.lock_timeout_seconds,
            "parent_id": live.instance_id,
            "parent_seq": record.seq,
        }

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
        event_id = str(derived_uuid(run_key(live.instance_id, live.interp.run), seq, index))
        payload = to_jsonable(data, what=f"data of event {event_type!r}")
        return (
            event_id,
            live.instance_id,
            seq,
            event_type,
            source or self.service_name,
            dumps(payload),
            now,
            now,
        )

    def _fill_state(self, live: LiveInstance, step: StepWrite, now: datetime) -> None:
        interp = live.interp
        phase = interp.phase
        if phase is Phase.CONTINUED:
            self._next_run_state(live, step, now)
            return
        survey = live.survey(now)
        columns: dict[str, Any] = {"status": survey.status}
        if phase is Phase.COMPLETED:
            try:
                adapter = live.workflow.result_adapter
                what = "the workflow result"
                output = to_jsonable(conform(interp.result, adapter, what=what), adapter, what=what)
                columns["output_data"] = dumps(output)
                columns["error"] = None
            except SerializationError as exc:
                columns["status"] = "failed"
                columns["error"] = dumps(error_json(exc))
        elif phase is Phase.FAILED or phase is Phase.CANCELLED:
            assert interp.error is not None
            columns["error"] = dumps(error_json(interp.error, interp.compensation_errors))
        else:
            columns["error"] = None  # a park's error, once the instance moves on
        waits = survey.events
        if waits or live.waits:
            step.waits_added = [
                (seq, events.wait_type(p), p.deadline, events.wait_match(p))
                for seq, p in waits.items()
                if seq not in live.waits
            ]
            step.waits_removed = [seq for seq in live.waits if seq not in waits]
        if interp.finished:
            columns["wake_at"] = None
            step.release = True
            if live.parent is not None:  # a child: its outcome goes to its parent's mailbox
                step.deliveries.append(self._outcome_for_parent(live, columns))
        else:
            wake = survey.wake_at
            columns["wake_at"] = wake
            step.release = not survey.runnable and (wake is None or wake > now)
            if not step.release:
                columns.update(self._lease_columns(live, now))
        columns["retry_after"] = None
        ctx = interp.context
        if getattr(ctx, "status_changed", False):  # ctx.set_status: instance state, not history
            ctx.status_changed = False  # type: ignore[attr-defined]
            columns["custom_status"] = dumps(ctx.custom_status)  # type: ignore[attr-defined]
        if not step.release and live.written:
            # Most steps change none of these: the commit then appends history and leaves the
            # instance's row (and its page in the WAL) alone; the lease check is a read.
            get = live.written.get
            for name in ("status", "wake_at", "retry_after", "error"):
                if get(name, _UNWRITTEN) == columns[name]:
                    del columns[name]
        # Anything but a renewed lease changes the row (a bool counts as 0 or 1).
        if step.release or len(columns) > ("lock_expires_at" in columns):
            columns["updated_at"] = now
        step.columns = columns

    def _next_run_state(self, live: LiveInstance, step: StepWrite, now: datetime) -> None:
        """The code yielded ``ContinueAsNew``: this step ends the run and begins the next in
        one transaction (never a final status in between); the old run's event waits and
        attempt rows go, its mailbox's unconsumed events stay for the next run."""
        interp = live.interp
        live.next_run_at = now
        step.columns = {
            "status": "running",
            "input_data": dumps(interp.continue_input),
            "output_data": None,
            "error": None,
            "wake_at": None,
            "retry_after": None,
            "run": interp.run + 1,
            "run_start_pos": live.pos,
            "started_at": now,
            "updated_at": now,
            "lock_expires_at": now + timedelta(seconds=live.lock_timeout),
        }
        live.lease_until = step.columns["lock_expires_at"]
        step.waits_added = []
        step.waits_removed = sorted(live.waits)
        step.attempts_done = sorted(set(live.attempts) | set(live.heartbeats))
        step.release = False

    def _outcome_for_parent(
        self, live: LiveInstance, columns: dict[str, Any]
    ) -> tuple[str, str, str, str]:
        assert live.parent is not None
        parent_id, _seq = live.parent
        status = columns["status"]
        payload: dict[str, Any] = {"instance_id": live.instance_id, "status": status}
        if status == "completed":
            payload["output"] = loads(columns["output_data"])
        else:
            payload["error"] = loads(columns["error"]) if columns.get("error") else None
        return (
            parent_id,
            f"eddic.child:{live.instance_id}",
            events.child_event_type(live.instance_id),
            dumps(payload),
        )

    def _lease_columns(self, live: LiveInstance, now: datetime) -> dict[str, Any]:
        """Renew the lease, unless more than two thirds of it are left (most steps of a run)."""
        timeout = live.lock_timeout
        until = live.lease_until
        if until is not None and (until - now).total_seconds() > timeout * (2 / 3):
            return {}
        until = now + timedelta(seconds=timeout)
        live.lease_until = until
        return {"lock_expires_at": until}


_UNWRITTEN = object()  # a column not written under this lease (``StepWrites._fill_state``)

#: Scheduled records of these kinds need more than a history row (``StepWrites._step``).
_OTHER_ROWS = frozenset(("event", "publish", "child"))
