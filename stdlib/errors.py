"""Every error eddic raises, in one place, under one root: :class:`EddicError`.

The kernel's errors (what a workflow and its caller see) are defined in ``eddic.kernel`` (it
imports nothing from the rest of eddic) and re-exported here; the standard library's own are
defined here, so that each wing (runtime, storage, CLI) raises from one module and a caller
can catch a whole family (``StorageError``, ``SinkError``) without knowing which backend or
sink raised it.
"""

from __future__ import annotations

from typing import Any

from .kernel import (
    ActivityFailed,
    Cancelled,
    ChildWorkflowFailed,
    EddicError,
    EventTimeout,
    InstanceExists,
    InstanceNotFound,
    NonDeterminismError,
    UnknownWorkflow,
    WorkflowCancelled,
    WorkflowFailed,
)


class SerializationError(EddicError):
    """A value could not be turned into JSON, or JSON back into its declared type."""


class StorageError(EddicError):
    """The database cannot be used: foreign, corrupt, read-only, or from a newer eddic."""


class DamagedRecord(StorageError):
    """A stored record holds what eddic never writes there (edited by hand, say).

    ``instance_id``, ``record`` (``"instances row"``, ``"history pos 3 (seq 2)"``, ...),
    ``column`` and ``problem`` say where and what; ``detail`` is the message without the
    instance, for reports that already name it.
    """

    def __init__(self, instance_id: Any, record: str, column: str, problem: str) -> None:
        self.instance_id = instance_id
        self.record = record
        self.column = column
        self.problem = problem
        self.detail = f"{record}, column {column}: {problem}"
        super().__init__(f"damaged record: instance {instance_id!r}, {self.detail}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (across processes) with its fields
        return (type(self), (self.instance_id, self.record, self.column, self.problem))


class ActivityTimeout(EddicError):
    """An activity attempt overran its ``timeout``, or stopped heartbeating for longer than its
    ``heartbeat_timeout``: the attempt failed (retried under the activity's ``RetryPolicy``) and
    its late result, should the body still return one, is discarded.

    ``which`` is ``"timeout"`` or ``"heartbeat_timeout"``; ``seconds`` the limit that passed.
    Recorded as ``eddic.ActivityTimeout``: the ``ActivityFailed`` a workflow sees once the
    attempts are spent has that ``.type``.
    """

    def __init__(self, message: str, which: str = "timeout", seconds: float = 0.0) -> None:
        super().__init__(message)
        self.which = which
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.which, self.seconds))


class LeaseLost(EddicError):
    """This worker's lease on the instance was taken over; it may record nothing more."""


class SinkError(EddicError):
    """A sink refused an event, failed, or did not answer in time."""


class SinkTimeout(SinkError):
    """A delivery did not finish within the timeout."""


class CliError(EddicError):
    """A problem to report on one line, exiting with status 2."""


class CloudEventError(EddicError):
    """An HTTP request that does not carry a CloudEvent eddic can take.

    ``status`` is the HTTP status to answer it with (400 malformed, 413 too large, 415 a media
    type eddic cannot store); ``message`` says what was wrong, naming the attribute or header.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.message))


__all__ = [
    "ActivityFailed",
    "ActivityTimeout",
    "Cancelled",
    "ChildWorkflowFailed",
    "CliError",
    "CloudEventError",
    "DamagedRecord",
    "EddicError",
    "EventTimeout",
    "InstanceExists",
    "InstanceNotFound",
    "LeaseLost",
    "NonDeterminismError",
    "SerializationError",
    "SinkError",
    "SinkTimeout",
    "StorageError",
    "UnknownWorkflow",
    "WorkflowCancelled",
    "WorkflowFailed",
]
