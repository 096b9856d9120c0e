"""attack212 F3: a step attempt this process saw refuse cleanly, whose answer died with the
server, was told "in doubt, its action's end never heard ... it may have happened, or never
run; check it by hand" after the server came back and timed the activity out. What this
process saw is said instead: it refused with nothing done (the server's record still
counts it leaked). Only when every attempt of the step ran here: one that ran elsewhere may
have happened."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("temporalio")

from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent

from rollback_lessons.runners.hosted import Hosted
from rollback_lessons.runners.temporal.lost import never_heard


def _history(attempts: int) -> list[Any]:
    """Step c's action scheduled ``attempts`` times: each but the last failed, the last
    timed out by the server."""
    events, n = [], 0
    for attempt in range(attempts):
        n += 1
        scheduled = HistoryEvent(event_id=n)
        attributes = scheduled.activity_task_scheduled_event_attributes
        attributes.activity_type.name = "act"
        attributes.input.payloads.append(Payload(data=json.dumps({"step": "c"}).encode()))
        events.append(scheduled)
        n += 1
        ended = HistoryEvent(event_id=n)
        if attempt < attempts - 1:
            ended.activity_task_failed_event_attributes.scheduled_event_id = n - 1
        else:
            ended.activity_task_timed_out_event_attributes.scheduled_event_id = n - 1
        events.append(ended)
    return events


async def _events(events: list[Any]) -> Any:
    for event in events:
        yield event


def _said(attempts: int, calls: list, effected: frozenset = frozenset()) -> str:
    run = Hosted(saga=None, state={}, faults={}, calls=calls, effected=set(effected))
    [note] = asyncio.run(never_heard(_events(_history(attempts)), ["c"], (), run))
    return note


def test_a_refusal_seen_here_whose_answer_died_is_said_so():
    calls = [("action", "a", True), ("action", "c", False), ("action", "c", False)]
    note = _said(2, calls)
    assert note.startswith("c: its action's latest attempt refused in this process with nothing")
    assert "it did not happen" in note and "check it by hand" not in note


@pytest.mark.parametrize(
    "calls, effected",
    [
        ([("action", "c", False)], set()),  # (its latest attempt ran elsewhere, or never here)
        ([("action", "c", False), ("action", "c", True)], set()),  # (succeeded here)
        ([("action", "c", False), ("action", "c", False)], {"c"}),  # (after its effect)
        ([], set()),
    ],
)
def test_anything_else_stays_in_doubt(calls, effected):
    note = _said(2, calls, effected)
    assert note.startswith("c: in doubt, its action's end never heard") and "by hand" in note
