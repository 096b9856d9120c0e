"""A saga with parallel groups (or one its runner may cancel) in Amazon States Language.

The list form (``asl.py``) wires each failure to the undos it owes, asked of the saga
machine beforehand: one path per failing step. A graph has no such path: which steps of a
group had finished when one failed, and so what is owed and in which order (reverse
completion, reverse start, by dependency), is known only while it runs. So here the state
machine holds the *forward* structure and the *undo tasks*, and asks the saga machine, at
run time, what comes next:

- each step is a callback task, as in the list form; a group is a ``Parallel`` state, one
  branch per branch. Each task in a branch has its own ``Catch``: a failing step ends its
  branch (``Stopped``, which marks the branch's output), so the other branches are not
  cancelled (Step Functions stops every branch of a ``Parallel`` whose branch fails: a step
  cut off mid-call leaves an effect nobody knows happened). Their running steps finish;
  a step that may not start any more (the saga machine says so: the run failed or was
  cancelled) is answered with the error ``SagaStopping`` and ends its branch too. After the
  group, a ``Choice`` goes on, or, if a branch stopped, to ``What next``;
- ``What next`` is a callback task the runner answers with the saga machine's next answer:
  which undo runs (``Undo <step>``), a person to ask, or how the run ended (``Committed``,
  ``Rolled back``, ``Cancelled``, ...); a ``Choice`` follows it. Every undo and every
  person's answer goes back to ``What next``. The undo order is the machine's, never
  written in the state machine: the undo policy's retries are each undo's ``Retry``, as in
  the list form; what a last failure leads to (a dead letter, a person) is the machine's
  answer to the next ``What next``.

Who keeps the undo log? The saga machine in the runner's process (the worker), as Temporal's
workflow code keeps its own; Step Functions keeps the history of what ran.
"""

from __future__ import annotations

from typing import Any

from ...policies import UnsupportedPolicy
from ..history import ask, do, undo
from ..wire import SagaPlan
from .asl import (
    COMMITTED,
    ENGINE,
    HALTED_AT_PIVOT,
    HALTED_FORWARD,
    LEFT,
    ROLLED_BACK,
    _callback,
    _retried,
    _retriers,
    check_timeout,
    time_out,
)

WHAT_NEXT, CHOOSE = "What next", "Go to it"
CANCELLED, INCOMPLETE = "Cancelled", "Rolled back, not all undone"
STOPPING = "SagaStopping"
"""The error a step's task is answered with when the saga machine says it may not start
(a step of the run failed, or the run was cancelled): its branch ends, nothing ran."""


def _ends() -> dict[str, Any]:
    fail = {"Type": "Fail"}
    return {
        COMMITTED: {"Type": "Succeed"},
        ROLLED_BACK: {**fail, "Error": "SagaRolledBack",
                      "Cause": "a step failed; every undo it owed has run"},
        INCOMPLETE: {**fail, "Error": "SagaRolledBack",
                     "Cause": "a step failed; not everything could be undone (dead letters)"},
        CANCELLED: {**fail, "Error": "SagaCancelled",
                    "Cause": "the runner cancelled the run; every undo it owed has run"},
        HALTED_FORWARD: {**fail, "Error": "SagaHalted",
                         "Cause": "a step after the pivot failed: a person finishes it"},
        HALTED_AT_PIVOT: {**fail, "Error": "SagaHalted",
                          "Cause": "the irreversible step may have happened: a person decides"},
        LEFT: {**fail, "Error": "SagaHalted", "Cause": "an undo failed; a person took it over"},
    }  # fmt: skip


