"""Step-through replay: an instance's recorded history run again through the current code.

``app.replay(instance_id)`` (or :class:`Replay` over kernel records) yields one :class:`Step` per
command the code yields, in seq order: the command yielded now, the scheduled record it matched,
and the value sent in (or the error thrown in). It drives a fresh kernel interpreter with the
recorded outcomes, so it runs the workflow code and nothing else: no activity, no event, no write.
A ``breakpoint()`` in the workflow therefore stops with the replayed values in its variables.

Steps come out in seq order as soon as they are final: when the outcome is delivered, when the
command is cancelled (a timer or event wait in a losing ``First`` branch), when it is abandoned
(an activity whose result the workflow stopped waiting for: the next yield shows that its yield
settled), or when the history ends (``pending``). :meth:`Replay.run` hands each step to its
callback *before* the workflow code receiving the value runs (``eddic replay --step`` pauses
there, so a breakpoint comes after the step that fed it); iterating hands out the steps a record
completed once that record has been fed.

Each step holds the workflow's frames at the yield it belongs to (``Step.frames``: function,
file, line and local variables, rendered by :func:`eddic.debug.values.render` when captured, so
a later change to an object does not change what a step shows). They are read from the
generator's (or coroutine's) frames as the command is matched: the code is then suspended at the
yield the command belongs to, the one its value (if any) is sent into. A step of a
command the code never yielded there (a divergence) has none, and neither has a compensation
(the code has finished by then). After a run, ``Replay.waiting`` and ``Replay.compensations``
describe what the code waits on at the end of the history and what a failure would compensate
there, both as the kernel computes them.

At the first divergence the replay stops with a step whose ``divergence`` compares, field by
field, what history recorded at that seq with what the code yields now. Beyond the kernel's own
checks, a code that yields a command after the history ends, or ends differently from how the
instance ended, diverges too: the runtime records every decision in the same transaction as the
outcome that led to it, so a faithful replay never has anything left to decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import from_text
from ..codec import check_for, decode_records
from ..context import WorkflowContext
from ..decorators import Workflow, get_workflow
from ..kernel import (
    RUN_TO_COMPLETION,
    CallActivity,
    Command,
    Frame,
    Interpreter,
    NonDeterminismError,
    Phase,
    Record,
    Resolved,
    Scheduled,
    Trace,
)
from ..serde import from_jsonable, loads
from ..storage import Store
from .divergence import Divergence, FieldDiff, describe_command, record_fields
from .values import render

__all__ = [
    "Divergence",
    "FieldDiff",
    "FrameView",
    "Replay",
    "Step",
    "describe_command",
    "replay_instance",
]

_WAITS = ("timer", "event")


@dataclass(frozen=True)
class FrameView:
    """One frame of the workflow at a step: where it stood and its local variables, each
    ``(name, rendered value)`` in the frame's order (names starting with ``__`` left out).

    Values are rendered when the frame is captured, by :func:`eddic.debug.values.render`:
    bounded, and never running anything of the objects but their ``repr``.
    """

    function: str
    filename: str
    lineno: int
    locals: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, frame: Frame) -> FrameView:
        shown = tuple(
            (name, render(value))
            for name, value in frame.locals.items()
            # dunders, and the implicit ".0" of a comprehension: not the workflow's variables
            if not name.startswith(("__", "."))
        )
        return cls(frame.function, frame.filename, frame.lineno, shown)

    def get(self, name: str) -> str | None:
        """The rendered value of local ``name``, or None when the frame has none."""
        return next((text for key, text in self.locals if key == name), None)


def _capture(interp: Interpreter) -> tuple[FrameView, ...]:
    """The frames the interpreter's workflow is suspended in, rendered now."""
    return tuple(FrameView.of(frame) for frame in interp.frames())


