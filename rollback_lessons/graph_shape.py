"""A graph of steps' shape, from each step's dependencies alone: which steps depend on which
(``dependants``) and which may run at once (``concurrent``). Kept apart from the machine
(``schedule.py``, which re-exports them) so that its rules fit one file."""

from __future__ import annotations

from collections.abc import Mapping

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
