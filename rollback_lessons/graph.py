"""A saga's definition as a graph: parallel groups (``Parallel``), the dependencies they
make (``flatten``), and ``check_order``'s rule for them (``check_graph_order``). Which steps
may start and the undo order are the machine's (``schedule.py``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import InvalidPipelineError, NestedTooDeep
from .graph_shape import not_above, reached
from .rules import IRREVERSIBLE, UNDO_ORDERS, Kind

if TYPE_CHECKING:
    from types import FrameType

    from .saga import Step


class Parallel:
    """A parallel group: its branches run at once (``await saga.arun``), or one after the
    other (``saga.run``), with the same rules. A branch is a ``Step``, a list of steps (and
    groups) run in order, or another group. The step after the group starts once every
    branch is done; if a step of one branch fails for good, nothing more starts, the steps
    still running finish, and everything done is undone (``schedule``)."""

    def __init__(self, *branches: Step | Parallel | Sequence[Step | Parallel]) -> None:
        if not branches:
            raise InvalidPipelineError("a Parallel group needs at least one branch")
        from .saga import Step  # (saga.py builds on this module)

        found: list[tuple[Step | Parallel, ...]] = []
        for branch in branches:
            if not isinstance(branch, Step | Parallel | Sequence):  # (a function: attack47 L2)
                raise TypeError(
                    f"a Parallel branch holds Step objects or Parallel groups, got {branch!r}"
                )
            items = (branch,) if isinstance(branch, Step | Parallel) else tuple(branch)
            if not items:
                raise InvalidPipelineError("a branch of a Parallel group is empty")
            for item in items:
                if isinstance(item, Sequence) and not isinstance(item, str):
                    raise TypeError(
                        f"a list inside a Parallel branch, {shown(item)}, in {shown(branch)}: "
                        "a branch is one list of steps (or groups) run in order; put those "
                        "steps in the branch itself, or in a Parallel group to run at once"
                    )
                if not isinstance(item, Step | Parallel):
                    raise TypeError(
                        f"a Parallel branch holds Step objects or Parallel groups, got {item!r}"
                    )
            found.append(items)
        self.branches: tuple[tuple[Step | Parallel, ...], ...] = tuple(found)

    def __repr__(self) -> str:
        inner = ", ".join(
            "[" + ", ".join(_shown(i) for i in b) + "]" if len(b) > 1 else _shown(b[0])
            for b in self.branches
        )
        return f"Parallel({inner})"


def _shown(item: Step | Parallel) -> str:
    return repr(item) if isinstance(item, Parallel) else item.name


def shown(thing: object) -> str:
    """``thing`` as a message shows it: a step by its name, a group as it is written, a
    list of them in brackets (not a step's full repr, function addresses and all)."""
    from .saga import Step  # (saga.py builds on this module)

    if isinstance(thing, Step | Parallel):
        return _shown(thing)
    if isinstance(thing, list | tuple):
        inner = ", ".join(shown(i) for i in thing)
        return f"[{inner}]" if isinstance(thing, list) else f"({inner}{',' * (len(thing) == 1)})"
    return repr(thing)


IN_PROCESS = "its definition is read recursing once per level"
DEEPEST = 500
"""The deepest nesting of parallel groups a saga takes (``saga.run`` and ``arun`` run it;
its definition is read recursing once per level: Python's limit is 1,000 frames)."""


def nesting(items: Sequence[Step | Parallel]) -> int:
    """How deep ``items``' parallel groups nest (0: none), read without recursion."""
    deepest, todo = 0, [(list(items), 0)]
    while todo:
        level, depth = todo.pop()
        deepest = max(deepest, depth)
        todo += [(list(b), depth + 1) for i in level if isinstance(i, Parallel) for b in i.branches]
    return deepest


def too_deep(what: str, items: Sequence[Step | Parallel], engine: str, most: int, why: str,
             cost: tuple[int, int] | None = None) -> NestedTooDeep | None:  # fmt: skip
    """``NestedTooDeep`` for a saga (``what``: "saga 'trip'") whose groups nest deeper than
    ``engine`` takes, or None. ``cost``: the frames its entry recurses beyond this call (so
    many, and so many per level): a caller deep in its stack has room for fewer levels, and
    is refused so, not with a bare RecursionError inside the engine (attack102 F3)."""
    depth = nesting(items)
    if depth <= most:
        if cost is None or depth <= (fits := (headroom() - cost[0]) // cost[1]):
            return None
        at = (
            f"at this call's depth ({sys.getrecursionlimit() - headroom()} frames of "
            f"Python's recursion limit, {sys.getrecursionlimit()})"
        )  # (a saga of no groups too: the entry's own frames need room, attack104 F9)
        return NestedTooDeep(
            f"{what}: its parallel groups nest {depth} deep, and {at} {engine} takes at "
            f"most {fits} (its entry recurses per level); nothing ran: call it from less "
            "deep in the stack"
            if fits >= 0
            else f"{what}: {at} {engine}'s entry has no room for the frames it recurses "
            "into, even for a saga of no groups; nothing ran: call it from less deep in "
            "the stack"
        )
    return NestedTooDeep(
        f"{what}: its parallel groups nest {depth} deep, and {engine} takes at most {most} "
        f"({why}); nothing ran"
        + (f" (saga.run and arun take up to {DEEPEST})" if depth <= DEEPEST else "")
    )


def headroom() -> int:
    """How many frames the caller has left below Python's recursion limit (counted: a
    thread's count starts at its own first frame, as the limit's does)."""
    frame: FrameType | None = sys._getframe(1)
    used = 0
    while frame is not None:
        used, frame = used + 1, frame.f_back
    return sys.getrecursionlimit() - used


def flatten(
    items: Sequence[Step | Parallel], before: tuple[str, ...] = ()
) -> tuple[list[Step], dict[str, tuple[str, ...]], tuple[str, ...]]:
    """A definition as a graph: its steps in definition order, each step's dependencies
    (the steps that must be done before it starts), and the steps it ends with."""
    if (deep := too_deep("Saga(...)", items, "a saga", DEEPEST, IN_PROCESS)) is not None:
        raise deep
    try:
        return _flatten(items, before)
    except RecursionError:  # (within DEEPEST, but the caller deep in its stack: attack102 F3)
        raise NestedTooDeep(
            f"Saga(...): its parallel groups nest {nesting(items)} deep, too deep to read at "
            "this call's depth within Python's recursion limit; nothing ran"
        ) from None


def _flatten(
    items: Sequence[Step | Parallel], before: tuple[str, ...] = ()
) -> tuple[list[Step], dict[str, tuple[str, ...]], tuple[str, ...]]:
    steps: list[Step] = []
    after: dict[str, tuple[str, ...]] = {}
    frontier = before
    for item in items:
        if not isinstance(item, Parallel):
            steps.append(item)
            after.setdefault(item.name, frontier)
            frontier = (item.name,)
            continue
        ends: list[str] = []
        for branch in item.branches:
            more, deps, last = _flatten(branch, frontier)
            steps += more
            for name, dep in deps.items():
                after.setdefault(name, dep)
            ends += last
        frontier = tuple(ends)
    return steps, after, frontier


def check_graph_order(
    steps: Sequence[Step], after: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], list[str]]:
    """``check_order`` for a saga with parallel groups: an irreversible step is unsafe
    while a step that can still fail (not retriable) runs after it *or at the same time*
    (in another branch of its group): a pivot inside a parallel group is refused."""
    problems: list[str] = []
    reorder: list[str] = []
    by_name = {s.name: s for s in steps}
    order = [s.name for s in steps]
    unsafe = not_above(  # (each irreversible step's steps that can still fail and are not
        after,  # its dependencies: in linear room, attack104 F6)
        [s.name for s in steps if s.kind in IRREVERSIBLE],
        [s.name for s in steps if s.kind is not Kind.RETRIABLE],
    )
    for step in steps:
        if step.name not in unsafe:
            continue
        below, above, bad = (
            reached(after, step.name),
            reached(after, step.name, up=True),
            set(unsafe[step.name]),
        )
        same_time = [n for n in after if n in bad and n not in below]
        later = [n for n in order if n in below and n in bad]
        before = [n for n in order if n in above and by_name[n].undo is not None]
        undone = before + [n for n in same_time if by_name[n].undo is not None]
        what_it_is = "irreversible" if step.kind is Kind.PIVOT else "never undone (retriable)"
        what = (
            f"the rollback undoes what was done of {', '.join(undone)} but {step.name!r} stays done"
            if undone
            else f"{step.name!r} stays done"
        )
        names = ", ".join(repr(n) for n in [*same_time, *later])
        them = "it" if len(same_time) + len(later) == 1 else "them"
        if same_time:
            where = ", ".join(repr(n) for n in same_time)
            problem = (
                f"{step.name!r} is {what_it_is} but runs in a parallel group at the same "
                f"time as {where}"
                + (f", and before {', '.join(repr(n) for n in later)}" if later else "")
                + f", which can still fail. If one fails, {what}. Move {step.name!r} "
                "out of the group, after every step that can still fail"
            )
        else:
            problem = (
                f"{step.name!r} is {what_it_is} but runs before {names}, which can still "
                f"fail. If {'it' if them == 'it' else 'one of them'} fails, {what}. "
                f"Move {step.name!r} after {them}"
            )
        problems.append(f"{problem}, or make {names} retriable.")
        reorder.append(f"{problem}.")
    return problems, reorder


class _Defined(Protocol):
    """A saga, or an engine's plan of one: its dependencies when it has parallel groups."""

    @property
    def after(self) -> Mapping[str, Sequence[str]] | None: ...


@dataclass(frozen=True)
class ListForm:
    """What an engine's *list form* runs by itself; anything more runs on the graph machine
    (``schedule.GraphMachine``, a list as a chain). Here in the engine, so that ``saga.run``
    and every runner (``runners.wire`` re-exports it) ask one rule. ``orders``: the undo
    orders it runs; ``cancel``: whether it hears a cancel mid-run. No list form plays a
    timing of one's own (``completion``) or runs steps at once (``at_once``)."""

    orders: tuple[str, ...] = UNDO_ORDERS
    cancel: bool = True


MACHINE_LIST = ListForm()
"""A list run by the saga machine in code (in process, Temporal's workflow, DBOS's): it
undoes newest first or, to show why that is right, as logged (``forward``); it hears a
cancel between and during steps, as ``saga.run(..., cancel=...)`` does."""

WRITTEN_LIST = ListForm(orders=("reverse",), cancel=False)
"""A list written down before it runs (Step Functions' ASL, BPMN's explicit model): the
undos are chained into the document newest first, so ``forward`` runs the graph form (the
machine orders the undos at run time); nothing in a written chain asks whether the run was
cancelled, so a ``cancel`` runs the graph form too (the one whose worker the machine
answers). Deliberately unlike ``MACHINE_LIST``: the outcome is the same, only the form
differs."""


def needs_graph(
    saga: _Defined,
    *,
    undo_order: str = "reverse",
    completion: Sequence[str] | None = None,
    cancel: object | None = None,
    at_once: bool = False,
    form: ListForm = MACHINE_LIST,
) -> bool:
    """Does this run need the graph machine? The one rule every engine asks (``form``: what
    its list form runs by itself). Yes for a saga with parallel groups; for a list, when its
    undo order is not one ``form`` runs, when ``completion`` plays a timing, when
    ``at_once`` runs ready steps at once, or when a ``cancel`` is given and ``form`` cannot
    hear one. (``saga.run`` in process asks it too, as ``MACHINE_LIST``.)"""
    return (
        saga.after is not None
        or undo_order not in form.orders
        or completion is not None
        or at_once
        or (cancel is not None and not form.cancel)
    )
