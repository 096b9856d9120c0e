"""A Stop in a lesson's panel, at any event, never says `cancelled` or `rolled_back` of a
world left changed (learn80 F1): lesson 12's travel charge had no undo, so a Stop while it
ran gave `cancelled` with 600 still charged, beside lesson 12's "the world is as it was",
lesson 02's "undo=None is for a step with nothing to undo" and lesson 11's third check.
Each lesson world, every branch finishing first, cancelled after each of its events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from test_widgets_steady import worlds

from rollback_lessons import Parallel, Status
from rollback_lessons.explore import completion_orders
from rollback_lessons.worlds import travel
from rollback_lessons.worlds.examples import booking_restored

Restored = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def services_as_seen(state: Mapping[str, Any]) -> dict[str, Any]:
    """Lesson 06's world as its people see it: a reverted row is a row undone (a semantic
    compensation, as the lesson says), money net of refunds."""
    return {
        "rows": [row for row in state["sheet rows"] if not row.endswith(":reverted")],
        "calendar": state["calendar"],
        "charged": state["charged"] - state["refunded"],
        "emails sent": state["emails sent"],
    }


RESTORED: dict[str, Restored] = {
    "booking": booking_restored,  # a refund is a record beside its charge (lesson 04)
    "booking (04, unsafe order)": booking_restored,
    "services (06)": lambda before, after: services_as_seen(before) == services_as_seen(after),
}
WORLDS = {
    **worlds(),
    "travel (12)": (travel.booking, travel.state),
    "travel (12), declared": (lambda: travel.booking(declared=True), travel.state),
}


def stopped_after(make_saga, make_state, completion, at: int) -> Any:
    """The run cancelled once event ``at`` happened (the panel's Stop after it)."""
    happened = 0

    def count(_event: Any) -> None:
        nonlocal happened
        happened += 1

    return make_saga().run(make_state(), completion=completion, on_event=count,
                           cancel=lambda: happened > at)  # fmt: skip


@pytest.mark.parametrize("world", list(WORLDS))
def test_a_stop_at_any_event_says_cancelled_only_of_a_world_as_it_was(world):
    make_saga, make_state = WORLDS[world]
    restored = RESTORED.get(world, lambda before, after: before == after)
    saga = make_saga()
    graph = any(isinstance(item, Parallel) for item in saga.definition)
    stops = 0
    for completion in completion_orders(saga) if graph else [None]:
        plain = make_saga().run(make_state(), completion=completion)
        for at in range(len(plain.events)):
            outcome = stopped_after(make_saga, make_state, completion, at)
            if outcome.status in (Status.CANCELLED, Status.ROLLED_BACK):
                stops += outcome.status is Status.CANCELLED
                assert restored(outcome.state_before, outcome.state_after), (
                    f"{world}, stopped after event {at} ({completion}): "
                    f"{outcome.status}, kept {outcome.kept}\n{outcome}"
                )
    assert stops, f"{world}: no Stop took"
