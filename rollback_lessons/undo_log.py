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


def cut_off(m: Machine) -> list[StepSpec]:
    """The done steps whose undo, to be logged after them, never was (its log cut off): a
    list's last step; any of a graph's, not only its last done (a branch that completes
    after one cut off never hides it). Empty once the run failed (its rollback's lists are
    made from the log by then)."""
    if not m.completed or m.rolling:
        return []
    specs = getattr(m, "specs", None)  # (a graph's machine knows every step; a list's, the last)
    if specs is not None:
        done = [specs[step] for step in dict.fromkeys(m.completed)]
    else:
        done = [m.spec] if m.spec is not None and m.spec.name == m.completed[-1] else []
    logged = {entry.step for entry in m.log}  # (once: a graph of many steps fails in O(n))
    return [s for s in done if s.has_undo and s.register == "after" and s.name not in logged]


def log_cut_off(m: Machine) -> None:
    """``Machine.fail``: the steps ``cut_off`` names are logged before the run fails, so its
    rollback undoes them (or, cut short, leaves them pending for ``recover``): never a run
    said rolled back with that effect standing. A Ctrl-C before an entry is in the log is
    raised, the machine not failed yet, so its driver tells it again (``Run.fail``,
    ``landed_late``, a graph's branch: ``broken``); an error of the entry's observers is not
    the run's failure (the first error goes on)."""
    for spec in cut_off(m):
        try:
            m._log(spec)
        except Exception:  # (in: an observer's, a journal write's; said by the write's own note)
            continue


def in_effect(m: Machine) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``Machine.in_effect``: what a run stopped here (an engine's execution stopped midway)
    leaves in effect: the steps done, and those that may have had their effect (failed after
    it, cut short, or their undo logged before them: owed), neither undone (attack25's F1)."""
    undone, done = {*m.compensated}, m.completed
    maybe = [s for s in m.seen if s not in done and (s in m.effected or m.logged(s))]
    return tuple(s for s in dict.fromkeys(done) if s not in undone), tuple(
        s for s in dict.fromkeys(maybe) if s not in undone
    )
