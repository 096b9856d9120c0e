"""Teach the rollback pattern: do steps, log their undos, and undo them in reverse on failure.

The engine is standard library only; every rule of a saga is the saga machine's
(``machine.py``), which the with-blocks, ``Saga.run`` and every engine drive. The rest is
imported on its own: ``durable`` (the SQLite journal and recovery), ``runners`` (Temporal,
Step Functions, BPMN, DBOS), ``lab`` (pictures, the panel, exercises) and ``worlds`` (the
lessons' pipelines).
"""

# first of all: when this process is the command, a Ctrl-C while it imports is one line
from . import _starting  # noqa: F401 (its import installs that, for the command only)
from .clock import Clock, SystemClock, VirtualClock
from .durable.registry import BoundUndo, Compensation, Registry, compensation, default_registry
from .errors import (
    Cancelled,
    DuplicateStepError,
    InjectedFault,
    InjectedTimeout,
    InvalidPipelineError,
    RollbackLessonsError,
    StepStillRunning,
    UnknownFaultError,
    UnknownPolicyError,
    UnknownStepError,
    UnsafeOrderError,
)
from .events import Event, EventKind
from .faults import Fault
from .outcome import DeadLetter, Outcome, Status
from .policies import Continue, Halt, Retry, RetryPolicy, UndoPolicy, UnsupportedPolicy
from .rollback import AsyncRollback, Rollback
from .saga import Kind, OrderCheck, Parallel, Saga, Step

__version__ = "0.1.0"

__all__ = [
    "AsyncRollback",
    "BoundUndo",
    "Cancelled",
    "Clock",
    "Compensation",
    "Continue",
    "DeadLetter",
    "DuplicateStepError",
    "Event",
    "EventKind",
    "Fault",
    "Halt",
    "InjectedFault",
    "InjectedTimeout",
    "InvalidPipelineError",
    "Kind",
    "OrderCheck",
    "Outcome",
    "Parallel",
    "Registry",
    "Retry",
    "RetryPolicy",
    "Rollback",
    "RollbackLessonsError",
    "Saga",
    "Status",
    "Step",
    "StepStillRunning",
    "SystemClock",
    "UndoPolicy",
    "UnknownFaultError",
    "UnknownPolicyError",
    "UnknownStepError",
    "UnsafeOrderError",
    "UnsupportedPolicy",
    "VirtualClock",
    "compensation",
    "default_registry",
]
