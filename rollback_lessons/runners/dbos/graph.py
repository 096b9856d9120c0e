"""Sagas with parallel groups as DBOS workflows (``graph_workflow``), driven by the graph
machine (``schedule.GraphMachine``): which steps may start, what a failure or a cancel
stops, the undo order. The steps, undos, intents and cancel asks are ``workflow.py``'s DBOS
steps; this module carries out the graph's forward part, one step at a time or ``at_once``
(each attempt a child workflow that tells the saga's workflow when it ended)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError

from ... import schedule
from ..._graph_drive import first_of
from ...events import describe
from ...machine import Phase
from ...operations import Finished, Op, RunStep, Wait
from ...policies import UndoPolicy
from ...schedule import GraphMachine, GraphOp, Ready
from ..wire import ErrorRecord, SagaPlan, record_data
from . import asking, bounded, lifetime, stops, waits
from .stops import child_id
from .workflow import (
    LOST,
    EndNotSaved,
    Faults,
    _carry_out,
    _error,
    _let_go,
    ask_cancel,
    attempt,
)  # fmt: skip


class _Graph:
    """The graph machine's forward part, carried out as ``saga.run`` does
    (``_graph_drive.drive_graph``): the ready steps one at a time, in definition order, or,
    with ``pick``, every ready step started at once and ``pick`` naming which finishes next;
    the cancel token asked where ``saga.run`` asks it."""

    def __init__(self, plan: SagaPlan, m: GraphMachine, faults: Faults, cancellable: bool) -> None:
        self.plan, self.m, self.faults, self.cancellable = plan, m, faults, cancellable
        if (
            cancellable
        ):  # asked as each step returns, before the run commits (``GraphMachine.hear``)
            m.hear = self.cancel

    def cancel(self) -> Any:
        m = self.m
        if not self.cancellable or m.cancelled:
            return None
        return asking.told_graph(m, ask_cancel(self.plan.run_id))

    def carry(self, step: str) -> GraphOp:
        """One launched step: its attempts and waits, told to the machine."""
        m, plan = self.m, self.plan
        action = self.faults.get(step, (None, None))[0]
        while True:
            error = attempt(plan.run_id, plan.name, step, action)
            if error is None:
                return m.step_done(step)  # (it hears the cancel first: ``hear``)
            if LOST in error:  # in doubt (its end never saved): cut short, never retried
                return m.step_cut(step, _error(error))
            op = m.step_error(step, _error(error))
            if type(op) is not Wait:
                return op
            waits.sleep(op.seconds, f"the backoff before {step}'s action is tried again")
            self.cancel()
            op = m.step_resume(step)
            if type(op) is not RunStep:
                return op

    def forward(self, pick: Callable[[tuple[str, ...]], str] | None) -> Op:
        m = self.m
        op: Any = self.cancel() or m.start()
        running: list[str] = []
        while type(op) is Ready:  # (asked as each step returns, ``_graph_drive.ASKED_AT``,
            if pick is None:  # and nowhere else with ``completion`` too: attack47 F4)
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
        or, mid-rollback, cutting the rollback short. A step whose action returned here ends as
        it did (``stops.returned``: DBOS refused to save that end); one still running (a
        branch at once) was cut short, perhaps after its effect (as it began: never run,
        ``stops.not_begun``)."""
        m = self.m
        stops.not_begun(m, exc)  # (as a step began: its action never called)
        done = stops.undo_returned(m, exc) or stops.returned(m)  # (returned here: its end)
        if done is not None:
            return done
        if not m.rolling and m.phase is not Phase.DONE:
            m.cut(exc, stops.WHERE)
            op: Any = None if stops.past(m) else schedule.cancel(m, exc)  # (a cancel
            # past the pivot is declined, noted "the run goes on": this stop ends it there)
            for step in m.busy:  # running (perhaps after its effect), or waiting to retry
                op = m.step_cut(step, exc)
            if op is None or type(op) is Ready:
                op = m.fail(exc)  # past the pivot: the run failed outside a step
            if isinstance(op, Finished):
                return op
        m.cut(exc, by="DBOS.cancel_workflow")  # (mid-rollback: where it is, naming it)
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
        what = f"the backoff before {step}'s action is tried again"
        left: float | None = wait
        while left is not None:
            with waits.waiting(WAKE, what):
                told = DBOS.recv(WAKE, timeout_seconds=left)
            if told is None:
                break
            if not waits.stopping(told, what):
                return  # the saga no longer waits for it: nothing more
            left = waits.left_of_last_sleep()  # (a close's STOP, replayed: what is left)
        DBOS.send(parent, {"step": step, "token": token, "woke": True, "error": None}, DONE)
        return
    key = f"{parent}:{token}"
    try:  # told in the order the actions ended (``FINISHING``, held from there to here)
        error = attempt(parent, name, step, fault, hold=key)
        DBOS.send(parent, {"step": step, "token": token, "woke": False, "error": error}, DONE)
    except Exception as exc:  # (DBOS stopping under it: never saved as its ERROR, which
        if waits.closing() and not waits.destroyed(exc):  # its saga's relaunch would take
            raise waits.CutByClose(parent) from exc  # for an attempt in doubt; s79)
        raise
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
        self.waiting: dict[str, bool] = {}  # its child a retry's wait, not an attempt
        self.count = 0

    def child(self, step: str, wait: float | None = None) -> None:
        plan = self.plan
        self.count += 1
        self.token[step] = self.count
        fault = self.faults.get(step, (None, None))[0]
        with SetWorkflowID(child_id(plan.run_id, self.count)):
            started = DBOS.start_workflow(attempt_workflow, plan.run_id, plan.name, step,
                                          self.count, fault, wait)  # fmt: skip
        self.children[step], self.waiting[step] = started, wait is not None

    def heard(self) -> dict[str, Any] | None:
        """The next message of a child (``DONE``); None for a close's ``STOP`` replayed by
        a relaunch (``waits``: it waits on). A child that ended ERROR in DBOS (a write of
        its own failed: a disk full) sends none: between waits, 1 s doubling to 30 s (each
        a DBOS step, replayed alike), the children awaited are looked at, and one ended so
        is told as its message would be (attack83 F4: the saga waited for ever)."""
        what = f"its branches ({', '.join(sorted(self.m.busy))}) to end"
        wait = 1.0
        while True:
            with waits.waiting(DONE, what):
                message = DBOS.recv(DONE, timeout_seconds=wait)
            if message is not None:
                return None if waits.stopping(message, what) else message  # type: ignore[no-any-return]
            ended = self.ended_child()
            if ended is not None:
                return ended
            wait = min(wait * 2, 30.0)

    def ended_child(self) -> dict[str, Any] | None:
        """The message of an awaited child that ended ERROR (or was cancelled) without sending
        it: an attempt
        in doubt (its action may have run: cut short, as a process that died there), a
        retry's wait over (the machine decides whether it is tried again)."""
        for step, token in self.token.items():
            if token == -1:
                continue
            status = DBOS.get_workflow_status(self.children[step].get_workflow_id())
            if status is None or status.status not in ("ERROR", "CANCELLED"):
                continue  # (CANCELLED: DBOS's cancel_workflow of the child itself, attack89
            if self.waiting[step]:  # F5: the saga waited for ever)
                return {"step": step, "token": token, "woke": True, "error": None}
            why = describe(status.error) if status.error is not None else "no error saved"
            died = EndNotSaved(f"{step}'s attempt, a child workflow, ended {status.status} in "
                               f"DBOS ({why}); it may have happened")  # fmt: skip
            error = {**bounded.saved(ErrorRecord.of(died, step, self.plan.run_id)), LOST: True}
            return {"step": step, "token": token, "woke": False, "error": error}
        return None

    def told(self, message: dict[str, Any] | None) -> GraphOp | None:
        """A child ended: the machine's answer (None: a message no longer awaited)."""
        if message is None:
            return None
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
        if message["error"] is None:  # (it hears the cancel first: ``hear``, once)
            return m.step_done(step)
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
        while type(op) is Ready:  # (the cancel asked where ``saga.run`` asks it, once:
            for step in m.ready():  # attack308 F1, twice here, a counting token cut early)
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
            while (answer := self.told(self.heard())) is None:
                pass
            op = answer
        return op  # type: ignore[no-any-return]


@DBOS.workflow(name="rollback_lessons.graph_saga")
def graph_workflow(
    plan: SagaPlan,
    policy: UndoPolicy | None,
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
        policy if policy is not None else plan.undo_policy(),  # (hosting.picklable)
        plan=plan.specs(), after={s: tuple(d) for s, d in after.items()},
        undo_order=plan.undo_order, name=plan.name, run_id=plan.run_id,
    )  # fmt: skip
    graph = (_AtOnce if at_once else _Graph)(plan, m, faults, cancellable)
    with lifetime.running(plan.run_id, m, at_once):  # (what is kept of it goes at its end)
        try:
            op = graph.forward(first_of(completion) if completion is not None else None)
            record = _carry_out(m, op, plan, faults).record
        except (DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError) as exc:
            # cancelled, as a step begins or as its result is saved (its owner cleared: the
            # conflict); the record is read only if DBOS says the workflow was cancelled
            stops.stopped(plan.run_id, exc, graph.stopped)
            raise
        return stops.ended(plan.run_id, record_data(record))  # (a cancel there: it ended)
