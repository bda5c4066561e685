"""Deterministic tests for eddic workflows: an in-memory app under frozen time.

::

    from eddic.testing import WorkflowEnvironment

    def test_order_times_out_without_payment():
        with WorkflowEnvironment() as env:                # in-memory database, frozen time
            env.override_activity(charge_card, lambda order_id, amount: "receipt-1")
            iid = env.start(order, input="A1")
            env.advance(timedelta(hours=1))               # fires what became due, in order
            env.assert_history(iid, [
                "activity reserve_inventory: completed",
                "event payment.confirmed: timed out",
                "compensation cancel_reservation: completed",
            ])

The pytest plugin (:mod:`eddic.testing.pytest_plugin`) provides the same thing as the ``eddic_env``
fixture. :class:`WorkflowDriver` tests a workflow on the kernel alone, with no database at all.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

from freezegun import freeze_time

from ..clock import utcnow
from ..debug.replay import Replay
from ..debug.timeline import Entry, build
from ..decorators import Activity, Workflow, find_activity
from ..kernel import RUN_TO_COMPLETION, EddicError, Event
from ..runtime.app import App
from ..runtime.outbox import outbox_rows
from .kernel_driver import DEFAULT_START, WorkflowDriver

__all__ = [
    "DEFAULT_START",
    "FrozenClock",
    "HistoryView",
    "WorkflowDriver",
    "WorkflowEnvironment",
    "assert_history",
    "mock_activity",
    "override_activity",
]


def _seconds(by: float | timedelta) -> timedelta:
    delta = by if isinstance(by, timedelta) else timedelta(seconds=by)
    if delta < timedelta(0):
        raise ValueError(f"time only moves forward, got {by!r}")
    return delta


def _aware(when: datetime | str) -> datetime:
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class FrozenClock:
    """Frozen time on freezegun (``real_asyncio=True``, so async activities still run).

    Every due time in the runtime comes from this clock while it is started; it only moves when
    told to (``advance``, ``move_to``).
    """

    def __init__(self, start: datetime | str = DEFAULT_START) -> None:
        # pytest's own timing (test durations) keeps real time.
        self._freezer = freeze_time(_aware(start), real_asyncio=True, ignore=["_pytest.timing"])
        self._factory: Any = None

    def start(self) -> FrozenClock:
        if self._factory is None:
            self._factory = self._freezer.start()
        return self

    def stop(self) -> None:
        if self._factory is not None:
            self._freezer.stop()
            self._factory = None

    def __enter__(self) -> FrozenClock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def now(self) -> datetime:
        """The frozen time, an aware UTC datetime."""
        return utcnow()

    def advance(self, by: float | timedelta) -> datetime:
        """Move time forward by seconds or a timedelta; returns the new time."""
        self._running().tick(_seconds(by))
        return self.now()

    def move_to(self, when: datetime | str) -> datetime:
        """Move time to ``when`` (naive means UTC); never backwards."""
        target = _aware(when)
        if target < self.now():
            raise ValueError(f"time only moves forward: {target} is before {self.now()}")
        self._running().move_to(target)
        return self.now()

    def _running(self) -> Any:
        if self._factory is None:
            raise EddicError("the frozen clock is not started (use `with FrozenClock():`)")
        return self._factory


# -- replacing activities -----------------------------------------------------------------------


def _activity(target: Activity | str) -> Activity:
    if isinstance(target, Activity):
        return target
    found = find_activity(target)
    if found is None:
        raise EddicError(f"no activity named {target!r} is registered in this process")
    return found


def _wants_ctx(func: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] == "ctx"


@contextmanager
def override_activity(target: Activity | str, implementation: Callable[..., Any]) -> Iterator[None]:
    """Run ``implementation`` instead of the activity's body, for the duration of the block.

    The workflow is untouched: it still yields the same command, and arguments are still checked
    against the activity's signature and rebuilt as its parameter types. ``implementation`` is
    called with the activity's parameters by name (plus ``ctx`` first, when its first parameter
    is named ``ctx``), may be ``async def``, and its result goes through the activity's result
    type as usual. An exception it raises fails the attempt (and is retried per the policy).
    """
    act = _activity(target)
    saved = (act.func, act.is_async)
    wants_ctx = _wants_ctx(implementation)
    takes_ctx = act.takes_ctx

    def body(*args: Any, **kwargs: Any) -> Any:
        if takes_ctx and not wants_ctx:
            args = args[1:]
        return implementation(*args, **kwargs)

    act.func = body
    act.is_async = inspect.iscoroutinefunction(implementation)
    try:
        yield
    finally:
        act.func, act.is_async = saved


@contextmanager
def mock_activity(
    target: Activity | str, *, return_value: Any = None, side_effect: Any = None
) -> Iterator[mock.Mock]:
    """Replace the activity's body with a ``unittest.mock.Mock`` (called with keyword arguments).

    ``side_effect`` works as in ``Mock``: an exception (raised by every attempt), a list (one
    outcome per attempt) or a function.
    """
    stub = mock.Mock(return_value=return_value, side_effect=side_effect)
    with override_activity(target, stub):
        yield stub


# -- the history in readable terms --------------------------------------------------------------


class HistoryView(Sequence[Entry]):
    """An instance's history as :class:`~eddic.debug.timeline.Entry` objects, one per command."""

    def __init__(self, instance_id: str, entries: list[Entry]) -> None:
        self.instance_id = instance_id
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: Any) -> Any:
        return self.entries[index]

    @property
    def lines(self) -> list[str]:
        """``["activity reserve_inventory: completed", "timer sleep: fired", ...]``."""
        return [entry.line for entry in self.entries]

    def calls(self, activity: Activity | str) -> list[Any]:
        """The recorded arguments (by parameter name, as JSON) of each call of an activity."""
        name = activity.name if isinstance(activity, Activity) else activity
        runs = RUN_TO_COMPLETION
        return [e.args for e in self.entries if e.kind in runs and e.name == name]

    def of_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    def __repr__(self) -> str:
        return f"HistoryView({self.instance_id!r}, {self.lines!r})"


