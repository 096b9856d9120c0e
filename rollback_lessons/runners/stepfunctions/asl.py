"""The saga in Amazon States Language: steps as callback tasks, Catch edges into a chain
of undos newest first, the undo policy as Retry, Catch or a person's callback.

Which undo a failure leads to, and whether it halts for a person instead, is asked of the
saga machine (``runners.owed``), for a failure before the step's effect and after it (a
pivot failing after its effect, or timing out, halts: its ``Catch`` of ``TimeoutError``, its
subclasses and ``States.Timeout`` leads to ``Halted at the pivot``); the policy's fields
become ``Retry`` and ``Catch``. A policy that decides in Python code cannot be written down:
it is refused before anything is written."""

from __future__ import annotations

import gc
import itertools
import json
import math
from collections.abc import Iterable
from typing import Any

from ..._numbers import plain_number
from ...errors import InvalidPipelineError, RollbackLessonsError
from ...policies import PolicyLike, RetryPolicy, UnsupportedPolicy, data_only, type_name
from ...saga import Saga
from ..error_record import STAND_IN, escape
from ..history import ask, do, undo, written_seconds
from ..owed import (
    AFTER_EFFECT_ERRORS,
    Owed,
    doubt_outlives_retry,
    every_undo,
    owed,
    undo_timeouts,
)
from ..wire import WRITTEN_LIST, RetrySpec, SagaPlan, needs_graph, plan_of

CALLBACK = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
COMMITTED, ROLLED_BACK, HALTED_FORWARD, HALTED_AT_PIVOT, LEFT = (
    "Committed",
    "Rolled back",
    "Halted after the pivot",
    "Halted at the pivot",
    "Left for a person",
)
ENGINE = "Step Functions"
RUNS_ON = "WorkRunsOn"
"""The error a call whose work may still run is answered with (``errors.goes_on``: a sync
run inside a running loop, handed that loop's ``run_in_executor``): never retried (the
Retry ran it three times at once, attack98 F6), a failure after its effect (a pivot's
person), and an undo's policy ending at once as it ends (``Machine.undo_failed``)."""
NEVER_RETRIED = {"ErrorEquals": [RUNS_ON], "MaxAttempts": 0}


class StepFunctionsError(RollbackLessonsError):
    """Step Functions could not run the saga (no moto, no server, a stuck execution, or a
    history that does not follow the saga's rules)."""


class UnsupportedOnStepFunctions(InvalidPipelineError):
    """The saga uses an option that this state machine does not express."""


def answer(step: str) -> str:
    return f"Answer about {step}"


def _callback(call: str, key: str, after: str) -> dict[str, Any]:
    """A callback task; its message names the step by its key (``names``)."""
    return {
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {
            "QueueUrl.$": "$.queue_url",
            "MessageBody": {
                "run.$": "$.run",
                "call": call,
                "step": key,
                "token.$": "$$.Task.Token",
            },
        },
        "Next": after,
    }


def known_subclasses(names: list[str]) -> list[str]:
    """Each exception type named, then every subclass of it this process knows, by name:
    a policy matches an error by ``isinstance`` (``policies.matches``), but a Retry's
    ErrorEquals names exact types, and the worker reports the type it caught. So that a
    ``ConnectionResetError`` is retried under ``retry_on=(ConnectionError,)`` on Step
    Functions too, the retrier names it. (A subclass defined after the state machine is
    written is not in it: ``StepFunctionsRunner`` writes it just before each run.)"""
    found: dict[str, None] = dict.fromkeys(names)
    wanted = set(names)
    for kind in _exception_classes():  # (by ``type_name``, as the worker reports them:
        if any(type_name(k) in wanted for k in kind.__mro__[1:]):  # attack22 M1)
            found.setdefault(type_name(kind), None)
    long = [n for n in names if len(n) > ERROR_NAME_LIMIT]
    if long:
        raise UnsupportedOnStepFunctions(
            f"a retry policy names the exception type {long[0][:60]}... ({len(long[0])} "
            f"characters): Step Functions carries error names of {ERROR_NAME_LIMIT} at most"
        )  # (a subclass's long name: cut as the worker cuts the name it sends, below)
    return list(dict.fromkeys(map(error_name, found)))