@dataclass(frozen=True)
class Step:
    """One command of the replay, in seq order.

    ``state``: ``completed`` (``value`` was sent in), ``failed`` (``error`` was thrown in),
    ``cancelled`` (a wait the workflow stopped waiting for), ``abandoned`` (an activity whose
    outcome the workflow no longer waits on; nothing is sent in), ``pending`` (no outcome in the
    history yet) or ``diverged`` (see ``divergence``; the replay stops there). ``record`` is the
    scheduled record matched; ``outcome`` the resolved record, when there is one. ``frames``:
    the workflow's frames at the yield of this command, outermost first (see the module).
    """

    seq: int
    command: Command | None
    record: Scheduled | None
    state: str
    value: Any = None
    error: BaseException | None = None
    outcome: Resolved | None = None
    divergence: Divergence | None = None
    frames: tuple[FrameView, ...] = ()

    @property
    def diverged(self) -> bool:
        return self.divergence is not None

    @property
    def kind(self) -> str:
        if self.record is not None:
            return self.record.kind
        now = self.divergence.now if self.divergence is not None else None
        return str(now["kind"]) if now and "kind" in now else "-"

    @property
    def name(self) -> str:
        if self.record is not None:
            return self.record.name
        now = self.divergence.now if self.divergence is not None else None
        return str(now["name"]) if now and "name" in now else "-"

    @property
    def at(self) -> datetime | None:
        """When the command was scheduled (None for a command history never recorded)."""
        return None if self.record is None else self.record.at

    def describe(self) -> str:
        """One line: seq, kind, name and what was sent back."""
        head = f"seq {self.seq} {self.kind} {self.name}"
        if self.divergence is not None:
            recorded, now = self.divergence.recorded_text, self.divergence.now_text
            return f"{head}: DIVERGED (recorded {recorded}; now {now})"
        if self.state == "completed":
            value = repr(self.value)
            return f"{head} -> {value if len(value) <= 60 else value[:57] + '...'}"
        if self.state == "failed":
            return f"{head} !! {type(self.error).__name__}: {self.error}"
        return f"{head}: {self.state}"


@dataclass
class _Open:
    """A matched command whose step has not been handed out yet."""

    seq: int
    command: Command
    record: Scheduled
    state: str | None = None
    value: Any = None
    error: BaseException | None = None
    outcome: Resolved | None = None
    frames: tuple[FrameView, ...] = ()

    def step(self) -> Step:
        return Step(
            self.seq,
            self.command,
            self.record,
            self.state or "pending",
            self.value,
            self.error,
            self.outcome,
            frames=self.frames,
        )


