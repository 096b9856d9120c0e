"""A graph of steps' shape, from each step's dependencies alone: which steps depend on which
(``dependants``), which may run at once (``concurrent``), and the declared undo orders
(``undo_order``, the rule ``schedule.py``'s text explains). Kept apart from the machine
(``schedule.py``, which re-exports them) so that its rules fit one file."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

After = Mapping[str, tuple[str, ...]]
"""Each step's dependencies: the steps that must be done before it starts."""


def dependants(after: After) -> dict[str, frozenset[str]]:
    """Each step's dependants: every step that (transitively) depends on it. Read without
    recursion, dependants first (attack103 F7: once per step of a chain, a run of 990 steps
    undone by dependency raised a bare RecursionError after every step ran, none undone)."""
    order, direct = topological(after)
    found: dict[str, frozenset[str]] = {}
    for step in reversed(order):  # (a step in or below a cycle, which no saga has: below)
        if all(c in found for c in direct[step]):
            found[step] = frozenset([*direct[step], *[d for c in direct[step] for d in found[c]]])
    for step in after:  # (a cycle, which no saga has: what each reaches, step by step)
        if step not in found:
            seen, todo = set(), list(direct[step])
            while todo:
                if (child := todo.pop()) not in seen:
                    seen.add(child)
                    todo += direct[child]
            found[step] = frozenset(seen)
    return {step: found[step] for step in after}


def topological(after: After) -> tuple[list[str], dict[str, list[str]]]:
    """The steps, dependencies before dependants (Kahn's order; a cycle's steps, which no
    saga has, last), and each step's direct dependants."""
    direct: dict[str, list[str]] = {step: [] for step in after}
    waits = {step: len(set(deps)) for step, deps in after.items()}
    for step, deps in after.items():
        for dep in set(deps):
            direct[dep].append(step)
    order, free = [], [step for step in after if not waits[step]]
    while free:
        step = free.pop()
        order.append(step)
        for child in direct[step]:
            waits[child] -= 1
            if not waits[child]:
                free.append(child)
    return order + [step for step in after if waits[step]], direct


def not_above(after: After, asked: Sequence[str], among: Sequence[str]) -> dict[str, list[str]]:
    """For each step of ``asked``, the steps of ``among`` that are not among its own
    (transitive) dependencies, nor itself: in one pass, each step's dependencies kept as a
    bitset, freed once its dependants have read it (attack104 F6: every step's dependants
    as sets took 2.3 GB for a chain of 6,000 steps). ``asked`` steps in a cycle: all."""
    order, direct = topological(after)
    bit = {step: 1 << n for n, step in enumerate(after)}
    mask = sum(bit[step] for step in set(among))
    wanted, left = set(asked), {step: len(direct[step]) for step in after}
    above: dict[str, int] = {}
    found: dict[str, list[str]] = {}
    for step in order:
        mine = 0
        for dep in set(after[step]):
            if dep in above:
                mine |= above[dep] | bit[dep]
                left[dep] -= 1
                if not left[dep]:
                    del above[dep]  # (read by every dependant: freed)
        if direct[step]:
            above[step] = mine
        if step in wanted and (rest := mask & ~mine & ~bit[step]):
            found[step] = [s for s in after if bit[s] & rest]
    return found


def reached(after: After, step: str, up: bool = False) -> set[str]:
    """``step``'s dependants (``up``: its dependencies), transitively: one step's, linear."""
    nexts: Mapping[str, Sequence[str]] = after if up else topological(after)[1]
    seen: set[str] = set()
    todo = list(nexts[step])
    while todo:
        if (child := todo.pop()) not in seen:
            seen.add(child)
            todo += nexts[child]
    return seen


def concurrent(after: After) -> dict[str, tuple[str, ...]]:
    """Each step's concurrent steps: neither depends on the other, so they may run at once."""
    below = dependants(after)
    names = list(after)
    return {
        a: tuple(b for b in names if b != a and b not in below[a] and a not in below[b])
        for a in names
    }


def undo_order(
    order: str,
    steps: Sequence[str],
    *,
    started: Sequence[str],
    ended: Sequence[str],
    definition: Sequence[str],
    after: After,
) -> list[str]:
    """``steps`` (undos to run) in the order ``order`` runs them (``schedule``'s text):
    ``started`` and ``ended`` are every step in the order it started and ended (done or
    failed for good); ``after`` each step's dependencies."""
    if order == "forward":
        return list(steps)
    if order == "reverse_start":
        at = {step: n for n, step in enumerate(started)}
        return sorted(steps, key=lambda s: -at[s])
    if order == "by_dependency":  # the newest defined of those whose dependants' undos
        place = {step: n for n, step in enumerate(definition)}  # have all run (counted, a
        left = set(steps)  # heap: a chain of a thousand steps took 10 s, attack103 F7)
        children = topological(after)[1]  # (each one's nearest dependants to undo: the
        waiting = {s: _nearest(s, left, children) for s in left}  # same order as all
        above: dict[str, list[str]] = {s: [] for s in left}  # of them, in linear time
        for s, them in waiting.items():  # and room for a chain, attack104 F6)
            for t in them:
                above[t].append(s)
        count = {s: len(them) for s, them in waiting.items()}
        free = [(-place[s], s) for s in left if not count[s]]
        heapq.heapify(free)
        out: list[str] = []
        while free:
            step = heapq.heappop(free)[1]
            out.append(step)
            for s in above[step]:
                count[s] -= 1
                if not count[s]:
                    heapq.heappush(free, (-place[s], s))
        return out
    at = {step: n for n, step in enumerate(ended)}
    return sorted(steps, key=lambda s: -at[s])


def _nearest(step: str, left: set[str], children: Mapping[str, list[str]]) -> set[str]:
    """The dependants of ``step`` in ``left`` reached through none other of ``left``."""
    found, seen, todo = set(), set(), list(children.get(step, ()))
    while todo:
        if (child := todo.pop()) in seen:
            continue
        seen.add(child)
        if child in left:
            found.add(child)
        else:
            todo += children.get(child, ())
    return found
