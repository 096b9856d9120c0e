"""Teach the rollback pattern: do steps, log their undos, and undo them in reverse on failure.

The engine is standard library only; the pictures (``rollback_lessons.viz``) and the
widgets (``rollback_lessons.widgets``) are imported on their own.
"""

from .clock import Clock, SystemClock, VirtualClock
from .errors import (
    DuplicateStepError,
    InjectedFault,
    InjectedTimeout,
    InvalidPipelineError,
    RollbackLessonsError,
    UnknownFaultError,
    UnknownPolicyError,
    UnknownStepError,
    UnsafeOrderError,
)
from .events import Event
from .faults import Fault
from .outcome import DeadLetter, Outcome, Status
from .policies import Continue, Halt, Retry, RetryPolicy, UndoPolicy
from .registry import BoundUndo, Compensation, Registry, compensation, default_registry
from .rollback import AsyncRollback, Rollback
from .saga import Kind, OrderCheck, Saga, Step

__version__ = "0.1.0"

__all__ = [
    "AsyncRollback",
    "BoundUndo",
    "Clock",
    "Compensation",
    "Continue",
    "DeadLetter",
    "DuplicateStepError",
    "Event",
    "Fault",
    "Halt",
    "InjectedFault",
    "InjectedTimeout",
    "InvalidPipelineError",
    "Kind",
    "OrderCheck",
    "Outcome",
    "Registry",
    "Retry",
    "RetryPolicy",
    "Rollback",
    "RollbackLessonsError",
    "Saga",
    "Status",
    "Step",
    "SystemClock",
    "UndoPolicy",
    "UnknownFaultError",
    "UnknownPolicyError",
    "UnknownStepError",
    "UnsafeOrderError",
    "VirtualClock",
    "compensation",
    "default_registry",
]