class _Tracker:
    """Observes the interpreter and hands steps to ``emit`` in seq order once they are final.

    A step whose outcome is delivered is handed out from inside the observer, before the value
    reaches the workflow: a consumer that pauses there (``eddic replay --step``) pauses before
    the code that receives the value runs.

    The frames are captured as a command is matched rather than when its step is handed out:
    the same point for most steps, but a step held back behind an earlier seq (the winner of a
    ``First`` whose losing activity is still out) is handed out after the code has moved on.
    """

    def __init__(
        self, emit: Callable[[Step], None], frames_at: Callable[[int], bool] | None = None
    ) -> None:
        self.emit = emit
        self.frames_at = frames_at  # the seqs whose frames are captured (None: every seq)
        self.interp: Interpreter | None = None  # set once the interpreter is built
        self.frames: tuple[FrameView, ...] | None = None  # the last capture, until code runs
        self.open: dict[int, _Open] = {}
        self.waits: set[int] = set()  # open timer/event seqs not final yet
        self.next_seq = 1
        self.matched = 0  # the highest seq matched so far (matching is in seq order)
        self.last_was_outcome = False

    def observe(self, trace: Trace) -> None:
        if trace.event == "matched":
            assert isinstance(trace.record, Scheduled)
            matched = _Open(trace.seq, trace.command, trace.record)
            wanted = self.frames_at is None or self.frames_at(trace.seq)
            if wanted and trace.record.kind != "compensation":  # (the code has finished then)
                matched.frames = self._frames()
            self.open[trace.seq] = matched
            self.matched = max(self.matched, trace.seq)
            if trace.record.kind in _WAITS:
                self.waits.add(trace.seq)
            return
        item = self.open.get(trace.seq)
        if item is None or item.state is not None:
            return  # handed out already (abandoned); its late outcome is ignored, as in the kernel
        assert isinstance(trace.record, Resolved)
        item.outcome = trace.record
        self.waits.discard(trace.seq)
        if trace.abandoned and item.record.kind != "compensation":  # (no yield waits on those)
            item.state = "abandoned"
        elif trace.record.failure is not None:
            item.state, item.error = "failed", trace.error
        else:
            item.state, item.value = "completed", trace.record.value
        self.flush()

    def _frames(self) -> tuple[FrameView, ...]:
        """The frames the code stands in now. Only an outcome or a cancel runs the code, so
        the children of one ``All`` or ``First``, matched one after another, share a capture."""
        if self.frames is None:
            assert self.interp is not None
            self.frames = _capture(self.interp)
        return self.frames

    def before(self, record: Record) -> None:
        """A scheduled record after an outcome starts a new yield: the previous one settled."""
        if not isinstance(record, Scheduled):
            self.frames = None  # an outcome or a cancel may move the code on
        if isinstance(record, Scheduled) and self.last_was_outcome:
            for item in self.open.values():
                if item.state is None:
                    item.state = (
                        "abandoned" if item.record.kind in RUN_TO_COMPLETION else "cancelled"
                    )
            self.waits.clear()
            self.flush()
        self.last_was_outcome = isinstance(record, Resolved)

    def after(self, interp: Interpreter) -> None:
        """A record was fed: waits of a settled ``First`` are gone from the interpreter."""
        for seq in [s for s in self.waits if interp.command(s) is None]:
            self.open[seq].state = "cancelled"
            self.waits.discard(seq)
        self.flush()

    def flush(self) -> None:
        while self.next_seq in self.open and self.open[self.next_seq].state is not None:
            step = self.open.pop(self.next_seq).step()
            self.next_seq += 1
            self.emit(step)

    def drain(self) -> None:
        """The end: every step not handed out yet, in seq order (``pending`` when not final)."""
        self.waits.clear()
        for seq in sorted(self.open):
            self.emit(self.open.pop(seq).step())


