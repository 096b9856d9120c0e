"""A saga run by a remote engine, told by this package: the worker that does each task in
this process (recording every call), and ``Replay``, which walks the saga's own rules over
what the engine ran and tells it as ``saga.run`` does, or says where the engine strayed.
Step Functions and the BPMN engine both use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import remote
from ..errors import RollbackLessonsError
from ..events import EventKind
from ..faults import NO_FAULTS, Fault, StepFaults
from ..rules import (
    IRREVERSIBLE,
    DeadLetterRecord,
    ErrorRecord,
    Kind,
    RunRecord,
    SagaPlan,
    halts_forward,
    status_of,
)
from ..saga import Saga, State


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


@dataclass
class Visit:
    state: str
    tries: int = 0
    succeeded: bool = False


@dataclass
class Worker:
    """Does the tasks a remote engine hands out, with the saga's own callables on ``state``
    and the run's injected faults; each call is recorded, in order. A person's answers to a
    halt are given in turn ("leave" when none are left)."""

    run_id: str
    saga: Saga
    state: State
    faults: dict[str, StepFaults]
    answers: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def task(self, call: str, step: str) -> Call:
        if call == "ask":
            made = Call("ask", step, 0, answer=self.answers.pop(0) if self.answers else "leave")
        else:
            attempt = 1 + sum(1 for c in self.calls if (c.call, c.step) == (call, step))
            faults = self.faults.get(step, NO_FAULTS)
            if call == "action":
                error = remote.run_action(self.saga, step, self.state, faults.action)
            else:
                error = remote.run_undo(
                    self.saga, step, self.state, faults.undo, attempt, self.run_id
                )
            made = Call(call, step, attempt, error)
        self.calls.append(made)
        return made


class Replay:
    """Walk the saga's rules over what a remote engine did (its task states visited, in
    order, and the worker's calls), and tell it as the engine does: the same events."""

    def __init__(self, plan: SagaPlan, visits: list[Visit], calls: list[Call]) -> None:
        self.plan, self.visits, self.calls = plan, list(visits), list(calls)
        self.events: list[list[Any]] = []

    def emit(self, kind: EventKind, step: str | None = None, **details: Any) -> None:
        self.events.append([len(self.events) + 1, kind, step, details])

    def visit(self, state: str) -> Visit:
        if not self.visits:
            raise HistoryDiverged(f"the engine stopped where the saga runs {state!r} next")
        if self.visits[0].state != state:
            seen = self.visits[0].state
            raise HistoryDiverged(f"the engine ran {seen!r} where the saga runs {state!r}")
        return self.visits.pop(0)

    def call(self, call: str, step: str) -> Call:
        for n, made in enumerate(self.calls):
            if (made.call, made.step) == (call, step):
                return self.calls.pop(n)
        raise HistoryDiverged(f"the history has a {call} of {step} the worker never answered")

    def run(self) -> RunRecord:
        plan = self.plan
        logged: list[str] = []
        completed: list[str] = []
        leaked: list[str] = []
        kinds = {s.name: s.kind for s in plan.steps}
        failed: tuple[str, ErrorRecord] | None = None
        for step in plan.steps:
            self.emit(
                EventKind.STEP_START, step.name, register=step.register if step.has_undo else "none"
            )
            if step.has_undo and step.register == "before":
                logged.append(step.name)
                self.emit(EventKind.UNDO_REGISTERED, step.name)
            visit = self.visit(do(step.name))
            tries = [self.call("action", step.name) for _ in range(visit.tries)]
            errors = [t.error for t in tries if t.error is not None]
            for attempt, error in enumerate(errors[: len(tries) - 1], start=1):
                assert step.retry is not None  # only a retried step runs twice
                self.emit(
                    EventKind.STEP_RETRY,
                    step.name,
                    attempt=attempt,
                    delay=step.retry.delay(attempt),
                    error=error.describe(),
                )
            if not visit.succeeded:
                error = errors[-1]
                after = error.fault == Fault.FAIL_AFTER_EFFECT
                self.emit(
                    EventKind.STEP_FAILED,
                    step.name,
                    error=error.describe(),
                    **({"after_effect": True} if after else {}),
                )
                if after and step.name not in logged:
                    leaked.append(step.name)
                failed = (step.name, error)
                break
            completed.append(step.name)
            self.emit(EventKind.STEP_DONE, step.name)
            if step.has_undo and step.register == "after":
                logged.append(step.name)
                self.emit(EventKind.UNDO_REGISTERED, step.name)
        if failed is None:
            self.emit(EventKind.COMMITTED, steps=len(completed))
            return RunRecord("committed", completed=completed, events=self.events)
        step_name, error = failed
        self.emit(EventKind.PIPELINE_FAILED, step_name, error=error.describe())
        pivot_done = any(kinds[s] == Kind.PIVOT for s in completed)
        if halts_forward(pivot_done, kinds.get(step_name)):
            self.emit(EventKind.HALTED, step_name, reason="failed after an irreversible step")
            return RunRecord(
                "halted",
                completed=completed,
                pending=[step_name],
                error=error,
                failed_step=step_name,
                events=self.events,
            )
        irreversible = [s for s in completed if kinds[s] in IRREVERSIBLE]
        return self.compensate(logged, completed, leaked + irreversible, step_name, error)

    def compensate(
        self,
        logged: list[str],
        completed: list[str],
        leaked: list[str],
        failed: str,
        failure: ErrorRecord,
    ) -> RunRecord:
        plan = self.plan
        order = list(reversed(logged))
        retry = plan.undo_retry if plan.policy == "retry" else None
        halt = plan.policy == "halt" or (plan.policy == "retry" and plan.then == "halt")
        self.emit(
            EventKind.ROLLBACK_START, undos=len(order), order=plan.undo_order, policy=plan.policy
        )
        compensated: list[str] = []
        dead: list[DeadLetterRecord] = []
        pending: list[str] = []
        index = 0
        while index < len(order):
            step = order[index]
            visit = self.visit(undo(step))
            tries = [self.call("undo", step) for _ in range(visit.tries)]
            for n, made in enumerate(tries):
                self.emit(EventKind.UNDO, step, attempt=made.attempt)
                if made.error is None:
                    break
                last = n == len(tries) - 1
                then = ("halt" if halt else "dead_letter") if last else "retry"
                extra = {"delay": retry.delay(made.attempt)} if not last and retry else {}
                self.emit(
                    EventKind.UNDO_FAILED,
                    step,
                    attempt=made.attempt,
                    error=made.error.describe(),
                    then=then,
                    **extra,
                )
            if visit.succeeded:
                compensated.append(step)
                self.emit(EventKind.UNDO_DONE, step, attempt=tries[-1].attempt)
                index += 1
                continue
            last_error = tries[-1].error
            assert last_error is not None
            if not halt:
                dead.append(DeadLetterRecord(step, last_error, tries[-1].attempt))
                index += 1
                continue
            self.visit(ask(step))
            said = self.call("ask", step).answer
            if said == "retry":
                continue
            if said == "fixed":
                compensated.append(step)
                self.emit(EventKind.UNDO_DONE, step, attempt=tries[-1].attempt, by_hand=True)
                index += 1
                continue
            pending = order[index:]
            break
        semantic_steps = {s.name for s in plan.steps if s.semantic}
        semantic = [s for s in compensated if s in semantic_steps]
        status = status_of(
            failed=True,
            halted=bool(pending),
            dead_letters=bool(dead),
            leaked=bool(leaked),
            semantic=bool(semantic),
        )
        self.emit(
            EventKind.ROLLBACK_DONE,
            status=str(status),
            undone=len(compensated),
            dead_letters=len(dead),
            pending=len(pending),
        )
        if self.visits:
            raise HistoryDiverged(
                f"the engine ran {self.visits[0].state!r} after the saga's rollback was over"
            )
        return RunRecord(
            str(status),
            completed=completed,
            compensated=compensated,
            dead_letters=dead,
            pending=pending,
            leaked=leaked,
            semantic=semantic,
            error=failure,
            failed_step=failed,
            events=self.events,
        )
