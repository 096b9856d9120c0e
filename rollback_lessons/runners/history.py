"""A saga run by an engine that keeps its own history (Step Functions, SpiffWorkflow), told
by this package: the worker that does each task in this process (recording every call), and
``walk``, which drives the saga machine with what the history shows. The machine decides
what should come next; where the engine did something else, ``HistoryDiverged`` says so.
The record, its events included, is the machine's, as in process."""

from __future__ import annotations

import contextlib
import decimal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import RollbackLessonsError, goes_on
from ..faults import NO_FAULTS, StepFaults
from ..machine import Machine
from ..operations import Ask, Finished, Op, RunStep, RunUndo, Wait
from ..outcome import Outcome, RunRecord
from ..policies import UnsupportedPolicy
from ..saga import Saga, State
from . import remote
from .error_record import when_over
from .wire import ErrorRecord, SagaPlan


class HistoryDiverged(RollbackLessonsError):
    """The engine ran something the saga's rules would not have run."""


def do(step: str) -> str:
    return f"Do {step}"


def undo(step: str) -> str:
    return f"Undo {step}"


def ask(step: str) -> str:
    return f"Ask a person about {step}"


@dataclass
class Call:
    """One task the worker answered: which call, its attempt, and how it ended."""

    call: str
    step: str
    attempt: int
    error: ErrorRecord | None = None
    answer: str | None = None
    cut: bool = False  # a BaseException (Ctrl-C, sys.exit) cut the call short
    runs_on: bool = False  # its work may still run (``errors.goes_on``): never called again

    @property
    def final(self) -> bool:
        """Never called again in this run: an engine that hands the task out again (its
        Retry) is answered the same, the call not made (``Worker.task``, ``walk``)."""
        return self.cut or self.runs_on


@dataclass
class Visit:
    """A task state the engine entered, how many times it ran its task there."""

    state: str
    tries: int = 0
    succeeded: bool = False