class _Writer:
    def __init__(self, plan: SagaPlan, timeout: int | None) -> None:
        self.plan, self.timeout = plan, timeout
        self.key = {s.name: s.key for s in plan.steps}
        self.specs = {s.name: s for s in plan.steps}
        self.groups = 0

    def task(self, step: str, follow: str | None, stop: str) -> dict[str, Any]:
        spec = self.specs[step]
        task = _callback("action", spec.key, follow or "")
        if follow is None:
            del task["Next"]
        task["ResultPath"] = None
        time_out(task, self.timeout)
        if spec.retry is not None:  # never retried once the machine says it may not start
            task["Retry"] = [{"ErrorEquals": [STOPPING], "MaxAttempts": 0},
                             *_retriers(spec.retry)]  # fmt: skip
        task["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": stop}]
        written = _retried(do(spec.key), task)
        if follow is None:
            written["End"] = True
        return written

    def chain(self, items: list[Any], follow: str | None, stop: str, states: dict[str, Any]) -> str:
        """The states of ``items`` in order (into ``states``); ``follow`` after the last (None:
        the branch ends), ``stop`` where a failure goes. Returns the first state's name."""
        for item in reversed(items):
            if isinstance(item, str):
                name = do(self.key[item])
                states[name] = self.task(item, follow, stop)
            else:
                name = self.group(item["parallel"], follow, stop, states)
            follow = name
        assert follow is not None
        return follow

    def group(
        self, branches: list[list[Any]], follow: str | None, stop: str, states: dict[str, Any]
    ) -> str:
        self.groups += 1
        n = self.groups
        name, over = f"Group {n}", f"Group {n}: did a branch stop?"
        written = []
        for i, branch in enumerate(branches, 1):
            inner: dict[str, Any] = {}
            stopped = f"Group {n}, branch {i} stopped"
            inner[stopped] = {"Type": "Pass", "Result": True, "ResultPath": "$.stopped",
                              "End": True}  # fmt: skip
            start = self.chain(branch, None, stopped, inner)
            written.append({"StartAt": start, "States": inner})
        states[name] = {"Type": "Parallel", "Branches": written, "ResultPath": "$.branches",
                        "Next": over}  # fmt: skip
        marks = [{"Variable": f"$.branches[{i}].stopped", "IsPresent": True}
                 for i in range(len(branches))]  # fmt: skip
        if follow is None:  # a group that ends a branch: it ends there, too
            follow = f"Group {n} done"
            states[follow] = {"Type": "Succeed"}
        rule = {"Or": marks} if len(marks) > 1 else marks[0]
        states[over] = {"Type": "Choice", "Choices": [{**rule, "Next": stop}], "Default": follow}
        return name


def graph_asl(plan: SagaPlan, *, timeout: int | None = None) -> dict[str, Any]:
    """A SagaPlan as an ASL state machine whose undos the saga machine orders at run time
    (see the module's docstring); ``StepFunctionsRunner`` answers its ``What next``."""
    check_timeout(timeout)
    if plan.policy.in_code:
        raise UnsupportedPolicy(f"{ENGINE} cannot run an undo policy that decides in Python")
    w = _Writer(plan, timeout)
    states: dict[str, Any] = {}
    shape = plan.shape if plan.shape is not None else [s.name for s in plan.steps]
    start = w.chain(shape, WHAT_NEXT, WHAT_NEXT, states)
    nxt = _callback("next", "", CHOOSE)
    del nxt["Parameters"]["MessageBody"]["step"]
    nxt["ResultPath"] = "$.next"
    time_out(nxt, timeout)
    states[WHAT_NEXT] = nxt
    targets: list[str] = []
    halt = plan.policy.then == "halt"
    for spec in plan.steps:
        if not spec.has_undo:
            continue
        task = _callback("undo", spec.key, WHAT_NEXT)
        task["ResultPath"] = None
        time_out(task, timeout)
        if plan.policy.retry is not None:  # (never retried once the machine ended there)
            task["Retry"] = [{"ErrorEquals": [STOPPING], "MaxAttempts": 0},
                             *_retriers(plan.policy.retry)]  # fmt: skip
        task["Catch"] = [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": WHAT_NEXT}
        ]
        states[undo(spec.key)] = _retried(undo(spec.key), task)
        targets.append(undo(spec.key))
        if halt:
            person = _callback("ask", spec.key, WHAT_NEXT)
            person["ResultPath"] = "$.person"
            states[ask(spec.key)] = person
            targets.append(ask(spec.key))
    ends = _ends()
    if not halt:
        del ends[LEFT]
    states.update(ends)
    states[CHOOSE] = {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.next.go", "StringEquals": target, "Next": target}
            for target in [*targets, *ends]
        ],
        "Default": HALTED_FORWARD if not halt else LEFT,
    }
    return {
        "Comment": f"The {plan.name} saga (rollback-lessons): its groups as Parallel states; "
        "what follows a failure is the saga machine's answer to 'What next'",
        "StartAt": start,
        "States": states,
    }
