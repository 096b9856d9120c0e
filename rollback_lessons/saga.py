"""``Saga``: the declarative form. A list of steps, run with injected faults, gives an Outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import _arun, _forward, _graph_drive, _guards, _shutdown, _wakeable
from ._numbers import plain_number
from ._run import Run
from .calls import IN_A_STEP, check_callable, check_observer
from .clock import Clock
from .errors import DuplicateStepError, InvalidPipelineError, UnsafeOrderError
from .events import EventKind, EventSink
from .faults import InjectionLike
from .graph import Parallel, check_graph_order, flatten, needs_graph
from .operations import StepSpec
from .outcome import Outcome
from .policies import PolicyLike, RetryPolicy, check_seconds, check_step_retry, resolve_policy
from .ports import UndoJournal
from .rules import (
    FORWARD_RETRY,
    IRREVERSIBLE,
    Kind,
    NamedUndo,
    Register,
    UndoOrder,
    check_name,
    check_register,
    check_state,
)
from .schedule import GraphMachine
from .snapshots import Uncopied, before_run, safe_snapshot, snapshot

State = MutableMapping[str, Any]


@dataclass(frozen=True)
class Step:
    """One step: ``action(state)``, and ``undo(state)`` (or a registered BoundUndo)."""

    name: str
    action: Callable[[State], Any]
    undo: Callable[[State], Any] | NamedUndo | None = None
    kind: Kind | str = Kind.COMPENSABLE
    retry: RetryPolicy | None = None
    register: Register = "after"
    undo_timeout: float | None = None
    """Seconds one attempt of the undo may take; then it counts as failed (see Rollback.do)."""
    semantic: bool = False
    """The undo is a semantic compensation: a new action that makes things right (a
    correction email), not an inverse. It runs like any undo, but the world is not as it
    was, so a rollback that needed it is ``rollback_incomplete``."""
    label: str = ""
    """A short human description, shown by the widgets and the pictures."""

    def __post_init__(self) -> None:
        check_name(self.name, "a step name")
        try:
            object.__setattr__(self, "kind", Kind(self.kind))
        except ValueError:
            raise InvalidPipelineError(
                f"step {self.name!r}: unknown kind {self.kind!r}; "
                f"choose from: {', '.join(k.value for k in Kind)}"
            ) from None
        check_callable(self.action, "action", self.name, allow_async=False, why=IN_A_STEP)
        if self.undo is not None:
            check_callable(self.undo, "undo", self.name, allow_async=False, why=IN_A_STEP)
            if self.kind is Kind.GATE:
                raise InvalidPipelineError(
                    f"step {self.name!r} is a gate: it changes nothing, so it has no undo "
                    "(a step with an effect to undo is compensable)"
                )
            if self.kind is not Kind.COMPENSABLE:
                raise InvalidPipelineError(
                    f"step {self.name!r} is {self.kind}, so it has no undo; "
                    "a correction (an email saying sorry) is a compensable step's "
                    "semantic undo: Step(..., undo=send_correction, semantic=True)"
                )
        if self.retry is not None:
            check_step_retry(self.retry, self.name)
        if self.semantic and self.undo is None:
            raise InvalidPipelineError(
                f"step {self.name!r} is semantic but has no undo (its correction) to run"
            )
        check_register(self.register, f"step {self.name!r}: register")
        if self.undo_timeout is not None:
            check_seconds(self.undo_timeout, f"undo_timeout of step {self.name!r}")
            object.__setattr__(self, "undo_timeout", plain_number(self.undo_timeout))


@dataclass(frozen=True)
class OrderCheck:
    """Why an order is unsafe, in words; empty ``problems`` means it is safe."""

    problems: tuple[str, ...]
    reorder: tuple[str, ...] = ()
    """The same problems, each with only the fix that moves a step (for an answer that may
    change the order and nothing else, such as exercise 04.1's)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return (
                "The order is safe: nothing irreversible happens while a later step can still fail."
            )
        return "\n".join(f"- {p}" for p in self.problems)


