"""The saga as a DBOS workflow driving the saga machine, each step and undo a ``@DBOS.step``.

DBOS checkpoints each step's output in its system database (SQLite here); a process that
dies is relaunched, and DBOS runs the workflow function again, handing back the outputs it
checkpointed: the machine is told the same story and goes on where the process died. An
undo attempt that ran but was not checkpointed runs again (undos must be idempotent); an
action never does: its intent is saved first (``began``), and one a process that died
started is in doubt, cut short for the machine (its undo run if logged before, else
leaked), as ``recover`` does. The machine decides everything (retries, dead letters, a
halt, the status, the events); a wait is ``DBOS.sleep`` (durable), a person answers with
``DBOS.send`` to the question's topic (``_ask``), and the workflow says which it took.

A saga with parallel groups is ``graph.graph_workflow``: the graph machine decides which
steps may start, what a failure or a cancel stops, and the undo order. Its branches run one
after the other, in definition order, as ``saga.run`` runs them (or in the timing
``completion`` plays), or, ``at_once``, at the same time: each attempt a child workflow
telling the saga's workflow when it ended (``DBOS.send``); ``DBOS.recv`` saves the order
they finished in, which decides the undo order, so a relaunch tells the machine the same
story. A cancel token is asked as a
``@DBOS.step`` (its answer checkpointed) where ``saga.run`` asks it: compensated,
``cancelled``. ``DBOS.cancel_workflow`` is DBOS's own stop: the workflow ends at its next
step, nothing undone (Step Functions' ``StopExecution``): halted, undos pending (``stops``).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from dbos import DBOS, StepOptions
from dbos._context import get_local_dbos_context
from dbos._error import DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError

from ..._drive import asks_cancel
from ...errors import RollbackLessonsError, interrupts
from ...events import describe
from ...faults import Fault
from ...machine import Machine
from ...operations import ANSWERS, CANCELLED_ASKING, Ask, Finished, Op, RunStep, RunUndo, Wait
from ...policies import UndoPolicy
from .. import hosted, remote
from ..wire import ErrorRecord, SagaPlan, record_data
from . import asking, bounded, lifetime, stops, waits
from .hosting import _saga

Faults = dict[str, tuple[str | None, str | None]]
"""(action fault, undo fault) by step, as names."""


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
    stops.CALLED.step = step  # (a stop from here on may come after its effect)
    if intent is not None and intent != LAUNCH:
        died = EndNotSaved(f"the process running {step} died (or closed its runner) before "
                           "its end was saved; it may have happened")  # fmt: skip
        _hold(hold)
        return {**bounded.saved(ErrorRecord.of(died, step, run_id)), LOST: True}
    with waits.doing(f"{step}'s action"):
        saga, state = _saga(run_id, name)
        try:
            error = remote.run_action(saga, step, state, _fault(fault), remote.kept(run_id))
        except BaseException as exc:  # (an Exception is data already): a Ctrl-C, sys.exit
            error = hosted.interrupted(run_id, exc, step)  # cut it short: in doubt (LOST)
    _hold(hold)  # (``hold``: a branch at once, its end in order: ``FINISHING``)
    cut = {LOST: True} if error is not None and interrupts(error.to_exception()) else {}
    said = {**bounded.saved(error), **cut} if error is not None else None
    if run_id in waits.LIVE:  # (a stop now: its end is known; an at_once branch ending
        stops.RETURNED.setdefault(run_id, {})[step] = said  # after its saga: none kept)
    return said


LOST = asking.LOST
"""An action's answer marked so, in doubt: its end never saved, or cut short (a Ctrl-C)."""


STARTING: list[Callable[[str], None]] = []
"""Told each step's name as its attempt begins, before its intent is saved (crashlab's
checkpoint between two steps: a process killed there has nothing in doubt)."""


