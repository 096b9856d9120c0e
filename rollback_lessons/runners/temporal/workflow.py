"""The one generic saga workflow: a driver of the saga machine, kept apart so that Temporal's
sandbox imports little.

The machine (``machine.py``) runs inside the workflow and decides everything, as in process:
which step or undo attempt comes next, what a failure leads to (a user's own policy is
asked in a local activity, its answer recorded: ``deciding``), the status, the events. The
workflow only maps each answer onto Temporal: a step or an undo attempt is an activity
(tried once: the machine decides any retry), a wait is a durable timer, a person is asked by
a Query and answers by a Signal. Its history is the run's durable record; the events it
returns equal ``saga.run``'s, one per attempt.

A saga with parallel groups (``plan.after``) is driven as ``saga.arun`` drives it, by the
graph machine (``schedule.GraphMachine``): every step it says is ready is launched at once,
each a task of the workflow running its activities (so a group's branches are concurrent
activities); each step's outcome is told to the machine in the order Temporal resolves
them, which is the history's (replayed, the same order again, whatever the wall clock
did); a branch's retry waits on a durable timer, cut short once the run fails or is
cancelled. A cancel of the workflow is told to the machine (``schedule.cancel``) where
``saga.run`` hears it (a step's action returning, a retry's wait ending): the steps running
finish, nothing more starts, and the undos run shielded from it. The undos are the
machine's rollback, one at a time, in the order it declares. A run that plays a chosen
timing (the runner's ``completion``) asks, before each action, for its turn (the Update
``turn``): the workflow answers once that step is the first running in that order, so the
steps end, and are heard, in that order; nothing the workflow decides depends on it,
but whether an action's call may have begun: only once its activity, told its turn, says
so (the Update ``begin``), never from the turn given alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():  # plain data and the machine, no I/O
    from ... import schedule
    from ...errors import Cancelled, interrupts
    from ...machine import Machine, Phase
    from ...operations import CANCELLED_ASKING, Ask, Finished, Op, RunStep, RunUndo, Wait
    from ...policies import decided
    from ...schedule import GraphMachine, GraphOp, Ready
    from ...stopping import cancel_uncalled
    from .. import hosted
    from ..wire import SagaPlan, record_data
    from . import deciding
    from .ends import cause_of, end_unknown, never_started, not_called, server_timed_out, timed_out
    from .limits import TOO_LARGE, OutcomeTooLarge, TemporalLimitExceeded, no_room, no_room_forward
    from .limits import result as result_of
    from .person import PersonAsked
    from .timeouts import HEARTBEAT_TIMEOUT, MARGIN, turn_wait

ACTION = "rollback_lessons.action"
UNDO = "rollback_lessons.undo"
ONCE = RetryPolicy(maximum_attempts=1)  # each attempt is the machine's to decide
FOREVER = 10**11  # a timer's longest (a decide's 1e20 s failed every workflow task: 304 F6)


@dataclass
class StepCall:
    run_id: str
    step: str
    attempt: int = 1
    timeout: float | None = None
    """An undo attempt's own timeout: the worker measures it, as in process."""


def _cancel_requested() -> bool:
    """Was the workflow asked to cancel? A step's call runs to its end all the same
    (``activities.run_action``); the request stays pending on the workflow's task (Python
    3.11+)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _keep_going() -> None:
    """Undo what was done although the workflow is cancelled: the compensating activities
    and timers below must run."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


CANCEL = Cancelled.by_caller
"""The error a cancelled run fails with: the engine's own (``errors.Cancelled``)."""


async def _ended(handle: workflow.ActivityHandle[Any]) -> None:
    """Await an activity to the end Temporal resolved for it (its ActivityError raised). A
    cancel of the workflow heard meanwhile is passed on to the activity (a step that
    heartbeats hears it; its end is still awaited: WAIT_CANCELLATION_COMPLETED) only once
    this workflow task's jobs are applied and the activity has not ended. Awaited directly,
    an activity that ended in the same workflow task as the cancel came (a worker slow to
    take it, or away) gives CancelledError, its end dropped (temporalio's
    ``_await_temporal_operation``, sdk-python#620): a step that failed, or was done, would
    be told cut short. The cancel stays asked on the task for the machine to hear it."""
    while not handle.done():
        try:
            await asyncio.wait([handle])  # (a cancel of this task leaves the activity be)
        except asyncio.CancelledError:
            await workflow.wait_condition(lambda: True)  # the rest of this task's jobs
            if not handle.done():  # still running: its end is unknown, it is asked to stop
                handle.cancel()
    handle.result()


