"""The saga in Amazon States Language: steps as callback tasks, Catch edges into a chain
of undos newest first, the undo policy as Retry, Catch or a person's callback."""

from __future__ import annotations

import math
from typing import Any

from ...errors import InvalidPipelineError, RollbackLessonsError
from ...policies import PolicyLike
from ...rules import Kind, RetrySpec, SagaPlan, halts_forward
from ...saga import Saga
from ..replay import ask, do, undo

CALLBACK = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
ANSWERS = ("retry", "fixed", "leave")
COMMITTED, ROLLED_BACK, HALTED_FORWARD, LEFT = (
    "Committed",
    "Rolled back",
    "Halted after the pivot",
    "Left for a person",
)


class StepFunctionsError(RollbackLessonsError):
    """Step Functions could not run the saga (no moto, no server, a stuck execution, or a
    history that does not follow the saga's rules)."""


class UnsupportedOnStepFunctions(InvalidPipelineError):
    """The saga uses an option that this state machine does not express."""


def answer(step: str) -> str:
    return f"Answer about {step}"


def _callback(call: str, step: str, after: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {
            "QueueUrl.$": "$.queue_url",
            "MessageBody": {
                "run.$": "$.run",
                "call": call,
                "step": step,
                "token.$": "$$.Task.Token",
            },
        },
        "Next": after,
    }


def _retriers(spec: RetrySpec) -> list[dict[str, Any]]:
    """A RetryPolicy as ASL retriers: never the exception types it must not retry, then
    everything else, with backoff. ASL counts whole seconds (at least 1)."""
    retriers: list[dict[str, Any]] = []
    if spec.non_retryable:
        retriers.append({"ErrorEquals": list(spec.non_retryable), "MaxAttempts": 0})
    if spec.max_attempts > 1:
        retriers.append(
            {
                "ErrorEquals": ["States.ALL"],
                "IntervalSeconds": max(1, math.ceil(spec.initial_delay)),
                "MaxAttempts": spec.max_attempts - 1,
                "BackoffRate": max(spec.multiplier, 1.0),
                "MaxDelaySeconds": max(1, math.ceil(spec.max_delay)),
            }
        )
    return retriers


TASK = " (task)"


def _retried(name: str, task: dict[str, Any]) -> dict[str, Any]:
    """A task with a Retry goes inside a one-branch Parallel that carries the Retry and
    the Catch: moto (5.2.5) gives a retried callback task its old token, so the retry
    would fail at once with the first attempt's answer; a retried Parallel runs its
    branch afresh, with a new token each time, as AWS does for a task."""
    if "Retry" not in task:
        return task
    inner = {k: v for k, v in task.items() if k not in ("Retry", "Catch", "Next", "ResultPath")}
    inner["End"] = True
    return {
        "Type": "Parallel",
        "Branches": [{"StartAt": name + TASK, "States": {name + TASK: inner}}],
        "ResultPath": None,
        **{k: task[k] for k in ("Retry", "Catch", "Next") if k in task},
    }


def _reachable(states: dict[str, Any], start: str) -> dict[str, Any]:
    """Only the states a run can reach (Step Functions refuses a machine with others: the
    undo of a last step logged after it, a halt with no pivot before it)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        edges = [state.get("Next"), state.get("Default")]
        edges += [edge["Next"] for edge in state.get("Catch", []) + state.get("Choices", [])]
        todo += [edge for edge in edges if edge]
    return {name: state for name, state in states.items() if name in seen}


def plan_asl(plan: SagaPlan, *, timeout: int = 300) -> dict[str, Any]:
    """A SagaPlan as an ASL state machine (see the module's docstring)."""
    if plan.undo_order != "reverse":
        raise UnsupportedOnStepFunctions(
            f"undo_order={plan.undo_order!r}: the state machine chains the undos newest first"
        )
    states: dict[str, Any] = {}
    logged: list[str] = []  # the undo log as it stands when each step may fail
    pivot_done = False
    halt = plan.policy == "halt" or (plan.policy == "retry" and plan.then == "halt")
    for n, step in enumerate(plan.steps):
        after = do(plan.steps[n + 1].name) if n + 1 < len(plan.steps) else COMMITTED
        task = _callback("action", step.name, after)
        task["ResultPath"] = None  # a step's answer is not the saga's data
        task["TimeoutSeconds"] = timeout
        if step.retry is not None:
            task["Retry"] = _retriers(step.retry)
        if step.has_undo and step.register == "before":
            logged.append(step.name)
        if halts_forward(pivot_done, step.kind):
            target = HALTED_FORWARD
        else:
            target = undo(logged[-1]) if logged else ROLLED_BACK
        task["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": target}]
        states[do(step.name)] = _retried(do(step.name), task)
        if step.has_undo and step.register == "after":
            logged.append(step.name)
        pivot_done = pivot_done or step.kind == Kind.PIVOT
    chain = [s.name for s in reversed(plan.steps) if s.has_undo]
    for n, name in enumerate(chain):
        below = undo(chain[n + 1]) if n + 1 < len(chain) else ROLLED_BACK
        task = _callback("undo", name, below)
        task["ResultPath"] = None
        task["TimeoutSeconds"] = timeout
        if plan.policy == "retry" and plan.undo_retry is not None:
            task["Retry"] = _retriers(plan.undo_retry)
        if halt:
            task["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": ask(name)}
            ]
            person = _callback("ask", name, answer(name))
            person["ResultPath"] = "$.person"
            states[ask(name)] = person
            states[answer(name)] = {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.person.answer", "StringEquals": "retry", "Next": undo(name)},
                    {"Variable": "$.person.answer", "StringEquals": "fixed", "Next": below},
                ],
                "Default": LEFT,
            }
        else:  # a dead letter: recorded in the execution's data, and on to the next undo
            task["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": f"$.dead_letter_{n}", "Next": below}
            ]
        states[undo(name)] = _retried(undo(name), task)
    states[COMMITTED] = {"Type": "Succeed"}
    states[ROLLED_BACK] = {
        "Type": "Fail",
        "Error": "SagaRolledBack",
        "Cause": "a step failed; the undos logged before it have run",
    }
    states[HALTED_FORWARD] = {
        "Type": "Fail",
        "Error": "SagaHalted",
        "Cause": "a step after the pivot failed: a person finishes it",
    }
    if halt:
        states[LEFT] = {
            "Type": "Fail",
            "Error": "SagaHalted",
            "Cause": "an undo failed; a person took it over",
        }
    start = do(plan.steps[0].name)
    return {
        "Comment": f"The {plan.name} saga (rollback-lessons): steps, then undos newest first",
        "StartAt": start,
        "States": _reachable(states, start),
    }


def to_asl(
    saga: Saga,
    *,
    policy: PolicyLike | None = None,
    register: str | None = None,
    timeout: int = 300,
) -> dict[str, Any]:
    """``saga`` as an ASL state machine (a dict; ``json.dumps`` it to deploy). Every option
    is checked first. Start an execution with ``{"run": ID, "queue_url": URL}``."""
    plan = saga.plan("asl", policy=policy, register=register)  # type: ignore[arg-type]
    return plan_asl(plan, timeout=timeout)
