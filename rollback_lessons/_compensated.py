"""The explorer's "not restored" check for a run whose rollback was not clean (attack47
F2): a dead letter, a pending undo or a leaked step leaves its effect standing, so the
world cannot be as it was; but every step the outcome says compensated must be. Its part of
the world is read from the run's own snapshots: each change between two rows is the doing
of the row's step (its action ending, its undo ending), so the keys the standing steps
changed are known; with those put back as they were, the world must be as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .events import EventKind
from .outcome import Outcome, Status

CLEAN = frozenset({Status.COMMITTED, Status.ROLLED_BACK})
"""Statuses judged otherwise: committed (nothing undone), rolled_back (the whole world)."""

_ABSENT = object()


def needs_check(outcome: Outcome) -> bool:
    """A rollback that was not clean yet compensated a step: its snapshots are read."""
    return outcome.status not in CLEAN and bool(outcome.compensated)


def may_stand(faults: Iterable[tuple[str, str]]) -> bool:
    """Faults that likely leave an effect standing (an undo failing, an effect then a
    failure): the run is traced at once, not run a second time to be judged."""
    return any(fault != "fail" for _, fault in faults)


def standing_keys(outcome: Outcome) -> dict[Any, Any]:
    """The keys changed by a step not compensated (by its action, or an undo that failed),
    each with the value those steps left it, or ``_SHARED`` where a compensated step's
    action changed it too (what it should hold then is the world's own arithmetic)."""
    kept = set(outcome.compensated)
    keys: dict[Any, Any] = {}
    shared: set[Any] = set()
    last: Mapping[str, Any] = outcome.state_before or {}
    for (kind, step, *_), now in zip(outcome.rows, outcome.states, strict=True):
        if now != last:  # (most rows change nothing)
            changed = {k for k in set(last) | set(now) if _get(last, k) != _get(now, k)}
            if step not in kept:
                keys.update((k, _get(now, k)) for k in changed)
            elif not str(kind).startswith("undo"):  # (a compensated step's action)
                shared |= changed
        last = now
    return {k: _SHARED if k in shared else v for k, v in keys.items()}


_SHARED = object()


def _get(state: Mapping[str, Any], key: Any) -> Any:
    return state.get(key, _ABSENT)


def unrestored(
    outcome: Outcome, restored: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
) -> str | None:
    """The violation if the compensated steps' part of the world is not as it was: the
    world after, the standing steps' keys put back, compared with ``restored``."""
    before, after = outcome.state_before or {}, dict(outcome.state_after or {})
    overwritten = []  # a standing step's own key another's undo wrote over (attack159 F1)
    for key, left in standing_keys(outcome).items():
        if left is not _SHARED and _get(after, key) != left:
            overwritten.append(str(key))
        if key in before:
            after[key] = before[key]
        else:
            after.pop(key, None)
    if restored(before, after) and not overwritten:
        return None
    compensated = ", ".join(outcome.compensated)
    if overwritten:  # (an undo that works only when the others did, writing: F1)
        return (f"not restored: {compensated} compensated, yet an effect left standing was "
                f"written over (changed: {', '.join(sorted(overwritten))})")  # fmt: skip
    changed = sorted(str(k) for k in set(before) | set(after) if _get(before, k) != _get(after, k))
    where = f" (changed: {', '.join(changed)})" if changed else ""
    return (
        f"not restored: {compensated} compensated, yet the world is not "
        f"as it was outside the effects left standing{where}"
    )


def changed_nothing(outcome: Outcome, step: str, saga: Any, restored: Callable[..., bool]) -> bool:
    """Did ``step``, which has no undo, leave the world as it was (``restored`` its snapshots
    around its action, traced)? Then it had no effect to undo or report (attack159 F2: such a
    step, a lookup, was told "its effect neither undone nor reported")."""
    if saga[step].undo is not None or not outcome.states:
        return False
    start = None
    for index, (kind, at, *_) in enumerate(outcome.rows):
        if at == step and kind == EventKind.STEP_START:
            start = index
        elif at == step and kind == EventKind.STEP_DONE and start is not None:
            return bool(restored(outcome.states[start], outcome.states[index]))
    return False
