"""Temporal's documented limits (docs.temporal.io/self-hosted-guide/defaults), checked
before a saga starts: a saga beyond them would never end (a workflow task that fails on
an oversized payload is retried for ever). Plain data: the workflow imports it too."""

from __future__ import annotations

import json

from ...errors import InvalidPipelineError
from ..owed import all_undone
from ..wire import RetrySpec, SagaPlan, record_data

PAYLOAD_LIMIT = 2 * 1024 * 1024
"""Bytes of one payload (a workflow's input or result, an activity's input): 2 MB."""
ID_LIMIT = 1000
"""Characters of an identifier such as a workflow id (``limit.maxIDLength``)."""
HISTORY_EVENTS_LIMIT = 51_200
"""Events in one workflow's history."""
WORKFLOW_TASK = 3
"""A workflow task's events (scheduled, started, completed): at worst one after each event
the workflow waits on."""
EVENTS_PER_ATTEMPT = 3 + WORKFLOW_TASK
"""An activity's events (scheduled, started, how it ended) and the workflow task that hears
it."""
EVENTS_PER_WAIT = 2 + WORKFLOW_TASK
"""A retry's durable timer (started, fired) and the workflow task that hears it."""
RUN_EVENTS = 1 + WORKFLOW_TASK + 1 + 1 + WORKFLOW_TASK
"""The run's own: started, its first workflow task, how it ended; a cancel request and the
workflow task that hears it."""
A_PERSON = 2 + 1 + WORKFLOW_TASK
"""A halt's wait for a person: its timer, the answer (a Signal), the workflow task."""


def _tries(retry: RetrySpec | None) -> int:
    """The events of one action's or undo's attempts at worst: every attempt, every wait."""
    n = retry.max_attempts if retry is not None else 1
    return n * EVENTS_PER_ATTEMPT + (n - 1) * EVENTS_PER_WAIT


def worst_history(plan: SagaPlan) -> int:
    """The events a run of ``plan`` writes at worst: every step's action retried as its
    RetryPolicy allows, every undo as the undo policy allows, a cancel, a person asked once
    (a policy that decides in code, or a person who answers "retry" again and again, are not
    bounded: counted as the policy's retry, and one answer)."""
    undo = _tries(plan.policy.retry)
    total = RUN_EVENTS + (A_PERSON if plan.halt_wait != 0 else 0)
    for step in plan.steps:
        total += _tries(step.retry) + (undo if step.has_undo else 0)
    return total


class TemporalLimitExceeded(InvalidPipelineError):
    """The saga does not fit one of Temporal's limits; the message names it."""


def size(data: object) -> int:
    """Bytes of ``data`` as JSON (as the SDK's default converter writes a payload)."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def check_plan(plan: SagaPlan, input_size: int, history_limit: int = HISTORY_EVENTS_LIMIT) -> None:
    """Refuse a plan that cannot run within Temporal's limits: its workflow id, the history
    of its worst run (``worst_history``: a run that reaches ``history_limit`` is terminated
    by the server, nothing undone), its input (``input_size`` bytes), the record of a run
    that undoes every step (any run that rolls back everything records at least that)."""
    if len(plan.run_id) > ID_LIMIT:
        raise TemporalLimitExceeded(
            f"the workflow id ({len(plan.run_id)} characters, from the saga's name) is over "
            f"Temporal's limit of {ID_LIMIT} characters for identifiers: name the saga shorter"
        )
    worst = worst_history(plan)
    if worst > history_limit:
        raise TemporalLimitExceeded(
            f"a run of its {len(plan.steps)} steps can write {worst} events (every retry and "
            f"undo attempt, their timers and workflow tasks), over Temporal's limit of "
            f"{history_limit} events in a workflow's history (the server would terminate it "
            "mid-run, nothing undone): fewer max_attempts, or fewer steps"
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
