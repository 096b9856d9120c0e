"""A timing (``completion=``) of a parallel group wider than the worker's activity slots
(attack278 F4): every action of the group starts at once and waits for its turn, each in a
slot; with temporalio's default of 100 slots a group of 120 in reverse order stalled (no
history event for minutes, no outcome, no error; one of 101 took 178 s, its waits timing
out). The worker now has more slots than any run within the history limit can start."""

from __future__ import annotations

import pytest
from conftest import SOAK

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.runners.temporal.limits import (
    ACTIVITY_SLOTS,
    HISTORY_EVENTS_LIMIT,
    worst_history,
)
from rollback_lessons.runners.temporal.plan import plan_for


def _wide(width: int) -> tuple[Saga, list[str]]:
    names = [f"s{i}" for i in range(width)]
    steps = [Step(n, lambda s, n=n: s.setdefault("log", []).append(n)) for n in names]
    return Saga([Parallel(*steps)], name="wide"), names


def test_no_run_within_the_history_limit_starts_more_activities_than_the_worker_has_slots():
    """A group one wider than the slots, its steps the cheapest (no undo, no retry), is
    over the history limit: refused before it runs (``check_plan``), never stalled."""
    saga, names = _wide(ACTIVITY_SLOTS + 1)
    plan = plan_for(saga, completion=list(reversed(names)))
    assert worst_history(plan, completion=True) > HISTORY_EVENTS_LIMIT


@pytest.mark.skipif(not SOAK, reason="make soak: a group of 120 played in turn takes a minute")
def test_a_group_wider_than_temporalios_default_slots_plays_its_timing(on_temporal):
    saga, names = _wide(120)
    completion = list(reversed(names))  # (the last to start ends first: every slot waits)
    expected = saga.run({}, completion=completion)

    async def scenario(runner):
        return await runner.run(saga, {}, completion=completion)

    outcome = on_temporal(scenario)
    assert (outcome.status, outcome.completed) == (expected.status, expected.completed)
    assert outcome.state_after == expected.state_after
