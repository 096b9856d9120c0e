"""How long the server waits for an activity before it times it out itself: a call's own
timeout is measured by its worker (as in process); the server's timeouts only catch a
worker that is gone, the heartbeat's within seconds whatever the saga's length."""

from __future__ import annotations

from ..wire import SagaPlan

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


def turn_wait(plan: SagaPlan) -> float:
    """How long an action may wait for its turn (``completion``): every other step's action
    in turn before it, each within ``step_timeout``; 0 with no turns to wait for."""
    return plan.step_timeout * len(plan.steps) if plan.turns else 0.0
