"""Serving a graph-form execution (``asl_graph``): the worker in this process drives the
saga machine (``schedule.GraphMachine``) with what each task does, and answers Step
Functions with the machine's decisions (which step may start, which undo runs next, a
person, the status): only I/O here. A group's tasks arrive at once; which runs when is the
driver's, as in process (``_graph_drive.drive_graph``): one at a time, the first ready in
definition order, or, with ``completion``, every ready step at once, the running step named
first finishing next. A task for a step the machine says may not start: ``SagaStopping``.

A cancel (``cancel``, asked where ``saga.run`` asks it, ``_graph_drive.ASKED_AT``) is told
to the machine: nothing more starts, the next task is answered ``SagaStopping``, what was
done is undone (``cancelled``); a cancel function that raises fails the run, as in process.
``stop_execution=True`` is Step Functions' ``StopExecution`` instead, heard before a step
starts (one at a time: while its task waits) and as the last returns (stopping nothing
then: committed, noted): the execution is stopped (``ABORTED`` on AWS; moto 5.2.5 ends it
``FAILED``, or, stopped between two states, leaves it ``RUNNING``: the runner waits 5 s,
then reports what moto says; one not yet in a state is stopped again once its first task
came) and nothing is undone: ``halted``, every undo pending, a note naming StopExecution
(``cancelled`` when nothing was done yet, no note).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from ... import schedule
from ..._graph_drive import asking_failed
from ...errors import Cancelled
from ...events import describe
from ...machine import Machine, Phase
from ...operations import Ask, Finished, Op, RunStep, RunUndo, Wait
from ...outcome import Status
from ...schedule import GraphMachine, GraphOp, Ready
from ...verdicts import HALTED_FORWARD as HALTS_FORWARD
from ..heard import Heard
from ..history import Worker, ask, undo
from ..wire import SagaPlan
from .asl import HALTED_AT_PIVOT, HALTED_FORWARD, LEFT, ROLLED_BACK, StepFunctionsError, error_name
from .asl_graph import CANCELLED, COMMITTED, INCOMPLETE, STOPPING, WHAT_NEXT
from .engine import answer_late, refuse_engine_failures
from .matched import cause_of
from .quiet import quiet_stopped_branches
from .stop import END_GRACE

T = TypeVar("T")
Pick = Callable[[tuple[str, ...]], str]


class ExecutionStopped(BaseException):
    """``StopExecution``: Step Functions stopped the execution; nothing more runs there,
    no undo either."""


STOPPED = "StopExecution stopped the execution"
LAST_STOP = "StopExecution came as the last step ran: it ran to its end, the stop stopped nothing"


class TimedOut(StepFunctionsError):
    """The runner's ``timeout`` passed before the execution ended: it is stopped where it
    was (nothing more runs there, nothing is undone); the message says what is left in
    effect, so that nothing done is lost from sight."""

    @classmethod
    def of(cls, timeout: float | None, worker: Worker) -> TimedOut:
        return cls(f"the execution did not end within {timeout:g} s: it is stopped where it "
                   f"was; {worker.in_effect()}")  # fmt: skip

    def __repr__(self) -> str:  # (a note naming it, a rollback it cut short: its first words)
        return f"{type(self).__name__}({str(self).split(':')[0]!r})"


def end_state(m: Machine) -> str:
    """The end state a finished run goes to (its Fail state's name says how it ended)."""
    status = m.status()
    if status is Status.COMMITTED:
        return COMMITTED
    if status is Status.CANCELLED:
        return CANCELLED
    if status is Status.ROLLED_BACK:
        return ROLLED_BACK
    if status is Status.ROLLBACK_INCOMPLETE:
        return INCOMPLETE
    if m.reason.startswith(HALTS_FORWARD):
        return HALTED_FORWARD
    return LEFT if m.reason is None else HALTED_AT_PIVOT


class Idle:
    """How long a worker waits before asking again when no task came: 2 ms, doubled each
    time nothing comes, up to 20 ms; 2 ms again once a task came. Each ask is a request (3 ms
    of moto's CPU): every 2 ms through a Retry's interval kept a core busy and slowed moto's
    thread; a longer cap made each step wait longer (50 ms lengthened the runs). After
    ``LONG`` with nothing, the engine waits out a Retry's interval: asked every ``SLOW``.
    ``settled`` (the waits at their longest): only then is the status asked as well (a task
    most often comes within the first few waits: asking each time doubled the requests)."""

    FIRST, MOST, LONG, SLOW = 0.002, 0.02, 0.25, 0.1

    def __init__(self) -> None:
        self.delay, self.waited = self.FIRST, 0.0

    @property
    def settled(self) -> bool:
        return self.delay >= self.MOST

    def wait(self) -> None:
        time.sleep(self.delay)
        self.waited += self.delay
        self.delay = self.SLOW if self.waited >= self.LONG else min(self.delay * 2, self.MOST)

    def reset(self) -> None:
        self.delay, self.waited = self.FIRST, 0.0


class Live:
    """One execution served: its messages, the machine, the worker."""

    def __init__(
        self,
        runner: Any,
        arn: str,
        plan: SagaPlan,
        worker: Worker,
        machine: GraphMachine,
        *,
        pick: Pick | None,
        asked: Callable[[], bool] | None,
        stop_execution: bool,
        deadline: float,
        timeout: float | None = None,
    ) -> None:
        self.runner, self.arn, self.plan, self.worker = runner, arn, plan, worker
        self.m = machine
        machine.told_as_called = True  # (each undo a task handed out: told once called)
        self.pick, self.asked, self.stop_execution = pick, asked, stop_execution
        self.deadline, self.timeout = deadline, timeout
        self.inbox: list[dict[str, Any]] = []  # task messages not yet answered
        self.entered = False  # a task message of this execution came: it is in a state
        self.stopped = False
        self.idle = Idle()
        self.looked = time.monotonic()  # the history last read for a task the engine ended

    # -- messages ---------------------------------------------------------------------------

    def _receive(self) -> None:
        """Take in this run's task messages waiting, answering at once those for a step the
        machine says may not start (past the deadline: stopped, the machine done a moment on)."""
        self._in_time()
        got = self.runner.tasks(self.worker.run_id, 1 if self.runner.where == "aws" else 0)
        for body in got:  # (this run's only: another's are kept for it, ``runner.tasks``)
            self.inbox.append(body)
            self.entered = True
        self._refuse()
        if got:
            self.idle.reset()
        else:
            if self.idle.settled and self._engine_ended() != "RUNNING":
                raise StepFunctionsError("the execution ended while the saga still ran")
            self.idle.wait()

    def _engine_ended(self) -> str:
        """The execution's status, once nothing came for a while; and, once a second (a
        request each: the history grows), whether the engine ended a task itself (failed,
        timed out: no task of it ever comes; attack78 F2): then the run stops there."""
        status = self._status()
        if status != "RUNNING" or time.monotonic() > self.looked + 1:
            self.looked = time.monotonic()
            history = self.runner._history(self.arn)
            refuse_engine_failures(history, self.plan, self.worker, note=status != "RUNNING")
        return status

    def _status(self) -> str:
        return str(self.runner.sfn.describe_execution(executionArn=self.arn)["status"])

    def _refuse(self) -> None:
        """A step's task that may not start now and never will: the run failed, or was
        cancelled, and the step was not launched (``SagaStopping``). Once StopExecution
        stopped the execution, nothing of it is answered any more. (Rolling: the run failed
        outside a step, as a Ctrl-C an observer raised fails it: ``forward``.)"""
        if not (self.m.failing or self.m.rolling) or self.stopped:
            return
        for body in list(self.inbox):
            if body["call"] != "action":
                continue
            step = self.plan.step_of(body["step"])
            if step in self.m.where and self.m.where[step] in ("running", "waiting"):
                continue  # launched: its outcome is awaited
            self.inbox.remove(body)
            self._fail(body["token"], STOPPING, "the saga machine says it may not start")

    def task(self, call: str, step: str = "") -> str:
        """Wait for the task ``call`` of ``step`` (its token)."""
        return str(self._take(call, step)["token"])

    def _take(self, call: str, step: str = "") -> dict[str, Any]:
        """Wait for the task ``call`` of ``step`` (its message, out of the inbox), each read
        in time (attack184 F2: a branch's, come with its sibling's, was taken past it)."""
        while True:
            self._in_time()
            for body in self.inbox:
                key = body.get("step", "")
                if body["call"] == call and (not step or self.plan.step_of(key) == step):
                    self.inbox.remove(body)
                    return body
            self._receive()

    def _in_time(self) -> None:
        if time.monotonic() > self.deadline + (END_GRACE if self.m.phase is Phase.DONE else 0):
            raise TimedOut.of(self.timeout, self.worker)

    def _ok(self, token: str, output: dict[str, Any]) -> None:  # (one timed out: let go)
        answer_late(self.runner.sfn.send_task_success, taskToken=token, output=json.dumps(output))

    def _fail(self, token: str, error: str, cause: str) -> None:
        sent = {"error": error_name(error), "cause": cause}  # (as Retry names it)
        answer_late(self.runner.sfn.send_task_failure, taskToken=token, **sent)

    # -- forward ----------------------------------------------------------------------------

    def _cancel(self, last: bool = False) -> GraphOp | Op | None:
        """Tell the machine if the caller asked to stop (once); a cancel function that
        raises fails the run with its error, as in process (``_graph_drive``). ``last``:
        StopExecution's, asked as the last step returns (no step starts after it): a stop
        then stops nothing, the run commits, noted so, as DBOS's (attack153 F1)."""
        m = self.m
        if self.asked is None or m.cancelled or self.stopped:
            return None
        try:
            try:
                if not self.asked():
                    return None
            except Exception as exc:  # its repr first: a Ctrl-C it raises is one raised here
                describe(exc)
                return asking_failed(m, exc)
        except BaseException as exc:  # a Ctrl-C: the run fails there, as in process (the step
            self.worker.interrupt = self.worker.interrupt or exc  # that returned is done:
            return m.broken(exc, asked=True)  # undone), then it is raised (attack37 F4)
        if self.stop_execution and last:
            m.notes = [*m.notes, LAST_STOP]
            return None
        if self.stop_execution:
            return self._stop()
        return schedule.cancel(m, Cancelled.by_caller())

    def _last(self) -> None:
        """StopExecution's ask as a step returns: only the last (``_cancel``'s ``last``)."""
        if len(self.m.where) == len(self.m.definition) and len(self.m.busy) == 1:
            self._cancel(last=True)

    def _stop(self) -> Op:
        """``StopExecution``: Step Functions stops, nothing undone (every undo pending)."""
        self.stopped = True
        quiet_stopped_branches()  # (moto's branches dying on it: off stderr, attack99 F5)
        stop = partial(self.runner.sfn.stop_execution, executionArn=self.arn, error="Stopped",
                       cause=STOPPED)  # fmt: skip
        try:
            stop()
        except Exception:  # moto 5.2.5 cannot stop an execution whose interpreter has not
            # yet entered a state (AttributeError; AWS can): again once its first task came
            if self.entered:
                raise
            while not self.inbox:
                self._receive()
            stop()
        exc = ExecutionStopped(STOPPED)
        m = self.m
        if m.started:
            m.cut(exc, "before any undo ran (StopExecution)")
        else:  # (cancelled, as in process; no rollback cut short: attack153 F2)
            m.notes = [*m.notes, f"{STOPPED} before any step began: nothing was done"]
        op: Any = schedule.cancel(m, exc)  # (declined past the pivot: the one rule; said so)
        m.notes = [schedule.STOPPED_PAST if n == schedule.PAST_PIVOT else n for n in m.notes]
        for step in m.busy:  # launched, its task stopped with the execution
            op = m.step_cut(step, exc)
        if op is None:  # past the pivot the machine declines a cancel; the engine stopped
            op = m.fail(exc)  # anyway: the run failed outside a step (a person decides)
        return op  # type: ignore[no-any-return]

    def _undo_failed(self, token: str, made: Any) -> None:
        """A failed undo attempt answered: by its error (its Retry hands it out again, as the
        policy retries), or, once the machine ended the rollback there (an observer's
        Ctrl-C as it was told), ``SagaStopping``: never retried, the execution goes on to
        ``What next``, which the machine answers (attack37 F7), as one whose work runs on."""
        assert made.error is not None
        if self.m.interruption is not None:
            made.cut = True  # (the execution took no answer of it: ``answered``)
        self._fail(token, STOPPING if made.final else made.error.name, cause_of(made.error))

    @staticmethod
    def _told(tell: Callable[[], T], answer: Callable[[], object]) -> T:
        """The machine told first (if the answer's request fails, it knows what is in effect),
        then the task answered, also when telling raised (an observer's Ctrl-C, told live):
        the execution never waits on a token nobody answers."""
        try:
            op = tell()
        except BaseException:
            with contextlib.suppress(Exception):  # (the observer's error is the one raised)
                answer()
            raise
        answer()
        return op

    def carry(self, step: str, token: str) -> GraphOp:
        """One launched step: its attempts (the state machine's Retry hands out each),
        told to the machine; the machine's answer once it ended."""
        m = self.m
        while True:
            made = self.worker.task("action", step)
            if made.error is None:  # (it hears the cancel first: ``hear``, below)
                return self._told(partial(m.step_done, step), partial(self._ok, token, {}))
            error, cause = made.error.to_exception(), cause_of(made.error)
            if made.cut:  # a Ctrl-C: failed for good (never retried: answered as stopping);
                cut = partial(m.step_cut, step, error)  # re-raised at the run's end
                return self._told(cut, partial(self._fail, token, STOPPING, cause))
            fail = partial(self._fail, token, STOPPING if made.runs_on else made.error.name, cause)
            op = self._told(partial(m.step_error, step, error), fail)  # (runs on: not retried)
            if type(op) is not Wait:
                return op
            token = self.task("action", step)  # (its Retry's wait over: asked after it, as
            said = self._cancel()  # in process; attack97 F3: asked as the attempt failed, a
            if self.stopped:  # cancel set during the wait missed until the next; stopped:
                return said  # type: ignore[return-value]  # the execution, its task with it)
            op = m.step_resume(step)
            if type(op) is not RunStep:  # (never called: answered so)
                self._fail(token, STOPPING, "the saga machine says it may not start")
                return op

    heard: Heard | None = None  # the run's observers, told live (``runners.heard``)

    def forward(self) -> Op:
        """The steps, as the machine starts them. A Ctrl-C an observer raised as it was told
        an event fails the run there, as in ``saga.run`` (``Heard.failed``): the tasks taken
        and not yet answered are answered SagaStopping (their actions never called)."""
        held: dict[str, str] = {}  # tasks taken whose step was not carried yet: their tokens
        try:
            return self._forward(held)
        except BaseException as exc:
            if self.heard is None:
                raise
            op = self.heard.failed(self.m, exc, tuple(held))  # (any other: raised as it is)
            for token in held.values():
                self._fail(token, STOPPING, "the saga machine says it may not start")
            return op

    def _forward(self, held: dict[str, str]) -> Op:
        m = self.m
        # asked as each step returns, before the run commits (StopExecution: heard before a
        m.hear = self._last if self.stop_execution else self._cancel  # step starts, the last)
        op: Any = self._cancel() or m.start()
        tokens = held
        while type(op) is Ready:  # asked where saga.run asks (``_graph_drive.ASKED_AT``)
            # (heard as a step starts: StopExecution only; ``completion`` asks where
            # saga.run's does, as each step returns: attack47 F4, attack56 F3)
            cut = self._cancel() if self.stop_execution else None
            if cut is not None:
                op = cut
                continue
            if self.pick is None:
                step = m.ready()[0]
                task = self._take("action", step)
                cut = self._cancel() if self.stop_execution else None  # (while its task waited)
                if cut is not None:
                    self.inbox.append(task)  # answered SagaStopping (or, stopped, never)
                    self._refuse()
                    op = cut
                    continue
                tokens[step] = str(task["token"])
                m.launch(step)
                op = self.carry(step, tokens.pop(step))
                continue
            for step in m.ready():
                tokens[step] = self.task("action", step)
                m.launch(step)
            step = self.pick(tuple(tokens))
            op = self.carry(step, tokens.pop(step))
        return op  # type: ignore[no-any-return]

    # -- what next --------------------------------------------------------------------------

    def run(self) -> None:
        """Serve the execution to its end: forward, then each ``What next``. Whatever stops
        it in the rollback (a Ctrl-C as the worker waits or in an undo, the timeout, a request
        that fails) ends the rollback there, as in process: what is not undone is pending;
        an undo handed out and never called is never told (``told_as_called``)."""
        try:
            op = self.forward()
            if self.stopped:
                if not isinstance(op, Finished):
                    op = self.m.interrupted(ExecutionStopped(STOPPED))
                return
            self._what_next(op)
        except BaseException as exc:
            taken = self.worker.calls[self.asking :] if self.asking is not None else []
            if taken and self.m.phase is Phase.ASK:  # (as a person's answer was taken: heard,
                self.m.answer(taken[0].answer or "leave")  # as the list form's replay hears
            if self.m.rolling and self.m.phase is not Phase.DONE:  # it: attack161 F1)
                self.m.interrupted(exc)
            raise

    asking: int | None = None  # the worker's calls before a person's answer is taken

    def _what_next(self, op: Any) -> None:
        while True:
            token = self.task("next")
            if isinstance(op, Finished):
                self._ok(token, {"go": end_state(self.m)})
                return
            if type(op) is RunUndo:
                step = op.step
                self._ok(token, {"go": undo(self.plan.key(step))})
                token, timeout = self.task("undo", step), op.timeout
                while True:
                    op = self.m.undo_begins()  # told as its call begins (none, if cut there)
                    if op is not None:  # ended there (an observer's Ctrl-C at its event):
                        self._fail(token, STOPPING, "the rollback ended")  # never called
                        break
                    made = self.worker.task("undo", step, timeout)
                    if made.error is None:  # (the machine told first, as in ``carry``)
                        op = self._told(self.m.undo_ok, partial(self._ok, token, {}))
                        break
                    told = partial(self.m.undo_failed, made.error.to_exception())
                    op = self._told(told, partial(self._undo_failed, token, made))
                    if type(op) is not Wait:
                        break
                    token = self.task("undo", step)  # its Retry's wait, then handed out again
                    op = self.m.resume()  # (a Ctrl-C in the wait: no attempt begun, 146 F1)
                    if type(op) is not RunUndo:  # (cut short meanwhile: never called)
                        self._fail(token, STOPPING, "the rollback ended")
                        break
                continue
            if type(op) is Ask:
                step = op.steps[0]
                self._ok(token, {"go": ask(self.plan.key(step))})
                token, self.asking = self.task("ask", step), len(self.worker.calls)
                said = self.worker.task("ask", step).answer or "leave"  # (told first, as
                op = self._told(
                    partial(self.m.answer, said),  # the list form's replay hears
                    partial(self._ok, token, {"answer": said}),
                )  # it: 151 F4)
                self.asking = None
                continue
            raise StepFunctionsError(f"the saga machine answered {op!r}")  # pragma: no cover


__all__ = ["WHAT_NEXT", "ExecutionStopped", "Idle", "Live", "TimedOut", "end_state"]
