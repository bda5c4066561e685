"""eddic.kernel: the pure, sans-IO interpreter of eddic workflows.

History in, decisions out: feed an :class:`Interpreter` the recorded history of an instance, ask
it what the workflow decided next, and do all I/O yourself. Imports only the standard library.
"""

from .commands import (
    ActivityRef,
    All,
    CallActivity,
    CallWorkflow,
    Command,
    Compensable,
    ContinueAsNew,
    First,
    Publish,
    Sleep,
    SleepUntil,
    WaitEvent,
    activity_name,
    child_instance_id,
    event_matches,
    run_key,
)
from .context import EDDIC_NAMESPACE, Context, derived_uuid
from .errors import (
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
from .frames import Frame
from .handlers import RUN_TO_COMPLETION
from .history import Cancel, Event, Failure, Record, Resolved, Scheduled
from .interpreter import Interpreter, Phase
from .waits import Pending, Trace

__all__ = [
    "EDDIC_NAMESPACE",
    "RUN_TO_COMPLETION",
    "ActivityFailed",
    "ActivityRef",
    "All",
    "CallActivity",
    "CallWorkflow",
    "Cancel",
    "Cancelled",
    "ChildWorkflowFailed",
    "Command",
    "Compensable",
    "Context",
    "ContinueAsNew",
    "EddicError",
    "Event",
    "EventTimeout",
    "Failure",
    "First",
    "Frame",
    "InstanceExists",
    "InstanceNotFound",
    "Interpreter",
    "NonDeterminismError",
    "Pending",
    "Phase",
    "Publish",
    "Record",
    "Resolved",
    "Scheduled",
    "Sleep",
    "SleepUntil",
    "Trace",
    "UnknownWorkflow",
    "WaitEvent",
    "WorkflowCancelled",
    "WorkflowFailed",
    "activity_name",
    "child_instance_id",
    "derived_uuid",
    "event_matches",
    "run_key",
]
