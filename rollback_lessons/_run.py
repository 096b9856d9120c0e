"""One run's record: its undo log, its events, and what became of each step.

``Run`` is shared by Rollback, AsyncRollback and Saga. Its retry and compensation loops
are plans (``plan.py``) that a sync or an async driver carries out; the rules they follow
(status, injected faults, options) live in ``rules.py``; a journal, when given, is any
object with the ``UndoJournal`` shape (``durable.Journal`` is one).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import Any

from ._backward import UndoEntry, compensation_plan
from .clock import Clock, SystemClock
from .errors import DuplicateStepError, InjectedFault, InvalidPipelineError, UnknownStepError
from .events import Event, EventKind, EventSink, describe, level_of, log_event
from .faults import NO_FAULTS, Fault, InjectionLike, normalize_injection
from .outcome import DeadLetter, Outcome, Status
from .plan import Call, Plan, Sleep, adrive, call_sync, check_callable, drive
from .policies import PolicyLike, RetryPolicy, resolve_policy
from .ports import UndoJournal
from .rules import (
    IRREVERSIBLE,
    Kind,
    NamedUndo,
    Register,
    UndoOrder,
    action_error,
    check_register,
    check_undo_order,
    status_of,
)

_log = logging.getLogger("rollback_lessons")


class Run:
    """One run's log of undos, its events, and what became of each step."""

    def __init__(
        self,
        *,
        name: str = "rollback",
        policy: PolicyLike = "continue",
        inject: InjectionLike | None = None,
        steps: Collection[str] | None = None,
        undo_order: UndoOrder = "reverse",
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        is_async: bool = False,
        journal: UndoJournal | None = None,
        run_id: str | None = None,
    ) -> None:
        check_undo_order(undo_order)
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, got {on_event!r}")
        self.name = name
        self.policy = resolve_policy(policy)
        self.steps = steps
        self.allowed = frozenset(steps) if steps is not None else None
        self.faults = normalize_injection(inject, steps)
        self.undo_order = undo_order
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.on_event = on_event
        self.is_async = is_async
        self.jrun = journal.start(name, run_id) if journal is not None else None
        if self.jrun is not None:
            self.run_id: str = self.jrun.saga_id
        else:
            self.run_id = run_id if run_id is not None else self.clock.run_id(name)
        self.started = self.clock.monotonic()
        self.tracer: Callable[[], Mapping[str, Any]] | None = None
        self.states: list[Mapping[str, Any]] = []  # the state after each event, when traced

        self.events: list[Event] = []
        self.log: list[UndoEntry] = []
        self.seen: list[str] = []
        self.kinds: dict[str, str] = {}
        self.completed: list[str] = []
        self.results: dict[str, Any] = {}
        self.compensated: list[str] = []
        self.dead_letters: list[DeadLetter] = []
        self.pending: list[str] = []
        self.leaked: list[str] = []
        self.semantic: list[str] = []  # compensated by a new action, not undone
        self.semantic_steps: set[str] = set()  # steps whose undo is such an action
        self.irreversible: list[str] = []
        self.current: str | None = None
        self.open: str | None = None  # registered by hand, its action runs in the caller's code
        self.error: BaseException | None = None
        self.failed_step: str | None = None
        self.halted = False
        self.interrupted: BaseException | None = None  # a KeyboardInterrupt during the undos
        self.intents: dict[str, int] = {}  # journal positions of undos to log after their step
        self.problems: list[str] = []  # notes on the outcome: what failed around the run

    # -- events -------------------------------------------------------------------------

    def emit(self, kind: EventKind, step: str | None = None, **details: Any) -> None:
        event = Event(
            len(self.events) + 1,
            kind,
            step,
            details,
            self.run_id,
            self.clock.time(),
            self.clock.monotonic() - self.started,
        )
        self.events.append(event)
        if self.jrun is not None:
            self.jrun.event(event)
        if self.tracer is not None:
            try:
                self.states.append(self.tracer())
            except Exception as exc:  # a state that cannot be copied must not stop the run
                self.tracer = None
                self.states.clear()
                self.problem(EventKind.TRACE_FAILED, f"state tracing stopped: {describe(exc)}")
        if _log.isEnabledFor(level_of(kind, details)):
            log_event(event, self.name)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken observer must never stop a rollback
                _log.exception("on_event callback failed for %s", event.kind)

    def problem(self, kind: EventKind, note: str) -> None:
        """Something around the run failed: say so as an event and a note, and go on."""
        self.problems.append(note)
        self.emit(kind, note=note)

    def durably(self, write: Callable[..., None], *args: Any) -> None:
        """A journal write during the rollback: if it fails, the undos still run in memory."""
        if self.jrun is None:
            return
        try:
            write(*args)
        except Exception as exc:
            self.jrun = None  # the journal keeps the saga unfinished: recover finishes it
            self.problem(
                EventKind.JOURNAL_FAILED,
                f"journal write failed ({describe(exc)}); the rollback went on in memory, "
                "and the journal still shows the saga unfinished",
            )

    # -- forward ------------------------------------------------------------------------

    def admit(self, step: str, kind: str) -> None:
        """Check a step's name before it runs, and close a hand-registered step."""
        if not isinstance(step, str) or not step:
            raise TypeError(f"a step name must be a non-empty str, got {step!r}")
        if step in self.kinds:
            raise DuplicateStepError(f"step {step!r} appears twice; step names must be unique")
        if self.allowed is not None and self.steps is not None and step not in self.allowed:
            raise UnknownStepError(f"step {step!r} is not one of: {', '.join(self.steps)}")
        self.close_open()
        self.kinds[step] = str(kind)
        self.seen.append(step)

    def close_open(self) -> None:
        if self.open is not None:
            self.completed.append(self.open)
            self.emit(EventKind.STEP_DONE, self.open)
            self.open = None

    def check_undo(self, step: str, undo: object) -> None:
        check_callable(undo, f"undo of step {step!r}", allow_async=self.is_async)
        if self.jrun is not None and not isinstance(undo, NamedUndo):
            raise TypeError(
                f"with a journal, the undo of step {step!r} must be a registered compensation "
                "(compensation(name).bind(...)), so that it can still run after a crash"
            )

    def push(self, step: str, undo: Callable[[], Any], timeout: float | None = None) -> None:
        fault = self.faults.get(step, NO_FAULTS).undo
        self.emit(EventKind.UNDO_REGISTERED, step)
        semantic = step in self.semantic_steps
        if self.jrun is None:
            self.log.append(UndoEntry(step, undo, fault, timeout, semantic))
            return
        assert isinstance(undo, NamedUndo)
        keyed = partial(undo, idempotency_key=self.jrun.key(step))
        entry = UndoEntry(step, keyed, fault, timeout, semantic)
        self.log.append(entry)  # in memory first: a failed write below still rolls it back
        if step in self.intents:  # written before the step ran: now it is a real undo
            entry.position = self.intents.pop(step)
            self.jrun.confirm(entry.position)
        else:
            entry.position = self.jrun.register(step, undo)  # durable before anything relies on it

    def register(self, step: str, undo: Callable[[], Any]) -> None:
        """An undo for an action the caller runs next, in its own code."""
        self.check_undo(step, undo)
        self.admit(step, Kind.COMPENSABLE)
        self.current = self.open = step
        self.emit(EventKind.STEP_START, step, register="before")
        self.push(step, undo)

    def begin(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None,
        register: Register,
        retry: RetryPolicy | None,
        kind: str,
        undo_timeout: float | None = None,
    ) -> bool:
        """Validate and start a step; returns whether a plan (faults/retries) is needed."""
        check_callable(action, f"action of step {step!r}", allow_async=self.is_async)
        if undo is not None:
            self.check_undo(step, undo)
        check_register(register)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry of step {step!r} must be a RetryPolicy, got {retry!r}")
        self.admit(step, kind)
        self.current = step
        if kind == Kind.PIVOT and self.jrun is not None:
            self.jrun.pivot(step, "started")  # durable: recover never undoes across it
        self.emit(EventKind.STEP_START, step, register=register if undo is not None else "none")
        if undo_timeout is not None and not (
            isinstance(undo_timeout, int | float) and undo_timeout > 0
        ):
            raise InvalidPipelineError(
                f"undo_timeout of step {step!r} must be seconds > 0, got {undo_timeout!r}"
            )
        if undo is not None and register == "before":
            self.push(step, undo, undo_timeout)
        elif undo is not None and self.jrun is not None:
            assert isinstance(undo, NamedUndo)
            self.intents[step] = self.jrun.register(step, undo, "intent")
        return retry is not None or self.faults.get(step, NO_FAULTS).action is not None

    def failed(self, step: str, error: BaseException, undo_registered: bool) -> None:
        after_effect = isinstance(error, InjectedFault) and error.after_effect
        if after_effect:
            self.emit(EventKind.STEP_FAILED, step, error=describe(error), after_effect=True)
        else:
            self.emit(EventKind.STEP_FAILED, step, error=describe(error))
        if after_effect and not undo_registered:
            self.leaked.append(step)  # the effect happened and nothing will undo it
        if step in self.intents and self.jrun is not None and not after_effect:
            self.jrun.abandon(self.intents.pop(step))

    def done(
        self,
        step: str,
        result: Any,
        undo: Callable[[], Any] | None,
        register: str,
        undo_timeout: float | None = None,
    ) -> None:
        self.completed.append(step)
        self.results[step] = result
        if self.kinds[step] in IRREVERSIBLE:
            self.irreversible.append(step)
        if self.kinds[step] == Kind.PIVOT and self.jrun is not None:
            self.jrun.pivot(step, "done")
        self.emit(EventKind.STEP_DONE, step)
        if undo is not None and register == "after":
            self.push(step, undo, undo_timeout)

    def step(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None = None,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        kind: str = Kind.COMPENSABLE,
        undo_timeout: float | None = None,
    ) -> Any:
        """Run one step synchronously: log its undo, inject its faults, retry it."""
        planned = self.begin(step, action, undo, register, retry, kind, undo_timeout)
        try:
            if planned:
                result = drive(self.action_plan(step, action, retry), self.clock)
            else:
                result = call_sync(action, f"action of step {step!r}")
        except BaseException as exc:
            self.failed(step, exc, undo is not None and register == "before")
            raise
        self.done(step, result, undo, register, undo_timeout)
        return result

    async def astep(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None = None,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        kind: str = Kind.COMPENSABLE,
        undo_timeout: float | None = None,
    ) -> Any:
        """The async twin of ``step``: awaits the action (and what it returns)."""
        self.begin(step, action, undo, register, retry, kind, undo_timeout)
        try:
            result = await adrive(self.action_plan(step, action, retry), self.clock)
        except BaseException as exc:
            self.failed(step, exc, undo is not None and register == "before")
            raise
        self.done(step, result, undo, register, undo_timeout)
        return result

    def action_plan(self, step: str, fn: Callable[[], Any], retry: RetryPolicy | None) -> Plan:
        fault = self.faults.get(step, NO_FAULTS).action
        what = f"action of step {step!r}"
        attempt = 1
        while True:
            if fault is Fault.FAIL:
                error: BaseException | None = action_error(step, fault)
            else:
                error = yield Call(fn, what)
                if error is None and fault is Fault.FAIL_AFTER_EFFECT:
                    error = action_error(step, fault)
            if error is None:
                return
            delay = retry.next_delay(attempt, error) if retry is not None else None
            if delay is None:
                raise error
            self.emit(
                EventKind.STEP_RETRY, step, attempt=attempt, delay=delay, error=describe(error)
            )
            yield Sleep(delay)
            attempt += 1

    # -- backward -----------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.failed_step = self.current if self.current not in self.completed else None
        if self.open is not None:
            self.open = None  # the hand-run action is what failed
        self.emit(EventKind.PIPELINE_FAILED, self.failed_step, error=describe(error))

    def rollback(self) -> None:
        drive(compensation_plan(self), self.clock)

    async def arollback(self) -> None:
        await adrive(compensation_plan(self), self.clock)

    def halt_forward(self) -> None:
        """A step after the point of no return failed: nothing to undo, a person goes on."""
        assert self.failed_step is not None
        self.halted = True
        self.pending.append(self.failed_step)
        self.emit(EventKind.HALTED, self.failed_step, reason="failed after an irreversible step")

    # -- the end ------------------------------------------------------------------------

    def commit(self) -> None:
        self.close_open()
        self.emit(EventKind.COMMITTED, steps=len(self.completed))
        unused = [s for s in self.faults if s not in self.kinds]
        if unused:
            warnings.warn(
                f"inject named steps that never ran: {', '.join(unused)}",
                RuntimeWarning,
                stacklevel=4,
            )

    def status(self) -> Status:
        return status_of(
            failed=self.error is not None,
            halted=self.halted,
            dead_letters=bool(self.dead_letters),
            leaked=bool(self.leaked),
            semantic=bool(self.semantic),
        )

    def outcome(
        self,
        steps: tuple[str, ...] | None = None,
        state_before: Mapping[str, Any] | None = None,
        state_after: Mapping[str, Any] | None = None,
        kinds: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Outcome:
        return Outcome(
            status=self.status(),
            steps=steps if steps is not None else tuple(self.seen),
            completed=tuple(self.completed),
            compensated=tuple(self.compensated),
            dead_letters=tuple(self.dead_letters),
            pending=tuple(self.pending),
            leaked=tuple(self.leaked),
            semantic=tuple(self.semantic),
            error=self.error,
            failed_step=self.failed_step,
            events=tuple(self.events),
            state_before=state_before,
            state_after=state_after,
            results=dict(self.results),
            states=tuple(self.states),
            run_id=self.run_id,
            kinds=dict(kinds if kinds is not None else self.kinds),
            labels=dict(labels or {}),
            name=self.name,
            notes=tuple(self.problems),
        )

    def finish(self) -> None:
        """Close the run: a commit, or notes on the error when the rollback is incomplete.

        An interrupted rollback is not ended in the journal: ``recover`` finishes it.
        """
        if self.error is None:
            self.commit()
        else:
            for note in self.notes():
                self.error.add_note(note)
                if self.interrupted is not None:
                    self.interrupted.add_note(note)
        if self.jrun is not None and self.interrupted is None:
            if self.error is None:  # a commit that cannot be written is the caller's error
                self.jrun.end(str(self.status()), None)
            else:
                self.durably(self.jrun.end, str(self.status()), self.error)

    def notes(self) -> list[str]:
        """What the re-raised exception carries, so a caller sees an incomplete rollback."""
        notes = [f"rollback: undo of {d} (dead letter)" for d in self.dead_letters]
        if self.pending and self.interrupted is None:
            notes.append(f"rollback halted; left for a person: {', '.join(self.pending)}")
        if self.leaked:
            notes.append(f"rollback: not undone (no undo covers it): {', '.join(self.leaked)}")
        return notes + [f"rollback: {p}" for p in self.problems]
