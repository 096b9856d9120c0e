"""The explorer's "not restored" check for a run whose rollback was not clean (attack47
F2): a dead letter, a pending undo or a leaked step leaves its effect standing, so the
world cannot be as it was; but every step the outcome says compensated must be. Its part of
the world is read from the run's own snapshots: each change between two rows is the doing
of the row's step (its action ending, its undo ending), so the keys the standing steps
changed are known; with those put back as they were, the world must be as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

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


def standing_keys(outcome: Outcome) -> set[Any]:
    """The keys changed by a step not compensated (by its action, or an undo that failed)."""
    kept = set(outcome.compensated)
    keys: set[Any] = set()
    last: Mapping[str, Any] = outcome.state_before or {}
    for (_, step, *_), now in zip(outcome.rows, outcome.states, strict=True):
        if step not in kept and now != last:  # (most rows change nothing)
            keys |= {k for k in set(last) | set(now) if _get(last, k) != _get(now, k)}
        last = now
    return keys


def _get(state: Mapping[str, Any], key: Any) -> Any:
    return state.get(key, _ABSENT)


def unrestored(
    outcome: Outcome, restored: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
) -> str | None:
    """The violation if the compensated steps' part of the world is not as it was: the
    world after, the standing steps' keys put back, compared with ``restored``."""
    before, after = outcome.state_before or {}, dict(outcome.state_after or {})
    for key in standing_keys(outcome):
        if key in before:
            after[key] = before[key]
        else:
            after.pop(key, None)
    if restored(before, after):
        return None
    changed = sorted(str(k) for k in set(before) | set(after) if _get(before, k) != _get(after, k))
    where = f" (changed: {', '.join(changed)})" if changed else ""
    return (
        f"not restored: {', '.join(outcome.compensated)} compensated, yet the world is not "
        f"as it was outside the effects left standing{where}"
    )
