"""The one generic saga workflow, kept apart so Temporal's sandbox imports little.

Workflow code must be deterministic: it only decides what to do next from the results of
activities (each step's action and undo is an activity) and records events with sequence
numbers, no clocks. The same rules as the in-process engine apply: undos are logged before
or after their step, run newest first, and what a failed undo leads to follows the policy.
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

with workflow.unsafe.imports_passed_through():  # plain data and rules, no I/O
    from ...events import EventKind
    from ...rules import (
        IRREVERSIBLE,
        DeadLetterRecord,
        ErrorRecord,
        Kind,
        RetrySpec,
        RunRecord,
        SagaPlan,
        halts_forward,
        status_of,
    )

ACTION = "rollback_lessons.action"
UNDO = "rollback_lessons.undo"
ONCE = RetryPolicy(maximum_attempts=1)
ANSWERS = ("retry", "fixed", "leave")
"""What a person may answer a halted saga: retry the undo, fixed by hand, or leave it."""


def temporal_retry(spec: RetrySpec) -> RetryPolicy:
    """The engine's RetryPolicy as Temporal's (an activity retry policy with backoff)."""
    return RetryPolicy(
        maximum_attempts=spec.max_attempts,
        initial_interval=timedelta(seconds=max(spec.initial_delay, 0.001)),
        backoff_coefficient=max(spec.multiplier, 1.0),
        maximum_interval=timedelta(seconds=max(spec.max_delay, spec.initial_delay, 0.001)),
        non_retryable_error_types=list(spec.non_retryable),
    )


@dataclass
class StepCall:
    run_id: str
    step: str
    attempts_before: int = 0
    """Attempts of this undo already made by earlier activities (a person's retry)."""


def _cancel_requested() -> bool:
    """Was the workflow asked to cancel? A step that does not heartbeat never hears it and
    completes; the request stays pending on the workflow's task (Python 3.11+)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _StepFailed(Exception):
    def __init__(self, step: str, error: ErrorRecord) -> None:
        super().__init__(step)
        self.step, self.error = step, error


def _cause(err: BaseException, step: str) -> tuple[ErrorRecord, int]:
    """What really failed inside an activity, and on which attempt.

    The activities put the facts in the ApplicationError's details ([attempt, fault]), so
    nothing is read back out of a message.
    """
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        details = list(cause.details)
        attempt = int(details[0]) if details else 1
        fault = str(details[1]) if len(details) > 1 and details[1] else None
        return ErrorRecord(cause.type or "ApplicationError", cause.message, step, fault), attempt
    return ErrorRecord(type(cause).__name__, str(cause), step, None), 1


@workflow.defn(name="RollbackLessonsSaga")
class SagaWorkflow:
    """Runs a SagaPlan: steps forward, then (on failure or cancellation) undos backward."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []
        self.waiting: list[str] = []  # undos a person is asked about (the halt policy)
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

    async def _ask_a_person(self, left: list[str], wait: float | None) -> str:
        """Halt: wait (up to ``wait`` seconds; None: for as long as it takes) for a Signal."""
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

    def emit(self, kind: EventKind, step: str | None = None, **details: Any) -> None:
        self.events.append([len(self.events) + 1, kind, step, details])

    async def _activity(
        self, name: str, plan: SagaPlan, step: str, retry: RetryPolicy, before: int = 0
    ) -> None:
        await workflow.execute_activity(
            name,
            StepCall(plan.run_id, step, before),
            start_to_close_timeout=timedelta(seconds=plan.step_timeout),
            heartbeat_timeout=timedelta(seconds=plan.step_timeout),
            retry_policy=retry,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    @workflow.run
    async def run(self, plan: SagaPlan) -> RunRecord:
        logged: list[str] = []
        completed: list[str] = []
        leaked: list[str] = []
        kinds = {s.name: s.kind for s in plan.steps}
        failed: _StepFailed | None = None
        current: str | None = None
        try:
            for step in plan.steps:
                current = step.name
                self.emit(
                    EventKind.STEP_START,
                    step.name,
                    register=step.register if step.has_undo else "none",
                )
                if step.has_undo and step.register == "before":
                    logged.append(step.name)
                    self.emit(EventKind.UNDO_REGISTERED, step.name)
                try:
                    await self._activity(
                        ACTION, plan, step.name, temporal_retry(step.retry) if step.retry else ONCE
                    )
                except ActivityError as err:
                    error, attempts = _cause(err, step.name)
                    retry = step.retry
                    for attempt in range(1, attempts if retry is not None else 1):
                        assert retry is not None  # Temporal retried: tell it as in process
                        delay = retry.delay(attempt)
                        self.emit(
                            EventKind.STEP_RETRY,
                            step.name,
                            attempt=attempt,
                            delay=delay,
                            error=error.describe(),
                        )
                    after = error.fault == "fail_after_effect"
                    self.emit(
                        EventKind.STEP_FAILED,
                        step.name,
                        error=error.describe(),
                        **({"after_effect": True} if after else {}),
                    )
                    if after and step.name not in logged:
                        leaked.append(step.name)
                    raise _StepFailed(step.name, error) from None
                completed.append(step.name)
                self.emit(EventKind.STEP_DONE, step.name)
                if step.has_undo and step.register == "after":
                    logged.append(step.name)
                    self.emit(EventKind.UNDO_REGISTERED, step.name)
                current = None
                if _cancel_requested():  # asked while a step that could not hear it ran
                    raise asyncio.CancelledError
        except _StepFailed as exc:
            failed = exc
        except asyncio.CancelledError:
            # Cancelled mid-step: undo what was done. The undos below are new activities,
            # which the workflow may still run after the cancellation request.
            failed = _StepFailed(
                current or "", ErrorRecord("CancelledError", "the workflow was cancelled", current)
            )
        if failed is not None and _cancel_requested():
            # the compensating activities below must run although the workflow is cancelled
            task = asyncio.current_task()
            while task is not None and task.cancelling():
                task.uncancel()
        if failed is None:
            self.emit(EventKind.COMMITTED, steps=len(completed))
            return RunRecord("committed", completed=completed, events=self.events)
        self.emit(EventKind.PIPELINE_FAILED, failed.step, error=failed.error.describe())
        irreversible = [s for s in completed if kinds[s] in IRREVERSIBLE]
        pivot_done = any(kinds[s] == Kind.PIVOT for s in completed)
        if halts_forward(pivot_done, kinds.get(failed.step)):
            self.emit(EventKind.HALTED, failed.step, reason="failed after an irreversible step")
            return RunRecord(
                "halted",
                completed=completed,
                pending=[failed.step],
                error=failed.error,
                failed_step=failed.step or None,
                events=self.events,
            )
        return await self._compensate(plan, logged, completed, leaked + irreversible, failed)

    async def _compensate(
        self,
        plan: SagaPlan,
        logged: list[str],
        completed: list[str],
        leaked: list[str],
        failed: _StepFailed,
    ) -> RunRecord:
        order = list(reversed(logged)) if plan.undo_order == "reverse" else list(logged)
        retry = (
            temporal_retry(plan.undo_retry) if plan.policy == "retry" and plan.undo_retry else ONCE
        )
        self.emit(
            EventKind.ROLLBACK_START, undos=len(order), order=plan.undo_order, policy=plan.policy
        )
        compensated: list[str] = []
        semantic_steps = {s.name for s in plan.steps if s.semantic}
        dead: list[DeadLetterRecord] = []
        pending: list[str] = []
        index, attempt = 0, 1
        while index < len(order):
            step = order[index]
            self.emit(EventKind.UNDO, step, attempt=attempt)
            try:
                await self._activity(UNDO, plan, step, retry, attempt - 1)
            except ActivityError as err:
                error, attempts = _cause(err, step)
                halt = plan.policy == "halt" or (plan.policy == "retry" and plan.then == "halt")
                then = "halt" if halt else "dead_letter"
                self.emit(EventKind.UNDO_FAILED, step, attempt=attempts, error=error.describe(),
                          then=then)  # fmt: skip
                if not halt:
                    dead.append(DeadLetterRecord(step, error, attempts))
                    index, attempt = index + 1, 1
                    continue
                answer = await self._ask_a_person(order[index:], plan.halt_wait)
                if answer == "retry":
                    attempt = attempts + 1
                    continue
                if answer == "fixed":
                    compensated.append(step)
                    self.emit(EventKind.UNDO_DONE, step, attempt=attempts, by_hand=True)
                    index, attempt = index + 1, 1
                    continue
                pending = order[index:]
                break
            compensated.append(step)
            self.emit(EventKind.UNDO_DONE, step, attempt=attempt)
            index, attempt = index + 1, 1
        semantic = [s for s in compensated if s in semantic_steps]
        status = status_of(
            failed=True,
            halted=bool(pending),
            dead_letters=bool(dead),
            leaked=bool(leaked),
            semantic=bool(semantic),
        )
        self.emit(EventKind.ROLLBACK_DONE, status=str(status), undone=len(compensated),
                  dead_letters=len(dead), pending=len(pending))  # fmt: skip
        return RunRecord(
            str(status),
            completed=completed,
            compensated=compensated,
            dead_letters=dead,
            pending=pending,
            leaked=leaked,
            semantic=semantic,
            error=failed.error,
            failed_step=failed.step or None,
            events=self.events,
        )
