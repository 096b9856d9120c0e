"""The one generic saga workflow: a driver of the saga machine, kept apart so that Temporal's
sandbox imports little.

The machine (``machine.py``) runs inside the workflow and decides everything, as in process:
which step or undo attempt comes next, what a failure leads to (a user's own policy decides
here too: its ``decide`` must be deterministic), the status, the events. The workflow only
maps each answer onto Temporal: a step or an undo attempt is an activity (tried once: the
machine decides any retry), a wait is a durable timer, a person is asked by a Query and
answers by a Signal. Its history is the run's durable record; the events it returns equal
``saga.run``'s, one per attempt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():  # plain data and the machine, no I/O
    from ...errors import RemoteError
    from ...machine import Machine
    from ...operations import ANSWERS, Ask, Finished, Op, RunStep, RunUndo, Wait
    from ..wire import ErrorRecord, SagaPlan, record_data
    from .limits import TemporalLimitExceeded, check_result

ACTION = "rollback_lessons.action"
UNDO = "rollback_lessons.undo"
LIMIT = "TemporalLimitExceeded"
ONCE = RetryPolicy(maximum_attempts=1)  # each attempt is the machine's to decide


@dataclass
class StepCall:
    run_id: str
    step: str
    attempt: int = 1
    timeout: float | None = None
    """An undo attempt's own timeout: the worker measures it, as in process."""


MARGIN = 5.0
"""Seconds Temporal waits beyond an undo's own timeout before it times the activity out
itself: the worker measures the timeout (as in process); the server's timer, which fires
late, only catches a worker that is gone."""


def _cancel_requested() -> bool:
    """Was the workflow asked to cancel? A step that does not heartbeat never hears it and
    completes; the request stays pending on the workflow's task (Python 3.11+)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _keep_going() -> None:
    """Undo what was done although the workflow is cancelled: the compensating activities
    and timers below must run."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


def _cause(err: BaseException) -> tuple[BaseException, bool]:
    """What really failed inside an activity (the activity put the facts in its details),
    and whether it was a cancellation (never retried: the machine is told it interrupted)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.details:
        return ErrorRecord(**cause.details[0]).to_exception(), False
    name = type(cause).__name__
    return RemoteError(name, str(cause), (name,)), "Cancel" in name


CANCELLED = RemoteError("CancelledError", "the workflow was cancelled", ("CancelledError",))


@workflow.defn(name="RollbackLessonsSaga")
class SagaWorkflow:
    """Drives the machine for a SagaPlan; returns its record as data."""

    def __init__(self) -> None:
        self.waiting: list[str] = []  # undos a person is asked about (a halt)
        self.answer: str | None = None

    @workflow.query(name="pending")
    def pending(self) -> list[str]:
        """The undos left for a person while the saga waits for one (empty otherwise)."""
        return list(self.waiting)

    @workflow.signal(name="resolve")
    def resolve(self, answer: str) -> None:
        """A person's answer: "retry" the undo, it was "fixed" by hand, or "leave" it."""
        if self.waiting and answer in ANSWERS:
            self.answer = answer

    async def _ask_a_person(self, left: tuple[str, ...], wait: float | None) -> str:
        """Wait (up to ``wait`` seconds; None: for as long as it takes) for a Signal."""
        if wait is not None and wait <= 0:
            return "leave"  # as in process: halted at once, for a person to pick up
        self.waiting, self.answer = list(left), None
        try:
            timeout = timedelta(seconds=wait) if wait is not None else None
            await workflow.wait_condition(lambda: self.answer is not None, timeout=timeout)
        except TimeoutError:
            return "leave"
        finally:
            self.waiting = []
        return self.answer or "leave"

    async def _activity(self, name: str, plan: SagaPlan, call: StepCall, timeout: float) -> None:
        await workflow.execute_activity(
            name,
            call,
            start_to_close_timeout=timedelta(seconds=timeout),
            heartbeat_timeout=timedelta(seconds=timeout),
            retry_policy=ONCE,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    @workflow.run
    async def run(self, plan: SagaPlan) -> dict[str, Any]:
        m = Machine(
            plan.undo_policy(), plan=plan.specs(), undo_order=plan.undo_order, name=plan.name,
            run_id=plan.run_id,
        )  # fmt: skip
        op: Op = m.start()
        while not isinstance(op, Finished):
            try:
                op = await self._carry_out(m, plan, op)
            except asyncio.CancelledError:  # cancelled while nothing could hear it
                _keep_going()
                op = m.interrupted(CANCELLED) if m.phase != "forward" else m.fail(CANCELLED)
        data = record_data(op.record)
        try:
            check_result(data)
        except TemporalLimitExceeded as exc:  # fail the workflow: never a result it can't return
            raise ApplicationError(str(exc), type=LIMIT, non_retryable=True) from None
        return data

    async def _carry_out(self, m: Machine, plan: SagaPlan, op: Op) -> Op:
        """One operation of the machine, as Temporal does it; the machine's next answer."""
        if type(op) is RunStep:
            try:
                await self._activity(ACTION, plan, StepCall(plan.run_id, *op), plan.step_timeout)
            except ActivityError as err:
                error, cancelled = _cause(err)
                if cancelled:
                    _keep_going()
                    return m.interrupted(error)
                return m.step_failed(error)
            if _cancel_requested():  # asked while a step that could not hear it ran
                _keep_going()
                m.stop(CANCELLED)
            return m.step_ok()
        if type(op) is RunUndo:
            call = StepCall(plan.run_id, op.step, op.attempt, op.timeout)
            timeout = op.timeout + MARGIN if op.timeout is not None else plan.step_timeout
            try:
                await self._activity(UNDO, plan, call, timeout)
            except ActivityError as err:
                return m.undo_failed(_cause(err)[0])
            return m.undo_ok()
        if type(op) is Wait:
            if op.seconds > 0:
                await asyncio.sleep(op.seconds)  # a durable timer
            return m.resume()
        if type(op) is Ask:
            return m.answer(await self._ask_a_person(op.steps, plan.halt_wait))
        raise RuntimeError(f"the machine answered {op!r}, which no plan gives")