def assert_history(history: HistoryView, expected: Sequence[str], *, exact: bool = True) -> None:
    """Assert the history's lines equal ``expected`` (or, with ``exact=False``, contain them in
    order). The failure message is a diff of the two."""
    actual = history.lines
    if exact:
        ok = actual == list(expected)
    else:
        remaining = iter(actual)
        ok = all(any(line == want for line in remaining) for want in expected)
    if ok:
        return
    how = "is not" if exact else "does not contain, in order,"
    diff = "\n".join(difflib.ndiff(list(expected), actual))
    raise AssertionError(
        f"the history of instance {history.instance_id!r} {how} what was expected "
        f"(- expected, + actual):\n{diff}"
    )


# -- the environment ----------------------------------------------------------------------------


class WorkflowEnvironment:
    """An :class:`~eddic.App` on an in-memory database under a :class:`FrozenClock`.

    Use it as a context manager (or call ``open``/``close``). Time moves only through
    ``advance`` and ``run_until_idle``, which fire due timers and deadlines in time order.
    Activity overrides made through it last until ``close``.
    """

    def __init__(
        self,
        *,
        start: datetime | str = DEFAULT_START,
        db_url: str = "sqlite:///:memory:",
        service_name: str = "eddic-test",
        max_steps: int = 10_000,
        **app_options: Any,
    ) -> None:
        self.clock = FrozenClock(start)
        self.app = App(db_url=db_url, service_name=service_name, **app_options)
        self.max_steps = max_steps
        self._stack = ExitStack()

    def open(self) -> WorkflowEnvironment:
        self.clock.start()
        self.app.initialize()
        return self

    def close(self) -> None:
        try:
            self._stack.close()
            self.app.shutdown()
        finally:
            self.clock.stop()

    def __enter__(self) -> WorkflowEnvironment:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the app, delegated --

    def start(self, workflow: Workflow[Any] | str, input: Any = None, **options: Any) -> str:
        return self.app.start(workflow, input, **options)

    def send_event(self, event_type: str, data: Any = None, **options: Any) -> list[str]:
        return self.app.send_event(event_type, data, **options)

    def cancel(self, instance_id: str, reason: str | None = None) -> bool:
        """``App.cancel``: ``Cancelled(reason)`` is thrown in at the instance's current yield,
        here and now (its compensations, or its clean-up, run at once)."""
        return self.app.cancel(instance_id, reason)

    def result(self, instance_id: str) -> Any:
        return self.app.result(instance_id)

    def status(self, instance_id: str) -> str:
        return str(self.app.get_instance(instance_id)["status"])

    def get_instance(self, instance_id: str) -> dict[str, Any]:
        return self.app.get_instance(instance_id)

    def replay(self, instance_id: str) -> Replay:
        return self.app.replay(instance_id)

    def run_due(self) -> int:
        return self.app.run_due()

    # -- time --

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, by: float | timedelta) -> int:
        """Move time forward by ``by`` and run everything that became due, in time order.

        Each due timer fires at its own deadline (the clock stops there first), so a workflow
        sees the same times it would in production. Returns how many steps instances took.
        """
        target = self.now() + _seconds(by)
        advanced = self._run_due_until(target)
        self.clock.move_to(target)
        return advanced + self.app.run_due()

    def run_until_idle(self) -> int:
        """Run until nothing is left but waits for events without deadlines (or nothing at all),
        jumping the clock to each next timer: a 30-day sleep passes in one call.

        Returns how many steps instances took. Raises ``EddicError`` after ``max_steps`` passes
        (a workflow that sleeps forever never becomes idle).
        """
        return self._run_due_until(None)

    def _run_due_until(self, target: datetime | None) -> int:
        advanced = self.app.run_due()
        for _ in range(self.max_steps):
            wake = self.app.storage.next_wake()
            if wake is None or (target is not None and wake > target):
                return advanced
            stuck = wake <= self.now()
            if not stuck:
                self.clock.move_to(wake)
            moved = self.app.run_due()
            if moved == 0 and stuck:
                return advanced  # due but not runnable here (e.g. parked after a code change)
            advanced += moved
        raise EddicError(
            f"still busy after {self.max_steps} passes at {self.now().isoformat()}: "
            "a workflow that never stops sleeping? (raise max_steps, or use advance())"
        )

    # -- overrides --

    def override_activity(self, target: Activity | str, implementation: Callable[..., Any]) -> None:
        """Run ``implementation`` instead of the activity until the environment closes."""
        self._stack.enter_context(override_activity(target, implementation))

    def mock_activity(
        self, target: Activity | str, *, return_value: Any = None, side_effect: Any = None
    ) -> mock.Mock:
        """Replace the activity with a ``Mock`` until the environment closes; returns the mock."""
        return self._stack.enter_context(
            mock_activity(target, return_value=return_value, side_effect=side_effect)
        )

    # -- looking at what happened --

    def history(self, instance_id: str) -> HistoryView:
        status = self.status(instance_id)
        return HistoryView(instance_id, build(self.app.history(instance_id), status=status))

    def assert_history(
        self, instance_id: str, expected: Sequence[str], *, exact: bool = True
    ) -> None:
        assert_history(self.history(instance_id), expected, exact=exact)

    def published(self, event_type: str | None = None) -> list[Event]:
        """Events written to the outbox (by ``Publish`` and ``ctx.publish``), oldest first."""
        rows = outbox_rows(self.app.storage, limit=1_000_000)
        return [
            Event(r["event_id"], r["event_type"], r["source"], _aware(r["time"]), r["data"])
            for r in rows
            if event_type is None or r["event_type"] == event_type
        ]
