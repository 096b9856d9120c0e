"""The saga machine's undo log against what was done: a done step whose undo's log was cut
off (a Ctrl-C in its done event's journal write, then a second one as the first was handled:
attack75 F1, the rollback found nothing to undo and said ``rolled_back``) is logged before
the run fails; and what a run stopped midway leaves in effect. The machine's own rules, in a
file of their own so that ``machine.py`` keeps room under its cap (tests/test_packaging.py).
Stdlib only, as the machine: it imports nothing above it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .machine import Machine
    from .operations import StepSpec


def cut_off(m: Machine) -> StepSpec | None:
    """The last done step, if its undo, to be logged after it, never was (its log cut off);
    None once the run failed (its rollback's lists are made from the log by then)."""
    if not m.completed or m.rolling:
        return None
    last = m.completed[-1]
    specs = getattr(m, "specs", None)  # (a graph's machine knows every step; a list's, the last)
    spec = specs[last] if specs is not None else m.spec
    if spec is None or spec.name != last or not spec.has_undo or spec.register != "after":
        return None
    return None if m.logged(last) else spec


def log_cut_off(m: Machine) -> None:
    """``Machine.fail``: the step ``cut_off`` names is logged before the run fails, so its
    rollback undoes it (or, cut short, leaves it pending for ``recover``): never a run said
    rolled back with that effect standing. A Ctrl-C before the entry is in the log is raised,
    the machine not failed yet, so its driver tells it again (``Run.fail``, ``landed_late``);
    an error of the entry's observers is not the run's failure (the first error goes on)."""
    spec = cut_off(m)
    if spec is None:
        return
    try:
        m._log(spec)
    except Exception:  # (in: an observer's, a journal write's; said by the write's own note)
        return


def in_effect(m: Machine) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``Machine.in_effect``: what a run stopped here (an engine's execution stopped midway)
    leaves in effect: the steps done, and those that may have had their effect (failed after
    it, cut short, or their undo logged before them: owed), neither undone (attack25's F1)."""
    undone, done = {*m.compensated}, m.completed
    maybe = [s for s in m.seen if s not in done and (s in m.effected or m.logged(s))]
    return tuple(s for s in dict.fromkeys(done) if s not in undone), tuple(
        s for s in dict.fromkeys(maybe) if s not in undone
    )
