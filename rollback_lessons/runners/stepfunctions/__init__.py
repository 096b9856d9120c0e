"""The saga as an AWS Step Functions state machine, run on moto's interpreter or on AWS.

``to_asl(saga)`` writes the saga in Amazon States Language: each step and each undo is a
*callback* task (``sqs:sendMessage.waitForTaskToken``): Step Functions puts a task token in
an SQS message, a Python worker does the step and answers ``SendTaskSuccess`` or
``SendTaskFailure``. A failing step's ``Catch`` goes to the newest undo logged so far; the
undos are chained newest first. The undo policy becomes ``Retry`` on the undo states, a
``Catch`` that records a dead letter and goes on (*continue*), or a callback task that waits
for a person (*halt*). Steps after a pivot are retried forward and never compensated.

Who keeps the undo log here? The state machine itself: which undo a failure leads to is
wired into the ``Catch`` edges, and Step Functions' execution history is the record.

A saga with parallel groups (or a run with ``cancel``, a ``completion`` timing, an undo order
of a graph's) is written in the graph form (``asl_graph``): each group a ``Parallel`` state
whose branches catch their own failures, and a ``What next`` task the runner answers with
the saga machine's decision (``live``): the undo order is decided at run time, never wired.

``StepFunctionsRunner`` runs it: on moto in this process (default), on a ``moto_server`` on
127.0.0.1, or on AWS (``where="aws"``, with ``ROLLBACK_LESSONS_SFN_ROLE_ARN`` and the usual
AWS environment). The Outcome is read back from the execution history, walked with the
saga machine, driven by what the history shows (a history that strays from what the machine
would do is an error, ``HistoryDiverged``, not an outcome). A policy that decides in Python
cannot be written into a state machine: it is refused before anything runs.
"""

from ...operations import ANSWERS
from ..closed import RunnerClosed, RunsLeft
from .asl import (
    CALLBACK,
    StepFunctionsError,
    UnsupportedOnStepFunctions,
    plan_asl,
    to_asl,
)
from .engine import EngineFailedTask
from .history import history_table
from .runner import Execution, StepFunctionsRunner

__all__ = [
    "ANSWERS",
    "CALLBACK",
    "EngineFailedTask",
    "Execution",
    "RunnerClosed",
    "RunsLeft",
    "StepFunctionsError",
    "StepFunctionsRunner",
    "UnsupportedOnStepFunctions",
    "history_table",
    "plan_asl",
    "to_asl",
]
