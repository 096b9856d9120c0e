"""Hypothesis strategies for a saga too big to explore every combination of faults:
``@given(fault_combinations(saga, max_faults=4))`` draws combinations for
``rollback_lessons.explore.check``."""

from __future__ import annotations

from typing import Any

from ..explore import Faults, single_faults
from ..faults import ACTION_FAULTS
from ..saga import Saga


def fault_combinations(saga: Saga, max_faults: int = 3) -> Any:
    """Combinations of up to ``max_faults`` faults of ``saga``'s steps (at most one action
    fault and one undo fault per step), in the saga's order; hypothesis shrinks a failing
    one to the fewest faults."""
    from hypothesis import strategies as st

    space = single_faults(saga)
    order = {fault: n for n, fault in enumerate(space)}

    def sort(faults: list[Any]) -> Faults:
        return tuple(sorted(faults, key=order.__getitem__))

    return st.lists(
        st.sampled_from(space),
        max_size=max_faults,
        unique_by=lambda f: (f[0], f[1] in ACTION_FAULTS),
    ).map(sort)
