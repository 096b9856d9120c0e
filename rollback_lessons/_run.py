"""The machinery shared by Rollback, AsyncRollback and Saga.

The retry and compensation loops are written once, as generators that *say* what to do
("call this", "sleep that long"); a sync driver and an async driver carry it out. This is
how one loop serves both ``with`` and ``async with`` without two copies drifting apart.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Collection, Generator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from .clock import Clock, SystemClock
from .errors import (
    DuplicateStepError,
    InjectedFault,
    InjectedTimeout,
    InvalidPipelineError,
    UnknownStepError,
)
from .events import Event, EventSink, describe, level_of, log_event
from .faults import NO_FAULTS, Fault, InjectionLike, normalize_injection
from .outcome import DeadLetter, Outcome, Status
from .policies import PolicyLike, RetryPolicy, resolve_policy
from .registry import BoundUndo

if TYPE_CHECKING:  # the journal (sqlite3) is imported only by those who use it
    from .journal import Journal, JournalRun

Register = Literal["before", "after"]
UndoOrder = Literal["reverse", "forward"]

# A plan yields ("call", fn, what) or ("sleep", seconds, ""), and is sent back the
# exception the call raised (or None).
Op = tuple[str, Any, str]
Plan = Generator[Op, "BaseException | None", None]

_log = logging.getLogger("rollback_lessons")
_new_event = tuple.__new__


def _is_async_function(fn: object) -> bool:
    code = getattr(fn, "__code__", None)
    if code is not None:  # a plain function: read its flags, much cheaper than inspect
        return bool(code.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)


def check_callable(fn: object, what: str, *, allow_async: bool) -> None:
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {fn!r}")
    if not allow_async and _is_async_function(fn):
        raise TypeError(
            f"{what} is an async function; the synchronous Rollback cannot await it "
            "(use AsyncRollback)"
        )


def call_sync(fn: Callable[[], Any], what: str) -> Any:
    result = fn()
    if result is not None and inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never leave it un-awaited and silently dropped
        raise TypeError(
            f"{what} returned an awaitable; the synchronous Rollback cannot await it "
            "(use AsyncRollback)"
        )
    return result


class _Entry:
    __slots__ = ("fault", "position", "step", "undo")

    def __init__(
        self, step: str, undo: Callable[[], Any], fault: Fault | None, position: int = 0
    ) -> None:
        self.step, self.undo, self.fault, self.position = step, undo, fault, position


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
        journal: Journal | None = None,
        run_id: str | None = None,
    ) -> None:
        if undo_order not in ("reverse", "forward"):
            raise InvalidPipelineError(
                f"undo_order must be 'reverse' or 'forward', got {undo_order!r}"
            )
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, got {on_event!r}")
        self.name = name
        self.policy = resolve_policy(policy)
        self.steps = steps
        self.faults = normalize_injection(inject, steps)
        self.undo_order = undo_order
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.on_event = on_event
        self.is_async = is_async
        self.jrun: JournalRun | None = journal.start(name, run_id) if journal is not None else None
        self.run_id = self.jrun.saga_id if self.jrun is not None else run_id
        self.tracer: Callable[[], Mapping[str, Any]] | None = None
        self.states: list[Mapping[str, Any]] = []  # the state after each event, when traced

        self.events: list[Event] = []
        self.log: list[_Entry] = []
        self.seen: list[str] = []
        self.kinds: dict[str, str] = {}
        self.completed: list[str] = []
        self.results: dict[str, Any] = {}
        self.compensated: list[str] = []
        self.dead_letters: list[DeadLetter] = []
        self.pending: list[str] = []
        self.leaked: list[str] = []
        self.irreversible: list[str] = []
        self.current: str | None = None
        self.open: str | None = None  # registered by hand, its action runs in the caller's code
        self.error: BaseException | None = None
        self.failed_step: str | None = None
        self.halted = False

    # -- events -------------------------------------------------------------------------

    def emit(self, kind: str, step: str | None = None, **details: Any) -> None:
        # tuple.__new__ skips NamedTuple's generated __new__: this is the engine's hot path
        event = _new_event(Event, (len(self.events) + 1, kind, step, details))
        self.events.append(event)
        if self.jrun is not None:
            self.jrun.event(event)
        if self.tracer is not None:
            self.states.append(self.tracer())
        if _log.isEnabledFor(level_of(kind)):
            log_event(event, self.name)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken observer must never stop a rollback
                _log.exception("on_event callback failed for %s", event.kind)

    # -- forward ------------------------------------------------------------------------

    def admit(self, step: str, kind: str) -> None:
        """Check a step's name before it runs, and close a hand-registered step."""
        if not isinstance(step, str) or not step:
            raise TypeError(f"a step name must be a non-empty str, got {step!r}")
        if step in self.kinds:
            raise DuplicateStepError(f"step {step!r} appears twice; step names must be unique")
        if self.steps is not None and step not in self.steps:
            raise UnknownStepError(f"step {step!r} is not one of: {', '.join(self.steps)}")
        self.close_open()
        self.kinds[step] = str(kind)
        self.seen.append(step)

    def close_open(self) -> None:
        if self.open is not None:
            self.completed.append(self.open)
            self.emit("step_done", self.open)
            self.open = None

    def check_undo(self, step: str, undo: object) -> None:
        check_callable(undo, f"undo of step {step!r}", allow_async=self.is_async)
        if self.jrun is not None and not isinstance(undo, BoundUndo):
            raise TypeError(
                f"with a journal, the undo of step {step!r} must be a registered compensation "
                "(compensation(name).bind(...)), so that it can still run after a crash"
            )

    def push(self, step: str, undo: Callable[[], Any]) -> None:
        fault = self.faults.get(step, NO_FAULTS).undo
        self.emit("undo_registered", step)
        if self.jrun is not None:
            assert isinstance(undo, BoundUndo)
            position = self.jrun.register(step, undo)  # durable before anything relies on it
            keyed = partial(undo, idempotency_key=self.jrun.key(step))
            self.log.append(_Entry(step, keyed, fault, position))
        else:
            self.log.append(_Entry(step, undo, fault))

    def register(self, step: str, undo: Callable[[], Any]) -> None:
        """An undo for an action the caller runs next, in its own code."""
        self.check_undo(step, undo)
        self.admit(step, "compensable")
        self.current = self.open = step
        self.emit("step_start", step, register="before")
        self.push(step, undo)

    def begin(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None,
        register: Register,
        retry: RetryPolicy | None,
        kind: str,
    ) -> bool:
        """Validate and start a step; returns whether a plan (faults/retries) is needed."""
        what = f"action of step {step!r}"
        check_callable(action, what, allow_async=self.is_async)
        if undo is not None:
            self.check_undo(step, undo)
        if register not in ("before", "after"):
            raise InvalidPipelineError(f"register must be 'before' or 'after', got {register!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry of step {step!r} must be a RetryPolicy, got {retry!r}")
        self.admit(step, kind)
        self.current = step
        self.emit("step_start", step, register=register if undo is not None else "none")
        if undo is not None and register == "before":
            self.push(step, undo)
        return retry is not None or self.faults.get(step, NO_FAULTS).action is not None

    def failed(self, step: str, error: BaseException, undo_registered: bool) -> None:
        after_effect = isinstance(error, InjectedFault) and error.after_effect
        if after_effect:
            self.emit("step_failed", step, error=describe(error), after_effect=True)
        else:
            self.emit("step_failed", step, error=describe(error))
        if after_effect and not undo_registered:
            self.leaked.append(step)  # the effect happened and nothing will undo it

    def done(self, step: str, result: Any, undo: Callable[[], Any] | None, register: str) -> None:
        self.completed.append(step)
        self.results[step] = result
        if self.kinds[step] != "compensable":
            self.irreversible.append(step)
        self.emit("step_done", step)
        if undo is not None and register == "after":
            self.push(step, undo)

    def step(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None = None,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        kind: str = "compensable",
    ) -> Any:
        """Run one step synchronously: log its undo, inject its faults, retry it."""
        planned = self.begin(step, action, undo, register, retry, kind)
        try:
            if planned:
                result = self.drive(self.action_plan(step, action, retry))
            else:
                result = call_sync(action, f"action of step {step!r}")
        except BaseException as exc:
            self.failed(step, exc, undo is not None and register == "before")
            raise
        self.done(step, result, undo, register)
        return result

    async def astep(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None = None,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        kind: str = "compensable",
    ) -> Any:
        """The async twin of ``step``: awaits the action (and what it returns)."""
        self.begin(step, action, undo, register, retry, kind)
        try:
            result = await self.adrive(self.action_plan(step, action, retry))
        except BaseException as exc:
            self.failed(step, exc, undo is not None and register == "before")
            raise
        self.done(step, result, undo, register)
        return result

    def action_plan(self, step: str, fn: Callable[[], Any], retry: RetryPolicy | None) -> Plan:
        fault = self.faults.get(step, NO_FAULTS).action
        what = f"action of step {step!r}"
        attempt = 1
        while True:
            if fault is Fault.FAIL:
                error: BaseException | None = InjectedFault(
                    step, fault, f"{step}: injected failure before its effect"
                )
            else:
                error = yield ("call", fn, what)
                if error is None and fault is Fault.FAIL_AFTER_EFFECT:
                    error = InjectedTimeout(
                        step, fault, f"{step}: injected timeout after its effect"
                    )
            if error is None:
                return
            delay = retry.next_delay(attempt, error) if retry is not None else None
            if delay is None:
                raise error
            self.emit("step_retry", step, attempt=attempt, delay=delay, error=describe(error))
            yield ("sleep", delay, "")
            attempt += 1

    # -- backward -----------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.failed_step = self.current if self.current not in self.completed else None
        if self.open is not None:
            self.open = None  # the hand-run action is what failed
        self.emit("pipeline_failed", self.failed_step, error=describe(error))

    def compensation_plan(self) -> Plan:
        entries = self.log[::-1] if self.undo_order == "reverse" else list(self.log)
        self.leaked.extend(self.irreversible)
        if self.jrun is not None:
            self.jrun.status("rolling_back")
        self.emit(
            "rollback_start",
            undos=len(entries),
            order=self.undo_order,
            policy=self.policy.name,
        )
        for index, entry in enumerate(entries):
            attempt = 0
            while True:
                attempt += 1
                self.emit("undo", entry.step, attempt=attempt)
                if entry.fault is Fault.UNDO_FAILS or (
                    entry.fault is Fault.UNDO_FAILS_ONCE and attempt == 1
                ):
                    error: BaseException | None = InjectedFault(
                        entry.step, entry.fault, f"undo of {entry.step}: injected failure"
                    )
                else:
                    error = yield ("call", entry.undo, f"undo of step {entry.step!r}")
                if error is None:
                    self.compensated.append(entry.step)
                    self.emit("undo_done", entry.step, attempt=attempt)
                    if self.jrun is not None:
                        self.jrun.undo_done(entry.position, attempt)
                    break
                decision = self.policy.decide(attempt, error)
                if isinstance(decision, str):
                    self.emit(
                        "undo_failed", entry.step, attempt=attempt, error=describe(error),
                        then=decision,
                    )  # fmt: skip
                    if decision == "halt":
                        self.halted = True
                        self.pending.extend(e.step for e in entries[index:])
                    else:
                        self.dead_letters.append(DeadLetter(entry.step, error, attempt))
                        if self.jrun is not None:
                            self.jrun.undo_dead(entry.position, attempt, describe(error))
                    break
                self.emit(
                    "undo_failed", entry.step, attempt=attempt, error=describe(error),
                    then="retry", delay=decision,
                )  # fmt: skip
                yield ("sleep", decision, "")
            if self.halted:
                break
        self.emit(
            "rollback_done",
            status=str(self.status()),
            undone=len(self.compensated),
            dead_letters=len(self.dead_letters),
            pending=len(self.pending),
        )

    def halt_forward(self) -> None:
        """A step after the point of no return failed: nothing to undo, a person goes on."""
        assert self.failed_step is not None
        self.halted = True
        self.pending.append(self.failed_step)
        self.emit("halted", self.failed_step, reason="failed after an irreversible step")

    # -- drivers ------------------------------------------------------------------------

    def drive(self, plan: Plan) -> Any:
        """Carry out a plan synchronously; return the last call's result."""
        result = None
        try:
            op, arg, what = next(plan)
            while True:
                sent: BaseException | None = None
                if op == "sleep":
                    self.clock.sleep(arg)
                else:
                    try:
                        result = call_sync(arg, what)
                    except Exception as exc:
                        sent = exc
                op, arg, what = plan.send(sent)
        except StopIteration:
            return result

    async def adrive(self, plan: Plan) -> Any:
        """Carry out a plan, awaiting what the calls return and sleeping on the clock."""
        result = None
        try:
            op, arg, _ = next(plan)
            while True:
                sent: BaseException | None = None
                if op == "sleep":
                    await self.clock.asleep(arg)
                else:
                    try:
                        result = arg()
                        if inspect.isawaitable(result):
                            result = await result
                    except Exception as exc:
                        sent = exc
                op, arg, _ = plan.send(sent)
        except StopIteration:
            return result

    # -- the end ------------------------------------------------------------------------

    def commit(self) -> None:
        self.close_open()
        self.emit("committed", steps=len(self.completed))
        unused = [s for s in self.faults if s not in self.kinds]
        if unused:
            warnings.warn(
                f"inject named steps that never ran: {', '.join(unused)}",
                RuntimeWarning,
                stacklevel=4,
            )

    def status(self) -> Status:
        if self.error is None:
            return Status.COMMITTED
        if self.halted:
            return Status.HALTED
        if self.dead_letters or self.leaked:
            return Status.ROLLBACK_INCOMPLETE
        return Status.ROLLED_BACK

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
        )

    def finish(self) -> None:
        """Close the run: a commit, or notes on the error when the rollback is incomplete."""
        if self.error is None:
            self.commit()
        else:
            for note in self.notes():
                self.error.add_note(note)
        if self.jrun is not None:
            self.jrun.end(str(self.status()), self.error)

    def notes(self) -> list[str]:
        """What the re-raised exception carries, so a caller sees an incomplete rollback."""
        notes = [f"rollback: undo of {d} (dead letter)" for d in self.dead_letters]
        if self.pending:
            notes.append(f"rollback halted; left for a person: {', '.join(self.pending)}")
        if self.leaked:
            notes.append(f"rollback: not undone (no undo covers it): {', '.join(self.leaked)}")
        return notes