def attempt(
    run_id: str, name: str, step: str, fault: str | None, hold: str | None = None
) -> dict[str, Any] | None:
    """One attempt of ``step``'s action: its intent saved first, then the action."""
    for told in STARTING:
        told(step)
    _saga(run_id, name)  # (hosted before its intent is saved: a wait cut here leaves none)
    with stops.beginning(run_id, step):  # (DBOS's stop before the action is called: ``NotBegun``;
        if (intent := began(step)) != LAUNCH:  # saved by a launch that died, its action may
            stops.CALLED.step = step  # have run there: a stop leaves it in doubt, 166 F2)
        return run_action(run_id, name, step, fault, intent, hold)


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
    with waits.doing(f"{step}'s undo"):
        saga, state = _saga(run_id, name)
        try:
            error = remote.run_undo(saga, step, state, _fault(fault), attempt, run_id, timeout,
                                    remote.kept(run_id))  # fmt: skip
        except BaseException as exc:  # a Ctrl-C, sys.exit: the rollback ends there
            return bounded.saved(hosted.interrupted(run_id, exc, step))
    said = bounded.saved(error) if error is not None else None
    if run_id in waits.LIVE:  # (a stop now: its end is known, as an action's: attack157 F1)
        stops.UNDID[run_id] = (step, attempt, said)
    return said


def _backoff(m: Machine) -> str:
    """What a wait of the machine's is for, in a few words (``waits``)."""
    if m.rolling and m.entry is not None:
        return f"the backoff before {m.entry.step}'s undo is tried again"
    return f"the backoff before {m.current}'s action is tried again"


_error = asking.error_of


def taken(number: int) -> str:
    """The event naming the answer question ``number`` took (its ``id``; "" for none)."""
    return f"taken-{number}"


def _ask(steps: tuple[str, ...], wait: float | None, number: int, run_id: str) -> str:
    """A person answers question ``n`` (the n-th this saga asks, shown with the undos at
    stake as the event ``pending``) by ``DBOS.send(run_id, {"step", "answer", "id"},
    "answer-<n>")`` within ``wait`` seconds; no answer in time is "leave". Each question
    has a topic of its own: a message queued for another (a double click, an answer before
    the question) never answers this one; one that does not name this undo is ignored. Only
    the first answer is taken, and the event ``taken-<n>`` says which (its ``id``; "" when
    none was): each sender learns whether it was its own (``DBOSHandle.resolve``), so a
    second answer is refused, never dropped. A cancel of the run ends the wait (``Unwaited``:
    no answer taken, and why): ``_watching`` tells the topic when the run's cancel token says
    so, or raises, and that answer is saved (``heard_cancel``) before it counts, so a
    relaunch hears the same."""
    DBOS.set_event("pending", {"number": number, "undos": list(steps)})
    what = f"a person to answer question {number} (about {steps[0]}'s undo)"
    deadline = _now() + (wait if wait is not None else 10**9)
    said, took = None, ""
    cut: bool | dict[str, Any] = False
    with _watching(run_id, f"answer-{number}"):
        while said is None and (left := deadline - _now()) > 0:
            with waits.waiting(f"answer-{number}", what):
                told = DBOS.recv(f"answer-{number}", timeout_seconds=left)
            if told is None:
                break
            if waits.stopping(told, what):  # (a close's: it waits on, here, what is left)
                continue
            if told == CANCEL_MESSAGE:  # (sent by anyone: the token's saved answer decides)
                said_cancel = heard_cancel(run_id)
                if said_cancel is not False:
                    cut = said_cancel
                    break
                continue
            ours = isinstance(told, dict) and told.get("step") == steps[0]
            if ours and told.get("answer") in ANSWERS:
                said, took = str(told["answer"]), str(told.get("id", ""))
    DBOS.set_event("pending", {})  # cleared before a sender hears it was taken (attack46 F3:
    DBOS.set_event(taken(number), took)  # pending() right after resolve gave it again)
    if isinstance(cut, dict):  # the token raised: the run fails with its error (no wait)
        return Unwaited(f"its cancel function raised {describe(_error(cut))}")
    return Unwaited(CANCELLED_ASKING) if cut else said or "leave"


class Unwaited(str):
    """No answer taken: why a person is no longer waited for (``Machine.not_waited``)."""


CANCEL_MESSAGE = {"cancel": True}
"""Sent to the question's topic when the run's cancel token says so (``_watching``)."""

WATCH = 0.02
"""How often (s) the cancel token of a run waiting for a person is asked, in memory."""