class Saga:
    """Ordered steps that either all complete or are undone; ``run()`` returns an Outcome."""

    def __init__(
        self,
        steps: Iterable[Step | Parallel],
        *,
        name: str = "saga",
        policy: PolicyLike = "continue",
        allow_unsafe_order: bool = False,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        journal: UndoJournal | None = None,
    ) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)  # type: ignore[arg-type]
        if not self.steps:
            raise InvalidPipelineError("a saga needs at least one step")
        self.after: dict[str, tuple[str, ...]] | None = None
        """Each step's dependencies, when the saga has parallel groups (a graph); None for
        a list of steps."""
        self.definition: tuple[Step | Parallel, ...] = self.steps
        if [step for step in self.steps if isinstance(step, Parallel)]:  # (no genexpr)
            flat, self.after, _ = flatten(self.steps)
            self.steps = tuple(flat)
        for step in self.steps:
            if not isinstance(step, Step):
                raise TypeError(f"saga steps must be Step objects, got {step!r}")
        names = [s.name for s in self.steps]
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)
        if dupes:
            raise DuplicateStepError(f"step names must be unique; repeated: {', '.join(dupes)}")
        self.names: tuple[str, ...] = tuple(names)
        self._by_name = {s.name: s for s in self.steps}
        check_name(name, "the saga's name")
        self.name = name
        self.policy = resolve_policy(policy)
        self.clock = clock
        if on_event is not None:
            check_observer(on_event)
        self.on_event = on_event
        self.journal = journal
        self.allow_unsafe_order = allow_unsafe_order
        self._specs: tuple[StepSpec, ...] | None = None
        # what every run uses, made once: each step's calls, its kind, its label
        self._actions = {s.name: s.action for s in self.steps}
        self._undos = {s.name: s.undo for s in self.steps if s.undo is not None}
        self._stateless = frozenset(s.name for s in self.steps if isinstance(s.undo, NamedUndo))
        self._kinds = {s.name: str(s.kind) for s in self.steps}
        self._labels = {s.name: s.label for s in self.steps if s.label}
        check = self.check_order()
        if not check.ok and not allow_unsafe_order:
            raise UnsafeOrderError(
                f"unsafe step order:\n{check}\n(pass allow_unsafe_order=True to run it anyway)"
            )

    def __getitem__(self, name: str) -> Step:
        return self._by_name[name]

    def __repr__(self) -> str:
        return f"Saga({self.name!r}, steps={list(self.names)})"

    def check_order(self) -> OrderCheck:
        """Explain each irreversible step that runs while a later step can still fail."""
        if self.after is not None:
            found, moves = check_graph_order(self.steps, self.after)
            return OrderCheck(tuple(found), tuple(moves))
        problems: list[str] = []
        reorder: list[str] = []
        # the last step that can still fail for good (not retriable): an irreversible
        # step after it is safe; found once, so that a long saga is not checked in n^2
        last = max(
            (i for i, s in enumerate(self.steps) if s.kind is not Kind.RETRIABLE), default=-1
        )
        for i, step in enumerate(self.steps):
            if step.kind not in IRREVERSIBLE or i >= last:
                continue
            later = [s for s in self.steps[i + 1 :] if s.kind is not Kind.RETRIABLE]
            undone = [s.name for s in self.steps[:i] if s.undo is not None]
            # a later step whose undo is logged before it is undone too, when it fails
            first = [s.name for s in later if s.undo is not None and s.register == "before"]
            one = len(later) == 1
            if not first:
                itself = ""
            elif one:
                itself = f"{first[0]}, its undo logged before it"
            else:
                itself = f"the failing step if its undo is logged before it ({', '.join(first)})"
            if undone and itself:
                undoes = f"undoes {', '.join(undone)} (and {itself})"
            else:
                undoes = f"undoes {', '.join(undone) or itself}"
            what = (
                f"the rollback {undoes} but {step.name!r} stays done"
                if undone or itself
                else f"{step.name!r} stays done"
            )
            what_it_is = "irreversible" if step.kind is Kind.PIVOT else "never undone (retriable)"
            names = ", ".join(repr(s.name) for s in later)
            them = "it" if one else "them"
            problem = (
                f"{step.name!r} is {what_it_is} but runs before {names}, which can still "
                f"fail. If {'it' if one else 'one of them'} fails, {what}. "
                f"Move {step.name!r} after {them}"
            )
            problems.append(f"{problem}, or make {names} retriable.")
            reorder.append(f"{problem}.")
        return OrderCheck(tuple(problems), tuple(reorder))

    @staticmethod
    def _retry(step: Step) -> RetryPolicy | None:
        """A retriable step is retried forward before the saga halts: its own policy, or
        FORWARD_RETRY (3 attempts, backoff from 0.5 s) when it has none."""
        if step.retry is None and step.kind is Kind.RETRIABLE:
            return FORWARD_RETRY
        return step.retry

    def _undo(self, step: Step, state: State) -> Callable[[], Any] | None:
        if step.undo is None or isinstance(step.undo, NamedUndo):
            return step.undo
        return partial(step.undo, state)

    def run(
        self,
        state: State | None = None,
        *,
        inject: InjectionLike | None = None,
        policy: PolicyLike | None = None,
        register: Register | None = None,
        undo_order: UndoOrder = "reverse",
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        trace_state: bool = False,
        journal: UndoJournal | None = None,
        run_id: str | None = None,
        cancel: _graph_drive.CancelLike | None = None,
        completion: Sequence[str] | None = None,
    ) -> Outcome:
        """Run the steps on ``state``; on failure undo what was done. Never raises for a step.

        ``inject`` maps step names to faults; ``register`` overrides when every undo is
        logged; ``undo_order="forward"`` exists only to show why reverse is right (a saga
        with parallel groups may also say ``"reverse_start"`` or ``"by_dependency"``:
        ``schedule``); ``trace_state`` keeps a snapshot of the state after every event (for
        replays); with a ``journal`` every undo must be a registered compensation, written
        durably so that ``recover`` can finish the rollback after a crash (``run_id`` names
        the saga). ``cancel`` (a ``threading.Event``, or a function answering True) stops
        the run when set: a step running then finishes (a synchronous call cannot be
        pre-empted), nothing more starts, what was done is undone, and the outcome says
        ``cancelled``. The parallel groups' branches run one after the other, in order.

        ``completion`` plays one timing of ``arun`` without asyncio: every ready step starts
        at once, and of the steps running, the one named first in ``completion`` finishes
        next (its action is called then; unnamed steps last, in definition order). The
        explorer and the property tests try the completion orders that way.
        """
        _guards.check_completion(completion, self.names)
        run, world, before, asked = self._prepare(
            state, inject, policy, register, undo_order, clock, on_event, journal, run_id,
            cancel, trace_state, graph=completion is not None,
        )  # fmt: skip
        try:
            if completion is not None:
                _graph_drive.drive_graph(run, asked, _graph_drive.first_of(completion))
            elif isinstance(run.m, GraphMachine):
                _graph_drive.drive_graph(run, asked)
            else:
                run.asked = asked
                run.drive((asked and run.heard()) or run.m.start())  # type: ignore[arg-type]
        except BaseException as exc:  # a journal write, a Ctrl-C going forward: fails there
            _guards.forward_broke(run, exc)
        try:
            return _guards.end(run, partial(self._outcome, run, world, before, state))
        except BaseException as exc:  # (a Ctrl-C as it ends: said how, attack52 F3)
            _guards.at_end(run, exc)
            raise

    async def arun(
        self,
        state: State | None = None,
        *,
        inject: InjectionLike | None = None,
        policy: PolicyLike | None = None,
        register: Register | None = None,
        undo_order: UndoOrder = "reverse",
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        trace_state: bool = False,
        journal: UndoJournal | None = None,
        run_id: str | None = None,
        cancel: _graph_drive.CancelLike | None = None,
    ) -> Outcome:
        """``run``, awaiting: the branches of a parallel group run at once, as asyncio tasks
        (an action may return an awaitable); a list of steps in order, by the same machine.

        Cancelled (its task, or ``cancel``), nothing more starts, the steps running finish
        their attempt, and what was done is undone, shielded from the cancellation (a
        second one too); the outcome says ``cancelled``. A cancelled task still raises its
        CancelledError once that is done, carrying the outcome (``error.outcome``)."""
        import asyncio

        named = f" (run_id {run_id!r})" if run_id is not None else ""  # (asyncio.run cut as it
        _shutdown.unowned(f"a saga.arun of {self.name!r}{named}")  # made this task; 310 F4)
        run, world, before, asked = self._prepare(
            state, inject, policy, register, undo_order, clock, on_event, journal, run_id,
            cancel, trace_state, graph=True, is_async=True,
        )  # fmt: skip
        stopped: asyncio.CancelledError | None = None

        def stop_asked() -> bool:  # heard when a running step ends, as a token is
            return stopped is not None or (asked is not None and asked())

        def heard(exc: asyncio.CancelledError) -> None:  # a cancel of arun's task
            nonlocal stopped
            if stopped is None:
                stopped = run.stopped_by = _guards.cancel_heard(run, exc)
            elif exc is not stopped:  # (a later one is raised, its message kept: an outer
                stopped = exc  # scope's, anyio's knows its own by it, attack139 F2)

        try:  # (a Ctrl-C heard as arun resumes, the run over: said how too)
            await _arun.failed(run, await _arun.shielded(run, stop_asked, heard))
            outcome = _guards.end(run, partial(self._outcome, run, world, before, state))
            stopped = stopped or await _forward.late(run.arun.task)  # (as it was built: 116 F3)
        except BaseException as exc:  # (a Ctrl-C as it ends: said how, attack52 F3)
            _arun.ended_on(run, exc, partial(self._outcome, run, world, before, state))
            raise
        if stopped is not None:
            raise _guards.cancelled_with(stopped, outcome)
        return outcome

    def _prepare(
        self,
        state: State | None,
        inject: InjectionLike | None,
        policy: PolicyLike | None,
        register: Register | None,
        undo_order: UndoOrder,
        clock: Clock | None,
        on_event: EventSink | None,
        journal: UndoJournal | None,
        run_id: str | None,
        cancel: _graph_drive.CancelLike | None,
        trace_state: bool,
        graph: bool = False,
        is_async: bool = False,
    ) -> tuple[Run, State, dict[str, Any] | None, _graph_drive.Asked]:
        """A run of this saga (``run``'s and ``arun``'s), checked before anything runs, its
        world, and its cancel as a function, read first (before the journal's row: attack22
        L1); traced if ``trace_state``, its clock started."""
        asked = _graph_drive.asked_of(cancel)
        check_state(state)
        if register is not None:
            check_register(register)
        journal = journal if journal is not None else self.journal
        if journal is not None:  # closures refused before anything runs or is written
            _guards.check_journal(journal)  # (a journal that is not one is said first)
        for step in self.steps:  # (``run``: an async def compensation too, attack91 F2)
            if step.undo is not None and (journal is not None or not is_async):
                _guards.check_undo(
                    step.name, step.undo, journalled=journal is not None, allow_async=is_async
                )
        run = Run(
            name=self.name,
            policy=policy if policy is not None else self.policy,
            inject=inject,
            steps=self.names,
            undos=self._undos,
            plan=self.specs(register),
            undo_order=undo_order,
            clock=clock if clock is not None else self.clock,
            on_event=on_event if on_event is not None else self.on_event,
            journal=journal,
            run_id=run_id,
            # a list in an order of a graph's (reverse_start, by_dependency) is a chain
            after=self.dependencies if graph or needs_graph(self, undo_order=undo_order) else None,
        )
        world: State = {} if state is None else state
        before = self._before(run, world) if state is not None else None
        run.args = (world,)
        run.adopt(self._actions, self._undos, self._stateless)
        run.clock = run.clock if is_async else _wakeable.woken_by(cancel, run)  # (295 F1)
        if trace_state and state is not None:
            run.trace(partial(snapshot, world))
        run.tick()
        return run, world, before, asked

    @property
    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """Each step's dependencies, the steps that must be done before it starts (a list
        of steps is a chain: each step after the one before)."""
        if self.after is not None:
            return dict(self.after)
        return {s: self.names[i - 1 : i] for i, s in enumerate(self.names)}

    def _outcome(
        self, run: Run, world: State, before: dict[str, Any] | None, state: State | None
    ) -> Outcome:
        after = safe_snapshot(world) if state is not None else None
        return run.outcome(
            steps=self.names,
            kinds=dict(self._kinds),
            state_before=before,
            state_after=after,
            labels=dict(self._labels),
        )

    @staticmethod
    def _before(run: Run, world: State) -> dict[str, Any]:
        """The state before the run: a snapshot that cannot be taken is a note (an event
        too), not a stop (``before_run``)."""
        before = before_run(world)
        if type(before) is Uncopied:
            run.m.note(EventKind.TRACE_FAILED, before.note)
        return before

    def specs(self, register: Register | None = None) -> tuple[StepSpec, ...]:
        """The saga as the machine knows it: names, kinds, when each undo is logged, how each
        step is retried; no code. ``register`` overrides when every undo is logged."""
        if register is None and self._specs is not None:
            return self._specs
        specs = tuple(
            StepSpec(
                s.name,
                s.kind,
                s.undo is not None,
                register or s.register,
                self._retry(s),
                s.semantic,
                s.undo_timeout,
            )
            for s in self.steps
        )
        if register is None:
            self._specs = specs
        return specs
