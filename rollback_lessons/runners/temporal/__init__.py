"""Run a ``Saga`` on Temporal (extra ``temporal``): ``TemporalRunner``."""

from ..asking import AnswerRefused, Question
from ..closed import RunnerClosed
from ..hosted import NotHosted, SagaChanged, UnknownRun
from .dblock import DbFileInUse
from .left import SagasLost, WorkerGone
from .limits import OutcomeTooLarge, TemporalLimitExceeded
from .lost import RunDeleted, ServerSlow
from .runner import (
    AbandonedCalls,
    SagaHandle,
    SagaTerminated,
    ServerLost,
    TemporalRunner,
    TemporalUnavailable,
    plan_for,
    plan_text,
)

__all__ = [
    "AbandonedCalls",
    "AnswerRefused",
    "DbFileInUse",
    "NotHosted",
    "OutcomeTooLarge",
    "Question",
    "RunDeleted",
    "RunnerClosed",
    "SagaChanged",
    "SagaHandle",
    "SagaTerminated",
    "SagasLost",
    "ServerLost",
    "ServerSlow",
    "TemporalLimitExceeded",
    "TemporalRunner",
    "TemporalUnavailable",
    "UnknownRun",
    "WorkerGone",
    "plan_for",
    "plan_text",
]
