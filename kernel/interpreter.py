"""The interpreter: a workflow generator driven against its recorded history.

Theory of operation
-------------------
A workflow is a generator that yields commands, or an ``async def`` coroutine that awaits them:
a command's ``__await__`` yields the command itself, so a coroutine reaches the interpreter
exactly as a generator does (``send``, ``throw``, ``StopIteration``) and everything below holds
for both; awaiting anything else (``asyncio.sleep``, a future) reaches it as a value that is not
a command, and a ``TypeError`` is thrown in there. The interpreter owns the generator and two
streams of records: the history it is fed (``feed``/``replay``) and the new records it decides
(``decide``). It never performs I/O and never reads a clock: every time it knows comes from a
record, or from the start time it was given.

Each leaf command the code yields (an activity call, a timer, an event wait, a publish, or a
compensation the kernel itself emits) gets the next sequence number ``seq`` and goes into a FIFO
of *unmatched* leaves. What a command means (its record's kind, name, deadline and arguments,
how its failure is thrown back) is looked up in the tables of ``handlers``; the leaves and the
All/First trees over them are in ``waits``.

Nothing the code yields escapes as an exception: a command that cannot be scheduled (a deadline
past what a ``datetime`` holds, a value the host's ``check`` refuses) is thrown into the workflow
at its yield as a ``ValueError`` or ``TypeError``, so ``try/except`` around the yield works. Every
leaf of an All/First tree is checked before any of them is added, so a bad child leaves no
half-built tree and consumes no seq; a replay refuses it again at the same point.

A fed ``Scheduled`` record must match the oldest unmatched leaf by seq, kind and name (arguments
may differ: they are data, not identity); anything else is a ``NonDeterminismError``. When the
history runs out, the unmatched leaves are new decisions: ``decide()`` turns them into
``Scheduled`` records for the caller to persist. A ``Publish`` is self-resolving: ``decide()``
also emits its ``Resolved`` record, valued with its event id.

A matched leaf waits in ``pending`` until a ``Resolved`` record with its seq arrives. Leaves of one
yield form a small tree (``All``/``First`` nodes over leaves); a resolution settles its leaf and
bubbles up. When the root settles, its value is sent into the generator (a failure is thrown), the
unfinished timers and event waits under it are cancelled, and unfinished activities stay pending:
they run to completion and their outcomes are recorded and ignored. A ``First`` nested under an
``All`` does the same to its losing branches as soon as it settles, not when the ``All`` does.

Cancellation: a ``Cancel`` record (no seq: it belongs to no command) throws ``Cancelled`` into
the generator at its current yield, after abandoning what that yield waits on exactly as a
settled ``First`` abandons its losers (timers and event waits cancelled, activities left to run
to completion). ``Cancelled`` is a ``BaseException``; one that propagates out of the generator
ends the code like a failure (its compensations run, newest first) and the instance ends
``CANCELLED``. A cancel that finds the code already finished (returned, raised, compensating)
changes nothing; it stays in history.

Versioning: ``ctx.patched(change_id)`` records a *marker* (a ``Scheduled`` record of kind
``marker``, seq 0: it takes no seq, so history with and without it numbers its commands alike).
Live, it records one and returns True. Replaying, it looks at the next record of the history
being replayed (``replay`` and ``expect`` give the interpreter that look-ahead): that change's
marker there, True; anything else, the history predates the change, False, and nothing is
recorded. A marker in history that no ``patched`` call expects (its code removed, or kept under
``deprecate_patch``) is dropped: markers are optional on replay.

Saga: when an activity that carries a compensation completes, the compensation is pushed on a
stack. A generator that returns drops the stack; one that raises leaves the interpreter
*failing*: once no activity is outstanding, it emits the compensations one at a time, newest
first, as ordinary leaves (kind ``"compensation"``), so a replay matches them like any other
command and a crash mid-compensation never repeats one. Failed compensations are collected in
``compensation_errors`` and the rest still run. ``compensations`` lists, for a viewer, the one
in progress and then that stack in the order it would run: state, not a decision (reading it
changes nothing).

Introspection: ``frames()`` reads where the suspended generator (or coroutine) stands, down
through ``yield from`` and awaited coroutines (``frames``). Reading a suspended frame runs no
workflow code, so it is safe at any point the interpreter is not itself inside the code (an
observer's callback is such a point).

Costs: every record is O(1) (deque/dict operations plus the depth of one command tree), so a live
interpreter advances in O(1) per new record and a full replay is O(n).
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from .commands import CallActivity, Command, Marker, run_key
from .context import Context, derived_uuid
from .errors import Cancelled, EddicError, NonDeterminismError
from .frames import Frame, suspended_frames
from .handlers import (
    ARGS,
    CANCELLED_ON_ABANDON,
    COMBINATORS,
    ENDS_RUN,
    FAILURES,
    LEAVES,
    RUN_TO_COMPLETION,
    SELF_RESOLVING,
    Spec,
)
from .history import Cancel, Failure, Record, Resolved, Scheduled
from .waits import SOLO, Leaf, Node, Pending, Trace

__all__ = ["Interpreter", "Pending", "Phase", "Trace"]


class Phase(str, Enum):
    RUNNING = "running"  # the workflow code has not finished (or activities are outstanding)
    COMPENSATING = "compensating"  # the code raised; compensations are being run
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # a Cancelled thrown in at a yield propagated out of the code
    CONTINUED = "continued"  # the code yielded ContinueAsNew: this run is over, the next begins
    # a NonDeterminismError was raised, or the workflow raised a BaseException that is not an
    # Exception; no more input is accepted
    BROKEN = "broken"


def _describe(kind: str, name: str) -> str:
    return f"{kind} {name!r}"


class Interpreter:
    """Drives one workflow instance: feed it history, ask it for decisions.

    ``workflow`` is called as ``workflow(ctx, input)`` (or ``workflow(ctx)`` when ``input`` is
    ``None`` and it takes one parameter) and should return a generator. ``context_factory``
    builds the ``ctx`` it receives.

    ``check``, when given, is the host's look at each leaf command as the code yields it (on a
    replay too), before it becomes a leaf: a ``TypeError`` or ``ValueError`` it raises is thrown
    into the workflow at that yield; a command it returns is recorded in place of the yielded one
    (e.g. one holding a snapshot of its data, so that the workflow mutating its own object later
    changes nothing recorded); ``None`` keeps the command as yielded.
    """

    def __init__(
        self,
        workflow: Callable[..., Any],
        input: Any = None,
        *,
        instance_id: str,
        started_at: datetime,
        context_factory: Callable[[Interpreter], Context] = Context,
        observer: Callable[[Trace], None] | None = None,
        check: Callable[[Command], Command | None] | None = None,
        run: int = 1,
    ) -> None:
        if not isinstance(started_at, datetime):
            raise TypeError(f"started_at must be an aware datetime, got {started_at!r}")
        if started_at.tzinfo is None:
            raise ValueError("started_at must be an aware datetime")
        self.instance_id = instance_id
        self.run = run
        self._key = run_key(instance_id, run)  # what this run's derived ids derive from
        self.continue_input: Any = None  # ContinueAsNew's input, once the code yielded one
        self._continuing = False
        self.phase = Phase.RUNNING
        self.result: Any = None
        self.error: BaseException | None = None
        self.compensation_errors: list[Failure] = []
        self.is_replaying = False
        # what ctx.now() returns
        self.now = (
            started_at if started_at.tzinfo is timezone.utc else started_at.astimezone(timezone.utc)
        )
        self._clock = self.now  # the time of the last record fed
        self._workflow = workflow
        self._input = input
        self._context = context_factory(self)
        # the generator, or the coroutine of an ``async def`` workflow (the same protocol)
        self._gen: Generator[Any, Any, Any] | Coroutine[Any, Any, Any] | None = None
        self._started = False
        self._gen_done = False
        self._next_seq = 1
        self._uuid_calls = 0
        self._unmatched: deque[Leaf] = deque()
        self._leaves: dict[int, Leaf] = {}  # yielded and not yet resolved (nor cancelled)
        self._pending: list[Pending] | None = None  # memo of .pending; None when stale
        self._outstanding = 0  # leaves in _leaves that run to completion
        self._root: Node | None = None
        self._root_leaves: list[Leaf] = []
        self._stack: list[CallActivity] = []
        self._broken: str | None = None  # why this interpreter refuses input, once it does
        self.cancel: Cancel | None = None  # the Cancel fed, once one is
        # abandoned leaves of CANCELLED_ON_ABANDON kinds (children), for the host to cancel
        self.abandoned: list[Pending] = []
        self._ahead: deque[Record] = deque()  # the history still to replay, for ``patched``
        self._observer = observer
        self._check = check

    # -- public API -----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.phase in _FINAL

    @property
    def last_seq(self) -> int:
        """The highest seq handed out so far (0 before the first command)."""
        return self._next_seq - 1

    @property
    def pending(self) -> list[Pending]:
        """Recorded commands awaiting a resolution, oldest first (cancelled ones excluded)."""
        cached = self._pending
        if cached is None:
            cached = self._pending = [
                Pending(leaf.seq, leaf.command, leaf.record)
                for leaf in sorted(self._leaves.values(), key=lambda leaf: leaf.seq)
                if leaf.record is not None
            ]
        return list(cached)

    @property
    def compensations(self) -> list[CallActivity]:
        """The compensations a failure would run now, in the order they would run (newest
        completion first).

        While compensating, the one in progress (emitted, its outcome not recorded yet) comes
        first, then those still to run; each drops out once its outcome is recorded. Empty once
        the instance has finished, and once the code has returned (nothing can fail any more).
        """
        if self.finished or (self._gen_done and self.error is None):
            return []
        order = self._stack[::-1]
        if self.phase is Phase.COMPENSATING:
            # At most one compensation is emitted at a time, and by then no activity is
            # outstanding: the scan finds it among very few leaves.
            order[:0] = [
                leaf.command
                for leaf in self._leaves.values()
                if leaf.kind == "compensation" and isinstance(leaf.command, CallActivity)
            ]
        return order

    def frames(self) -> tuple[Frame, ...]:
        """Where the workflow's code is suspended: its own frame first, then the ``yield from``
        sub-generators and awaited coroutines it waits in, each with a snapshot of its locals
        (eddic's own frames, such as a command's ``__await__``, left out). Empty before the
        code starts and once it has finished (returned, raised, continued as new)."""
        gen = self._gen
        return () if gen is None else suspended_frames(gen)

    @property
    def context(self) -> Context:
        """The ``ctx`` the workflow received (what ``context_factory`` built)."""
        return self._context

    def command(self, seq: int) -> Command | None:
        """The command yielded (or compensation emitted) at ``seq``, while it is unresolved."""
        leaf = self._leaves.get(seq)
        return None if leaf is None else leaf.command

    def next_uuid(self) -> uuid.UUID:
        self._uuid_calls += 1
        return derived_uuid(self._key, self.last_seq, self._uuid_calls)

    def replay(self, records: Iterable[Record]) -> None:
        """Feed recorded history, in the order it was appended."""
        records = list(records)
        self.expect(records)
        self.is_replaying = True
        feed = self.feed
        try:
            for record in records:
                feed(record)
        finally:
            self.is_replaying = False

    def expect(self, records: Iterable[Record]) -> None:
        """The history about to be fed, for a caller that feeds it record by record (a step
        debugger): ``patched`` decides by the next record still to come."""
        self._ahead = deque(records)

    def patched(self, change_id: str) -> bool:
        """``ctx.patched``: whether this run takes the changed code (see the theory of
        operation)."""
        if not isinstance(change_id, str) or not change_id:
            raise ValueError(f"a change id must be a non-empty string, got {change_id!r}")
        ahead = self._ahead
        if ahead:
            head = ahead[0]
            taken = type(head) is Scheduled and head.kind == "marker" and head.name == change_id
            if not taken:
                return False  # recorded before the change: the old code's path
        # A marker leaf: recorded by decide() (or matched by the replay), never pending.
        self._unmatched.append(Leaf(0, Marker(change_id), "marker", change_id, None, None))
        return True

    def feed(self, record: Record) -> None:
        """Feed one record: a recorded ``Scheduled``, a ``Resolved`` outcome (old or new), or a
        ``Cancel``."""
        if self._broken is not None:
            self._check_usable()
        cls = type(record)
        if cls is not Resolved and cls is not Scheduled:  # first: it may have no .at
            if not isinstance(record, (Scheduled, Resolved, Cancel)):
                raise TypeError(f"not a history record: {record!r}")
            cls = next(k for k in (Scheduled, Resolved, Cancel) if isinstance(record, k))
        if record.at.tzinfo is None:
            raise ValueError(f"record {record!r} has a naive time")
        if not self._started:
            self._ensure_started()  # the code's first patched() sees this record still to come
        ahead = self._ahead
        if ahead and ahead[0] is record:
            ahead.popleft()
        elif ahead:
            ahead.clear()  # fed something else than expected: no look-ahead any more
        if cls is Resolved:
            self._resolve(record)  # type: ignore[arg-type]
        elif cls is Scheduled:
            self._match(record)  # type: ignore[arg-type]
        else:
            self._cancel(record)  # type: ignore[arg-type]

    def decide(self) -> list[Record]:
        """The new records the code produced since the history ran out, for the caller to append.

        Call it only once every recorded record has been fed.
        """
        self._check_usable()
        self._ensure_started()
        out: list[Record] = []
        to_resolve: deque[Scheduled] = deque()
        while True:
            # Flush before each self-resolution: an outcome must never precede a command the
            # code yielded earlier (a replay would take that for a divergence).
            while self._unmatched:
                leaf = self._unmatched.popleft()
                record = Scheduled(
                    leaf.seq,
                    leaf.kind,
                    leaf.name,
                    ARGS[type(leaf.command)](leaf.command, self._key, leaf.seq),
                    self._clock,
                    leaf.deadline,
                )
                leaf.record = record
                out.append(record)
                self._pending = None
                if record.kind in SELF_RESOLVING:
                    to_resolve.append(record)
            if not to_resolve:
                break
            record = to_resolve.popleft()
            value = SELF_RESOLVING[record.kind](self._key, record.seq)
            resolved = Resolved(record.seq, self._clock, value)
            out.append(resolved)
            self._resolve(resolved)
        return out

    # -- matching -------------------------------------------------------------------------------

    def _match(self, record: Scheduled) -> None:
        if record.kind == "marker":
            unmatched = self._unmatched
            if unmatched and unmatched[0].kind == "marker" and unmatched[0].name == record.name:
                unmatched.popleft()  # the patched() call that expected it
            return  # else optional: no patched() expects it any more (deprecated, removed)
        if not self._unmatched:
            recorded = f"{_describe(record.kind, record.name)} at seq {record.seq}"
            current = self._where_is_the_code()
            self._diverge(
                record.seq,
                recorded,
                current,
                f"history recorded {recorded}, but the workflow code now {current}",
            )
        leaf = self._unmatched[0]
        if leaf.seq != record.seq or leaf.kind != record.kind or leaf.name != record.name:
            recorded = f"{_describe(record.kind, record.name)} at seq {record.seq}"
            current = _describe(leaf.kind, leaf.name)
            self._diverge(
                record.seq,
                recorded,
                f"{current} at seq {leaf.seq}",
                f"history recorded {recorded}, but the workflow code now yields {current} "
                f"at seq {leaf.seq}",
            )
        self._unmatched.popleft()
        leaf.record = record
        self._pending = None
        leaf.deadline = record.deadline  # replays reach the recorded deadline
        self._clock = record.at
        if self._observer is not None:
            self._observer(Trace("matched", leaf.seq, leaf.command, record))

    def _where_is_the_code(self) -> str:
        if self.phase is Phase.COMPLETED or (self._gen_done and self.error is None):
            return "has returned"
        if self._gen_done and self.error is not None:
            return f"has raised {type(self.error).__name__} and has no compensation left to run"
        waiting = ", ".join(_describe(leaf.kind, leaf.name) for leaf in self._root_leaves)
        return f"yields nothing new (it is still waiting on {waiting or 'nothing'})"

    def _diverge(self, seq: int, recorded: str, current: str, what: str) -> None:
        message = (
            f"non-determinism in instance {self.instance_id!r} at seq {seq}: {what}. "
            "Likely cause: the workflow code changed under a running instance, or the workflow "
            "depends on something other than its input and recorded outcomes (a clock, random "
            "numbers, I/O, global state); use ctx.now() and ctx.uuid(), and do I/O in activities."
        )
        self.phase = Phase.BROKEN
        self._broken = f"a non-determinism error: {message}"
        raise NonDeterminismError(message, seq=seq, recorded=recorded, current=current)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise EddicError(f"this interpreter stopped at {self._broken}")

    def _stop_at(self, error: BaseException) -> None:
        """The workflow raised a ``BaseException`` that is not an ``Exception`` (``SystemExit``,
        ``GeneratorExit``, ...): it propagates to the host, which decides what becomes of the
        instance, and this interpreter (whose generator is gone) refuses further input rather
        than take the closed generator for a workflow that returned."""
        self.phase = Phase.BROKEN
        self._gen = None
        self._broken = (
            f"{type(error).__name__} raised by the workflow ({error!r}); it is not an Exception, "
            "so it was not taken for the workflow's failure: replay the instance to go on"
        )

    # -- resolutions ----------------------------------------------------------------------------

    def _nothing_unmatched(self, what: str) -> None:
        """History went on with ``what`` where the code yielded a command it has no record of."""
        if self._unmatched:
            new = self._unmatched[0]
            current = f"yields {_describe(new.kind, new.name)} at seq {new.seq}"
            self._diverge(
                new.seq,
                f"{what} and no command at seq {new.seq}",
                current,
                f"the workflow code now {current}, where history recorded no command "
                f"(it went on with {what})",
            )

    def _cancel(self, record: Cancel) -> None:
        """Throw ``Cancelled`` in at the current yield (see the theory of operation)."""
        if self.cancel is not None:
            return  # cancelled once already: a second request changes nothing
        self._nothing_unmatched("a cancel")
        self._clock = record.at
        self.cancel = record
        if self._gen_done or self._gen is None:
            return  # the code has finished (returned, raised, compensating): nothing to throw
        self._release_root()
        self._pending = None
        self.now = self._clock
        # What is thrown in comes from the failure table, as for a failed command (no leaf).
        make = FAILURES["cancel"]
        self._step(None, make(None, Failure("eddic.Cancelled", record.reason or "")))  # type: ignore[arg-type]
        if self._gen_done:
            self._try_finish()

    def _resolve(self, record: Resolved) -> None:
        if self._unmatched:
            self._nothing_unmatched(f"an outcome for seq {record.seq}")
        seq = record.seq
        leaf = self._leaves.pop(seq, None)
        self._pending = None
        self._clock = record.at
        if leaf is None:
            if seq >= self._next_seq or seq < 1:
                raise EddicError(
                    f"history of {self.instance_id!r} resolves seq {seq}, which was never scheduled"
                )
            return  # a cancelled or already resolved command: kept in history, ignored here
        kind = leaf.kind
        failure = record.failure
        node = leaf.node
        exc: BaseException | None = None
        if kind in RUN_TO_COMPLETION:
            self._outstanding -= 1
            if failure is None:
                if kind == "activity":
                    exc = self._push_compensation(leaf, record.value)
                    if exc is not None and node is None:  # abandoned: no yield to throw it at
                        self.compensation_errors.append(Failure.from_exception(exc))
            elif kind == "compensation":
                self.compensation_errors.append(failure)
        if failure is not None and (node is not None or self._observer is not None):
            make = FAILURES.get(kind)
            exc = make(leaf, failure) if make else EddicError(f"{failure.type}: {failure.message}")
        if self._observer is not None:
            self._observer(Trace("resolved", seq, leaf.command, record, exc, node is None))
        if node is SOLO:
            self._root = None
            self._root_leaves = []
            self.now = self._clock
            self._step(record.value if failure is None else None, exc)
        elif node is not None:
            self._settle(node, record.value if failure is None else None, exc)
        if self._gen_done:
            self._try_finish()

    def _push_compensation(self, leaf: Leaf, result: Any) -> BaseException | None:
        """Push the compensation of a completed activity; the error when it cannot be built
        (thrown into the workflow at the activity's yield, like a failure of the activity)."""
        command = leaf.command
        if not isinstance(command, CallActivity):
            return None
        # Duck-typed rather than ``isinstance(..., Compensable)``: a runtime-checkable Protocol
        # check costs tens of microseconds, more than the rest of a record's handling together.
        compensate = getattr(command.activity, "compensate", None)
        if compensate is None or not callable(compensate):
            return None
        try:
            compensation = compensate(command.args, command.kwargs, result)
            if compensation is not None and not isinstance(compensation, CallActivity):
                raise TypeError(f"it is {compensation!r}, not a CallActivity")
        except Exception as error:
            kind: type[Exception] = (
                type(error) if type(error) in (TypeError, ValueError) else EddicError
            )
            return kind(f"cannot build the compensation of activity {leaf.name!r}: {error}")
        if compensation is not None:
            self._stack.append(compensation)
        return None

    def _settle(self, node: Node, value: Any, exc: BaseException | None) -> None:
        while True:
            node.done = True
            parent = node.parent
            if parent is None:
                self._deliver(value, exc)
                return
            if parent.done:
                return
            if parent.mode == "all":
                if exc is None:
                    parent.results[node.index] = value
                    parent.remaining -= 1
                    if parent.remaining:
                        return
                    value = parent.results
            elif exc is None:  # first
                value = (node.index, value)
                if parent.parent is not None:  # a nested First: its other branches lost
                    self._abandon_under(parent)
            node = parent

    def _deliver(self, value: Any, exc: BaseException | None) -> None:
        self._release_root()
        self.now = self._clock
        self._step(value, exc)

    def _release_root(self) -> None:
        """The current yield is settled: abandon every leaf under it that is not."""
        for leaf in self._root_leaves:
            node = leaf.node
            if node is not None and not node.done:
                self._abandon(leaf)
        self._root = None
        self._root_leaves = []

    def _abandon_under(self, settled: Node) -> None:
        """``settled`` (a First) has its value: abandon the unsettled leaves below it."""
        for leaf in self._root_leaves:
            node = leaf.node
            if node is None or node.done:
                continue
            above = node.parent
            while above is not None and above is not settled:
                above = above.parent
            if above is settled:
                self._abandon(leaf)

    def _abandon(self, leaf: Leaf) -> None:
        leaf.node = None  # its outcome, when it comes, is ignored
        if leaf.kind not in RUN_TO_COMPLETION:
            self._leaves.pop(leaf.seq, None)  # a timer, event wait or child: cancelled
            self._pending = None
            if leaf.kind in CANCELLED_ON_ABANDON and leaf.record is not None:
                self.abandoned.append(Pending(leaf.seq, leaf.command, leaf.record))

    # -- driving the generator ------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        self._started = True
        workflow = self._workflow
        try:
            if _takes_input(workflow) or self._input is not None:
                produced = workflow(self._context, self._input)
            else:
                produced = workflow(self._context)
        except Exception as exc:
            self._gen_finished(None, exc)
            return
        except BaseException as exc:
            self._stop_at(exc)
            raise
        if inspect.isgenerator(produced) or inspect.iscoroutine(produced):
            # A coroutine is driven exactly as a generator: ``await command`` runs the
            # command's ``__await__``, which yields the command itself out to here.
            self._gen = produced
            self._step(None, None)
        elif inspect.isasyncgen(produced):
            self._gen_finished(
                None,
                TypeError(
                    f"workflow {_name_of(workflow)} is an async generator function, which "
                    "cannot be a workflow; write it as a generator function (plain `def` with "
                    "`yield`)"
                ),
            )
        else:
            self._gen_finished(produced, None)  # a workflow with nothing to wait for

    def _step(self, value: Any, exc: BaseException | None) -> None:
        gen = self._gen
        assert gen is not None
        while True:
            try:
                yielded = gen.send(value) if exc is None else gen.throw(exc)
            except StopIteration as stop:
                self._gen_finished(stop.value, None)
                return
            except Exception as error:
                self._gen_finished(None, error)
                return
            except Cancelled as error:  # the cancel thrown in, let through: ends like a failure
                self._gen_finished(None, error)
                return
            except BaseException as error:
                self._stop_at(error)
                raise
            self._uuid_calls = 0
            handler = LEAVES.get(type(yielded))
            if handler is not None:  # the common case: one command on its own, no tree
                try:
                    command, spec = self._prepare(yielded, handler)
                except (ValueError, TypeError) as refused:
                    value, exc = None, refused
                    continue
                if spec[0] in ENDS_RUN:
                    self._end_run(command)
                    return
                leaf = Leaf(self._next_seq, command, *spec, SOLO)
                self._add_leaf(leaf)
                self._root = SOLO
                self._root_leaves = [leaf]
                return
            problem = _check_command(yielded)
            if problem is not None:
                value, exc = None, TypeError(problem)
                continue
            plan: list[tuple[Command, Spec]] = []
            try:  # every leaf of the tree, before any is added: no half-built tree
                self._plan(yielded, plan)
            except (ValueError, TypeError) as refused:
                value, exc = None, refused
                continue
            root = self._build(yielded, None, 0, iter(plan))
            if root.done:  # settled as it was built: an empty All
                self._release_root()
                value, exc = root.value, None
                continue
            self._root = root
            return

    def _prepare(
        self, command: Any, handler: Callable[[Any, datetime], Spec]
    ) -> tuple[Command, Spec]:
        """The command to record for a yielded leaf (the host's ``check`` may replace it) and
        its spec. The one place a leaf is refused: whatever the check or the handler raise as
        ``TypeError``, ``ValueError`` or ``OverflowError`` comes out as a ``TypeError`` or
        ``ValueError`` naming the command, to be thrown into the workflow at its yield."""
        try:
            check = self._check
            if check is not None:
                replaced = check(command)
                if replaced is not None:
                    replacement = LEAVES.get(type(replaced))
                    if replacement is None:
                        raise EddicError(
                            f"the interpreter's check replaced {command!r} with {replaced!r}, "
                            "which is not a leaf command"
                        )
                    command, handler = replaced, replacement
            return command, handler(command, self.now)
        except (OverflowError, ValueError, TypeError) as error:
            kind = TypeError if isinstance(error, TypeError) else ValueError
            raise kind(f"cannot schedule {_short(command)}: {error}") from None

    def _plan(self, command: Any, plan: list[tuple[Command, Spec]]) -> None:
        """Prepare every leaf under ``command`` (a combinator ``_check_command`` accepted), in
        the order ``_build`` visits them."""
        handler = LEAVES.get(type(command))
        if handler is not None:
            prepared = self._prepare(command, handler)
            if prepared[1][0] in ENDS_RUN:
                raise TypeError(
                    f"{type(command).__name__} ends the run: yield it alone, not inside "
                    "All or First"
                )
            plan.append(prepared)
            return
        for child in command.commands:
            self._plan(child, plan)

    def _build(
        self,
        command: Any,
        parent: Node | None,
        index: int,
        plan: Iterator[tuple[Command, Spec]],
    ) -> Node:
        if type(command) in LEAVES:
            node = Node("leaf", parent, index)
            prepared, spec = next(plan)
            leaf = Leaf(self._next_seq, prepared, *spec, node)
            self._add_leaf(leaf)
            self._root_leaves.append(leaf)
            return node
        mode = COMBINATORS[type(command)]
        children = command.commands
        node = Node.combinator(mode, parent, index, len(children))
        for i, child in enumerate(children):
            built = self._build(child, node, i, plan)
            if built.done and not node.done:  # settled as it was built: an empty All below
                if mode == "all":
                    node.results[i] = built.value
                    node.remaining -= 1
                else:  # a First whose branch has already won
                    node.done = True
                    node.value = (i, built.value)
        if mode == "all" and not node.remaining:
            node.done = True
            node.value = node.results
        elif node.done and parent is not None:
            self._abandon_under(node)
        return node

    def _end_run(self, command: Command) -> None:
        """The code yielded ``ContinueAsNew``: record it (a leaf that is never pending), close
        the code, drop the saga stack; ``CONTINUED`` once no abandoned activity is outstanding."""
        kind, name, deadline = LEAVES[type(command)](command, self.now)
        leaf = Leaf(self._next_seq, command, kind, name, deadline, None)
        self._next_seq += 1
        self._unmatched.append(leaf)  # decide() records it; a replay matches it
        self.continue_input = getattr(command, "input", None)
        self._continuing = True
        gen = self._gen
        self._gen = None
        if gen is not None:
            gen.close()
        self._gen_done = True
        self._stack.clear()
        self._root = None
        self._root_leaves = []
        self._try_finish()

    def _add_leaf(self, leaf: Leaf) -> None:
        self._next_seq += 1
        self._unmatched.append(leaf)
        self._leaves[leaf.seq] = leaf
        self._pending = None
        if leaf.kind in RUN_TO_COMPLETION:
            self._outstanding += 1

    def _gen_finished(self, result: Any, error: BaseException | None) -> None:
        if error is None and isinstance(result, Command):
            error = TypeError(
                f"workflow {_name_of(self._workflow)} returned the command {_short(result)} "
                "instead of yielding it, so it never ran; did you forget `yield`? "
                "(`result = yield charge(order)`)"
            )
            result = None
        self._gen_done = True
        self._gen = None
        self.result = result
        self.error = error
        if error is None:
            self._stack.clear()
        else:
            self.phase = Phase.COMPENSATING if self._stack else Phase.RUNNING
        self._try_finish()

    def _try_finish(self) -> None:
        if not self._gen_done or self._outstanding or self.finished:
            return
        if self._continuing:
            self.phase = Phase.CONTINUED
        elif self.error is None:
            self.phase = Phase.COMPLETED
        elif self._stack:
            self.phase = Phase.COMPENSATING
            command = self._stack.pop()
            self._add_leaf(Leaf(self._next_seq, command, "compensation", command.name, None, None))
        else:
            self.phase = Phase.CANCELLED if isinstance(self.error, Cancelled) else Phase.FAILED


_FINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED, Phase.CONTINUED})


