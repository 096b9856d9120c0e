"""How long the server waits for an activity before it times it out itself: a call's own
timeout is measured by its worker (as in process); the server's timeouts only catch a
worker that is gone, the heartbeat's within seconds whatever the saga's length."""

from __future__ import annotations

from ...policies import RetryPolicy
from ..wire import SagaPlan, StepPlan

MARGIN = 5.0
"""Seconds Temporal waits beyond an undo's own timeout (or an action's ``step_timeout``)
before it times the activity out itself: the worker measures the timeout (as in process);
the server's timer, which fires late, only catches a worker that is gone."""

BEAT = 1.0
"""Seconds between an activity's heartbeats, sent by its worker while it runs (waiting for
its turn, or its call running), whatever the call does (``workerend._Cut``)."""

HEARTBEAT_TIMEOUT = 10.0
"""Seconds without a heartbeat after which the server times an activity out: its worker is
gone (killed), and a relaunch takes the saga up that much later, not after the whole
saga's ``turn_wait`` (attack64 F3: 365 s for 5 steps). Far above ``BEAT``: a loaded
machine's late heartbeat does not fail a call still running."""


TURN_CAP = 30 * 86400.0
"""The longest wait for a turn, whatever the plan: past it, the action is refused as never
begun and scheduled again (a wait the OS's timers and the server both take)."""


def turn_wait(plan: SagaPlan) -> float:
    """How long an action may wait for its turn (``completion``): as long as every step's
    action may take, each attempt its RetryPolicy allows within ``step_timeout`` (or timed
    out by the server, its worker gone) and every wait between them (attack78 F1: bounded
    by ``step_timeout`` alone, a sibling's retries outlasted it, and the step waiting failed
    with a bare TimeoutError); 0 with no turns to wait for."""
    if not plan.turns:
        return 0.0
    return min(sum(_longest(step, plan.step_timeout) for step in plan.steps), TURN_CAP)


def _longest(step: StepPlan, step_timeout: float) -> float:
    """The longest a step's action may keep the ones after it in ``completion`` waiting."""
    retry = step.retry
    attempts, waits = 1, 0.0
    if retry is not None:
        policy = RetryPolicy(retry.max_attempts, retry.initial_delay, retry.multiplier,
                             retry.max_delay)  # fmt: skip
        attempts, waits = retry.max_attempts, policy.worst_wait()
    return attempts * (step_timeout + MARGIN + HEARTBEAT_TIMEOUT) + waits
