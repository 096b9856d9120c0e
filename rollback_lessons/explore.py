"""Test every failure point, not the one you thought of: the fault-space explorer.

``explore(saga, state)`` runs the saga once for every combination of up to ``max_faults``
faults (each step failing before or after its effect, each undo failing always or once),
under each chosen policy, each on a fresh state (a combination whose extra faults its run
never reached is that run: ``_Runs``), and checks what must hold for any correct saga,
whatever it does:

1. every effect that happened is undone or reported (a dead letter, pending, leaked), never
   silently left (a step with no undo whose action changed nothing had none: attack159 F2);
2. no undo changes the world for an effect that never happened (an undo logged before its
   step may run when the step failed first, and must then do nothing);
3. when the status says ``rolled_back``, the state is as it was before; in a rollback that
   was not clean, each step it says compensated is restored (``_compensated``);
4. a pivot that happened is never followed by compensation.

``assert_every_failure_handled`` turns that into a test that fails with the smallest
failing combination and its story.
"""

from __future__ import annotations

import copy
import gc
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from ._compensated import changed_nothing, may_stand, needs_check, unrestored
from .clock import VirtualClock
from .events import EventKind
from .explore_input import check_input, not_judged
from .faults import ACTION_FAULTS, Fault, fault_space
from .outcome import Outcome, Status, Table
from .rules import Kind
from .saga import Parallel, Saga

Faults = tuple[tuple[str, Fault], ...]
"""A combination of faults: (step, fault) pairs, in the saga's order."""

INVARIANTS = {
    "unreported": "an effect neither undone nor reported",
    "phantom undo": "an undo changed the world for an effect that never happened",
    "not restored": "rolled back, but the state is not as it was",
    "past the pivot": "compensation after a pivot",
}


@dataclass(frozen=True)
class Explored:
    """One run of the exploration: its faults, policy, outcome and what it violated."""

    faults: Faults
    policy: str
    outcome: Outcome
    violations: tuple[str, ...]
    completion: tuple[str, ...] | None = None
    """The order the steps of parallel groups finished in (None: one after the other)."""

    @property
    def status(self) -> Status:
        return self.outcome.status

    @property
    def inject(self) -> dict[str, str | tuple[str, str]]:
        return inject_of(self.faults)

    def describe(self) -> str:
        faults = ", ".join(f"{step} {fault}" for step, fault in self.faults) or "no fault"
        if self.completion is not None:
            return f"{faults} (policy {self.policy}, finishing {' '.join(self.completion)})"
        return f"{faults} (policy {self.policy})"


def inject_of(faults: Iterable[tuple[str, Fault | str]]) -> dict[str, str | tuple[str, str]]:
    """Faults as ``saga.run``'s ``inject=``: a step's action and undo fault together."""
    found: dict[str, list[str]] = {}
    for step, fault in faults:
        found.setdefault(step, []).append(str(fault))
    return {step: f[0] if len(f) == 1 else (f[0], f[1]) for step, f in found.items()}


def single_faults(saga: Saga) -> list[tuple[str, Fault]]:
    """Every single fault of ``saga``, in its order (a gate changes nothing, so it has no
    effect to fail after)."""
    space = fault_space((s.name, s.undo is not None) for s in saga.steps)
    gates = {s.name for s in saga.steps if s.kind == Kind.GATE}
    return [(s, f) for s, f in space if not (s in gates and f == Fault.FAIL_AFTER_EFFECT)]


def combinations(saga: Saga, max_faults: int = 2) -> list[Faults]:
    """Every combination of up to ``max_faults`` faults (at most one action fault and one
    undo fault per step), from none at all, smallest first."""
    space = single_faults(saga)
    found: list[Faults] = [()]
    for size in range(1, min(max_faults, len(space)) + 1):  # (none bigger: attack238 F3)
        for combo in itertools.combinations(space, size):
            kinds = [(step, fault in ACTION_FAULTS) for step, fault in combo]
            if len(set(kinds)) == len(kinds):
                found.append(combo)
    return found


