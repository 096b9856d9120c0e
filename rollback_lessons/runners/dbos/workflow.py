"""The saga as a DBOS workflow: a driver of the saga machine, each step and each undo
attempt a ``@DBOS.step``.

DBOS checkpoints each step's output in its system database (SQLite here); a process that
dies is relaunched, and DBOS runs the workflow function again, handing back the outputs it
checkpointed, so the machine is told the same story and goes on where the process died.
An undo attempt that ran but was not checkpointed runs again: undos must be idempotent. An
action is never run again: its intent is saved first (``began``), and one started by a
process that died before its end was saved is in doubt, cut short for the machine (its undo
run if logged before, else leaked), as the journal's ``recover`` does. The machine
decides everything (retries, dead letters, a halt, the status, the events); a wait is
``DBOS.sleep`` (durable), a person answers with ``DBOS.send`` to the topic ``answer``.

A saga with parallel groups is ``graph_workflow``: the graph machine
(``schedule.GraphMachine``) decides which steps may start, what a failure or a cancel stops,
and the undo order. Its branches run one after the other, in definition order, as
``saga.run`` runs them (or in the timing ``completion`` plays), or, ``at_once``, at the
same time: each attempt a child workflow telling the saga's workflow when it ended
(``DBOS.send``); ``DBOS.recv`` saves the order they finished in, which decides the undo
order, so a relaunch tells the machine the same story. A cancel token is asked as a
``@DBOS.step`` (its answer checkpointed) where ``saga.run`` asks it: compensated,
``cancelled``. ``DBOS.cancel_workflow`` is DBOS's own stop: the workflow ends at its next
step and nothing is undone (what Step Functions' ``StopExecution`` does); the machine is
told so, and the runner reports it (halted, every undo pending).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError

from ... import schedule
from ..._drive import failed_asking
from ..._graph_drive import asking_failed, first_of
from ...errors import Cancelled, RollbackLessonsError
from ...faults import Fault
from ...machine import Machine, Phase
from ...operations import Ask, Finished, Op, RunStep, RunUndo, Wait
from ...policies import UndoPolicy
from ...saga import Saga, State
from ...schedule import GraphMachine, GraphOp, Ready
from .. import hosted, remote
from ..wire import ErrorRecord, SagaPlan, record_data

Faults = dict[str, tuple[str | None, str | None]]
"""(action fault, undo fault) by step, as names."""

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


LAUNCH = uuid.uuid4().hex
"""This launch of DBOS (a new one each ``DBOSRunner.start``): an intent saved by another
launch is one a dead process left."""


class EndNotSaved(RollbackLessonsError):
    """A step started in a process that died before DBOS saved its end: it may have
    happened (the journal's intent without a done), so it is never run again."""


def new_launch() -> None:
    """A new launch of DBOS in this process (``DBOSRunner.start``)."""
    global LAUNCH
    LAUNCH = uuid.uuid4().hex


@DBOS.step(name="rollback_lessons.began")
def began(step: str) -> str:
    """The intent: ``step``'s action is about to run, saved before it runs (the journal's
    rule). Its answer is the launch that saved it; a relaunch hears the dead one's."""
    return LAUNCH


FINISHING = threading.Lock()
"""Held by a branch run at once from its action's end until the saga's workflow is told
(``attempt_workflow``): the saga hears its branches in the order their actions ended, and
saves that order (``DBOS.recv``), never the order their messages happened to arrive in."""

_HOLDING: set[str] = set()  # the attempts holding FINISHING (by key)


def _hold(key: str | None) -> None:
    if key is not None:
        FINISHING.acquire()
        _HOLDING.add(key)


def _let_go(key: str) -> None:
    if key in _HOLDING:
        _HOLDING.discard(key)
        FINISHING.release()


@DBOS.step(name="rollback_lessons.action")
def run_action(
    run_id: str,
    name: str,
    step: str,
    fault: str | None,
    intent: str | None = None,
    hold: str | None = None,
) -> dict[str, Any] | None:
    """Do ``step``'s action; its failure comes back as data (checkpointed, never retried
    by DBOS: the machine decides). Its ``intent`` saved by another launch: the process that
    started it died before its end was saved, so it is in doubt and not run again
    (``lost``: the machine hears it cut short, as the journal's recover does)."""
    if intent is not None and intent != LAUNCH:
        died = EndNotSaved(f"the process running {step} died before its end was saved; "
                           "it may have happened")  # fmt: skip
        _hold(hold)
        return {**vars(ErrorRecord.of(died, step)), LOST: True}
    saga, state = _saga(run_id, name)
    error = remote.run_action(saga, step, state, _fault(fault))
    _hold(hold)  # (``hold``: a branch at once, its end in order: ``FINISHING``)
    return vars(error) if error is not None else None


LOST = "lost"
"""An action's answer marked so: started by a process that died before its end was saved."""


STARTING: list[Callable[[str], None]] = []
"""Told each step's name as its attempt begins, before its intent is saved (crashlab's
checkpoint between two steps: a process killed there has nothing in doubt)."""


def attempt(
    run_id: str, name: str, step: str, fault: str | None, hold: str | None = None
) -> dict[str, Any] | None:
    """One attempt of ``step``'s action: its intent saved first, then the action."""
    for told in STARTING:
        told(step)
    return run_action(run_id, name, step, fault, began(step), hold)


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
    return ErrorRecord(**{k: v for k, v in data.items() if k != LOST}).to_exception()


@DBOS.workflow(name="rollback_lessons.saga")
def saga_workflow(
    plan: SagaPlan,
    policy: UndoPolicy,
    faults: dict[str, tuple[str | None, str | None]],
    cancellable: bool = False,
) -> dict[str, Any]:
    """Drive the machine for ``plan`` (a list of steps); its record, as data. ``faults``:
    (action, undo) by step, as names, so that a relaunched process injects them too.
    ``cancellable``: the caller's cancel token is asked where ``saga.run`` asks a list's
    (``_drive``: before the start, after each step done, after each wait)."""
    m = Machine(
        policy, plan=plan.specs(), undo_order=plan.undo_order, name=plan.name,
        run_id=plan.run_id,
    )  # fmt: skip
    op = _heard(m, plan.run_id) if cancellable else None  # asked before the start too
    return record_data(_carry_out(m, op or m.start(), plan, faults, cancellable).record)


def _heard(m: Machine, run_id: str) -> Op | None:
    """Ask the caller's cancel token (``_drive.Run.heard``'s rule): the machine's answer if
    the run stops now, else None."""
    said = ask_cancel(run_id)
    if said is False:
        return None
    if isinstance(said, dict):
        return failed_asking(m, _error(said))
    return schedule.cancel(m, Cancelled.by_caller())  # type: ignore[return-value]


def _carry_out(
    m: Machine, op: Op, plan: SagaPlan, faults: Faults, cancellable: bool = False
) -> Finished:
    """Carry out the machine's answers to the end: each step (a list's), undo attempt,
    wait and question to a person (``cancellable``: a list's, asking its cancel token)."""
    while not isinstance(op, Finished):
        if type(op) is RunStep:
            action = faults.get(op.step, (None, None))[0]
            error = attempt(plan.run_id, plan.name, op.step, action)
            if error is None:
                if cancellable:
                    _heard(m, plan.run_id)  # it stops here, once this step is done
                op = m.step_ok()
            elif LOST in error:  # in doubt (its end never saved): cut short, never retried
                op = m.interrupted(_error(error))
            else:
                op = m.step_failed(_error(error))
        elif type(op) is RunUndo:
            undo = faults.get(op.step, (None, None))[1]
            error = run_undo(plan.run_id, plan.name, op.step, op.attempt, undo, op.timeout)
            op = m.undo_ok() if error is None else m.undo_failed(_error(error))
        elif type(op) is Wait:
            DBOS.sleep(op.seconds)  # durable: a relaunch sleeps only what is left
            cut = _heard(m, plan.run_id) if cancellable else None
            op = cut if cut is not None else m.resume()
        elif type(op) is Ask:
            op = m.answer(_ask(op.steps, plan.halt_wait))
        else:
            raise RuntimeError(f"the machine answered {op!r}, which no plan gives")
    return op


# -- a graph: parallel groups, an undo order of a graph's, a timing, a cancel ---------------

CANCELS: dict[str, Callable[[], bool]] = {}
"""Each run's cancel token (``runner.run(..., cancel=...)``), by run id, in the process that
started it; a relaunched process has none (no cancel is asked there)."""

STOPPED: dict[str, dict[str, Any]] = {}
"""The record of each run ``DBOS.cancel_workflow`` stopped, as this process saw it (DBOS
keeps none: the workflow ends with the cancellation, its result never written)."""

STOPPED_NOTE = "DBOS.cancel_workflow stopped the workflow"


class WorkflowCancelled(BaseException):
    """``DBOS.cancel_workflow``: DBOS stopped the workflow; nothing more runs, no undo
    either (what the machine is told)."""


@DBOS.step(name="rollback_lessons.asked")
def ask_cancel(run_id: str) -> bool | dict[str, Any]:
    """Has the run's caller asked it to stop? Its cancel token's answer, checkpointed, so a
    relaunch hears the same story; a token that raises: its error, as data."""
    asked = CANCELS.get(run_id)
    if asked is None:
        return False
    try:
        return bool(asked())
    except Exception as exc:
        return vars(ErrorRecord.of(exc))


class _Graph:
    """The graph machine's forward part, carried out as ``saga.run`` does
    (``_graph_drive.drive_graph``): the ready steps one at a time, in definition order, or,
    with ``pick``, every ready step started at once and ``pick`` naming which finishes next;
    the cancel token asked where ``saga.run`` asks it."""

    def __init__(self, plan: SagaPlan, m: GraphMachine, faults: Faults, cancellable: bool) -> None:
        self.plan, self.m, self.faults, self.cancellable = plan, m, faults, cancellable

    def cancel(self) -> Any:
        m = self.m
        if not self.cancellable or m.cancelled:
            return None
        said = ask_cancel(self.plan.run_id)
        if said is False:
            return None
        if isinstance(said, dict):
            return asking_failed(m, _error(said))  # type: ignore[arg-type]
        return schedule.cancel(m, Cancelled.by_caller())

    def carry(self, step: str) -> GraphOp:
        """One launched step: its attempts and waits, told to the machine."""
        m, plan = self.m, self.plan
        action = self.faults.get(step, (None, None))[0]
        while True:
            error = attempt(plan.run_id, plan.name, step, action)
            if error is None:
                done = m.step_done(step)  # told done first: what stops the run undoes it
                return self.cancel() or done  # type: ignore[no-any-return]
            if LOST in error:  # in doubt (its end never saved): cut short, never retried
                return m.step_cut(step, _error(error))
            op = m.step_error(step, _error(error))
            if type(op) is not Wait:
                return op
            DBOS.sleep(op.seconds)
            self.cancel()
            op = m.step_resume(step)
            if type(op) is not RunStep:
                return op

    def forward(self, pick: Callable[[tuple[str, ...]], str] | None) -> Op:
        m = self.m
        op: Any = self.cancel() or m.start()
        running: list[str] = []
        while type(op) is Ready:
            cut = self.cancel()
            if cut is not None:
                op = cut
                continue
            if pick is None:
                step = m.ready()[0]
                m.launch(step)
                op = self.carry(step)
                continue
            for step in m.ready():
                m.launch(step)
                running.append(step)
            step = pick(tuple(running))
            running.remove(step)
            op = self.carry(step)
        return op  # type: ignore[no-any-return]

    def stopped(self, exc: BaseException) -> Finished:
        """``DBOS.cancel_workflow`` stopped the workflow (raised at its next step): what
        ``StopExecution`` is on Step Functions. Nothing is undone: the machine hears it as an
        interruption before any undo (every undo pending; ``cancelled`` if nothing was done)
        or, mid-rollback, cutting the rollback short. A step running then was cut short: DBOS
        may have stopped it as it began or as its result was saved, after its effect."""
        m = self.m
        if not m.rolling and m.phase is not Phase.DONE:
            m.cut(exc, "before any undo ran (DBOS.cancel_workflow)")
            op: Any = schedule.cancel(m, exc)  # (declined past the pivot: the one rule)
            for step in m.busy:  # running (perhaps after its effect), or waiting to retry
                op = m.step_cut(step, exc)
            if op is None or type(op) is Ready:
                op = m.fail(exc)  # past the pivot: the run failed outside a step
            if isinstance(op, Finished):
                return op
        return m.interrupted(exc)  # type: ignore[return-value]


# -- branches at once: a child workflow per attempt, each telling the saga when it ended -----

WAKE = "rollback_lessons.wake"
"""The topic on which a saga ends a branch's retry wait early (``_AtOnce.forward``): it
will not be tried again, and no wait outlives its saga."""

DONE = "rollback_lessons.done"
"""The topic on which an attempt's child workflow tells the saga's workflow it ended (its
messages arrive, and are replayed after a relaunch, in the order they came)."""


@DBOS.workflow(name="rollback_lessons.attempt")
def attempt_workflow(
    parent: str, name: str, step: str, token: int, fault: str | None, wait: float | None
) -> None:
    """In a workflow of its own (so that the branches run at once): one attempt of
    ``step``'s action, or (``wait``) a retry's backoff, slept durably; then it tells the
    saga's workflow ``parent`` how it went (``DBOS.send``). The next attempt starts only if
    the saga's machine says so once the wait is over."""
    if wait is not None:  # durable, and ended early once its saga stops (``WAKE``)
        if DBOS.recv(WAKE, timeout_seconds=wait) is not None:
            return  # the saga no longer waits for it: nothing more
        DBOS.send(parent, {"step": step, "token": token, "woke": True, "error": None}, DONE)
        return
    key = f"{parent}:{token}"
    try:  # told in the order the actions ended (``FINISHING``, held from there to here)
        error = attempt(parent, name, step, fault, hold=key)
        DBOS.send(parent, {"step": step, "token": token, "woke": False, "error": error}, DONE)
    finally:
        _let_go(key)


class _AtOnce(_Graph):
    """The graph machine's forward part with every ready step started at once: each attempt
    (and each retry's wait) a child workflow (``attempt_workflow``), the machine told of
    each as its message comes (in the order the branches finished, saved by DBOS: a relaunch
    hears the same). Once the run stops (a failure, a cancel), a step waiting to retry is not
    tried again, as in ``saga.arun``."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.token: dict[str, int] = {}  # each step's child awaited now (-1: none)
        self.children: dict[str, Any] = {}  # each step's latest child workflow (a handle)
        self.count = 0

    def child(self, step: str, wait: float | None = None) -> None:
        plan = self.plan
        self.count += 1
        self.token[step] = self.count
        fault = self.faults.get(step, (None, None))[0]
        started = DBOS.start_workflow(attempt_workflow, plan.run_id, plan.name, step,
                                      self.count, fault, wait)  # fmt: skip
        self.children[step] = started

    def told(self, message: dict[str, Any]) -> GraphOp | None:
        """A child ended: the machine's answer (None: a message no longer awaited)."""
        m, step = self.m, message["step"]
        if self.token.get(step) != message["token"]:
            return None
        self.token[step] = -1
        if message["woke"]:  # its wait is over: tried again, unless the run stopped
            self.cancel()
            op = m.step_resume(step)
            if type(op) is not RunStep:
                return op
            self.child(step)
            return Ready(m.ready())
        if message["error"] is None:
            done = m.step_done(step)
            return self.cancel() or done  # type: ignore[no-any-return]
        if LOST in message["error"]:  # in doubt (its end never saved): cut short
            return m.step_cut(step, _error(message["error"]))
        op = m.step_error(step, _error(message["error"]))
        if type(op) is not Wait:
            return op
        self.child(step, float(op.seconds))
        return Ready(m.ready())

    def forward(self, pick: Callable[[tuple[str, ...]], str] | None = None) -> Op:
        m = self.m
        op: Any = self.cancel() or m.start()
        while type(op) is Ready:
            cut = self.cancel()
            if cut is not None:
                op = cut
                continue
            for step in m.ready():
                m.launch(step)
                self.child(step)
            if m.failing:  # a step waiting to retry is not tried again: failed for good
                for step in [s for s in m.busy if m.where[s] == "waiting"]:
                    self.token[step] = -1  # its wait is over: never outlives its saga
                    child = self.children[step]
                    DBOS.send(child.get_workflow_id(), "stop", WAKE)
                    child.get_result()  # ended before its saga: nothing left running
                    op = m.step_resume(step)
                if type(op) is not Ready:
                    break
            if not m.busy:
                break
            while (answer := self.told(DBOS.recv(DONE, timeout_seconds=10**9))) is None:
                pass
            op = answer
        return op  # type: ignore[no-any-return]


@DBOS.workflow(name="rollback_lessons.graph_saga")
def graph_workflow(
    plan: SagaPlan,
    policy: UndoPolicy,
    faults: Faults,
    completion: list[str] | None = None,
    cancellable: bool = False,
    at_once: bool = False,
) -> dict[str, Any]:
    """Drive the graph machine for ``plan`` (``schedule.GraphMachine``: a saga with parallel
    groups, or a list run with a timing or an undo order of a graph's); its record,
    as data. The branches of a group run one after the other, in definition order (as
    ``saga.run``), or in the timing ``completion`` plays; the undos one at a time, in the
    declared order. ``cancellable``: the caller's cancel token is asked (a ``@DBOS.step``)
    where ``saga.run`` asks it. ``at_once``: every ready step starts at once, each attempt
    a child workflow (``_AtOnce``)."""
    after = plan.after or {
        s.name: [p.name] if p else [] for s, p in zip(plan.steps, [None, *plan.steps], strict=False)
    }
    m = GraphMachine(
        policy, plan=plan.specs(), after={s: tuple(d) for s, d in after.items()},
        undo_order=plan.undo_order, name=plan.name, run_id=plan.run_id,
    )  # fmt: skip
    graph = (_AtOnce if at_once else _Graph)(plan, m, faults, cancellable)
    try:
        op = graph.forward(first_of(completion) if completion is not None else None)
        return record_data(_carry_out(m, op, plan, faults).record)
    except (DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError) as exc:
        # cancelled, as a step begins or as its result is saved (its owner cleared: the
        # conflict); the record is read only if DBOS says the workflow was cancelled
        stop = WorkflowCancelled(STOPPED_NOTE)
        stop.__cause__ = exc
        STOPPED[plan.run_id] = record_data(graph.stopped(stop).record)
        raise


def _ask(steps: tuple[str, ...], wait: float | None) -> str:
    """A person answers (``DBOS.send(run_id, answer, "answer")``) within ``wait`` seconds;
    0 halts at once, as in process; no answer in time is "leave"."""
    if wait is not None and wait <= 0:
        return "leave"
    DBOS.set_event("pending", list(steps))
    said = DBOS.recv("answer", timeout_seconds=wait if wait is not None else 10**9)
    DBOS.set_event("pending", [])
    return str(said) if said in ("retry", "fixed", "leave") else "leave"
