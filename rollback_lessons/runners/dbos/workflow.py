"""The saga as a DBOS workflow: a driver of the saga machine, each step and each undo
attempt a ``@DBOS.step``.

DBOS checkpoints each step's output in its system database (SQLite here); a process that
dies is relaunched, and DBOS runs the workflow function again, handing back the outputs it
checkpointed, so the machine is told the same story and goes on where the process died.
A step that ran but was not checkpointed runs again: undos must be idempotent. The machine
decides everything (retries, dead letters, a halt, the status, the events); a wait is
``DBOS.sleep`` (durable), a person answers with ``DBOS.send`` to the topic ``answer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dbos import DBOS

from ...faults import Fault
from ...machine import Machine
from ...operations import Ask, Finished, Op, RunStep, RunUndo, Wait
from ...policies import UndoPolicy
from ...saga import Saga, State
from .. import hosted, remote
from ..wire import ErrorRecord, SagaPlan, record_data

FACTORIES: dict[str, Callable[[str], Saga]] = {}
"""How to make a saga by its name for a run id (a relaunched process resumes runs it did
not start: their sagas act on a world outside memory, such as crashlab's database)."""


def _saga(run_id: str, name: str) -> tuple[Saga, State]:
    if run_id in hosted.RUNS:
        run = hosted.RUNS[run_id]
        return run.saga, run.state
    if name in FACTORIES:
        return FACTORIES[name](run_id), {}
    raise hosted.NotHosted(f"no saga {name!r} is known to this process for run {run_id!r}")


def _fault(name: str | None) -> Fault | None:
    return Fault(name) if name else None


@DBOS.step(name="rollback_lessons.action")
def run_action(run_id: str, name: str, step: str, fault: str | None) -> dict[str, Any] | None:
    """Do ``step``'s action; its failure comes back as data (checkpointed, never retried
    by DBOS: the machine decides)."""
    saga, state = _saga(run_id, name)
    error = remote.run_action(saga, step, state, _fault(fault))
    return vars(error) if error is not None else None


@DBOS.step(name="rollback_lessons.undo")
def run_undo(
    run_id: str,
    name: str,
    step: str,
    attempt: int,
    fault: str | None,
    timeout: float | None = None,
) -> dict[str, Any] | None:
    """Do attempt ``attempt`` of ``step``'s undo (with the run's idempotency key); past
    ``timeout`` seconds it failed, as in process."""
    saga, state = _saga(run_id, name)
    error = remote.run_undo(saga, step, state, _fault(fault), attempt, run_id, timeout)
    return vars(error) if error is not None else None


def _error(data: dict[str, Any]) -> BaseException:
    return ErrorRecord(**data).to_exception()


@DBOS.workflow(name="rollback_lessons.saga")
def saga_workflow(
    plan: SagaPlan, policy: UndoPolicy, faults: dict[str, tuple[str | None, str | None]]
) -> dict[str, Any]:
    """Drive the machine for ``plan``; its record, as data. ``faults``: (action, undo) by
    step, as names, so that a relaunched process injects them too."""
    m = Machine(
        policy, plan=plan.specs(), undo_order=plan.undo_order, name=plan.name,
        run_id=plan.run_id,
    )  # fmt: skip
    op: Op = m.start()
    while not isinstance(op, Finished):
        if type(op) is RunStep:
            action = faults.get(op.step, (None, None))[0]
            error = run_action(plan.run_id, plan.name, op.step, action)
            op = m.step_ok() if error is None else m.step_failed(_error(error))
        elif type(op) is RunUndo:
            undo = faults.get(op.step, (None, None))[1]
            error = run_undo(plan.run_id, plan.name, op.step, op.attempt, undo, op.timeout)
            op = m.undo_ok() if error is None else m.undo_failed(_error(error))
        elif type(op) is Wait:
            DBOS.sleep(op.seconds)  # durable: a relaunch sleeps only what is left
            op = m.resume()
        elif type(op) is Ask:
            op = m.answer(_ask(op.steps, plan.halt_wait))
        else:
            raise RuntimeError(f"the machine answered {op!r}, which no plan gives")
    return record_data(op.record)


def _ask(steps: tuple[str, ...], wait: float | None) -> str:
    """A person answers (``DBOS.send(run_id, answer, "answer")``) within ``wait`` seconds;
    0 halts at once, as in process; no answer in time is "leave"."""
    if wait is not None and wait <= 0:
        return "leave"
    DBOS.set_event("pending", list(steps))
    said = DBOS.recv("answer", timeout_seconds=wait if wait is not None else 10**9)
    DBOS.set_event("pending", [])
    return str(said) if said in ("retry", "fixed", "leave") else "leave"
