"""The in-process driver: the saga machine decides, this calls the steps and undos.

``Run`` is shared by ``Rollback``, ``AsyncRollback`` (a step at a time, as the block asks)
and ``Saga.run``. It does only what a process does: call the actions and undos (their
faults, idempotency keys and timeouts wrapped once, when handed over), sleep on the clock,
stamp event times, keep results and state snapshots, write a journal. ``drive`` and
``adrive`` carry out the machine's operations; every rule they follow is the machine's.
Events cost a tuple each: ``Event`` objects are built when read, or for an observer that
wants them (``on_event``, a logging handler, the journal), decided once as the run starts.
"""

from __future__ import annotations

import inspect
import logging
import sys
import time
import warnings
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import Any

from . import _guards, _program_end
from ._checks import check_step
from ._drive import Driver
from ._forward import forward_asked
from ._recorded import Told
from ._shutdown import told_at_shutdown
from .calls import INERT, check_observer, checked, left_running, plain, quiet_failure
from .clock import SYSTEM_CLOCK, Clock, SystemClock
from .events import Event, EventKind, EventSink, describe, level_of, log_event, log_threshold, tell
from .faults import NO_FAULTS, FailingUndo, InjectionLike, failing_action, normalize_injection
from .journaling import JournalWriter
from .machine import Machine, MachineError
from .operations import PROCEED, Op, StepSpec
from .outcome import DeadLetter, Outcome
from .policies import POLICIES, PolicyLike, RetryPolicy, UndoPolicy, resolve_policy
from .ports import UndoJournal
from .rules import (
    GRAPH_UNDO_ORDERS,
    Kind,
    NamedUndo,
    Register,
    UndoOrder,
    check_undo_order,
)
from .schedule import After, GraphMachine, Ready
from .schedule import cancel as cancel_run

TURNS = 8  # (loop turns an AsyncRollback gives before each step's call: a cancel the loop
# delivers lands before it, attack103 F9; another task's 3.11 wait_for takes six, attack104 F5)
_log = logging.getLogger("rollback_lessons")
_NO_ARGS: tuple[Any, ...] = ()
_NO_FAULTS: dict[str, Any] = {}
FUNCTION = type(lambda: None)
NOT_PLAIN = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR | inspect.CO_COROUTINE
COMPENSABLE = Kind.COMPENSABLE


