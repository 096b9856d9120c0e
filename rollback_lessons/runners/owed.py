"""What the saga machine would do, asked beforehand, for an engine that must be given the
whole saga written down before it runs (a Step Functions state machine, a BPMN model). Such
an engine cannot drive a machine at run time; so its writer asks the machine here, for each
step, what a failure there leads to, and wires that in. The answers come from driving the
machine itself, never from a second telling of its rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..machine import Machine
from ..operations import Op, RunUndo, StepSpec
from ..policies import CONTINUE


@dataclass(frozen=True)
class Owed:
    """When step ``step`` fails for good, before its effect: the machine ``halts`` forward
    for a person, or runs ``undos``, in that order."""

    step: str
    halts: bool
    undos: tuple[str, ...]


class _Failed(Exception):
    """The failure these questions feed the machine."""


def _undos(m: Machine, op: Op) -> tuple[str, ...]:
    found = []
    while type(op) is RunUndo:
        found.append(op.step)
        op = m.undo_ok()
    return tuple(found)


def owed(plan: Sequence[StepSpec], undo_order: str = "reverse") -> list[Owed]:
    """For each step of ``plan``: the steps before it succeed, it fails for good (as after
    its last retry), every undo succeeds. What does the machine do?"""
    found = []
    for k, spec in enumerate(plan):
        m = Machine(CONTINUE, plan=plan, undo_order=undo_order)
        m.start()
        for _ in range(k):
            m.step_ok()
        undos = _undos(m, m.interrupted(_Failed()))  # interrupted: never retried
        found.append(Owed(spec.name, m.halted, undos))
    return found


def every_undo(plan: Sequence[StepSpec], undo_order: str = "reverse") -> tuple[str, ...]:
    """The whole undo log, in the order the machine runs it: every step succeeds, then the
    run fails after the last (a workflow cancelled there)."""
    m = Machine(CONTINUE, plan=plan, undo_order=undo_order)
    m.start()
    for _ in range(len(plan) - 1):
        m.step_ok()
    m.stop(_Failed())
    return _undos(m, m.step_ok())
