"""eddic: durable workflows as plain Python generators.

A workflow yields commands (``CallActivity``, ``Sleep``, ``WaitEvent``, ``Publish``, ...); a small
pure kernel (:mod:`eddic.kernel`) interprets them against the recorded history, and :class:`App`
stores that history in SQLite, runs activities, fires timers, delivers events, relays the outbox
and recovers crashed work by deterministic replay.
"""

from .context import ActivityContext, WorkflowContext
from .decorators import activity, compensation, on_failure, workflow
from .errors import ActivityTimeout
from .kernel import (
    ActivityFailed,
    All,
    CallActivity,
    CallWorkflow,
    Cancelled,
    ChildWorkflowFailed,
    ContinueAsNew,
    EddicError,
    Event,
    EventTimeout,
    First,
    InstanceExists,
    InstanceNotFound,
    NonDeterminismError,
    Publish,
    Sleep,
    SleepUntil,
    UnknownWorkflow,
    WaitEvent,
    WorkflowCancelled,
    WorkflowFailed,
)
from .retry import RetryPolicy
from .runtime.app import App
from .runtime.async_app import AsyncApp

__all__ = [
    "ActivityContext",
    "ActivityFailed",
    "ActivityTimeout",
    "All",
    "App",
    "AsyncApp",
    "CallActivity",
    "CallWorkflow",
    "Cancelled",
    "ChildWorkflowFailed",
    "ContinueAsNew",
    "EddicError",
    "Event",
    "EventTimeout",
    "First",
    "InstanceExists",
    "InstanceNotFound",
    "NonDeterminismError",
    "Publish",
    "RetryPolicy",
    "Sleep",
    "SleepUntil",
    "UnknownWorkflow",
    "WaitEvent",
    "WorkflowCancelled",
    "WorkflowContext",
    "WorkflowFailed",
    "activity",
    "compensation",
    "on_failure",
    "workflow",
]