class Run(Driver):
    """One run in process: its machine, and what only a process has."""

    def __init__(  # (positional too: a with-block passes them so, the cheapest way)
        self,
        name: str = "rollback",
        policy: PolicyLike = "continue",
        inject: InjectionLike | None = None,
        steps: Collection[str] | None = None,
        undos: Collection[str] | None = None,
        plan: tuple[StepSpec, ...] | None = None,
        undo_order: UndoOrder = "reverse",
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        is_async: bool = False,
        journal: UndoJournal | None = None,
        run_id: str | None = None,
        after: After | None = None,
    ) -> None:
        if undo_order != "reverse":
            check_undo_order(undo_order, GRAPH_UNDO_ORDERS)
        if on_event is not None:
            check_observer(on_event)
        if clock is not None or journal is not None:
            _guards.check_run(clock, journal)
        self.name = name
        self.faults = normalize_injection(inject, steps, undos) if inject else _NO_FAULTS
        clock = clock if clock is not None else SYSTEM_CLOCK
        self.clock: Clock = clock
        self.on_event, self.is_async = on_event, is_async
        if type(policy) is str and policy in POLICIES:
            policy = POLICIES[policy]  # (resolve_policy, inline: every run starts here)
        else:
            policy = resolve_policy(policy)
        jrun = None
        if journal is not None:  # (a policy it cannot keep is refused here, before any step)
            jrun = journal.start(name, run_id, policy=policy, undo_order=undo_order, after=after)
        if jrun is not None:
            run_id = jrun.saga_id
        elif run_id is None and type(clock) is not SystemClock:  # its ids count up: now
            run_id = clock.run_id(name)
        self._run_id = run_id  # (a system clock's random id is drawn when first read)
        # time.monotonic itself for the system clock: one call less per stamp (make bench)
        system = type(clock) is SystemClock
        self.monotonic = time.monotonic if system else clock.monotonic
        self.started = self.monotonic()
        self.started_at = time.time() if system else clock.time()
        self.log_level = log_threshold()
        watched = jrun is not None or on_event is not None or self.log_level <= logging.ERROR
        if (
            plan is None
            and self.recording
            and not (watched or is_async or self.faults or steps is not None)
        ):  # a plain with-block nobody watches: its steps are recorded (``_recorded``)
            self.history, self.policy, self.undo_order = [], policy, undo_order
        elif after is not None:  # a saga with parallel groups: a graph of steps
            assert plan is not None
            self.m = GraphMachine(
                policy,
                plan=plan,
                after=after,
                undo_order=undo_order,
                name=name,
                watch=self._watch if watched else None,
            )
        else:
            self.m = Machine(
                policy,
                plan=plan,
                allowed=tuple(steps) if steps is not None and plan is None else None,
                undo_order=undo_order,
                name=name,
                watch=self._watch if watched else None,
            )
        if jrun is not None:
            self.journal = JournalWriter(jrun, self.m)
            self.m.kept = True
        self.actions: dict[str, Callable[..., Any]] = {}
        self.undos: dict[str, Callable[..., Any]] = {}
        self.results: dict[str, Any] = {}

    # What the run holds besides, unset until needed (a with-block's cost is every run's).
    history: list[tuple[Any, ...]] | None = None  # recorded steps the machine is yet to hear of
    committed_at: float | None = None  # (recorded) when the block ended without an error
    failure: BaseException | None = None  # (recorded) what the block failed with, and when:
    failed_at = 0.0
    policy: UndoPolicy  # (recorded) the machine's policy and undo order
    undo_order: str
    journal: JournalWriter | None = None
    snapshot: Mapping[str, Any] | None = None  # the state as of the last call
    states: list[Mapping[str, Any]] = []  # noqa: RUF012 (the state after each event, when traced: a list of its own then)

    m = Told()  # type: ignore[assignment]
    """The machine: a recording run's is made and told when first read (``_recorded``);
    every other run's is made as it starts (set, it is read as any attribute)."""

    @property
    def run_id(self) -> str:
        if self._run_id is None:
            self._run_id = self.clock.run_id(self.name)
        return self._run_id

    # -- what the machine records, for the observers that want it ------------------------

    def _watch(
        self, seq: int, kind: EventKind, step: str | None, details: Mapping[str, Any]
    ) -> None:
        if self.journal is not None:
            _guards.journal_watch(self, seq, kind, step, details)
        if self.tracer is not None:
            self.states.append(self.snapshot)  # type: ignore[arg-type]
        want_log = self.log_level <= logging.ERROR and level_of(kind, details) >= self.log_level
        if want_log or self.on_event is not None:
            now = self.m.now
            event = Event(
                seq, kind, step, details, self.run_id,
                self.started_at + now if now is not None else None, now,
            )  # fmt: skip
            if want_log:
                self._tell(kind, partial(log_event, event, self.name), "a logging handler")
            if self.on_event is not None:
                self._tell(kind, partial(self.on_event, event), "on_event callback")

    def _tell(self, kind: EventKind, call: Callable[[], Any], who: str) -> None:
        """An observer told of an event, by the rule every engine follows (``events.tell``);
        in arun, its cancel of the task it ran in is arun's (``forward_asked``, attack123 F2).
        None at Python's shutdown (a block with no journal undone there): a thread it starts
        would wait for ever to begin, the process never ending (attack283 F4)."""
        if sys.is_finalizing():
            return
        tell(self, kind, call, who)
        if self.arun is not None:
            forward_asked(self)

    def trace(self, tracer: Callable[[], Mapping[str, Any]]) -> None:
        """Keep the state after every call; one that cannot be copied stops it, not the run."""
        self.tracer, self.states = tracer, []
        self.snap()
        self.m.watch = self._watch

    def snap(self) -> None:
        assert self.tracer is not None
        try:
            self.snapshot = self.tracer()
        except Exception as exc:
            self.tracer = None
            self.states.clear()
            self.m.note(EventKind.TRACE_FAILED, f"state tracing stopped: {describe(exc)}")

    # -- handing over the calls (wrapped once, here) -------------------------------------

    def check_undo(self, step: str, undo: object) -> None:
        _guards.check_undo(
            step, undo, journalled=self.journal is not None, allow_async=self.is_async
        )

    def hand_over(
        self, step: str, action: Callable[..., Any] | None, undo: Callable[..., Any] | None
    ) -> None:
        """The calls of ``step``, with its injected faults and its idempotency key. A name
        used before keeps its first calls: the machine refuses the second (``begin``)."""
        if step in self.actions or step in self.undos:
            return
        if action is not None:
            self.actions[step] = action
        if undo is not None:
            self.undos[step] = undo
        if self.faults or self.journal is not None:
            self._wrap(step)

    def adopt(
        self,
        actions: dict[str, Callable[..., Any]],
        undos: dict[str, Callable[..., Any]],
        stateless: Collection[str],
    ) -> None:
        """A saga's calls, all at once (its own tables, shared by its runs unless a fault or
        a journal wraps one of them for this run)."""
        self.actions, self.undos, self.stateless = actions, undos, stateless
        if self.faults or self.journal is not None:
            self.actions, self.undos = dict(actions), dict(undos)
            for step in self.faults if self.journal is None else actions:
                self._wrap(step)

    def _wrap(self, step: str) -> None:
        """Wrap ``step``'s calls once, here, so that the loops below stay plain."""
        faults = self.faults.get(step, NO_FAULTS)
        if faults.action is not None and step in self.actions:
            self.actions[step] = failing_action(self.actions[step], step, faults.action)
        undo = self.undos.get(step)
        if undo is None:
            return
        if self.journal is not None and self.journal.jrun is not None:
            assert isinstance(undo, NamedUndo)
            self.journal.named[step] = undo
            undo = partial(undo, idempotency_key=self.journal.jrun.key(step))
        if faults.undo is not None:
            undo = FailingUndo(undo, step, faults.undo)
        self.undos[step] = undo

    # -- a with-block's steps ------------------------------------------------------------

    def step(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None = None,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        undo_timeout: float | None = None,
    ) -> Any:
        """Run one step of a with-block synchronously; its error is raised here (a plain
        step nobody watches is recorded instead: ``Rollback.do``)."""
        m = self.m
        if not (
            register == "after" and retry is None and undo_timeout is None and plain(action)
            and (undo is None or plain(undo)) and self.journal is None
        ):  # fmt: skip
            self._check(step, action, undo, register, retry, undo_timeout)
        self.hand_over(step, action, undo)
        m.now = self.monotonic() - self.started
        m.begin(step, COMPENSABLE, undo is not None, register, retry, False, undo_timeout)
        # The machine's answer is this step's one call (RunStep): made here, inline, as
        # ``operations`` and ``drive`` would make it (a generator per step is most of a
        # with-block's cost: make bench); what follows the call is theirs again.
        try:
            try:
                result = self.actions[step](*self.args)
                if result is not None and type(result) not in INERT:
                    result = checked(result, "action", step)
            except BaseException as exc:  # an Exception is the machine's to judge
                op = self.step_raised(exc)
            else:
                self.results[step] = result
                self.called()
                if self.asked is not None and self.asked():
                    cancel_run(m, self.cancelling())
                op = m.step_ok()
        except BaseException as exc:  # raised outside the call: in an event, a snapshot
            if not m.rolling:
                raise  # going forward it is the caller's: the run fails there
            op = self.cut(exc)
        else:
            op = self.over(op) if op is PROCEED else self.drive(op)
        if op is PROCEED:
            return self.results.get(step)
        return self._raise()

    async def astep(
        self,
        step: str,
        action: Callable[[], Any],
        undo: Callable[[], Any] | None = None,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        undo_timeout: float | None = None,
    ) -> Any:
        """The async twin of ``step``: awaits the action (and what it returns), after
        ``TURNS`` turns of the loop (a cancel they deliver: heard before the call)."""
        self._check(step, action, undo, register, retry, undo_timeout)
        import asyncio

        for _ in range(TURNS):
            await asyncio.sleep(0)
        if _program_end.ENDED:  # (on a daemon's loop, before its start is written: 311 F2)
            await _program_end.gate(self, block=True)
        self.hand_over(step, action, undo)
        self.tick()
        begun = self.m.begin(step, Kind.COMPENSABLE, undo is not None, register, retry, False,
                             undo_timeout)  # fmt: skip
        op = await self.adrive(begun)
        if op is PROCEED:
            return self.results.get(step)
        quiet_failure(self.home)  # (in a task of its own: the block's failure, said by it)
        return self._raise()

    def _raise(self) -> Any:
        """The step failed for good: its error goes to the caller's code (which may catch
        it and go on), so nothing is left to re-raise later."""
        error, self.error, self.raise_after = self.error, None, None
        if error is None:  # (its block ended as it ran, and said so: ``Rollback.do``)
            raise MachineError("a step's end came after its block's")
        raise error

    def _check(self, step: str, *given: object) -> None:
        """Refuse bad input before the step is even begun (``_checks.check_step``)."""
        check_step(step, *given, journalled=self.journal is not None, allow_async=self.is_async)

    def register(self, step: str, undo: Callable[[], Any]) -> None:
        """An undo for an action the caller runs next, in its own code."""
        self.check_undo(step, undo)
        self.hand_over(step, None, undo)
        self.tick()
        self.m.register(step)

    # -- carrying out what the machine says ----------------------------------------------

    def kept(self) -> bool:  # (Driver.kept)
        return self.journal is not None and self.journal.jrun is not None

    fenced = _guards.fenced  # (after a wait, before another undo: taken over meanwhile?)
    returned = _guards.returned  # (a step's call returned: its undo written at once)
    retrying = _guards.retrying  # (a step rested after a refusal: its next try written)

    # -- the end ------------------------------------------------------------------------

    def fail(self, error: BaseException, cancelled: bool = False) -> Op:
        """Tell the machine the run failed (``cancelled``: its caller cancelled it, by the
        cancel rule, ``schedule.cancel``). A Ctrl-C that lands while it is being told
        still leaves it told, and the rollback cut short there (everything pending)."""
        try:
            self.tick()
            if cancelled:
                _guards.log_cut_off(self.m, raising=True)
                op = cancel_run(self.m, error)
                if op is not None:
                    assert not isinstance(op, Ready)  # (a list's machine: never "start these")
                    return op
            return _guards.cut_forward(self, error) or self.m.fail(error)
        except BaseException as exc:
            if not self.m.rolling:  # it never heard of the failure: tell it now
                self.m.fail(error)
            return _guards.began_cut(self, exc)  # (no undo called yet: said so, or where)

    def roll_back(self, error: BaseException) -> Op:
        return self.drive(self.fail(error))  # (a Finished op only passes through)

    async def aroll_back(self, error: BaseException, cancelled: bool = False) -> Op:
        return await self.adrive(self.fail(error, cancelled))

    def commit(self) -> None:
        if self.history is not None:  # (recording: the machine hears of it when first asked)
            self.committed_at = self.monotonic()
            return
        self.tick()
        self.m.commit()
        unused = [s for s in self.faults if s not in self.m.kinds] if self.faults else None
        if unused:
            warnings.warn(
                f"inject named steps that never ran: {', '.join(unused)}",
                RuntimeWarning,
                stacklevel=4,
            )

    def finish(self, error: BaseException | None) -> None:
        """Close the run: notes on the error when the rollback is incomplete, and the
        journal's end. An interrupted rollback is not ended in the journal: ``recover``
        finishes it."""
        if self.history is not None:
            return  # (recorded: committed, or every undo returned; no journal, no notes)
        if error is not None:  # (a SystemExit's warning once the journal's notes are in)
            _guards.add_notes(self, error, warn=self.journal is None)
        try:  # (the journal's end first: the outcome told below has its notes, attack70 F3)
            if self.journal is not None:  # (a call left running: its saga is held, F1)
                self.journal.runs_on = self.journal.runs_on or left_running(self) or self.went_on
                self.journal.end(error)
        finally:
            if error is not None and self.journal is not None:
                _guards.exits_said(self, error)
            told_at_shutdown(self)  # (the Ctrl-C asyncio.run raises after: what was done)
        self.m.watch = None  # nothing more to watch: no cycle left (run -> machine -> run)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        self.told_undos()  # (read by an undo called in a row: told what returned so far)
        return list(self.m.dead_letters)

    def events(self) -> list[Event]:
        return list(self.outcome().events)

    def outcome(self, **extra: Any) -> Outcome:
        """The run's record, with what this process adds (results, states, ...)."""
        self.told_undos()
        self.m.run_id = self.run_id
        return self.m.record(  # type: ignore[no-any-return]
            Outcome,
            started_at=self.started_at,
            results=dict(self.results),
            states=tuple(self.states),
            **extra,
        )


def own_error(exc: BaseException | None) -> BaseException | None:
    """What a step's own call raised, beneath the machine's refusal to hear of it after its
    block ended (a late step, attack102 F4); None if it returned."""
    while isinstance(exc, MachineError):
        exc = exc.__context__
    return exc
