"""What the worker does when something goes wrong inside one instance's step.

The rule (design §11): nothing that goes wrong in one instance stops the worker or another
instance. An exception raised while a step is built or committed, and any ``BaseException``
from user code other than ``KeyboardInterrupt`` (the one explicit request for the process to
stop), *parks* the instance: its status and history stay, ``error`` says what happened, and
recovery tries it again no sooner than ``retry_after`` (``App.retry`` at once). ``SystemExit``
and ``asyncio.CancelledError`` from an activity or a workflow are treated like any other error
here: user code does not get to end a worker that serves everybody's instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..kernel import Cancelled, Failure


def is_exit_request(exc: BaseException) -> bool:
    """Whether ``exc`` asks the process to stop (Ctrl-C): it propagates instead of parking."""
    return isinstance(exc, KeyboardInterrupt)


def error_json(error: BaseException, compensation_errors: Sequence[Failure] = ()) -> dict[str, Any]:
    """The stored ``error`` of an instance that failed or was parked."""
    failure = Failure.from_exception(error)
    out: dict[str, Any] = {
        "type": failure.type,
        "message": failure.message,
        "traceback": failure.traceback,
    }
    if isinstance(error, Cancelled):  # by its public name, with the reason given to cancel()
        out["type"] = "eddic.Cancelled"
        out["reason"] = error.reason
    if compensation_errors:
        out["compensation_errors"] = [
            {"type": f.type, "message": f.message, "attempts": f.attempts}
            for f in compensation_errors
        ]
    return out


def parked_json(error: BaseException, retry_at: datetime, where: str) -> dict[str, Any]:
    """The stored ``error`` of a parked instance: what went wrong, where, and when it is retried."""
    out = error_json(error)
    if type(error).__module__.startswith("eddic."):  # eddic's own errors by their public name
        out["type"] = type(error).__qualname__
    out["parked"] = True
    out["where"] = where
    out["retry_at"] = retry_at.isoformat()
    return out
