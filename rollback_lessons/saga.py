"""``Saga``: the declarative form. A list of steps, run with injected faults, gives an Outcome."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from ._run import Run
from .calls import check_callable
from .clock import Clock
from .errors import DuplicateStepError, InvalidPipelineError, UnsafeOrderError
from .events import EventKind, EventSink, describe
from .faults import InjectionLike
from .operations import StepSpec
from .outcome import Outcome
from .policies import PolicyLike, RetryPolicy, check_seconds, resolve_policy
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
)

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
        check_callable(self.action, "action", self.name, allow_async=False)
        if self.undo is not None:
            check_callable(self.undo, "undo", self.name, allow_async=False)
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
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry of step {self.name!r} must be a RetryPolicy")
        if self.semantic and self.undo is None:
            raise InvalidPipelineError(
                f"step {self.name!r} is semantic but has no undo (its correction) to run"
            )
        check_register(self.register, f"step {self.name!r}: register")
        if self.undo_timeout is not None:
            check_seconds(self.undo_timeout, f"undo_timeout of step {self.name!r}")


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


def snapshot(state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy that later changes to the state cannot reach."""
    taker = getattr(state, "snapshot", None)
    if callable(taker):
        return taker()  # type: ignore[no-any-return]
    try:  # plain data (dicts, lists, numbers, text) is copied by hand, much faster
        return {key: _copy(value, 0) for key, value in state.items()}
    except _NotPlain:
        return copy.deepcopy(dict(state))


class _NotPlain(Exception):
    """A value ``_copy`` leaves to ``copy.deepcopy`` (with the whole state)."""


_ATOMS = frozenset({str, int, float, bool, type(None), bytes})


def _copy(value: Any, depth: int) -> Any:
    """Plain data copied (each snapshot of a traced run, and the explorer's thousands of
    runs, paid for copy.deepcopy's generality: ``make bench``); anything else, or data
    nested deeper than 20 (perhaps a cycle), raises _NotPlain."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if depth > 20:
        raise _NotPlain
    if kind is dict:
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    if kind is list:
        return [_copy(v, depth + 1) for v in value]
    if kind is tuple:
        return tuple(_copy(v, depth + 1) for v in value)
    raise _NotPlain


def safe_snapshot(state: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot that never raises: a value that cannot be copied is shown by its repr."""
    try:
        return snapshot(state)
    except Exception:
        out: dict[str, Any] = {}
        for key, value in dict(state).items():
            try:
                out[key] = copy.deepcopy(value)
            except Exception:
                out[key] = f"<uncopyable {type(value).__name__}>"
        return out


class Saga:
    """Ordered steps that either all complete or are undone; ``run()`` returns an Outcome."""

    def __init__(
        self,
        steps: Iterable[Step],
        *,
        name: str = "saga",
        policy: PolicyLike = "continue",
        allow_unsafe_order: bool = False,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        journal: UndoJournal | None = None,
    ) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        if not self.steps:
            raise InvalidPipelineError("a saga needs at least one step")
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
            problems.append(f"{problem}, or make {them} retriable.")
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
    ) -> Outcome:
        """Run the steps on ``state``; on failure undo what was done. Never raises for a step.

        ``inject`` maps step names to faults; ``register`` overrides when every undo is
        logged; ``undo_order="forward"`` exists only to show why reverse is right;
        ``trace_state`` keeps a snapshot of the state after every event (for replays);
        with a ``journal`` every undo must be a registered compensation, written durably
        so that ``recover`` can finish the rollback after a crash (``run_id`` names the saga).
        """
        if state is not None and not isinstance(state, MutableMapping):
            raise TypeError(f"state must be a mutable mapping, got {type(state).__name__}")
        if register is not None:
            check_register(register)
        run = Run(
            name=self.name,
            policy=policy if policy is not None else self.policy,
            inject=inject,
            steps=self.names,
            plan=self.specs(register),
            undo_order=undo_order,
            clock=clock if clock is not None else self.clock,
            on_event=on_event if on_event is not None else self.on_event,
            journal=journal if journal is not None else self.journal,
            run_id=run_id,
        )
        if run.journal is not None:  # refuse closures before anything runs, not half-way
            for step in self.steps:
                if step.undo is not None:
                    run.check_undo(step.name, step.undo)
        world: State = {} if state is None else state
        before = self._before(run, world) if state is not None else None
        run.args = (world,)
        run.adopt(self._actions, self._undos, self._stateless)
        if trace_state and state is not None:
            run.trace(partial(snapshot, world))
        run.tick()
        try:
            run.drive(run.m.start())
        except Exception as exc:  # a journal write going forward: the run fails there
            run.roll_back(exc)
        run.finish(run.m.error)
        if run.raise_after is not None:
            raise run.raise_after  # Ctrl-C: undone (or left pending), but not swallowed
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
        """The state before the run: a snapshot that cannot be taken is a note, not a stop
        (values that cannot be copied are shown by their type)."""
        try:
            return snapshot(world)
        except Exception as exc:
            run.m.note(
                EventKind.TRACE_FAILED,
                f"the state before the run could not be copied ({describe(exc)}); "
                "values that cannot be copied are shown by their type",
            )
            return safe_snapshot(world)

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