@dataclass
class Worker:
    """Does the tasks an engine hands out, with the saga's own callables on ``state`` and
    the run's injected faults; each call is recorded, in order. A person's answers to a halt
    are given in turn ("leave" when none are left).

    A BaseException (Ctrl-C, ``sys.exit``) raised by an action is, as in ``saga.run``, that
    step's failure for good (cut short: it may have happened, never tried again; an engine
    that hands its task out again is answered the same, the action not called): the engine
    rolls back, and the runner re-raises it once the run is over (``interrupt``)."""

    run_id: str
    saga: Saga
    state: State
    faults: dict[str, StepFaults]
    answers: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    interrupt: BaseException | None = None  # the first action a BaseException cut short
    plan: SagaPlan | None = None  # the list form's plan (``in_effect`` replays the calls)
    machine: Machine | None = None  # the graph form's live machine (``in_effect`` asks it)
    matched: Callable[[str, BaseException, str, str], ErrorRecord] | None = None  # (call,
    # error, step, run): a failure as the engine's retry rule must see it (``matched``)
    stop: BaseException | None = None  # what stopped the list form's execution (``replay``)
    heard: Any = None  # the graph form's observers (a Ctrl-C one raised: raised over a stop)
    over: tuple[Any, str] | None = None
    """Set (``heard``, what to say first) as the engine's run ends: a Ctrl-C from then on,
    to ``runner.run``'s return (``keeping``), says what the run left (``say_over``)."""

    def __post_init__(self) -> None:
        when_over(self.say_over)

    def say_over(self, exc: BaseException) -> None:
        """Once the run ended, a Ctrl-C (``sys.exit``) that says nothing yet is noted with
        what is done and not undone; not one the run raises again as ``saga.run`` would
        (an action's, ``interrupt``; a callback's, ``heard``'s)."""
        if self.over is None:
            return
        heard, said = self.over
        again = (self.interrupt, *(getattr(heard, k, None) for k in ("raised", "raise_after")))
        quiet = not getattr(exc, "__notes__", None)  # (one that says nothing yet)
        if exc not in again and not isinstance(exc, Exception) and quiet:
            with contextlib.suppress(Exception):  # (an error that refuses notes)
                exc.add_note(f"{said}; {self.in_effect()}")

    def task(self, call: str, step: str, timeout: float | str | None = None) -> Call:
        """Do one task; an undo attempt past ``timeout`` seconds failed, as in process (a
        text: ``written_seconds``'s)."""
        seconds = float(timeout) if isinstance(timeout, str) else timeout
        if call == "ask":
            made = Call("ask", step, 0, answer=self.answers.pop(0) if self.answers else "leave")
        else:
            attempt = 1 + sum(1 for c in self.calls if (c.call, c.step) == (call, step))
            faults = self.faults.get(step, NO_FAULTS)
            final = next((c for c in self.calls if c.final and (c.call, c.step) == (call, step)),
                         None)  # fmt: skip
            if final is not None:  # failed for good: an engine's Retry is not an attempt (a
                return final  # list form's Retry ran the work handed back three times at once)
            if call == "action":
                try:
                    error = remote.run_action(
                        self.saga, step, self.state, faults.action, self._record(call)
                    )
                except BaseException as exc:  # (an Exception is run_action's: data)
                    self.interrupt = self.interrupt or exc
                    made = Call(call, step, attempt, ErrorRecord.of(exc, step, self.run_id),
                                cut=True)  # fmt: skip
                    self.calls.append(made)
                    return made
            else:
                try:
                    error = remote.run_undo(
                        self.saga, step, self.state, faults.undo, attempt, self.run_id,
                        seconds, self._record(call),
                    )  # fmt: skip
                except BaseException as exc:  # the rollback ends there, as in process: the
                    said = ErrorRecord.of(exc, step, self.run_id)  # runner stops the run
                    self.calls.append(Call(call, step, attempt, said, cut=True))
                    raise
            runs_on = error is not None and goes_on(error.to_exception()) is not None
            made = Call(call, step, attempt, error, runs_on=runs_on)
        self.calls.append(made)
        return made

    def _record(self, call: str) -> remote.Record:
        matched = self.matched
        if matched is None:
            return remote.kept(self.run_id)
        return lambda error, step: matched(call, error, step, self.run_id)

    def cut_notes(self) -> list[str]:
        """Where an undo's Ctrl-C ended the rollback, the notes ``saga.run`` gives it (each
        dead letter, each step no undo covers, the interruption: attack142 F1, attack143 F2,
        F3: one joined note, the dead letter and the leaked step dropped); else none."""
        from ..verdicts import rollback_notes

        try:
            m = self.machine if self.machine is not None else self._replayed(list(self.calls))
        except Exception:  # (a record the machine refuses: ``in_effect`` says it)
            return []
        if m is None or not m.cut_note:
            return []
        leaked = [s for s in m.leaked if s not in m.compensated]
        return rollback_notes(m.dead_letters, m.pending, leaked, m.notes, cut=True)

    def stopped(self, head: str) -> list[str]:
        """The notes of an error that stopped the run (``head``: how the engine stopped):
        what is in effect, or, where an undo's Ctrl-C ended the rollback, ``cut_notes``."""
        said = self.cut_notes()
        return [head, *said] if said else [f"{head}; {self.in_effect()}"]

    def in_effect(self) -> str:
        """What this worker did that is still in effect, for an error that stops the run
        midway: the saga machine says (``Machine.in_effect``), the live one a graph form
        drives (``machine``) or, for a list form (``plan``), one told the calls made so far.
        Calls it cannot place (a state machine wired by hand strayed) are named as well."""
        done: tuple[str, ...] = ()
        doubt: tuple[str, ...] = ()
        left = list(self.calls)
        try:
            m = self.machine if self.machine is not None else self._replayed(left)
            if m is not None and m.cut_note:  # an undo's Ctrl-C ended the rollback: what
                return m.cut_note  # the machine says of it, as in process (``cut_notes``)
            if m is not None:
                done, doubt = m.in_effect()
        except Exception:  # (a record the machine refuses: every call is placed below)
            done, doubt, left = (), (), list(self.calls)
        if self.machine is not None:
            left = []
        undone = {c.step for c in self.calls if c.call == "undo" and c.error is None}
        unplaced = {c.step for c in left if c.call == "undo" and c.error is None}
        done = tuple(s for s in done if s not in unplaced)  # (the engine undid it on its own:
        doubt = tuple(s for s in doubt if s not in unplaced)  # a task it failed, attack78 F3)
        for c in left:  # (not placed by the machine: whatever may have had its effect)
            if c.call == "action" and c.step not in undone:
                if c.error is None and c.step not in done:
                    done += (c.step,)
                elif c.error is not None and c.step not in doubt + done:
                    doubt += (c.step,)
        said = f"done, not undone: {', '.join(done)}" if done else "nothing done is left in effect"
        if doubt:
            said += f"; may have happened, not undone: {', '.join(doubt)}"
        return said

    def _replayed(self, calls: list[Call]) -> Machine | None:
        return replay(self.plan, calls, self.stop)

    def tell_cut(self, lines: list[str]) -> None:
        """The list form's execution was stopped (an undo's Ctrl-C, a stop as it waited:
        going forward or to retry an undo): its observers hear the run's events as far as it
        went (the machine replays the calls), as a graph form's live machine told them as
        they came (attack148 F2), never a step's start it asked for and never began (150
        F1). A Ctrl-C in a callback stops the telling and is raised with the stop's
        ``lines``: what is done and not undone (150 F2: "committed, nothing to undo")."""
        from ..events import EventKind
        from .heard import Heard

        heard = Heard(self.saga)
        m = self._replayed(list(self.calls)) if self.machine is None and heard.wanted else None
        if m is None:
            return
        events, began = list(m.record().events), {c.step for c in self.calls}
        if events and events[-1].kind is EventKind.STEP_START and events[-1].step not in began:
            events.pop()
        try:
            for event in events:
                heard.event(event)
        except BaseException as exc:
            noted((exc,), lines)
            raise

    def reraise(self, outcome: Outcome) -> None:
        """The run is over: the BaseException that cut an action short is raised again, as
        ``saga.run`` does once what was done is undone; its notes say what the rollback left."""
        remote.reraise(self.interrupt, outcome)