def check_retry_types(policies: Iterable[RetryPolicy | None]) -> None:
    """Step Functions matches an error by its classes' names (``type_name``), ``saga.run`` by
    ``isinstance``: a class another class's name is taken for (two made by one factory, as
    botocore's errorfactory makes them, or one defined twice) would be retried on one and
    not the other. Refused before anything runs (``UnsupportedOnStepFunctions``). (A class
    only garbage now, a notebook cell's earlier run, is collected first.)"""
    types = {t for p in policies if p is not None for t in (*p.retry_on, *p.no_retry_on)}
    if not types:
        return
    for again in (False, True):
        named = {type_name(t): t for t in types}
        stray = None
        for kind in _exception_classes():
            if getattr(kind, STAND_IN, False):
                continue
            for ancestor in kind.__mro__:
                wanted = named.get(type_name(ancestor))
                if wanted is not None and not issubclass(kind, wanted):
                    stray = (type_name(kind), type_name(wanted))
                    break
            if stray is not None:
                break
        if stray is None:
            return
        if not again:
            gc.collect()
    assert stray is not None
    kind_name, wanted_name = stray
    also = "" if kind_name == wanted_name else f" (a class of {wanted_name}'s name is its base)"
    raise UnsupportedOnStepFunctions(
        f"a retry policy names the exception type {wanted_name}, and another class here has "
        f"that name{also} (made by a factory, or defined twice): Step Functions matches "
        "errors by name, and would retry them alike"
    )


ERROR_NAME_LIMIT = 256
"""The longest error name ``SendTaskFailure`` carries (the worker sends no more)."""


def error_name(name: str) -> str:
    """A class's name as Step Functions is told it, by the worker that sends it and by a
    Retry or Catch that names it alike: escaped as every engine's record is
    (``error_record.escape``: a ``__module__`` with a lone surrogate), each backslash then
    written ``%5C`` (moto's ASL parser keeps a backslash in ``ErrorEquals`` doubled: such a
    pivot's Catch never matched, attack32 F4), cut to ``ERROR_NAME_LIMIT``."""
    return escape(name).replace("\\", "%5C")[:ERROR_NAME_LIMIT]


def _exception_classes() -> list[type]:
    """Every exception class this process has defined or imported."""
    todo: list[type] = [BaseException]
    classes: list[type] = []
    while todo:
        kind = todo.pop()
        classes.append(kind)
        todo.extend(type.__subclasses__(kind))
    return classes


AWS_MAXIMUM = 99_999_999
"""AWS's documented maximum of a Retry's ``MaxAttempts`` and ``IntervalSeconds`` and of a
task's ``TimeoutSeconds`` (asl-validator does not check it; CreateStateMachine refuses)."""
MAX_DELAY_SECONDS = 31_622_400
"""AWS's documented maximum of a Retry's ``MaxDelaySeconds`` (366 days)."""


def _retriers(spec: RetrySpec) -> list[dict[str, Any]]:
    """A RetryPolicy as ASL retriers: never the exception types it must not retry, then the
    ones it does, with backoff; each type with its known subclasses (``known_subclasses``).
    ASL counts whole seconds (at least 1). Within AWS's maxima (``_waits``), or refused."""
    retriers: list[dict[str, Any]] = []
    if spec.non_retryable:
        retriers.append({"ErrorEquals": known_subclasses(spec.non_retryable), "MaxAttempts": 0})
    if spec.max_attempts > 1 and spec.retry_on:  # (none retried: no retrier, attack113 F2)
        every = {"Exception", "BaseException"} & set(spec.retry_on)
        interval, most = _waits(spec)
        retriers.append(
            {
                "ErrorEquals": ["States.ALL"] if every else known_subclasses(spec.retry_on),
                "IntervalSeconds": interval,
                "MaxAttempts": spec.max_attempts - 1,
                "BackoffRate": max(spec.multiplier, 1.0),
                "MaxDelaySeconds": most,
            }
        )
    return retriers


def _waits(spec: RetrySpec) -> tuple[int, int]:
    """``IntervalSeconds`` and ``MaxDelaySeconds`` for ``spec``, within AWS's maxima. The
    first wait is ``initial_delay`` capped by ``max_delay``, as in process (``delay``). A
    ``max_delay`` over ``MAX_DELAY_SECONDS`` that no wait reaches (the policy's last wait,
    ``initial_delay * multiplier ** (max_attempts - 2)``, is under it) is written as that
    maximum: the waits are the same. A policy that would wait longer, or try more often
    than ``AWS_MAXIMUM`` allows, is refused in one line naming the limit."""
    if spec.max_attempts - 1 > AWS_MAXIMUM:
        raise UnsupportedOnStepFunctions(
            f"max_attempts={spec.max_attempts}: a Retry's MaxAttempts would be "
            f"{spec.max_attempts - 1}, over AWS Step Functions' maximum of {AWS_MAXIMUM}"
        )
    cap = max(1, math.ceil(spec.max_delay))
    interval = max(1, math.ceil(min(spec.initial_delay, spec.max_delay)))
    try:
        last = min(interval * max(spec.multiplier, 1.0) ** (spec.max_attempts - 2), cap)
    except OverflowError:  # (a long run of attempts: the cap long reached)
        last = cap
    if last > MAX_DELAY_SECONDS:
        raise UnsupportedOnStepFunctions(
            f"a retry would wait up to {last:.0f} s (initial_delay={spec.initial_delay:g}, "
            f"max_delay={spec.max_delay:g}), over AWS Step Functions' maximum MaxDelaySeconds "
            f"of {MAX_DELAY_SECONDS} (366 days)"
        )
    return interval, min(cap, MAX_DELAY_SECONDS)