def completion_orders(saga: Saga) -> list[tuple[str, ...]]:
    """The completion orders the explorer tries (``saga.run(completion=...)``): for each
    parallel group, each order in which its branches finish, a branch's steps one after the
    other (3 branches: 6 orders). Interleavings of steps of different branches are left to
    the property tests (``tests/test_parallel_properties.py``). A list has one order."""

    def orders(items: Sequence[Any]) -> list[list[str]]:
        found: list[list[str]] = [[]]
        for item in items:
            if isinstance(item, Parallel):
                options = [
                    [step for part in parts for step in part]
                    for branches in itertools.permutations(item.branches)
                    for parts in itertools.product(*(orders(b) for b in branches))
                ]
            else:
                options = [[item.name]]
            found = [done + more for done in found for more in options]
        return found

    return [tuple(order) for order in orders(saga.definition)]


def _overlapped(outcome: Outcome) -> bool:
    """Did a step start while another was running (so another completion order could
    differ)? A run that failed before its first group did not."""
    running = 0
    for kind, *_ in outcome.rows:
        if kind == EventKind.STEP_START:
            if running:
                return True
            running += 1
        elif kind in (EventKind.STEP_DONE, EventKind.STEP_FAILED):
            running -= 1
    return False


def _fresh(state: Mapping[str, Any] | Callable[[], Any] | None) -> Any:
    if state is None:
        return {}
    return state() if callable(state) else copy.deepcopy(state)


Restored = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
"""Is the world after as it was before? Equality by default; a world whose undo is a new
record (a refund beside its charge) says what "as it was" means there."""


