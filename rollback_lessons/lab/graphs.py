"""A saga with parallel groups as a table (lesson 12): each step, what it waits for, and
what may run at the same time as it, read from the saga's own graph (``saga.dependencies``
and the machine's ``schedule.concurrent``), so the table cannot disagree with a run."""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Parallel
from ..outcome import Table
from ..saga import Saga, Step
from ..schedule import concurrent


def _names(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(names) if names else "-"


def plan_table(saga: Saga) -> Table:
    """One row a step, in definition order: its label, the steps it starts after, and the
    steps that may run at once with it (neither depends on the other)."""
    after = saga.dependencies
    at_once = concurrent(after)
    labels = {step.name: step.label for step in saga.steps}
    return Table(
        header=("step", "what it does", "starts after", "may run at once with"),
        rows=tuple(
            (step, labels.get(step) or "", _names(after[step]), _names(at_once[step]))
            for step in after
        ),
    )


Groups = tuple[tuple[tuple[str, ...], ...], ...]
"""Parallel groups: each a tuple of branches, each branch the names of the steps it holds."""


def branch_groups(saga: Saga) -> Groups:
    """Every parallel group of the saga's definition (nested ones too, after the group
    that holds them): its branches, each as the steps it holds, for the pictures' lanes."""
    found: list[tuple[tuple[str, ...], ...]] = []

    def names(items: Sequence[Step | Parallel]) -> tuple[str, ...]:
        out: list[str] = []
        for item in items:
            if isinstance(item, Parallel):
                at = len(found)
                found.insert(at, ())  # this group before the groups inside it
                branches = tuple(names(branch) for branch in item.branches)
                found[at] = branches
                out += [name for branch in branches for name in branch]
            else:
                out.append(item.name)
        return tuple(out)

    names(saga.definition)
    return tuple(found)


__all__ = ["Groups", "branch_groups", "plan_table"]
