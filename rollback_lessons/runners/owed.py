"""What the saga machine would do, asked beforehand, for an engine that must be given the
whole saga written down before it runs (a Step Functions state machine, a BPMN model). Such
an engine cannot drive a machine at run time; so its writer asks the machine here, for each
step, what a failure there leads to, and wires that in. The answers come from driving the
machine itself, never from a second telling of its rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import InjectedTimeout
from ..faults import Fault
from ..machine import Machine
from ..operations import Finished, Op, RunStep, RunUndo, StepSpec, Wait
from ..outcome import RunRecord
from ..policies import CONTINUE, RetryPolicy, UndoPolicy


@dataclass(frozen=True)
class Owed:
    """When step ``step`` fails for good before its effect (a clean refusal): the machine
    ``halts`` for a person, or runs ``undos``, in that order. ``after`` is the same question
    for a failure after its effect (a timeout after the email left): for a pivot the machine
    halts there (``machine.pivot_in_doubt``), so a writer must route it apart."""

    step: str
    halts: bool
    undos: tuple[str, ...]
    after: Owed | None = None


class _Failed(Exception):
    """The failure these questions feed the machine."""


AFTER_EFFECT_ERRORS: tuple[str, ...] = ("TimeoutError",)
"""The error types (with their subclasses: an injected failure after the effect is an
``InjectedTimeout``) an engine reports a failure that may have come after the effect by:
a timeout, which ``owed``'s ``after`` answers for (``machine.pivot_in_doubt``)."""


def _undos(m: Machine, op: Op) -> tuple[str, ...]:
    found = []
    while type(op) is RunUndo:
        found.append(op.step)
        op = m.undo_ok()
    return tuple(found)


def _fails_at(plan: Sequence[StepSpec], k: int, error: BaseException, undo_order: str) -> Owed:
    """Steps before ``k`` succeed, step ``k`` fails for good with ``error`` (``plan``'s
    retries left out: they are the engine's own Retry), every undo succeeds."""
    m = Machine(CONTINUE, plan=plan, undo_order=undo_order)
    m.start()
    for _ in range(k):
        m.step_ok()
    undos = _undos(m, m.step_failed(error))
    return Owed(plan[k].name, m.halted, undos)


def owed(plan: Sequence[StepSpec], undo_order: str = "reverse") -> list[Owed]:
    """For each step of ``plan``: the steps before it succeed, it fails for good (as after
    its last retry), before its effect and (``after``) after it; every undo succeeds. What
    does the machine do?"""
    found, plan = [], [s._replace(retry=None) for s in plan]  # (once: not per question)
    for k, spec in enumerate(plan):
        late = InjectedTimeout(spec.name, Fault.FAIL_AFTER_EFFECT, "a failure after its effect")
        after = _fails_at(plan, k, late, undo_order)
        found.append(replace(_fails_at(plan, k, _Failed(), undo_order), after=after))
    return found


def _all_undone(
    plan: Sequence[StepSpec], undo_order: str, policy: UndoPolicy = CONTINUE
) -> tuple[Machine, Op]:
    m = Machine(policy, plan=plan, undo_order=undo_order)
    m.start()
    for _ in range(len(plan) - 1):
        m.step_ok()
    m.stop(_Failed())
    return m, m.step_ok()


ASKED_ATTEMPTS = 3
"""Attempts ``doubt_outlives_retry`` drives: the one that fails after its effect, a clean
failure the policy may retry, the last. Every later attempt would meet the machine as the
second did (the doubt is remembered for good, ``Machine._doubted``; the policy's answer to
the same error changes only at its last attempt), so driving all of a huge
``max_attempts`` (AWS allows 99,999,999) would ask nothing more, for minutes."""


