"""What the viewer shows and does, without HTTP: reads through the storage interface, the
kernel's view of an instance through a replay (:mod:`eddic.debug`), actions through the public
``App`` methods. Nothing here reaches into the runtime's internals (``tests/test_layering.py``).

The viewer never runs an instance itself: a cancel, an event or a retry is recorded and made due,
and a serving worker that has the workflow's code runs it (``inline=False``). A replay runs only
workflow code (no activity, no write), and only when that code is loaded (``--import``/``--app``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..clock import from_text, utcnow
from ..debug import timeline
from ..debug.replay import Replay, Step
from ..decorators import Workflow, get_workflow
from ..errors import InstanceNotFound, UnknownWorkflow
from ..runtime.app import App
from ..runtime.async_app import AsyncApp
from ..storage import HISTORY_FIELDS, Store, Stored, decoded_history, open_store

__all__ = [
    "STATUSES",
    "Done",
    "InstanceView",
    "ListPage",
    "ListQuery",
    "Outlook",
    "ReplayView",
    "Viewer",
]

STATUSES = timeline.STATUSES
PAGE_SIZE = 50
HISTORY_PAGE = 200
INSTANCES_KEPT = 32  # instances whose history and "now" are remembered (Viewer._current)


@dataclass(frozen=True)
class ListQuery:
    """One page of the instance list: filters and a cursor (an instance id, newest first)."""

    status: str | None = None
    workflow: str | None = None
    search: str | None = None
    before: str | None = None  # the page after this instance (older)
    after: str | None = None  # the page before this instance (newer)
    limit: int = PAGE_SIZE


@dataclass(frozen=True)
class ListPage:
    query: ListQuery
    instances: list[dict[str, Any]]
    counts: dict[str, int]  # per status, under the workflow and search filters
    total: int  # under every filter
    workflows: list[str]
    older: str | None  # cursor of the next (older) page, None on the last
    newer: str | None  # cursor of the previous (newer) page, None on the first


@dataclass(frozen=True)
class Outlook:
    """The kernel's view of an instance now, from a replay of its history through the code:
    what it waits on, and the compensations a failure would run (in the order they would run).
    ``why_not`` says why there is none (the code is not loaded, the replay diverged, ...)."""

    waiting: list[dict[str, Any]] = field(default_factory=list)
    compensations: list[dict[str, Any]] = field(default_factory=list)
    why_not: str | None = None


@dataclass(frozen=True)
class InstanceView:
    info: dict[str, Any]
    entries: list[timeline.Entry]
    history: list[dict[str, Any]]  # one page of records, from ``history_from``
    history_total: int
    history_from: int
    run: int  # the run shown (continue-as-new)
    children: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    mailbox: list[dict[str, Any]]
    outlook: Outlook


@dataclass(frozen=True)
class ReplayView:
    info: dict[str, Any]
    steps: list[Step]
    replay: Replay | None
    why_not: str | None  # why there is no replay (no code, a stored value the code refuses)


@dataclass(frozen=True)
class _Current:
    rows: list[tuple[Any, ...]]
    entries: list[timeline.Entry]
    outlook: Outlook


@dataclass(frozen=True)
class Done:
    """What an action did, in a sentence for the page it redirects to."""

    message: str
    instance_id: str | None = None


class Viewer:
    """One database, seen by the viewer. ``target`` is a database URL, an ``App`` or an
    ``AsyncApp``."""

    def __init__(self, target: str | App | AsyncApp) -> None:
        if isinstance(target, AsyncApp):  # the App it drives (the viewer calls it from threads)
            target = target.app
        if isinstance(target, App):
            self._app: App | None = target
            self.store: Store = target.storage
            self.db_url = target.storage.db_url
            target.initialize()
        elif isinstance(target, str):
            self._app = None
            self.db_url = target
            self.store = open_store(target)
            self.store.open()
        else:
            raise TypeError(f"the viewer wants a database URL or an eddic App, got {target!r}")
        self._owns_app = self._app is None
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[Any, ...], _Current] = OrderedDict()

    def close(self) -> None:
        if self._owns_app:
            if self._app is not None:
                self._app.shutdown()
            self.store.close()

    def writer(self) -> App:
        """The App actions go through: the one given, or one opened on the database once."""
        with self._lock:
            if self._app is None:
                self._app = App(db_url=self.db_url)
                self._app.initialize()
            return self._app

    # -- reading --

    def list_page(self, query: ListQuery) -> ListPage:
        store, limit = self.store, query.limit
        statuses = [query.status] if query.status else None
        rows = store.list_instances(
            status=statuses,
            workflow=query.workflow,
            search=query.search,
            before=query.before,
            after=query.after,
            limit=limit + 1,  # one more: is there a page beyond?
        )
        older = newer = None
        if query.after is not None:
            if len(rows) > limit:
                rows = rows[1:]
                newer = rows[0]["instance_id"]
            older = rows[-1]["instance_id"] if rows else query.after
        else:
            if len(rows) > limit:
                rows = rows[:limit]
                older = rows[-1]["instance_id"]
            if query.before is not None:
                newer = rows[0]["instance_id"] if rows else query.before
        counts = store.status_counts(workflow=query.workflow, search=query.search)
        total = sum(counts.values()) if not statuses else counts.get(query.status or "", 0)
        return ListPage(query, rows, counts, total, store.workflow_names(), older, newer)

    def instance(self, instance_id: str, *, run: int | None = None, start: int = 0) -> InstanceView:
        store = self.store
        info = store.get_instance(instance_id)  # InstanceNotFound
        current = int(info.get("run") or 1)
        shown = current if run is None or not 1 <= run <= current else run
        if shown == current:
            seen = self._current(info)
            rows, entries, outlook = seen.rows, seen.entries, seen.outlook
            total = len(rows)
        else:  # an earlier run (continue-as-new) ended: nothing waits there
            every = store.history(instance_id, shown)
            entries = timeline.build(every, status="completed")
            total = len(every)
            outlook = Outlook(why_not=f"run {shown} ended: it waits on nothing")
        start = max(0, min(start, max(total - 1, 0)))
        if shown == current:  # decode the page from the rows read already
            page = decoded_history(rows[start : start + HISTORY_PAGE])
        else:
            page = store.history(instance_id, shown, start=start, limit=HISTORY_PAGE)
        return InstanceView(
            info=info,
            entries=entries,
            history=page,
            history_total=total,
            history_from=start,
            run=shown,
            children=store.list_instances(parent=instance_id, limit=PAGE_SIZE),
            outbox=store.outbox.rows(None, 100, instance_id=instance_id),
            mailbox=store.mailbox_rows(instance_id, 100),
            outlook=outlook,
        )

    def _workflow(self, info: dict[str, Any]) -> Workflow[Any] | None:
        try:
            return get_workflow(info["workflow_name"])
        except UnknownWorkflow:
            return None

    def _current(self, info: dict[str, Any]) -> _Current:
        """The run in progress as the instance page draws it: its history rows as stored, its
        timeline and the kernel's view of it now.

        The timeline needs every record's times but none of its values, so the rows are read
        as stored and only the page of history shown is decoded. What the instance waits on
        now comes from a replay of the whole history through the code, O(history): all three
        are kept per instance until it takes a step (its ``updated_at`` moves with every
        step), so a page viewed again, or refreshed live, costs a read of the instance row."""
        wf = self._workflow(info)
        key = (
            info["instance_id"],
            info.get("run"),
            info["updated_at"],
            info["status"],
            None if wf is None else id(wf),  # other code, another answer
        )
        with self._lock:
            known = self._seen.get(key)
            if known is not None:
                self._seen.move_to_end(key)
                return known
        stored = self.store.stored(info["instance_id"])
        if info["status"] in timeline.FINISHED:
            outlook = Outlook(why_not=f"the instance is {info['status']}: it waits on nothing")
        elif wf is None:
            outlook = Outlook(why_not=_not_loaded(info))
        else:
            outlook = self._replay_outlook(stored, wf)
        entries = timeline.build(_light(stored.history), status=info["status"])
        seen = _Current(stored.history, entries, outlook)
        with self._lock:
            self._seen[key] = seen
            while len(self._seen) > INSTANCES_KEPT:
                self._seen.popitem(last=False)
        return seen

    def _replay_outlook(self, stored: Stored, wf: Workflow[Any]) -> Outlook:
        try:
            replay = Replay.from_rows(stored.row, stored.history, wf, frames_at=_no_frames)
            replay.run(_ignore)
        except Exception as exc:  # a stored value the code refuses: say so, do not fail the page
            return Outlook(why_not=f"the replay stopped: {type(exc).__name__}: {exc}")
        if replay.divergence is not None:
            return Outlook(why_not="the current code diverges from the history (see the replay)")
        return Outlook(list(replay.waiting), list(replay.compensations))

    def replay(self, instance_id: str, *, step: int | None = None) -> ReplayView:
        """The replay, with the locals of step ``step`` (1-based; default: the last)."""
        info = self.store.get_instance(instance_id)
        wf = self._workflow(info)
        if wf is None:
            return ReplayView(info, [], None, _not_loaded(info))
        stored = self.store.stored(instance_id)
        # Steps come one per seq, in seq order, so step N is seq N: only its frames are rendered.
        wanted = step if step is not None else _last_seq(stored.history)
        try:
            replay = Replay.from_rows(
                stored.row, stored.history, wf, frames_at=lambda seq: seq == wanted
            )
            steps = replay.steps()
        except Exception as exc:  # a record the code cannot take: say so, do not fail the page
            return ReplayView(info, [], None, f"the replay stopped: {type(exc).__name__}: {exc}")
        return ReplayView(info, steps, replay, None)

    # -- actions (each recorded durably; a serving worker runs what they make due) --

    def cancel(self, instance_id: str, reason: str | None) -> Done:
        recorded = self.writer().cancel(instance_id, reason or None, inline=False)
        if not recorded:
            status = self.store.get_instance(instance_id)["status"]
            return Done(f"{instance_id} is already {status}: nothing to cancel", instance_id)
        return Done(
            f"cancel of {instance_id} recorded: a worker with its code throws Cancelled in at "
            "its current yield",
            instance_id,
        )

    def send_event(
        self,
        event_type: str,
        data_text: str,
        *,
        instance_id: str | None,
        event_id: str | None,
    ) -> Done:
        try:
            data = json.loads(data_text) if data_text.strip() else None
        except json.JSONDecodeError as exc:
            raise ValueError(f"the event's data is not JSON: {exc}") from None
        reached = self.writer().send_event(
            event_type,
            data,
            source="eddic-viewer",
            id=event_id or None,
            instance_id=instance_id or None,
            inline=False,
        )
        where = f"instance {instance_id}" if instance_id else "a broadcast"
        return Done(
            f"event {event_type!r} ({where}) reached {len(reached)} instance(s)"
            + (f": {', '.join(reached)}" if reached else ""),
            instance_id or None,
        )

    def retry(self, instance_id: str) -> Done:
        status = self.store.unpark(instance_id, utcnow())
        if status is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r}")
        if status in timeline.FINISHED:
            return Done(f"{instance_id} is already {status}: nothing to retry", instance_id)
        self.store.wake()
        return Done(
            f"{instance_id} is due now: a serving worker with its code runs it", instance_id
        )

    def outbox_retry(self, event_id: str, instance_id: str | None) -> Done:
        count = self.store.outbox.retry_failed(utcnow(), event_id)
        if not count:
            return Done(f"no failed outbox row with event id {event_id!r}", instance_id)
        return Done(f"outbox row {event_id} is pending again (a fresh attempt count)", instance_id)

    def outbox_discard(self, event_id: str, instance_id: str | None) -> Done:
        count = self.store.outbox.discard(event_id)
        if not count:
            return Done(f"no failed outbox row with event id {event_id!r}", instance_id)
        return Done(f"outbox row {event_id} discarded", instance_id)


def _not_loaded(info: dict[str, Any]) -> str:
    return (
        f"workflow {info['workflow_name']!r} is not loaded here: what it waits on and its "
        "replay run its code (start the viewer with --import MODULE or --app module:app)"
    )


def _light(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """History rows as the timeline reads them: times parsed, values left undecoded."""
    at, deadline = HISTORY_FIELDS.index("at"), HISTORY_FIELDS.index("deadline")
    seq, record, kind, name = (HISTORY_FIELDS.index(f) for f in ("seq", "record", "kind", "name"))
    failure = HISTORY_FIELDS.index("failure")
    return [
        {
            "seq": row[seq],
            "record": row[record],
            "kind": row[kind],
            "name": row[name],
            "args": None,
            "at": from_text(row[at]),
            "deadline": from_text(row[deadline]),
            "value": None,
            "failure": row[failure],
        }
        for row in rows
    ]


def _last_seq(rows: list[tuple[Any, ...]]) -> int:
    seq = HISTORY_FIELDS.index("seq")
    return max((int(row[seq]) for row in rows), default=0)


def _no_frames(seq: int) -> bool:
    return False


def _ignore(step: Step) -> None:
    pass
