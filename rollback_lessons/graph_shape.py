"""A graph of steps' shape, from each step's dependencies alone: which steps depend on which
(``dependants``), which may run at once (``concurrent``), and the declared undo orders
(``undo_order``, the rule ``schedule.py``'s text explains). Kept apart from the machine
(``schedule.py``, which re-exports them) so that its rules fit one file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

After = Mapping[str, tuple[str, ...]]
"""Each step's dependencies: the steps that must be done before it starts."""


def dependants(after: After) -> dict[str, frozenset[str]]:
    """Each step's dependants: every step that (transitively) depends on it."""
    direct: dict[str, set[str]] = {step: set() for step in after}
    for step, deps in after.items():
        for dep in deps:
            direct[dep].add(step)
    found: dict[str, frozenset[str]] = {}

    def of(step: str) -> frozenset[str]:
        if step not in found:
            out: set[str] = set()
            for child in direct[step]:
                out |= {child, *of(child)}
            found[step] = frozenset(out)
        return found[step]

    for step in after:
        of(step)
    return found


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
    if order == "by_dependency":
        place = {step: n for n, step in enumerate(definition)}
        left = set(steps)
        out: list[str] = []
        while left:  # the newest defined of those whose dependants' undos have all run
            free = [s for s in left if not (below[s] & left)]
            step = max(free, key=place.__getitem__)
            out.append(step)
            left.remove(step)
        return out
    at = {step: n for n, step in enumerate(ended)}
    return sorted(steps, key=lambda s: -at[s])