def _takes_input(workflow: Callable[..., Any]) -> bool:
    """Whether ``workflow`` takes an input after ``ctx`` (cached: once per function)."""
    try:
        return _takes_input_cached(workflow)
    except TypeError:  # an unhashable callable: not cached
        return _signature_takes_input(workflow)


def _signature_takes_input(workflow: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(workflow).parameters
    except (TypeError, ValueError):
        return True
    return len(params) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params.values())


_takes_input_cached = functools.lru_cache(maxsize=512)(_signature_takes_input)


def _name_of(workflow: Callable[..., Any]) -> str:
    name = getattr(workflow, "__qualname__", None) or getattr(workflow, "__name__", None)
    return repr(name) if isinstance(name, str) else repr(workflow)


def _short(command: Any, limit: int = 200) -> str:
    """``repr(command)``, cut to ``limit`` characters (its data may be large)."""
    try:
        text = repr(command)
    except Exception:
        text = f"<{type(command).__qualname__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_command(obj: Any) -> str | None:
    """Why ``obj`` is not a command the kernel understands, or None when it is."""
    if type(obj) in LEAVES:
        return None
    if type(obj) in COMBINATORS:
        for child in obj.commands:
            problem = _check_command(child)
            if problem is not None:
                return problem
        return None
    known = ", ".join(sorted(cls.__name__ for cls in (*LEAVES, *COMBINATORS)))
    return (
        f"workflow yielded or awaited {obj!r} (a {type(obj).__qualname__}), which is not an "
        f"eddic command; yield or await one of {known} (an async def workflow cannot await "
        "asyncio's sleeps, tasks or futures: they are not replayed; use Sleep and activities)"
    )