@contextlib.contextmanager
def _watching(run_id: str, topic: str) -> Iterator[None]:
    """While a person is waited for, ask the run's cancel token (kept by the process that
    started it: a relaunch has none) in a thread of its own, and tell the question's topic
    once it says so, or raises (the README's rule: a cancel function that raises fails the
    run with its error). What it heard is kept (``HEARD``) until the workflow saves it
    (``heard_cancel``): a True heard once counts, and the token is asked no more."""
    asked = CANCELS.get(run_id)
    if asked is None:
        yield
        return
    over = threading.Event()

    def watch() -> None:
        while not over.is_set():
            said: bool | dict[str, Any]
            try:
                said = bool(asked())
            except Exception as exc:
                said = bounded.saved(ErrorRecord.of(exc, None, run_id))
            if said is not False and not over.is_set():
                HEARD[run_id] = said
                with contextlib.suppress(Exception):  # (DBOS closed meanwhile: nobody waits)
                    DBOS.send(run_id, CANCEL_MESSAGE, topic)
                return
            over.wait(WATCH)

    threading.Thread(target=watch, name=f"cancel-watch-{run_id}", daemon=True).start()
    try:
        yield
    finally:
        over.set()  # (not joined: a token that blocks must not hold the saga; a late
        # message goes to this question's topic, which nothing reads again)


@DBOS.step(name="rollback_lessons.now")
def _now() -> float:
    """The time, saved (a relaunch waits only what is left)."""
    return time.time()


@DBOS.workflow(name="rollback_lessons.saga")
def saga_workflow(
    plan: SagaPlan,
    policy: UndoPolicy | None,
    faults: dict[str, tuple[str | None, str | None]],
    cancellable: bool = False,
) -> dict[str, Any]:
    """Drive the machine for ``plan`` (a list of steps); its record, as data. ``faults``:
    (action, undo) by step, as names, so that a relaunched process injects them too.
    ``cancellable``: the caller's cancel token is asked where ``saga.run`` asks a list's
    (``_drive``: before the start, after each step done, after each wait)."""
    m = Machine(
        policy if policy is not None else plan.undo_policy(),  # (hosting.picklable)
        plan=plan.specs(), undo_order=plan.undo_order, name=plan.name,
        run_id=plan.run_id,
    )  # fmt: skip
    with lifetime.running(plan.run_id, m):  # (what is kept of it goes at its end)
        try:
            op = _heard(m, plan.run_id) if cancellable else None  # asked before the start too
            record = _carry_out(m, op or m.start(), plan, faults, cancellable).record
        except (DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError) as exc:
            stops.stopped(plan.run_id, exc, partial(stops.list_stopped, m))  # (as a graph's)
            raise
        return stops.ended(plan.run_id, record_data(record))  # (a cancel there: it ended)


def _heard(m: Machine, run_id: str) -> Op | None:
    """Ask the caller's cancel token (``_drive.Run.heard``'s rule): the machine's answer if
    the run stops now, else None."""
    return asking.told(m, ask_cancel(run_id))


def _carry_out(
    m: Machine, op: Op, plan: SagaPlan, faults: Faults, cancellable: bool = False
) -> Finished:
    """Carry out the machine's answers to the end: each step (a list's), undo attempt,
    wait and question to a person (``cancellable``: a list's, asking its cancel token)."""
    asked = 0  # the questions asked a person
    while not isinstance(op, Finished):
        if type(op) is RunStep:
            action = faults.get(op.step, (None, None))[0]
            error = attempt(plan.run_id, plan.name, op.step, action)
            if error is None:  # (a cancel: it stops here, once this step is done)
                late = asking.told_returned(m, ask_cancel(plan.run_id)) if cancellable else None
                op = m.step_ok(go_on=late is None)
                op = op if late is None else m.fail(late)
            elif LOST in error:  # in doubt (its end never saved): cut short, never retried
                op = m.interrupted(_error(error))
            else:
                op = m.step_failed(_error(error))
        elif type(op) is RunUndo:
            undo = faults.get(op.step, (None, None))[1]
            error = run_undo(plan.run_id, plan.name, op.step, op.attempt, undo, op.timeout)
            told, _ = (_error(error) if error is not None else None), m.undo_begins()  # (called)
            failed = partial(hosted.undo_failed, m, plan.run_id, op.step)  # (its decide: F11)
            then = m.interrupted if told is not None and interrupts(told) else failed
            op = m.undo_ok() if told is None else then(told)  # (a Ctrl-C: it ends there)
        elif type(op) is Wait:
            waits.sleep(op.seconds, _backoff(m))  # durable: a relaunch sleeps what is left
            cut = _heard(m, plan.run_id) if cancellable and asks_cancel(m) else None
            if cancellable and cut is None and m.rolling:
                _asked_before()  # (an undo's wait: asked there by an earlier version?)
            op = cut if cut is not None else m.resume()
        elif type(op) is Ask:
            said: str | None = "leave"  # no wait (0): halted at once, as in process
            if plan.halt_wait is None or plan.halt_wait > 0:
                said = None  # a cancelled run waits for no one
                if not m.cancelled:
                    asked += 1  # (the same count when a relaunch runs the workflow again)
                    said = _ask(op.steps, plan.halt_wait, asked, plan.run_id)
            if isinstance(said, Unwaited):
                op = m.not_waited(str(said))
            elif said is None:
                op = m.not_waited(CANCELLED_ASKING)
            else:
                op = m.answer(said)
        else:
            raise RuntimeError(f"the machine answered {op!r}, which no plan gives")
    return op


