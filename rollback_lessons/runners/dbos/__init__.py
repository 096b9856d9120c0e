"""Run a ``Saga`` as a DBOS workflow (extra ``dbos``): ``DBOSRunner``.

DBOS Transact is durable execution as a library: no server, the workflow's progress in a
SQLite file (its *system database*). Each step and each undo attempt is a ``@DBOS.step``,
the saga machine runs inside a ``@DBOS.workflow`` (``workflow.py``); a process killed in the
middle and relaunched on the same file finishes the saga. The Outcome is ``saga.run``'s.
"""

from ..asking import AnswerRefused, Question
from ..hosted import SagaChanged
from .held import FileInUse, FileUnusable
from .ids import RunIdInUse
from .launch import DBOSUnavailable, RunsLeftRunning
from .runner import DBOSHandle, DBOSRunner, ReplayRefused, UnknownRun, WorkflowFailed
from .stops import StoppedUnrecorded
from .waits import RunnerClosed

__all__ = [
    "AnswerRefused",
    "DBOSHandle",
    "DBOSRunner",
    "DBOSUnavailable",
    "FileInUse",
    "FileUnusable",
    "Question",
    "ReplayRefused",
    "RunIdInUse",
    "RunnerClosed",
    "RunsLeftRunning",
    "SagaChanged",
    "StoppedUnrecorded",
    "UnknownRun",
    "WorkflowFailed",
]
