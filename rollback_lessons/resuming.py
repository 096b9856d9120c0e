"""The saga machine taking up a crashed saga's rollback (``Machine.resume_rollback``, for
``recover``): the machine's own rule, in a file of its own so that ``machine.py`` keeps
room under its cap (tests/test_packaging.py). Stdlib only, as the machine: it imports
nothing above it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .events import EventKind
from .operations import Ask, Entry, Finished, Op
from .outcome import DeadLetter
from .verdicts import halted_at_pivot, pivot_at_stake, pivot_check

if TYPE_CHECKING:
    from .machine import Machine


def resumed(
    m: Machine, undos: Sequence[tuple[str, int]], *, leaked: Sequence[str],
    dead: Sequence[DeadLetter], pivot: tuple[Any, ...] | None, semantic: Sequence[str],
    corrected: Sequence[str], cancelled: bool, timeouts: Mapping[str, float] | None,
    halted_at: str | None,
) -> Op:  # fmt: skip
    """``m``, new, takes up the rollback ``Machine.resume_rollback`` describes: its answer.
    A pivot at stake halts it for a person; one halted before asks again, that undo first."""
    from .machine import Phase  # (loaded: it calls this)

    m.resumed, m.rolling, m.cancelled = True, True, cancelled
    corrections, own = set(semantic), timeouts or {}  # (a correction: rollback_incomplete)
    m.log = [Entry(step, "before", step in corrections, own.get(step), attempts)
             for step, attempts in undos]  # fmt: skip
    m.seen = [step for step, _ in undos]
    if pivot is not None and pivot_at_stake(pivot[1]):
        m.halted, m.phase = True, Phase.DONE
        m.pending = [e.step for e in m.log[::-1]]  # left for a person, as in process
        m.leaked = list(leaked)  # (a step with no undo, the pivot too: it started)
        check = pivot_check(pivot, m.leaked, m.pending)  # (and those done after it)
        m.reason = halted_at_pivot(*pivot[:2]) + check
        m.dead_letters, m.semantic = list(dead), list(corrected)
        m._emit(EventKind.HALTED, pivot[0], {"reason": m.reason, "recovered": True})
        return Finished(m)
    m.leaked = list(leaked)
    m._rolling_back(m._order())
    m.dead_letters, m.semantic = list(dead), list(corrected)  # (recorded before the crash)
    details = {"undos": len(m.todo), "order": m.undo_order, "policy": m.policy.name}
    m._emit(EventKind.ROLLBACK_START, None, {**details, "recovered": True})
    if halted_at in (steps := [e.step for e in m.todo]):  # never tried again unasked
        m.todo = sorted(m.todo, key=lambda e: e.step != halted_at)  # (it first: stable)
        m.entry, m.phase, m.base = m.todo[0], Phase.ASK, m.todo[0].before
        return Ask((halted_at, *(s for s in steps if s != halted_at)))
    return m._next_undo()