class Replay:
    """An iterable of :class:`Step`: the instance's history replayed through the current code.

    Each iteration (or :meth:`run`) replays afresh. Afterwards ``divergence`` is set when the
    code diverged, and ``phase``, ``result`` and ``error`` tell where the code ended up;
    ``waiting`` lists the commands it waits on at the end of the history (the kernel's
    ``pending``) and ``compensations`` what a failure would compensate there, in the order it
    would (the kernel's ``compensations``: while compensating, the one in progress first). Each
    entry is a dict: ``seq`` (None for a compensation not emitted yet), ``kind``, ``name``,
    ``args`` (rendered by :func:`eddic.debug.values.render`), and ``deadline`` for a wait
    (a datetime or None). Both are empty after a divergence: the code no longer matches the
    history, so what it would wait on there is not the instance's.
    """

    def __init__(
        self,
        workflow: Callable[..., Any] | Workflow[Any],
        input: Any = None,
        *,
        instance_id: str,
        started_at: datetime,
        records: Sequence[Record],
        workflow_name: str | None = None,
        status: str | None = None,
        run: int = 1,
        frames_at: Callable[[int], bool] | None = None,
    ) -> None:
        self.workflow = workflow
        # Rendering every step's locals costs more than the rest of a replay: a caller that
        # shows one step (the viewer) or none asks for the seqs it shows.
        self.frames_at = frames_at
        self.run_number = run  # continue-as-new: which run of the instance this replays
        self.func = workflow.func if isinstance(workflow, Workflow) else workflow
        self.input = input
        self.instance_id = instance_id
        self.started_at = started_at
        self.records = list(records)
        self.workflow_name = workflow_name or getattr(workflow, "name", None) or "?"
        self.status = status  # the recorded status, when known
        self.divergence: Divergence | None = None
        self.phase: Phase | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.waiting: list[dict[str, Any]] = []
        self.compensations: list[dict[str, Any]] = []

    @classmethod
    def from_rows(
        cls,
        row: Mapping[str, Any],
        history_rows: list[tuple[Any, ...]],
        workflow: Workflow[Any] | None = None,
        *,
        frames_at: Callable[[int], bool] | None = None,
    ) -> Replay:
        """From a stored instance row and its history rows (values decoded as first recorded).
        ``frames_at``: capture the frames of only the seqs it accepts (default: every seq)."""
        wf = workflow or get_workflow(row["workflow_name"])
        input_value = None
        if wf.input_param is not None:
            stored = loads(row["input_data"])
            input_value = from_jsonable(stored, wf.input_adapter, what="the stored input")
        started = from_text(row.get("started_at") or row["created_at"])
        assert started is not None
        return cls(
            wf,
            input_value,
            instance_id=row["instance_id"],
            started_at=started,
            records=decode_records(history_rows),
            workflow_name=wf.name,
            status=row["status"],
            run=int(row.get("run") or 1),
            frames_at=frames_at,
        )

    def steps(self) -> list[Step]:
        return list(self)

    def __iter__(self) -> Iterator[Step]:
        ready: list[Step] = []
        for _ in self._drive(ready.append):
            yield from ready
            ready.clear()
        yield from ready

    def run(self, on_step: Callable[[Step], None]) -> None:
        """Replay, calling ``on_step`` with each step as soon as it is final.

        A step whose value is sent into the workflow reaches ``on_step`` before the workflow
        code receiving it runs, so a callback that waits (for a keypress, say) holds the code
        there; an exception it raises stops the replay.
        """
        for _ in self._drive(on_step):
            pass

    def _drive(self, emit: Callable[[Step], None]) -> Iterator[None]:
        """Feed the records one at a time, pausing (yielding) after each."""
        tracker = _Tracker(emit, self.frames_at)
        interp = Interpreter(
            self.func,
            self.input,
            instance_id=self.instance_id,
            started_at=self.started_at,
            context_factory=WorkflowContext,
            observer=tracker.observe,
            # refuses what the runtime refused, so replay takes that branch
            check=check_for(self.workflow),
            run=self.run_number,
        )
        tracker.interp = interp
        self.divergence, self.phase, self.result, self.error = None, None, None, None
        self.waiting, self.compensations = [], []
        interp.expect(self.records)  # ctx.patched() decides by the record still to come
        for record in self.records:
            compensating = interp.phase is Phase.COMPENSATING
            tracker.before(record)
            try:
                interp.is_replaying = True
                try:
                    interp.feed(record)  # one at a time; expect() gave it the look-ahead
                finally:
                    interp.is_replaying = False
            except NonDeterminismError as exc:
                tracker.drain()
                emit(self._diverged(exc, record, interp, tracker.matched, compensating))
                self.phase = interp.phase
                return
            tracker.after(interp)
            yield None
        self._end(interp, tracker, emit)

    def _diverged(
        self,
        exc: NonDeterminismError,
        record: Record,
        interp: Interpreter,
        matched: int,
        compensating: bool,
    ) -> Step:
        recorded: dict[str, Any] | None = None
        if isinstance(record, Scheduled):
            recorded = record_fields(record)
            current_seq = matched + 1  # the oldest command the code yielded and nothing matched
        else:
            current_seq = exc.seq
        command = interp.command(current_seq) if current_seq <= interp.last_seq else None
        now = None
        if command is not None:
            now = describe_command(command, seq=current_seq, compensating=compensating)
        divergence = Divergence(
            self.instance_id, exc.seq, str(exc), recorded, now, exc.recorded, exc.current
        )
        self.divergence = divergence
        scheduled = record if isinstance(record, Scheduled) else None
        return Step(exc.seq, command, scheduled, "diverged", divergence=divergence)

    def _end(self, interp: Interpreter, tracker: _Tracker, emit: Callable[[Step], None]) -> None:
        """The history ran out: the code must have nothing new to decide, and end as recorded."""
        commands = {s: interp.command(s) for s in range(tracker.matched + 1, interp.last_seq + 1)}
        compensating = interp.phase is Phase.COMPENSATING
        interp.is_replaying = True  # decide() runs workflow code (a Publish is self-resolving)
        try:
            decided = interp.decide()
        finally:
            interp.is_replaying = False
        self.phase, self.result, self.error = interp.phase, interp.result, interp.error
        new = [r for r in decided if isinstance(r, Scheduled)]
        if new:
            tracker.drain()
            first = new[0]
            command = commands.get(first.seq) or interp.command(first.seq)
            ended = f"the instance ended {self.status}" if self._finished() else "history ends"
            recorded_text = f"no command at seq {first.seq} ({ended} there)"
            now_text = f"yields {first.kind} {first.name!r} at seq {first.seq}"
            message = self._message(first.seq, f"{recorded_text}, but the workflow code {now_text}")
            now = record_fields(first)
            if first.kind == "activity" and compensating:
                now["kind"] = "compensation"
            divergence = Divergence(
                self.instance_id, first.seq, message, None, now, recorded_text, now_text
            )
            self.divergence = divergence
            emit(Step(first.seq, command, None, "diverged", divergence=divergence))
            return
        tracker.after(interp)
        tracker.drain()
        mismatch = self._outcome_mismatch(interp)
        if mismatch is not None:
            self.divergence = mismatch
            emit(Step(mismatch.seq, None, None, "diverged", divergence=mismatch))
            return
        self.waiting, self.compensations = _now_of(interp)

    def _finished(self) -> bool:
        return self.status in ("completed", "failed")

    def _outcome_mismatch(self, interp: Interpreter) -> Divergence | None:
        if not self._finished():
            return None
        phase = interp.phase
        if phase.value == self.status:
            return None
        seq = interp.last_seq + 1
        if phase is Phase.FAILED and interp.error is not None:
            now_text = f"fails ({type(interp.error).__name__}: {interp.error})"
        elif phase is Phase.COMPLETED:
            now_text = "completes"
        else:
            waiting = ", ".join(f"{p.kind} {p.name!r} (seq {p.seq})" for p in interp.pending)
            now_text = f"is still waiting on {waiting or 'nothing'}"
        recorded_text = f"the instance ended {self.status}"
        message = self._message(seq, f"{recorded_text}, but the workflow code now {now_text}")
        return Divergence(
            self.instance_id,
            seq,
            message,
            {"outcome": self.status},
            {"outcome": phase.value},
            recorded_text,
            now_text,
        )

    def _message(self, seq: int, what: str) -> str:
        return (
            f"non-determinism in instance {self.instance_id!r} at seq {seq}: {what}. "
            "Likely cause: the workflow code changed under a running instance, or the workflow "
            "depends on something other than its input and recorded outcomes."
        )


