"""The one generic saga workflow, kept apart so Temporal's sandbox imports little.

Workflow code must be deterministic: it only decides what to do next from the results of
activities (each step's action and undo is an activity) and records events with sequence
numbers, no clocks. The same rules as the in-process engine apply: undos are logged before
or after their step, run newest first, and what a failed undo leads to follows the policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

ACTION = "rollback_lessons.action"
UNDO = "rollback_lessons.undo"


@dataclass
class RetrySpec:
    max_attempts: int
    initial_delay: float
    multiplier: float
    max_delay: float
    non_retryable: list[str] = field(default_factory=list)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            maximum_attempts=self.max_attempts,
            initial_interval=timedelta(seconds=max(self.initial_delay, 0.001)),
            backoff_coefficient=max(self.multiplier, 1.0),
            maximum_interval=timedelta(seconds=max(self.max_delay, self.initial_delay, 0.001)),
            non_retryable_error_types=list(self.non_retryable),
        )


ONCE = RetryPolicy(maximum_attempts=1)


@dataclass
class StepPlan:
    name: str
    kind: str
    has_undo: bool
    register: str
    retry: RetrySpec | None = None


@dataclass
class SagaPlan:
    run_id: str
    name: str
    steps: list[StepPlan]
    policy: str  # continue | retry | halt
    undo_retry: RetrySpec | None
    then: str  # after retries run out: dead_letter | halt
    undo_order: str
    step_timeout: float = 60.0


@dataclass
class StepCall:
    run_id: str
    step: str


@dataclass
class SagaResult:
    status: str
    completed: list[str]
    compensated: list[str]
    dead_letters: list[list[Any]]  # [step, error type, message, attempts]
    pending: list[str]
    leaked: list[str]
    error: list[str] | None  # [type, message]
    failed_step: str | None
    events: list[list[Any]]  # [seq, kind, step, details]


class _StepFailed(Exception):
    def __init__(self, step: str, error: list[str]) -> None:
        super().__init__(step)
        self.step, self.error = step, error


def _describe(error: list[str]) -> str:
    """Like ``events.describe`` in process: ``Type('message')``."""
    return f"{error[0]}({error[1]!r})"


def _cause(err: BaseException) -> list[str]:
    """[type, message] of what really failed inside an activity."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        return [cause.type or "ApplicationError", cause.message]
    return [type(cause).__name__, str(cause)]


@workflow.defn(name="RollbackLessonsSaga")
class SagaWorkflow:
    """Runs a SagaPlan: steps forward, then (on failure or cancellation) undos backward."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []

    def emit(self, kind: str, step: str | None = None, **details: Any) -> None:
        self.events.append([len(self.events) + 1, kind, step, details])

    async def _activity(self, name: str, plan: SagaPlan, step: str, retry: RetryPolicy) -> None:
        await workflow.execute_activity(
            name,
            StepCall(plan.run_id, step),
            start_to_close_timeout=timedelta(seconds=plan.step_timeout),
            heartbeat_timeout=timedelta(seconds=plan.step_timeout),
            retry_policy=retry,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    @workflow.run
    async def run(self, plan: SagaPlan) -> SagaResult:
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
                    "step_start", step.name, register=step.register if step.has_undo else "none"
                )
                if step.has_undo and step.register == "before":
                    logged.append(step.name)
                    self.emit("undo_registered", step.name)
                try:
                    await self._activity(
                        ACTION, plan, step.name, step.retry.policy() if step.retry else ONCE
                    )
                except ActivityError as err:
                    error = _cause(err)
                    after = error[0] == "InjectedTimeout"
                    self.emit(
                        "step_failed",
                        step.name,
                        error=_describe(error),
                        **({"after_effect": True} if after else {}),
                    )
                    if after and step.name not in logged:
                        leaked.append(step.name)
                    raise _StepFailed(step.name, error) from None
                completed.append(step.name)
                self.emit("step_done", step.name)
                if step.has_undo and step.register == "after":
                    logged.append(step.name)
                    self.emit("undo_registered", step.name)
        except _StepFailed as exc:
            failed = exc
        except asyncio.CancelledError:
            # Cancelled mid-step: undo what was done. The undos below are new activities,
            # which the workflow may still run after the cancellation request.
            failed = _StepFailed(current or "", ["CancelledError", "the workflow was cancelled"])
        if failed is None:
            self.emit("committed", steps=len(completed))
            return SagaResult("committed", completed, [], [], [], [], None, None, self.events)
        self.emit("pipeline_failed", failed.step, error=_describe(failed.error))
        irreversible = [s for s in completed if kinds[s] != "compensable"]
        if irreversible and kinds.get(failed.step) == "retriable":
            self.emit("halted", failed.step, reason="failed after an irreversible step")
            return SagaResult("halted", completed, [], [], [failed.step], [], failed.error,
                              failed.step, self.events)  # fmt: skip
        return await self._compensate(plan, logged, completed, leaked + irreversible, failed)

    async def _compensate(
        self,
        plan: SagaPlan,
        logged: list[str],
        completed: list[str],
        leaked: list[str],
        failed: _StepFailed,
    ) -> SagaResult:
        order = list(reversed(logged)) if plan.undo_order == "reverse" else list(logged)
        retry = plan.undo_retry.policy() if plan.policy == "retry" and plan.undo_retry else ONCE
        self.emit("rollback_start", undos=len(order), order=plan.undo_order, policy=plan.policy)
        compensated: list[str] = []
        dead: list[list[Any]] = []
        pending: list[str] = []
        for index, step in enumerate(order):
            self.emit("undo", step, attempt=1)
            try:
                await self._activity(UNDO, plan, step, retry)
            except ActivityError as err:
                kind, message = _cause(err)
                details = err.cause.details if isinstance(err.cause, ApplicationError) else ()
                attempts = int(details[0]) if details else 1
                halt = plan.policy == "halt" or (plan.policy == "retry" and plan.then == "halt")
                then = "halt" if halt else "dead_letter"
                self.emit("undo_failed", step, attempt=attempts, error=_describe([kind, message]),
                          then=then)  # fmt: skip
                if halt:
                    pending = order[index:]
                    break
                dead.append([step, kind, message, attempts])
                continue
            compensated.append(step)
            self.emit("undo_done", step, attempt=1)
        if pending:
            status = "halted"
        elif dead or leaked:
            status = "rollback_incomplete"
        else:
            status = "rolled_back"
        self.emit("rollback_done", status=status, undone=len(compensated), dead_letters=len(dead),
                  pending=len(pending))  # fmt: skip
        return SagaResult(status, completed, compensated, dead, pending, leaked, failed.error,
                          failed.step, self.events)  # fmt: skip