# -- a graph: parallel groups, an undo order of a graph's, a timing, a cancel ---------------

CANCELS: dict[str, Callable[[], bool]] = {}
"""Each run's cancel token (``runner.run(..., cancel=...)``), by run id, in the process that
started it; a relaunched process has none (no cancel is asked there)."""

HEARD: dict[str, bool | dict[str, Any]] = {}
"""What a run's cancel token said while a person was waited for (``_watching``), by run id,
until the workflow saves it (``heard_cancel``)."""


HEARD_STEP = "rollback_lessons.heard"
EARLIER_HEARD = "rollback_lessons.asked"
"""The name under which versions before the heard step (``heard_cancel``) saved a cancel
told to a person's wait: they asked the token again there (``ask_cancel``), saving True or
False. DBOS refuses to replay a step saved under another name than the one the code runs
(``DBOSUnexpectedStepError``, the workflow failed, a person's answer refused), so a saga
such a version left waiting for a person, resumed by this one (an upgrade while it
waited), replays that step under the name it was saved under: its saved answer is one
``heard_cancel`` gives too."""


def heard_cancel(run_id: str) -> bool | dict[str, Any]:
    """A cancel was told to a person's wait: what the token said then (True, or its error
    as data), saved as a DBOS step, so that a relaunch hears the same; told by anyone else
    (no such answer here), the token is asked now. Saved under ``HEARD_STEP``, or replayed
    under ``EARLIER_HEARD`` when an earlier version saved it so (``saved_name``)."""
    slot = DBOS.reserve_step()
    name = EARLIER_HEARD if saved_name(slot.step_id) == EARLIER_HEARD else HEARD_STEP
    return slot.run(StepOptions(name=name), _heard_now, run_id)


def _heard_now(run_id: str) -> bool | dict[str, Any]:
    if run_id in HEARD:
        return HEARD.pop(run_id)
    return _token(run_id)


def _asked_before() -> None:
    """An undo's wait to retry: versions before the rule that a cancel is asked only going
    forward (``asks_cancel``) asked the token there too, saved as a step ``EARLIER_HEARD``
    (its answer changed nothing). A saga such a version left in that wait (an upgrade)
    replays the step it saved, never refused (``DBOSUnexpectedStepError``: the saga
    stranded, its undos pending); this version saves none."""
    ctx = get_local_dbos_context()
    if ctx is not None and saved_name(ctx.function_id + 1) == EARLIER_HEARD:
        ask_cancel(str(ctx.workflow_id))  # (replayed: its saved answer, never asked again)


def saved_name(step_id: int) -> str | None:
    """The name of the step this workflow saved at ``step_id`` (None: not saved: it runs
    now). Read in a thread of its own, outside the workflow's context, so that reading is
    not itself saved as a step (which would shift every step after it)."""
    workflow_id, found = DBOS.workflow_id, []
    assert workflow_id is not None
    reader = threading.Thread(
        target=lambda: found.extend(DBOS.list_workflow_steps(workflow_id, load_output=False)),
        name=f"saved-steps-{workflow_id}",
    )
    reader.start()
    reader.join()
    return next((s["function_name"] for s in found if s["function_id"] == step_id), None)


@DBOS.step(name="rollback_lessons.asked")
def ask_cancel(run_id: str) -> bool | dict[str, Any]:
    """Has the run's caller asked it to stop? Its cancel token's answer, checkpointed, so a
    relaunch hears the same story; a token that raises: its error, as data."""
    return _token(run_id)


def _token(run_id: str) -> bool | dict[str, Any]:
    asked = CANCELS.get(run_id)
    if asked is None:
        return False
    try:
        return bool(asked())
    except Exception as exc:
        return bounded.saved(ErrorRecord.of(exc, None, run_id))
    except BaseException as exc:  # a Ctrl-C: saved too (``asking``), re-raised at the end
        return bounded.saved(hosted.interrupted(run_id, exc, ""))