@contextlib.contextmanager
def over_noted(worker: Worker, heard: Any = None, said: str = "") -> Iterator[None]:
    """Once the engine's run ended (read back, walked, made an Outcome, told, returned): a
    Ctrl-C (``sys.exit``) here that says nothing yet leaves with a note, ``said`` then what
    is done and not undone (attack51 F4: a bare KeyboardInterrupt, a dead-lettered undo's
    effect, standing, named nowhere; ``Worker.say_over``). A runner that knows the run's end
    sooner sets ``worker.over`` there (attack54 F3: a Ctrl-C at this call's entry)."""
    worker.over = (heard, said)
    try:
        yield
    except BaseException as exc:
        worker.say_over(exc)
        raise


def replay(
    plan: SagaPlan | None, calls: list[Call], stop: BaseException | None = None
) -> Machine | None:
    """A saga machine told the worker's ``calls`` in the order the machine asks for them, as
    far as they go (a run stopped midway); the calls it took are removed from ``calls``. A
    step asked for and never called is withdrawn (an undo logged before it is not owed).
    ``stop`` stopped the execution: where the rollback waited to retry an undo never called
    again (attack146 F2), or for an undo or a person never called, it ended the rollback
    there, as in process; an undo never called is never told."""
    if plan is None:
        return None
    m = Machine(
        plan.undo_policy(), plan=plan.specs(), undo_order=plan.undo_order, name=plan.name,
        run_id=plan.run_id,
    )  # fmt: skip
    m.told_as_called = True  # (an undo handed out and never called: never told)

    def take(call: str, step: str) -> Call | None:
        made = next((c for c in calls if (c.call, c.step) == (call, step)), None)
        if made is not None:
            calls.remove(made)
        return made

    op: Op = m.start()
    while not isinstance(op, Finished):
        if type(op) is RunStep:
            made = take("action", op.step)
            if made is None:
                m.withdraw(op.step)
                break
            error = made.error
            if made.cut and error is not None:
                op = m.interrupted(error.to_exception())
            else:
                op = m.step_ok() if error is None else m.step_failed(error.to_exception())
        elif type(op) is RunUndo:
            made = take("undo", op.step)
            if made is None:  # (stopped as it was handed out: the rollback ends there)
                op = m.interrupted(stop) if stop is not None else op
                break
            m.undo_begins()
            error = made.error
            if made.cut and error is not None:  # (the rollback ends there: ``Worker.task``)
                op = m.interrupted(error.to_exception())
            else:
                op = m.undo_ok() if error is None else m.undo_failed(error.to_exception())
        elif type(op) is Wait:
            undoing = m.entry.step if m.rolling and m.entry is not None else None
            again = any(c.call == "undo" and c.step == undoing for c in calls)
            if stop is not None and undoing is not None and not again:
                op = m.interrupted(stop)
                break
            op = m.resume()
        elif type(op) is Ask:
            made = take("ask", op.steps[0])
            if made is None:
                op = m.interrupted(stop) if stop is not None else op
                break
            op = m.answer(made.answer or "leave")
        else:
            break
    return m