def doubt_outlives_retry(spec: StepSpec) -> bool:
    """Would the machine retry ``spec`` after a failure that may have come after its effect
    (a timeout), and then halt however cleanly the next attempts fail? (A pivot: its doubt
    outlives its retries.) A state machine's Retry forgets the earlier attempt, and its Catch
    sees only the last error: a writer cannot wire that in, so it refuses such a step.
    Asked of ``ASKED_ATTEMPTS`` attempts at most, so a huge ``max_attempts`` answers at once;
    asked of a timeout alone and of one in a group (``asyncio.TaskGroup``'s), which a
    policy's ``retry_on`` may match apart."""
    if spec.retry is None:
        return False
    few = replace(spec.retry, max_attempts=min(spec.retry.max_attempts, ASKED_ATTEMPTS))
    late = InjectedTimeout(spec.name, Fault.FAIL_AFTER_EFFECT, "after its effect")
    for error in (late, ExceptionGroup("after its effect", [late])):  # (a TaskGroup's too)
        m = Machine(CONTINUE, plan=[spec._replace(has_undo=False, retry=few)])
        m.start()
        op = m.step_failed(error)
        while type(op) is Wait:
            m.resume()
            op = m.step_failed(_Failed())
        if m.halted and m.attempt > 1:  # (retried after it, halted however it failed then)
            return True
    return False


def every_undo(plan: Sequence[StepSpec], undo_order: str = "reverse") -> tuple[str, ...]:
    """The whole undo log, in the order the machine runs it: every step succeeds, then the
    run fails after the last (a workflow cancelled there)."""
    return _undos(*_all_undone(plan, undo_order))


def undo_timeouts(
    plan: Sequence[StepSpec], policy: UndoPolicy, undo_order: str = "reverse"
) -> dict[str, float | None]:
    """How long each undo's attempt may take (its step's own timeout, or its policy's), as
    the machine gives it: the worker of an engine that was handed the saga written down
    measures it, as in process."""
    m, op = _all_undone(plan, undo_order, policy)
    found: dict[str, float | None] = {}
    while type(op) is RunUndo:
        found[op.step] = op.timeout
        op = m.undo_ok()
    return found


def all_undone(plan: Sequence[StepSpec], undo_order: str = "reverse") -> RunRecord:
    """The record of that run, every undo done: what any run that rolls back everything
    records at the least (an engine checks it against its own size limits)."""
    m, op = _all_undone(plan, undo_order)
    while type(op) is RunUndo:
        op = m.undo_ok()
    if type(op) is not Finished:
        raise RuntimeError(f"the machine answered {op!r} after its last undo")
    return op.record


def worst_record(plan: Sequence[StepSpec], undo_attempts: int, error: BaseException,
                 undo_order: str = "reverse") -> RunRecord:  # fmt: skip
    """The record of a long run the policies allow, as the machine makes it: each action
    fails with ``error`` at every attempt its RetryPolicy allows but the last, which
    succeeds; the run fails after its last step; each undo fails all ``undo_attempts``
    (dead-lettered). An engine sizes it against its payload limit (``limits.check_plan``)."""
    every = lambda r: replace(r, retry_on=(Exception,), no_retry_on=(), initial_delay=0)  # noqa: E731
    retry = RetryPolicy(undo_attempts, 0, retry_on=(Exception,)) if undo_attempts > 1 else None
    steps = [s._replace(retry=every(s.retry)) if s.retry is not None else s for s in plan]
    m = Machine(UndoPolicy(retry), plan=steps, undo_order=undo_order)
    op: Op = m.start()
    for k, spec in enumerate(steps):
        for _ in range(spec.retry.max_attempts - 1 if spec.retry is not None else 0):
            if type(op := m.step_failed(error)) is Wait:
                op = m.resume()
        if type(op) is not RunStep:  # (not retried after all: the run failed there)
            break
        if k == len(steps) - 1:
            m.stop(error)
        op = m.step_ok()
    while type(op) in (RunUndo, Wait):
        op = m.undo_failed(error) if type(op) is RunUndo else m.resume()
    return op.record if isinstance(op, Finished) else m.record()