@workflow.defn(name="RollbackLessonsSaga")
class SagaWorkflow(PersonAsked):
    """Drives the machine for a SagaPlan; returns its record as data. A person asked by a
    halt: ``person.PersonAsked``."""

    def __init__(self) -> None:
        self._person_init()
        self.machine: Machine | None = None
        self.cancel_asked = False  # ... while a graph's steps ran (told as ``saga.run`` hears it)
        self.over: list[GraphOp | BaseException] = []  # a graph's forward run is over
        self.branches: list[asyncio.Future[None]] = []  # its steps' tasks, kept referenced
        self.turned: set[str] = set()  # the actions' activities given their turn (``turn``)
        self.begun: set[str] = set()  # ... whose call may have begun (``begin``: told their turn)
        self.awaited: set[str] = set()  # the activities whose end is not yet heard

    @workflow.query(name="running")
    def running(self) -> list[str]:
        """A graph's steps started and not yet ended, in the order they started (what a
        worker playing a chosen timing waits on); empty for a list."""
        m = self.machine
        return list(m.busy) if isinstance(m, GraphMachine) else []

    @workflow.query(name="told")
    def told(self) -> list[Any]:
        """The events the machine made so far, as a record carries them: asked of a run that
        ended with no result (terminated), so that its observers hear what it told."""
        return [] if self.machine is None else record_data(self.machine.record())["events"]

    @workflow.update(name="turn")
    async def turn(self, step: str, completion: list[str], asker: str = "") -> None:
        """Return once ``step`` is, of the running, the first in ``completion`` (unnamed ones last,
        as they started): its action's turn, from the history heard (the step before it told)."""
        rank = {name: n for n, name in enumerate(completion)}

        def first() -> bool:
            busy = self.running()
            return bool(busy) and min(busy, key=lambda s: rank.get(s, len(rank))) == step

        await workflow.wait_condition(lambda: first() or step not in self.running())
        if not first():  # it ended meanwhile (its activity timed out by the server): no turn
            raise ApplicationError(f"step {step!r} ended: no turn to give", non_retryable=True)
        self.turned.add(asker)  # (told, its activity says so: ``begin``; never before it)

    @turn.validator
    def _a_running_step(self, step: str, completion: list[str], asker: str = "") -> None:
        """A turn is asked by a running step's activity: any other ask is refused at once,
        never left waiting past the run's end (Temporal warns of an unfinished handler)."""
        if step not in self.running():
            raise ValueError(f"step {step!r} is not running: no turn to give")

    @workflow.update(name="begin")
    def begin(self, step: str, asker: str) -> None:
        """An action's activity, told its turn, calls it once this returns: from now on its
        call may have begun. A turn given is no begin: its activity's worker may have been
        gone when it came, never told (fixtrace: the action, never called, reported leaked
        once the server timed the activity out)."""
        self.begun.add(asker)

    @begin.validator
    def _turned_and_awaited(self, step: str, asker: str) -> None:
        """Refused once the activity's end was heard (the workflow then judged its call never
        begun: it must never begin), or if it was not given its turn."""
        if asker not in self.turned or asker not in self.awaited:
            raise ValueError(f"step {step!r}: its activity's end was heard: it may not begin")

    async def _act(self, plan: SagaPlan, step: str, attempt: int) -> None:
        """A step's action: the worker measures ``step_timeout`` from its turn; the server
        allows the turn's wait too (``turn_wait``), and catches a worker that is gone."""
        call = StepCall(plan.run_id, step, attempt, plan.step_timeout)
        await self._activity(ACTION, plan, call, turn_wait(plan) + plan.step_timeout + MARGIN)

    async def _activity(self, name: str, plan: SagaPlan, call: StepCall, timeout: float) -> None:
        """An attempt; one never begun (``not_called``) is scheduled again, not counted,
        while the history has room (``no_room``; then it failed: attack51 F1)."""
        while True:
            asked = str(workflow.uuid4())  # (its id: the turn it is given is its own)
            handle = workflow.start_activity(
                name,
                call,
                activity_id=asked,
                start_to_close_timeout=timedelta(seconds=timeout),
                heartbeat_timeout=timedelta(seconds=min(timeout, HEARTBEAT_TIMEOUT)),  # (gone)
                retry_policy=ONCE,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            self.awaited.add(asked)
            try:
                return await _ended(handle)
            except ActivityError as err:  # (no await below: no ``begin`` comes meanwhile)
                length = workflow.info().get_current_history_length()
                unturned = name == ACTION and plan.turns and asked not in self.begun
                if not not_called(err, unturned) or no_room(plan, length, 0) is not None:
                    raise
                if name == ACTION and _cancel_requested():  # the run's cancel came first:
                    raise  # not called again before the machine is told (``_carry_out``)
            finally:
                self.awaited.discard(asked)  # (its ``begin`` refused from now on)

    @workflow.run
    async def run(self, plan: SagaPlan) -> dict[str, Any]:
        data = await self._run(plan)
        hosted.retire(plan.run_id)  # (over: its handle keeps what it reads; issue #25)
        return data

    async def _run(self, plan: SagaPlan) -> dict[str, Any]:
        if plan.after is not None:
            gm = GraphMachine(
                plan.undo_policy(), plan=plan.specs(), name=plan.name, run_id=plan.run_id,
                after={s: tuple(d) for s, d in plan.after.items()}, undo_order=plan.undo_order,
            )  # fmt: skip
            self.machine = gm
            return self._result(await self._graph(gm, plan))
        m = Machine(
            plan.undo_policy(), plan=plan.specs(), undo_order=plan.undo_order, name=plan.name,
            run_id=plan.run_id,
        )  # fmt: skip
        self.machine = m
        op: Op = m.start()
        while not isinstance(op, Finished):
            if m.rolling:  # the undos: shielded from a cancel of the workflow
                op = await self._shielded(self._carry_out(m, plan, op))
                continue
            try:
                op = await self._carry_out(m, plan, op)
            except asyncio.CancelledError:  # cancelled in a retry's wait (or as a step began)
                _keep_going()
                cut = schedule.cancel(m, CANCEL())  # the machine's rule (declined past the
                if cut is not None:  # pivot, and noted); a retry's wait ends there
                    op = cut  # type: ignore[assignment]  # (a list's machine: never Ready)
                elif m.phase is Phase.STEP:  # its activity was left: how it went is unknown
                    op = m.interrupted(CANCEL())
        return self._result(op)

    @staticmethod
    def _result(op: Finished) -> dict[str, Any]:
        """The record, its error texts cut where it is over a payload (``limits.result``);
        one over even then fails the workflow (never a result it can't return), saying how
        the run ended (``OutcomeTooLarge``: it ran, never "refused before it starts")."""
        try:
            return result_of(op.record)
        except OutcomeTooLarge as exc:  # (the names in details: the message stays short)
            said = f"the saga's record is over Temporal's payload limit ({exc.status})"
            raise ApplicationError(said, exc.data(), type=TOO_LARGE, non_retryable=True) from None

    # -- a graph: the machine's ready steps at once, each a task of its own ---------------------

    async def _graph(self, gm: GraphMachine, plan: SagaPlan) -> Finished:
        """Forward (the ready steps launched at once, each outcome told as Temporal resolves
        it), then the machine's rollback, shielded from a cancel of the workflow."""
        main = asyncio.current_task()

        def hear() -> None:  # a cancel requested as a branch's step returns (perhaps in the
            asked = main is not None and main.cancelling()  # same workflow task, not yet
            if (asked or self.cancel_asked) and not gm.cancelled:  # delivered here): heard
                schedule.cancel(gm, CANCEL())  # before the commit

        gm.hear = hear
        self._launch(gm, plan, gm.start())
        op: GraphOp | None = None
        while op is None:
            try:
                await workflow.wait_condition(lambda: bool(self.over))
            except asyncio.CancelledError:  # the workflow is cancelled: the machine is told
                _keep_going()  # where ``saga.run`` hears it: as a step's action returns
                self.cancel_asked = True  # (``hear``) or a retry's wait ends, never as one
                if gm.busy:  # fails (its failure wins); the steps running finish first
                    continue
                op = schedule.cancel(gm, CANCEL())  # (declined past the pivot, and noted)
            answer = self.over[0]
            if isinstance(answer, BaseException):
                raise answer  # the driver's own bug: the workflow task fails (and is retried)
            op = answer
        while not isinstance(op, Finished):
            op = await self._shielded(self._carry_out(gm, plan, op))  # type: ignore[arg-type]
        return op

    def _launch(self, gm: GraphMachine, plan: SagaPlan, op: GraphOp) -> None:
        """What follows a step's end: the steps now ready start at once (each a task of its
        own, launched before any other step's outcome is told: the order ``saga.run``'s
        timing gives), or the forward run is over (``self.over``)."""
        if type(op) is not Ready:
            self.over.append(op)
            return
        for step in op.steps:
            gm.launch(step)
            self.branches.append(asyncio.ensure_future(self._branch(gm, plan, step)))

    async def _shielded(self, work: Any) -> Op:
        """Carry out one of the rollback's operations to its end although the workflow is
        cancelled meanwhile (the undos of a cancelled saga must run)."""
        task = asyncio.ensure_future(work)
        while True:
            try:
                return await asyncio.shield(task)  # type: ignore[no-any-return]
            except asyncio.CancelledError:
                if task.done() and task.cancelled():
                    raise
                _keep_going()
                self.cancel_heard = True  # a person asked meanwhile is not waited for
                schedule.cancel(self.machine, CANCEL())  # type: ignore[arg-type]

    async def _branch(self, gm: GraphMachine, plan: SagaPlan, step: str) -> None:
        """One launched step: its attempts (activities), told to the machine; a retry waits
        on a durable timer that ends early once the run fails or is cancelled (it will not
        be tried again). Then what its end leads to (``_launch``)."""
        try:
            attempt = 1
            while True:
                try:
                    await self._act(plan, step, attempt)
                except ActivityError as err:
                    error, cancelled = cause_of(err)
                    if cancelled or end_unknown(err) or interrupts(error):  # (a Ctrl-C:
                        return self._launch(gm, plan, gm.step_cut(step, error))  # cut short)
                    op = gm.step_error(step, error)
                    if type(op) is not Wait:
                        return self._launch(gm, plan, op)
                    if op.seconds > 0:
                        with contextlib.suppress(TimeoutError):  # (the wait is over)
                            await workflow.wait_condition(
                                lambda: gm.failing or self.cancel_asked, timeout=op.seconds
                            )
                    if self.cancel_asked and not gm.cancelled:  # heard as its wait ends
                        schedule.cancel(gm, CANCEL())
                    op = gm.step_resume(step)
                    if type(op) is not RunStep:
                        return self._launch(gm, plan, op)
                    attempt = op.attempt
                    continue
                if not gm.failing and len(gm.started) < len(gm.specs):  # more to start
                    undos = sum(gm.specs[s].has_undo for s in (*gm.completed, *gm.busy))
                    self._room_forward(gm, plan, undos, len(gm.busy))
                return self._launch(gm, plan, gm.step_done(step))
        except Exception as exc:  # (a bug here must not leave the run waiting forever)
            self.over.append(exc)

    @staticmethod
    def _limit(m: Machine, plan: SagaPlan) -> str | None:
        """Is there room in the history for another round of this undo (a retry's timer or
        a person's answer, and its attempt) and one attempt of each undo after it? None if
        there is; why not otherwise (the machine then stops retrying: ``undo_failed``).
        Read from the history itself, so a policy deciding in code, a person answering
        "retry" again and again, and Signals nobody asked for are bounded too."""
        length = workflow.info().get_current_history_length()
        return no_room(plan, length, len(m.todo) - m.index - 1)

    @staticmethod
    def _room_forward(m: Machine, plan: SagaPlan, undos: int, running: int) -> None:
        """A step returned with more to start: is there room in the history to go on and
        still undo what was done (``no_room_forward``: Signals nobody asked for count in
        the real length)? If not, the run stops there (``schedule.stop_forward``: declined
        past the pivot, as a cancel is) and is rolled back, with a note naming the limit."""
        reason = no_room_forward(plan, workflow.info().get_current_history_length(), undos,
                                 running)  # fmt: skip
        if reason is not None:
            schedule.stop_forward(m, TemporalLimitExceeded(reason))

    async def _carry_out(self, m: Machine, plan: SagaPlan, op: Op) -> Op:
        """One operation of the machine, as Temporal does it; the machine's next answer."""
        if type(op) is RunStep:
            try:
                await self._act(plan, *op)
            except ActivityError as err:
                if (never_started(err) or not_called(err)) and _cancel_requested():  # seen
                    _keep_going()  # never called: the machine decides (attack69 F2)
                    cut = cancel_uncalled(m, CANCEL())  # (declined: called after all)
                    return op if cut is None else cut  # type: ignore[return-value]
                error, cancelled = cause_of(err)
                asked = _cancel_requested()
                if cancelled or asked:
                    _keep_going()
                if cancelled or end_unknown(err) or interrupts(error):  # stopped by Temporal,
                    if cancelled or (asked and not timed_out(err)):  # unheard, or a Ctrl-C in
                        schedule.cancel(m, CANCEL())  # its call: cut short (the machine is
                    # told of a cancel first; its own timeout wins, as a failure does)
                    return m.interrupted(error)
                failed = m.step_failed(error)  # its own failure wins over a cancel asked
                if asked and type(failed) is Wait:  # meanwhile (as in process, where a
                    cut = schedule.cancel(m, CANCEL())  # retry's wait hears it)
                    return cut if cut is not None else failed  # type: ignore[return-value]
                return failed
            if _cancel_requested():  # asked while a step that could not hear it ran
                _keep_going()
                schedule.cancel(m, CANCEL())  # it stops the run once told the step is done
            spec = m.spec
            if spec is not None and m.stopping is None and m.next_step + 1 < len(m.plan or ()):
                logged = len(m.log) + (spec.has_undo and spec.register == "after")
                self._room_forward(m, plan, logged, 1)
            return m.step_ok()
        if type(op) is RunUndo:
            call = StepCall(plan.run_id, op.step, op.attempt, op.timeout)
            timeout = op.timeout + MARGIN if op.timeout is not None else plan.step_timeout
            unheard = 0  # this attempt's ends nobody heard (attack69 F3: asked for ever)
            while True:
                try:
                    await self._activity(UNDO, plan, call, timeout)
                except ActivityError as err:  # an attempt whose end is unknown (unheard, cut
                    full = self._limit(m, plan)  # by its worker's end, left by a runner that
                    unheard += end_unknown(err)  # closed) may be done: an undo is idempotent,
                    if end_unknown(err) and unheard < 2 and full is None:  # asked again once
                        continue  # (attack54 F1: dead-lettered); unheard twice, it failed
                    if interrupts(error := cause_of(err)[0]):  # a Ctrl-C, sys.exit in the undo:
                        return m.interrupted(error)  # as in process, the rest pending
                    if op.timeout is None:  # timed out by the server after step_timeout: said
                        error = server_timed_out(err, op.step, plan.step_timeout) or error
                    by = decided  # a policy of one's own: asked outside the workflow's code
                    if plan.policy.in_code and workflow.patched(deciding.PATCH):
                        data = deciding.error_data(err, error, op.step)
                        by = await deciding.asked(plan, op.step, m.deciding(), data)
                        if isinstance(by, BaseException):  # (its Ctrl-C: cut there)
                            return m.interrupted(by)
                    return hosted.undo_failed(m, plan.run_id, op.step, error, full, by)  # (its
                    # policy's own decide raising a Ctrl-C: cut there, as in process)
                return m.undo_ok()
        if type(op) is Wait:
            if op.seconds > 0:
                await asyncio.sleep(min(op.seconds, FOREVER))  # a durable timer
            return m.resume()
        if type(op) is Ask:
            self.room = lambda: self._limit(m, plan)  # the rule of every other round's wait
            cancelled = m.cancelled or self.cancel_heard  # (a cancelled run asks no one)
            answer, full = await self._ask_a_person(op.steps, plan.halt_wait, cancelled)
            if answer is None:  # no answer taken: a cancel, or no room, ended the wait
                return m.not_waited(full or CANCELLED_ASKING)
            return m.answer(answer)
        raise RuntimeError(f"the machine answered {op!r}, which no plan gives")