def _now_of(interp: Interpreter) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the interpreter's workflow waits on now, and what a failure would compensate now,
    described as ``Replay.waiting`` and ``Replay.compensations`` are."""
    pending = interp.pending
    waiting = [_recorded(p.record) for p in pending]
    emitted = {id(p.command): p.record for p in pending if p.kind == "compensation"}
    compensations = []
    for command in interp.compensations:
        record = emitted.get(id(command))
        compensations.append(_recorded(record) if record else _compensation(command))
    return waiting, compensations


def _recorded(record: Scheduled) -> dict[str, Any]:
    described = record_fields(record)
    described["args"] = render(record.args)
    described["deadline"] = record.deadline
    return described


def _compensation(command: CallActivity) -> dict[str, Any]:
    """A compensation not emitted yet: described as the runtime would record it."""
    described = describe_command(command, seq=0, compensating=True)
    described["seq"] = None  # it has none until it is emitted
    described["args"] = render(described["args"])
    described["deadline"] = None
    return described


def replay_instance(
    storage: Store, instance_id: str, workflow: Workflow[Any] | None = None
) -> Replay:
    """A :class:`Replay` of a stored instance (read in one read transaction; nothing written)."""
    stored = storage.stored(instance_id)
    return Replay.from_rows(stored.row, stored.history, workflow)
