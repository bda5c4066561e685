"""The one error hierarchy of eddic, rooted at :class:`EddicError`.

It lives in the kernel so that the interpreter can raise and throw these without importing anything
from the standard library around it; ``eddic`` re-exports every name.
"""

from __future__ import annotations

from datetime import datetime


class EddicError(Exception):
    """Root of every error eddic raises on purpose."""


class NonDeterminismError(EddicError):
    """The workflow code and its recorded history disagree.

    ``seq`` is the command number where they part; ``recorded`` and ``current`` describe what the
    history holds there and what the code did now.
    """

    def __init__(self, message: str, *, seq: int, recorded: str, current: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.recorded = recorded
        self.current = current


class ActivityFailed(EddicError):
    """An activity (or compensation) failed after its last attempt.

    Built from the recorded failure, so a first run and every replay throw the same thing.
    ``type`` is the qualified name of the original exception class.
    """

    def __init__(self, activity: str, type: str, message: str, attempts: int = 1) -> None:
        plural = "attempt" if attempts == 1 else "attempts"
        super().__init__(
            f"activity {activity!r} failed after {attempts} {plural}: {type}: {message}"
        )
        self.activity = activity
        self.type = type
        self.message = message
        self.attempts = attempts

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.activity, self.type, self.message, self.attempts))


class EventTimeout(EddicError):
    """A ``WaitEvent(timeout=...)`` reached its deadline before a matching event arrived."""

    def __init__(self, event_type: str, deadline: datetime | None) -> None:
        when = deadline.isoformat() if deadline is not None else "its deadline"
        super().__init__(f"no {event_type!r} event arrived by {when}")
        self.event_type = event_type
        self.deadline = deadline

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.event_type, self.deadline))


class WorkflowFailed(EddicError):
    """``App.result`` of an instance that ended ``failed``; the message names the error."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type, self.message))


class ChildWorkflowFailed(EddicError):
    """A child workflow (``CallWorkflow``) failed or was cancelled.

    ``instance_id`` and ``workflow`` name the child; ``type`` and ``message`` are its error's
    (``eddic.Cancelled`` for a cancelled child). Built from the recorded failure, so a first run
    and every replay throw the same thing.
    """

    def __init__(self, instance_id: str, workflow: str, type: str, message: str) -> None:
        super().__init__(f"child workflow {workflow!r} ({instance_id!r}) failed: {type}: {message}")
        self.instance_id = instance_id
        self.workflow = workflow
        self.type = type
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.instance_id, self.workflow, self.type, self.message))


class WorkflowCancelled(WorkflowFailed):
    """``App.result`` of an instance that ended ``cancelled``; ``reason`` is the cancel's."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__("eddic.Cancelled", reason or "the instance was cancelled")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason,))


class Cancelled(BaseException):
    """Thrown into a workflow at its current yield when its instance is cancelled.

    A ``BaseException``, like ``asyncio.CancelledError``: an ``except Exception`` written for
    the workflow's own failures does not swallow it by accident. Catch it by name to run
    clean-up commands; let it propagate and the compensations of completed activities run,
    newest first, and the instance ends ``cancelled``. ``reason`` is the one given to
    ``App.cancel``.
    """

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "the instance was cancelled")
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason,))


class InstanceNotFound(EddicError):
    """No workflow instance has that id."""


class InstanceExists(EddicError):
    """An instance with that id already exists and runs a different workflow."""


class UnknownWorkflow(EddicError):
    """No workflow of that name is registered in this process."""