def check_timeout(timeout: object, given: object = None) -> None:
    """A task's ``TimeoutSeconds``: whole seconds, 1 to ``AWS_MAXIMUM``; None, none (the
    refusal names the value ``given``, if it was converted to ``timeout``)."""
    if timeout is not None and (type(timeout) is not int or not 1 <= timeout <= AWS_MAXIMUM):
        shown = given if given is not None else timeout
        raise InvalidPipelineError(
            f"timeout must be an int of seconds from 1 to {AWS_MAXIMUM} (a task's "
            f"TimeoutSeconds on AWS Step Functions), got {shown!r}"
        )


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
    """Only the states a run can reach (Step Functions refuses a machine with others)."""
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


def _target(fails: Owed, key: dict[str, str], halted: str) -> str:
    """Where a failure goes, as the machine answered (``owed``): a person, the first undo
    it runs, or the end."""
    if fails.halts:
        return halted
    return undo(key[fails.undos[0]]) if fails.undos else ROLLED_BACK


def time_out(task: dict[str, Any], timeout: int | None) -> None:
    """A task's ``TimeoutSeconds``, if given. None (the default) writes none: Step Functions
    then waits for the worker as long as the execution lasts, as the runner does ("no
    timeout by default"; a default of 300 s timed a slower step out: attack78 F3)."""
    if timeout is not None:
        task["TimeoutSeconds"] = timeout


def plan_asl(plan: SagaPlan, *, timeout: int | None = None) -> dict[str, Any]:
    """A SagaPlan as an ASL state machine (see the module's docstring)."""
    check_timeout(timeout)
    if plan.undo_order != "reverse":
        raise UnsupportedOnStepFunctions(
            f"undo_order={plan.undo_order!r}: the state machine chains the undos newest first"
        )
    if plan.policy.in_code:
        raise UnsupportedPolicy(f"{ENGINE} cannot run an undo policy that decides in Python")
    specs = plan.specs()
    too_big(f"saga {plan.name!r}", len(specs) + sum(s.has_undo for s in specs))  # (before owed)
    key = {s.name: s.key for s in plan.steps}  # state names and messages carry keys
    chain = every_undo(specs)  # newest first: each undo leads to the one below it
    timeouts = undo_timeouts(specs, plan.undo_policy())
    below = {name: undo(key[n]) for name, n in itertools.pairwise(chain)}
    states: dict[str, Any] = {}
    for n, (step, fails) in enumerate(zip(plan.steps, owed(specs), strict=True)):
        if fails.undos != chain[len(chain) - len(fails.undos) :]:
            raise UnsupportedOnStepFunctions(f"a failure at {step.name} undoes out of chain")
        after = do(plan.steps[n + 1].key) if n + 1 < len(plan.steps) else COMMITTED
        task = _callback("action", step.key, after)
        task["ResultPath"] = None  # a step's answer is not the saga's data
        time_out(task, timeout)
        if step.retry is not None:
            if doubt_outlives_retry(specs[n]):
                raise UnsupportedOnStepFunctions(
                    f"step {step.name!r} is irreversible and retried after a failure that may "
                    "have come after its effect (a timeout): a person must decide even if a "
                    "later attempt refuses cleanly, but the state machine's Retry forgets the "
                    "earlier attempt; retry it only on errors that come before its effect"
                )
            task["Retry"] = [NEVER_RETRIED, *_retriers(step.retry)]
        target = _target(fails, key, HALTED_FORWARD)
        task["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": target}]
        halted = HALTED_FORWARD if fails.halts else HALTED_AT_PIVOT
        late = _target(fails.after, key, halted) if fails.after else target
        if late != target:  # a failure after its effect goes elsewhere (a pivot: a person)
            late_errors = ["States.Timeout", RUNS_ON, *known_subclasses(list(AFTER_EFFECT_ERRORS))]
            task["Catch"].insert(
                0, {"ErrorEquals": late_errors, "ResultPath": "$.failure", "Next": late},
            )  # fmt: skip
        states[do(step.key)] = _retried(do(step.key), task)
    halt = plan.policy.then == "halt"
    for n, name in enumerate(chain):
        following = below.get(name, ROLLED_BACK)
        task = _callback("undo", key[name], following)
        if (seconds := timeouts.get(name)) is not None:  # the worker measures it, as in process
            task["Parameters"]["MessageBody"]["timeout"] = written_seconds(seconds)
        task["ResultPath"] = None
        time_out(task, timeout)
        if plan.policy.retry is not None:
            task["Retry"] = [NEVER_RETRIED, *_retriers(plan.policy.retry)]
        if halt:  # (its work runs on: pending at once, never asked about: ``RUNS_ON``)
            task["Catch"] = [
                {"ErrorEquals": [RUNS_ON], "ResultPath": "$.failure", "Next": LEFT},
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": ask(key[name])},
            ]
            person = _callback("ask", key[name], answer(key[name]))
            person["ResultPath"] = "$.person"
            states[ask(key[name])] = person
            states[answer(key[name])] = {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.person.answer", "StringEquals": "retry",
                     "Next": undo(key[name])},
                    {"Variable": "$.person.answer", "StringEquals": "fixed", "Next": following},
                ],
                "Default": LEFT,
            }  # fmt: skip
        else:  # a dead letter: recorded in the execution's data, and on to the next undo
            task["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": f"$.dead_letter_{n}",
                 "Next": following}
            ]  # fmt: skip
        states[undo(key[name])] = _retried(undo(key[name]), task)
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
    states[HALTED_AT_PIVOT] = {
        "Type": "Fail",
        "Error": "SagaHalted",
        "Cause": "the irreversible step failed after its effect, which may have happened: "
        "nothing before it is undone, a person decides",
    }
    if halt:
        states[LEFT] = {
            "Type": "Fail",
            "Error": "SagaHalted",
            "Cause": "an undo failed; a person took it over",
        }
    start = do(plan.steps[0].key)
    return {
        "Comment": f"The {plan.name} saga (rollback-lessons): steps, then undos newest first",
        "StartAt": start,
        "States": _reachable(states, start),
    }