def _equal(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return before == after


def violations(
    saga: Saga, faults: Faults, outcome: Outcome, restored: Restored = _equal
) -> tuple[str, ...]:
    """What ``outcome`` (of ``saga`` under ``faults``, traced) violates."""
    found: list[str] = []
    kinds = outcome.kinds
    if outcome.status is not Status.COMMITTED:
        fault_of = {step: fault for step, fault in faults if fault in ACTION_FAULTS}
        happened = [s for s in outcome.completed if kinds[s] != Kind.GATE]
        failed = outcome.failed_step
        if failed is not None and fault_of.get(failed) == Fault.FAIL_AFTER_EFFECT:
            happened.append(failed)
        told = {d.step for d in outcome.dead_letters}
        told |= set(outcome.compensated) | set(outcome.pending) | set(outcome.leaked)
        # halted: a person takes the saga over, forward (after a pivot) or backward
        for step in [] if outcome.status is Status.HALTED else happened:
            if step not in told and not changed_nothing(outcome, step, saga, restored):
                found.append(f"unreported: the effect of {step} was neither undone nor reported")
        if failed is not None and fault_of.get(failed) == Fault.FAIL and outcome.states:
            found += _phantom_undo(outcome, failed, restored)
    before, after = outcome.state_before or {}, outcome.state_after or {}
    if stand_ins := not_judged(before, after):
        return stand_ins
    if outcome.status is Status.ROLLED_BACK and not restored(before, after):
        found.append(
            f"not restored: rolled back, but the state is {dict(after)}, not {dict(before)}"
        )
    elif outcome.states and needs_check(outcome) and not found:  # each compensated step's
        found += [v for v in (unrestored(outcome, restored),) if v is not None]  # part (a run
    # found wrong already, a phantom undo say, is not told twice: attack47 F2)
    pivots = [s for s in outcome.completed if kinds[s] == Kind.PIVOT]
    if pivots and any(kind == EventKind.UNDO for kind, *_ in outcome.rows):
        found.append(f"past the pivot: undos ran after the pivot {pivots[0]} had happened")
    return tuple(found)


def _phantom_undo(outcome: Outcome, step: str, restored: Restored) -> list[str]:
    """The undo of ``step``, which failed before its effect, must leave the state alone."""
    started = None
    for index, (kind, at, *_) in enumerate(outcome.rows):  # (its events, not yet built)
        if at == step and kind == EventKind.UNDO:
            started = index
        elif at == step and kind == EventKind.UNDO_DONE and started is not None:
            before, after = outcome.states[started], outcome.states[index]
            if not restored(before, after):
                return [
                    f"phantom undo: {step} failed before its effect, yet its undo changed "
                    f"the state from {dict(before)} to {dict(after)}"
                ]
    return []


def ran(outcome: Outcome) -> tuple[frozenset[Any], frozenset[Any]]:
    """The steps a run started, and those whose undo it ran: where a fault could strike."""
    rows = outcome.rows
    started = frozenset(step for kind, step, *_ in rows if kind == EventKind.STEP_START)
    return started, frozenset(step for kind, step, *_ in rows if kind == EventKind.UNDO)


def strike_order(outcome: Outcome) -> Callable[[str, str], int]:
    """When a fault at a step would strike in this run (its row: the step's start for an
    action's fault, its undo's first call for an undo's; one that never does, last): the
    panel's cue names the faults that struck in the order they did."""
    first: dict[tuple[bool, Any], int] = {}
    for n, (kind, step, *_) in enumerate(outcome.rows):
        if kind == EventKind.STEP_START or kind == EventKind.UNDO:
            first.setdefault((kind == EventKind.STEP_START, step), n)
    end = len(outcome.rows)
    return lambda step, fault: first.get((fault in ACTION_FAULTS, step), end)


def strikes(step: str, fault: str, started: frozenset[Any], undone: frozenset[Any]) -> bool:
    """Did ``fault`` at ``step`` strike in a run that ``ran`` so: an action's fault if the
    step started, an undo's if its undo ran (the explorer's reuse, the panel's cue)."""
    return step in (started if fault in ACTION_FAULTS else undone)


def _needs_states(saga: Saga, faults: Faults) -> bool:
    """The phantom-undo check reads the states around the undo of a step that failed before
    its effect, which runs only if logged before the step; the unreported one, around a step
    with no undo (the other runs skip the snapshots, most of an exploration's cost)."""
    return any(
        fault == Fault.FAIL and saga[step].undo is not None and saga[step].register == "before"
        for step, fault in faults
    ) or any(s.undo is None and s.kind == Kind.COMPENSABLE for s in saga.steps)


def check(
    saga: Saga,
    state: Mapping[str, Any] | Callable[[], Any] | None,
    faults: Faults,
    policy: str = "continue",
    restored: Restored = _equal,
    completion: tuple[str, ...] | None = None,
) -> Explored:
    """Run ``saga`` once with ``faults`` on a fresh state and check the invariants (the
    steps of its parallel groups finishing in the order ``completion``, if given)."""
    first = _needs_states(saga, faults) or may_stand(faults)  # (traced at once where its
    for traced in (first, True):  # compensated steps will likely be judged on their own,
        outcome = saga.run(  # else again, traced, if they are: ``_compensated``)
            _fresh(state),
            inject=inject_of(faults),
            policy=policy,
            clock=VirtualClock(),
            trace_state=traced,
            completion=completion,
        )
        if traced or not needs_check(outcome):
            break
    found = violations(saga, faults, outcome, restored)
    if traced and not _needs_states(saga, faults):  # (traced for that alone: the run
        outcome = replace(outcome, states=())  # tells what an untraced one does)
    return Explored(faults, policy, outcome, found, completion)


@dataclass(frozen=True)
class Exploration:
    """Every run of an exploration, in order: no fault, then each single fault, then
    each pair, ... (and within each, each policy)."""

    saga: Saga
    runs: tuple[Explored, ...]
    restored: Restored = _equal  # the world's own "as it was", to judge a run made later

    def judge(self, faults: Faults, outcome: Outcome) -> tuple[str, ...]:
        """The invariants another run of this saga breaks, checked as every run here was
        (the panel under lesson 11's grid judges the learner's own runs by it)."""
        return violations(self.saga, faults, outcome, self.restored)

    @property
    def failures(self) -> list[Explored]:
        return [run for run in self.runs if run.violations]

    @property
    def smallest_failure(self) -> Explored | None:
        failures = self.failures
        return min(failures, key=lambda r: len(r.faults)) if failures else None

    def table(self, *, only_failures: bool = False) -> Table:
        runs = self.failures if only_failures else list(self.runs)
        rows = tuple(
            (run.describe(), str(run.status), "; ".join(run.violations) or "-") for run in runs
        )
        return Table(("faults", "status", "violated"), rows)

    def summary(self) -> str:
        bad = self.failures
        kinds = sorted({v.split(":")[0] for run in bad for v in run.violations})
        return f"{len(self.runs)} runs, {len(bad)} violate an invariant" + (
            f" ({', '.join(kinds)})" if kinds else ""
        )


def explore(
    saga: Saga,
    state: Mapping[str, Any] | Callable[[], Any] | None = None,
    *,
    max_faults: int = 2,
    policies: Iterable[str] = ("continue",),
    restored: Restored = _equal,
    orders: bool = False,
) -> Exploration:
    """Run every combination of up to ``max_faults`` faults under each policy.
    ``restored(before, after)`` says when the world is as it was (equality by default).
    With ``orders``, a saga with parallel groups is run in each of its completion orders
    (``completion_orders``: which branch finishes first), not only one after the other."""
    given, judge = check_input(saga, state, max_faults, policies, restored, orders)
    with _collector_paused():
        return _explore(saga, state, int(max_faults), given, judge, orders)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cycle collector paused while the runs pile up: each of its passes walks every
    run kept so far (tens of thousands of outcomes: about half of ``make bench``'s
    exploration). A run leaves little cyclic garbage; what it leaves is collected as soon
    as the collector is back (as it was: a caller's own ``gc.disable()`` is kept)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Runs:
    """The exploration's runs, each made once. A run goes only where its faults take it: a
    fault on a step it never started (an action's) or whose undo it never ran (an undo's) is
    never felt, so two combinations that agree on the faults a run reached run the same
    (the steps depend only on the fresh state they are given and the faults injected, as
    the completion orders already assume: ``_overlapped``). Such runs share one outcome
    (frozen) and its violations, each with its own faults; the others are run. Of ``make
    bench``'s 12-step saga, about one combination in nine is run."""

    def __init__(
        self, saga: Saga, state: Mapping[str, Any] | Callable[[], Any] | None, restored: Restored
    ) -> None:
        self.saga, self.state, self.restored = saga, state, restored
        # (policy, completion, states traced, the faults the run reached) -> the steps it
        # started, the undos it ran, the run
        self.made: dict[tuple[Any, ...], tuple[frozenset[Any], frozenset[Any], Explored]] = {}

    def check(
        self, faults: Faults, policy: str, completion: tuple[str, ...] | None = None
    ) -> Explored:
        traced = _needs_states(self.saga, faults)
        for size in range(len(faults) + 1):  # the faults a run made before may have reached
            for reached in itertools.combinations(faults, size):
                made = self.made.get((policy, completion, traced, reached))
                if made is None:
                    continue
                started, undone, run = made
                if not any(
                    strikes(step, fault, started, undone)
                    for step, fault in faults
                    if (step, fault) not in reached
                ):  # every other fault is on a step that run never reached: it runs the same
                    return Explored(faults, policy, run.outcome, run.violations, completion)
        run = check(self.saga, self.state, faults, policy, self.restored, completion)
        started, undone = ran(run.outcome)
        reached = tuple(
            (step, fault) for step, fault in faults if strikes(step, fault, started, undone)
        )
        self.made[(policy, completion, traced, reached)] = (started, undone, run)
        return run


def _explore(
    saga: Saga,
    state: Mapping[str, Any] | Callable[[], Any] | None,
    max_faults: int,
    policies: Sequence[str],
    restored: Restored,
    orders: bool,
) -> Exploration:
    made = _Runs(saga, state, restored)
    if not orders or saga.after is None:
        runs = [
            made.check(faults, policy)
            for faults in combinations(saga, max_faults)
            for policy in policies
        ]
        return Exploration(saga, tuple(runs), restored)
    timings = completion_orders(saga)
    runs = []
    for faults in combinations(saga, max_faults):
        for policy in policies:
            first = made.check(faults, policy, timings[0])
            runs.append(first)
            if _overlapped(first.outcome):  # else every order runs the same
                runs += [made.check(faults, policy, t) for t in timings[1:]]
    return Exploration(saga, tuple(runs), restored)


def assert_every_failure_handled(
    saga: Saga,
    state: Mapping[str, Any] | Callable[[], Any] | None = None,
    *,
    max_faults: int = 2,
    policies: Iterable[str] = ("continue",),
    restored: Restored = _equal,
    orders: bool = False,
) -> Exploration:
    """A test: fails with the smallest combination of faults that breaks an invariant,
    and the story of that run."""
    exploration = explore(
        saga, state, max_faults=max_faults, policies=policies, restored=restored, orders=orders
    )
    worst = exploration.smallest_failure
    if worst is not None:
        raise AssertionError(
            f"{saga.name}: {exploration.summary()}. Smallest: {worst.describe()}:\n  "
            + "\n  ".join(worst.violations)
            + "\n"
            + worst.outcome.story()
        )
    return exploration


__all__ = [
    "INVARIANTS",
    "Exploration",
    "Explored",
    "assert_every_failure_handled",
    "check",
    "combinations",
    "completion_orders",
    "explore",
    "inject_of",
    "single_faults",
    "violations",
]