class _History:
    """The engine's visits and the worker's calls, taken in order as the machine asks."""

    def __init__(self, visits: list[Visit], calls: list[Call]) -> None:
        self.visits, self.calls = list(visits), list(calls)
        self.visit: Visit | None = None
        self.used = 0  # tries of the current visit taken so far

    def enter(self, state: str) -> None:
        """The machine runs ``state``'s task: the engine must be there (the same visit while
        it still has tries: a Retry; a new visit otherwise)."""
        if self.visit is not None and self.visit.state == state and self.used < self.visit.tries:
            return
        self.leave()
        if not self.visits:
            raise HistoryDiverged(f"the engine stopped where the saga runs {state!r} next")
        if self.visits[0].state != state:
            raise HistoryDiverged(
                f"the engine ran {self.visits[0].state!r} where the saga runs {state!r}"
            )
        self.visit, self.used = self.visits.pop(0), 0

    def leave(self) -> None:
        if self.visit is not None and self.used < self.visit.tries:
            raise HistoryDiverged(
                f"the engine tried {self.visit.state!r} {self.visit.tries} times, the saga "
                f"{self.used}"
            )
        self.visit = None

    def call(self, call: str, step: str) -> Call:
        self.used += 1
        for n, made in enumerate(self.calls):
            if (made.call, made.step) == (call, step):
                return self.calls.pop(n)
        raise HistoryDiverged(f"the history has a {call} of {step} the worker never answered")

    def end(self) -> None:
        self.leave()
        if self.visits:
            raise HistoryDiverged(
                f"the engine ran {self.visits[0].state!r} after the saga's run was over"
            )


def walk(plan: SagaPlan, visits: list[Visit], calls: list[Call]) -> RunRecord:
    """Drive the saga machine with what the engine's history shows (its task states visited,
    in order, and the worker's calls): the machine's record, or ``HistoryDiverged``. A plan
    whose policy decides in Python is refused: no engine with a history of its own ran it."""
    if plan.policy.in_code:
        raise UnsupportedPolicy(
            "an engine that keeps its own history ran this saga; a policy that decides in "
            "Python cannot have been part of it"
        )
    m = Machine(
        plan.undo_policy(), plan=plan.specs(), undo_order=plan.undo_order, name=plan.name,
        run_id=plan.run_id,
    )  # fmt: skip
    history = _History(visits, calls)
    op: Op = m.start()
    while not isinstance(op, Finished):
        if type(op) is RunStep:
            history.enter(do(op.step))
            made = history.call("action", op.step)
            error = made.error
            if made.final:  # failed for good (the engine's retries answered alike)
                history.used = history.visit.tries if history.visit is not None else 0
            assert error is not None or not made.final
            if made.cut and error is not None:  # cut short
                op = m.interrupted(error.to_exception())
            else:
                op = m.step_ok() if error is None else m.step_failed(error.to_exception())
        elif type(op) is RunUndo:
            history.enter(undo(op.step))
            made = history.call("undo", op.step)
            if made.final:  # (its work runs on: the engine's retries answered alike)
                history.used = history.visit.tries if history.visit is not None else 0
            error = made.error
            op = m.undo_ok() if error is None else m.undo_failed(error.to_exception())
        elif type(op) is Wait:
            op = m.resume()  # the engine waited, by its Retry
        elif type(op) is Ask:
            history.enter(ask(op.steps[0]))
            said = history.call("ask", op.steps[0]).answer
            history.leave()
            op = m.answer(said or "leave")
        else:  # a with-block's operations: never in a plan
            raise HistoryDiverged(f"the machine answered {op!r}")
    history.end()
    return op.record


def written_seconds(seconds: float) -> float | str:
    """``seconds`` as a task's message carries it: the number, or, where JSON would write it
    in exponent form (1e-05) that moto's ASL parser refuses, its plain decimal as a text
    (``task`` reads either; attack113 F3: a raw InvalidDefinition, nothing run)."""
    if "e" not in repr(seconds):
        return seconds
    return format(decimal.Decimal(repr(seconds)), "f")


def noted(errors: tuple[BaseException | None, ...], lines: list[str]) -> None:
    """Each of ``lines`` on each of ``errors`` (None: none), once; one refusing notes kept."""
    for error in [e for e in errors if e is not None]:
        for line in lines:
            if line not in getattr(error, "__notes__", ()):
                with contextlib.suppress(Exception):
                    error.add_note(line)
