"""Temporal's documented limits (docs.temporal.io/self-hosted-guide/defaults), checked
before a saga starts: a saga beyond them would never end (a workflow task that fails on
an oversized payload is retried for ever). Plain data: the workflow imports it too."""

from __future__ import annotations

import json

from ...errors import InvalidPipelineError
from ..owed import all_undone
from ..wire import SagaPlan, record_data

PAYLOAD_LIMIT = 2 * 1024 * 1024
"""Bytes of one payload (a workflow's input or result, an activity's input): 2 MB."""
ID_LIMIT = 1000
"""Characters of an identifier such as a workflow id (``limit.maxIDLength``)."""
HISTORY_EVENTS_LIMIT = 51_200
"""Events in one workflow's history."""
EVENTS_PER_ACTIVITY = 3
"""An activity's events in the history: scheduled, started, and how it ended."""


class TemporalLimitExceeded(InvalidPipelineError):
    """The saga does not fit one of Temporal's limits; the message names it."""


def size(data: object) -> int:
    """Bytes of ``data`` as JSON (as the SDK's default converter writes a payload)."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def check_plan(plan: SagaPlan, input_size: int) -> None:
    """Refuse a plan that cannot run within Temporal's limits: its workflow id, the history
    of a run that does every step, its input (``input_size`` bytes), the record of a run
    that undoes every step (any run that rolls back everything records at least that)."""
    if len(plan.run_id) > ID_LIMIT:
        raise TemporalLimitExceeded(
            f"the workflow id ({len(plan.run_id)} characters, from the saga's name) is over "
            f"Temporal's limit of {ID_LIMIT} characters for identifiers: name the saga shorter"
        )
    activities = EVENTS_PER_ACTIVITY * len(plan.steps)
    if activities > HISTORY_EVENTS_LIMIT:
        raise TemporalLimitExceeded(
            f"a run of its {len(plan.steps)} steps writes at least {activities} events, over "
            f"Temporal's limit of {HISTORY_EVENTS_LIMIT} events in a workflow's history"
        )
    if input_size > PAYLOAD_LIMIT:
        raise TemporalLimitExceeded(
            f"the saga's plan is {_mb(input_size)}, over Temporal's payload limit of "
            f"{_mb(PAYLOAD_LIMIT)}: shorter step names, or fewer steps"
        )
    least = size(record_data(all_undone(plan.specs(), plan.undo_order)))
    if least > PAYLOAD_LIMIT:
        raise TemporalLimitExceeded(
            f"the record of a rollback of this saga is at least {_mb(least)}, over "
            f"Temporal's payload limit of {_mb(PAYLOAD_LIMIT)} (every step's name is in "
            "each of its events): shorter step names, or fewer steps"
        )


def check_result(data: object) -> None:
    """A workflow's result must fit one payload (checked before it is returned: an
    oversized result would fail its workflow task again and again)."""
    found = size(data)
    if found > PAYLOAD_LIMIT:
        raise TemporalLimitExceeded(
            f"the saga's record is {_mb(found)}, over Temporal's payload limit of "
            f"{_mb(PAYLOAD_LIMIT)}: it ran, but its Outcome cannot be returned"
        )
