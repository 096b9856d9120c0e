"""A saga with parallel groups as a table (lesson 12): each step, what it waits for, and
what may run at the same time as it, read from the saga's own graph (``saga.dependencies``
and the machine's ``schedule.concurrent``), so the table cannot disagree with a run."""

from __future__ import annotations

from ..outcome import Table
from ..saga import Saga
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


__all__ = ["plan_table"]
