"""What a workflow sees of the interpreter: its id, the recorded time and deterministic uuids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

#: Namespace of every uuid eddic derives: ``ctx.uuid()`` and outbox event ids.
EDDIC_NAMESPACE = uuid.UUID("64141401-752f-4f39-a798-2735a429b339")


def derived_uuid(instance_id: str, seq: int, k: int | None = None) -> uuid.UUID:
    """``uuid5(EDDIC_NAMESPACE, "instance:seq:k")`` (``"instance:seq"`` when ``k`` is None)."""
    name = f"{instance_id}:{seq}" if k is None else f"{instance_id}:{seq}:{k}"
    return uuid.uuid5(EDDIC_NAMESPACE, name)


class Host(Protocol):
    """What a context reads from the interpreter that drives it (``Interpreter`` is one)."""

    @property
    def instance_id(self) -> str: ...

    @property
    def is_replaying(self) -> bool: ...

    @property
    def now(self) -> datetime: ...

    def next_uuid(self) -> uuid.UUID: ...

    def patched(self, change_id: str) -> bool: ...


class Context:
    """The kernel's workflow context. ``eddic.WorkflowContext`` extends it with a logger."""

    __slots__ = ("_interpreter",)

    def __init__(self, interpreter: Host) -> None:
        self._interpreter = interpreter

    @property
    def instance_id(self) -> str:
        return self._interpreter.instance_id

    @property
    def is_replaying(self) -> bool:
        """True while recorded outcomes are being fed back to the workflow."""
        return self._interpreter.is_replaying

    def now(self) -> datetime:
        """The time of the last record delivered to the workflow (its start time before any)."""
        return self._interpreter.now

    def uuid(self) -> uuid.UUID:
        """A uuid that is the same on every replay: uuid5 of instance id, seq and call count."""
        return self._interpreter.next_uuid()

    def patched(self, change_id: str) -> bool:
        """Whether this run takes the code of change ``change_id``: True for a new run, or one
        whose history passed this point with the change; False replaying history recorded
        before it (the old code's path then). Guard a change to a workflow with running
        instances: ``if ctx.patched("send-receipt"): yield send_receipt(...)``."""
        return self._interpreter.patched(change_id)

    def deprecate_patch(self, change_id: str) -> None:
        """Mark a change every instance has passed (its ``patched`` guard removed, the new
        code kept): records nothing; a marker of it in history is accepted and skipped."""
        if not isinstance(change_id, str) or not change_id:
            raise ValueError(f"a change id must be a non-empty string, got {change_id!r}")
