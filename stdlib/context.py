"""The contexts user code receives: ``WorkflowContext`` in workflows, ``ActivityContext`` in
activities and compensations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import validate
from .errors import SerializationError
from .kernel import Context, Interpreter
from .serde import to_jsonable

logger = logging.getLogger("eddic")


class _ReplayAwareLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that stays silent while the workflow is being replayed."""

    def __init__(self, ctx: WorkflowContext) -> None:
        super().__init__(logging.getLogger("eddic.workflow"), {})
        self._ctx = ctx

    def isEnabledFor(self, level: int) -> bool:
        return not self._ctx.is_replaying and super().isEnabledFor(level)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self._ctx.instance_id}] {msg}", kwargs


class WorkflowContext(Context):
    """What a workflow receives as ``ctx``: ``instance_id``, ``now()``, ``uuid()``,
    ``is_replaying``, ``log`` (a logger that is silent while replaying) and ``set_status``."""

    __slots__ = ("_log", "custom_status", "status_changed")

    def __init__(self, interpreter: Interpreter) -> None:
        super().__init__(interpreter)
        self._log: _ReplayAwareLogger | None = None
        #: the value of the last ``set_status`` (JSON data), and whether the runtime has yet to
        #: store it
        self.custom_status: Any = None
        self.status_changed = False

    def set_status(self, value: Any) -> None:
        """Show where the instance is (``get_instance(id)["custom_status"]``, ``eddic show``):
        JSON-compatible data, stored with the instance's next step. It is instance state, not
        history: a replay that runs the same code sets it again. ``TypeError`` for a value that
        cannot be serialised."""
        try:
            snapshot = to_jsonable(value, what="the value of ctx.set_status")
        except SerializationError as exc:
            raise TypeError(str(exc)) from None
        if snapshot != self.custom_status or not self.status_changed:
            self.custom_status = snapshot
            self.status_changed = True

    @property
    def log(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger that is silent while the workflow is being replayed (made on first use)."""
        if self._log is None:
            self._log = _ReplayAwareLogger(self)
        return self._log


@dataclass
class PublishedEvent:
    event_type: str
    data: Any
    source: str | None


@dataclass
class ActivityContext:
    """What an activity (or compensation) receives as ``ctx``.

    ``idempotency_key`` is the same for every attempt of this call, across retries and crashes:
    pass it to external systems so that a repeated attempt does not repeat the side effect.
    ``heartbeat_details`` holds the details of the last heartbeat an earlier attempt of this
    call recorded (``None`` if none did), so that a long job resumes where it stopped.
    """

    instance_id: str
    seq: int
    attempt: int
    idempotency_key: str
    heartbeat_details: Any = None
    _published: list[PublishedEvent] = field(default_factory=list, repr=False)
    # The runtime's recorder of heartbeats (None outside a worker: heartbeats are then checked
    # and otherwise ignored).
    _beat: Callable[[Any], None] | None = field(default=None, repr=False)

    def heartbeat(self, details: Any = None) -> None:
        """Report that this attempt is alive, with ``details`` of its progress (JSON-compatible
        data, recorded durably): the next attempt, after a failure, a timeout or a crash, finds
        the last details recorded in ``ctx.heartbeat_details``.

        Resets the attempt's ``heartbeat_timeout``. Durable writes are spaced at least a second
        apart (a crash loses at most the last second's details); calling it often is cheap.
        Raises :class:`~eddic.ActivityTimeout` once the attempt has timed out, so that a body
        that heartbeats stops early: its result would be discarded anyway. Details that cannot
        be serialised raise ``TypeError`` here, at the call.
        """
        try:
            snapshot = to_jsonable(details, what="the details of ctx.heartbeat")
        except SerializationError as exc:
            raise TypeError(str(exc)) from None
        beat = self._beat
        if beat is not None:
            beat(snapshot)

    def publish(self, event_type: str, data: Any = None, source: str | None = None) -> None:
        """Publish an event through the outbox, committed together with this call's result.

        Bad values fail here, at the call: an event type or source that is not a non-empty
        string, data that cannot be serialised to JSON (``TypeError``). The data is recorded as
        it is now: changing the object afterwards does not change the event.
        """
        event_type = validate.name(event_type, "the event type of ctx.publish")
        if source is not None:
            source = validate.name(source, "the source of ctx.publish")
        try:
            snapshot = to_jsonable(data, what=f"data of event {event_type!r}")
        except SerializationError as exc:
            raise TypeError(str(exc)) from None
        self._published.append(PublishedEvent(event_type, snapshot, source))