QUOTA = 1_048_576
"""AWS's hard quota on a state machine's definition, in bytes (1 MB): a larger one is refused
by CreateStateMachine, so it is refused here first (attack105 F7: a 4,000-step saga took 90 s
to write, what AWS would never take)."""
LEAST = 300
"""Bytes a step's state (and its undo's) takes at least in the list form (measured: 364)."""


def compact(asl: dict[str, Any]) -> str:
    """``asl`` as the runner sends it: written compactly, as measured against ``QUOTA``
    (attack107 F7: measured compact, sent with spaces, past the quota), refused past it."""
    too_big("this saga", 0, asl)
    return json.dumps(asl, separators=(",", ":"))


def too_big(what: str, states: int, written: dict[str, Any] | None = None) -> None:
    """Refuse a state machine past ``QUOTA``: of ``states`` step and undo states at least
    ``LEAST`` bytes each (before it is written: its failure points are asked of the machine
    one by one, a time that grows as the square of its length), or ``written``."""
    compact = None if written is None else json.dumps(written, separators=(",", ":"))
    size = len(compact.encode()) if compact is not None else states * LEAST  # (the least
    # AWS could be sent: written compactly, in UTF-8 bytes; attack106 F9)
    if size > QUOTA:
        raise UnsupportedOnStepFunctions(
            f"{what} is too long for Step Functions: its state machine "
            f"{'takes' if written is not None else 'would take at least'} {size:,} bytes "
            "written compactly, "
            f"and AWS takes at most {QUOTA:,} (a hard quota); nothing ran"
        )


def to_asl(
    saga: Saga,
    *,
    policy: PolicyLike | None = None,
    register: str | None = None,
    timeout: int | None = None,
    undo_order: str = "reverse",
) -> dict[str, Any]:
    """``saga`` as an ASL state machine (a dict; ``json.dumps`` it to deploy). Every option
    is checked first; a policy that decides in Python is refused (``UnsupportedPolicy``).
    Start an execution with ``{"run": ID, "queue_url": URL}``. ``timeout``: each task's
    ``TimeoutSeconds`` (none by default: a task waits for its worker as long as the execution
    lasts). A saga with parallel groups
    (or an undo order other than ``reverse``) is written in the graph form (``asl_graph``):
    its undos are ordered at run time by the saga machine, which ``StepFunctionsRunner``
    serves."""
    from .asl_graph import graph_asl

    check_timeout(number := plain_number(timeout), timeout)  # (the value given, named)
    timeout = number  # (numpy's int64: the number it holds, attack108 F8)
    chosen = data_only(policy if policy is not None else saga.policy, ENGINE)
    check_retry_types([*(s.retry for s in saga.specs()), chosen.retry])  # type: ignore[union-attr]
    plan = plan_of(saga, "asl", policy=chosen, register=register,  # type: ignore[arg-type]
                   undo_order=undo_order, graphs=True, engine=ENGINE,  # type: ignore[arg-type]
                   written=True)  # fmt: skip
    asl = (graph_asl if needs_graph(plan, undo_order=undo_order, form=WRITTEN_LIST)
           else plan_asl)(plan, timeout=timeout)  # fmt: skip
    too_big(f"saga {plan.name!r}", 0, asl)
    return asl
