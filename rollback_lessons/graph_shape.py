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
    direct: dict[str, set[str]] = {step: set() for step in after}
    waits = {step: len(set(deps)) for step, deps in after.items()}
    for step, deps in after.items():
        for dep in set(deps):
            direct[dep].add(step)
    order, free = [], [step for step in after if not waits[step]]
    while free:  # (dependencies before dependants: Kahn's order)
        step = free.pop()
        order.append(step)
        for child in direct[step]:
            waits[child] -= 1
            if not waits[child]:
                free.append(child)
    found: dict[str, frozenset[str]] = {}
    for step in reversed(order):
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
    below: Mapping[str, frozenset[str]],
) -> list[str]:
    """``steps`` (undos to run) in the order ``order`` runs them (``schedule``'s text):
    ``started`` and ``ended`` are every step in the order it started and ended (done or
    failed for good); ``below`` each step's dependants."""
    if order == "forward":
        return list(steps)
    if order == "reverse_start":
        at = {step: n for n, step in enumerate(started)}
        return sorted(steps, key=lambda s: -at[s])
    if order == "by_dependency":  # the newest defined of those whose dependants' undos
        place = {step: n for n, step in enumerate(definition)}  # have all run (counted, a
        left = set(steps)  # heap: a chain of a thousand steps took 10 s, attack103 F7)
        waiting = {s: below[s] & left for s in left}
        above: dict[str, list[str]] = {s: [] for s in left}
        for s, them in waiting.items():
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
