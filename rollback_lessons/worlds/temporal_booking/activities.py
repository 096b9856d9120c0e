"""The booking's activities: each step and each undo is one. They act on a SQLite world
(``worlds.crashlab``), so any worker process sees the same effects, and every one is
idempotent: Temporal retries an activity whose worker died, perhaps after its effect (an
action or an undo that ran just before a crash runs again, and changes nothing)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ..crashlab import apply_effect, undo_effect

ON_PURPOSE = ApplicationErrorCategory.BENIGN  # failures asked for: logged at DEBUG, not WARNING


@dataclass
class StepInput:
    world: str
    saga: str
    step: str
    fail: bool = False  # a failure on purpose, to make the saga compensate
    undo_fails: bool = False  # its undo fails on purpose (a dead letter)
    down_for: int = 0
    """The service is down for this many attempts (a 503 each): a step after the pivot is
    retried forward by its RetryPolicy, so it gets through if it comes back in time."""
    times_out: bool = False
    """The step takes effect, then its reply never comes: the call times out after it."""


@activity.defn(name="booking.do")
def do_step(step: StepInput) -> None:
    """Do one step's effect, once: a retry after a lost worker finds it done (the booking
    and the step are its idempotency key). A step told to fail raises a non-retryable
    error (a refusal: no effect), a service that is down a retryable one; one told to time
    out does its effect and outlasts its timeout."""
    if step.fail:
        raise ApplicationError(
            f"{step.step} failed", type="StepFailed", non_retryable=True, category=ON_PURPOSE
        )
    if activity.info().attempt <= step.down_for:
        raise ApplicationError(
            f"{step.step}: service unavailable (503)", type="Unavailable", category=ON_PURPOSE
        )
    apply_effect(step.world, step.saga, step.step, once=True)
    if step.times_out:  # done, but the caller never hears so: it cannot tell
        timeout = activity.info().start_to_close_timeout or timedelta(seconds=2)
        time.sleep(timeout.total_seconds() + 0.5)


@activity.defn(name="booking.undo")
def undo_step(step: StepInput) -> None:
    """Undo one step's effect, once: a second call changes nothing."""
    if step.undo_fails:
        raise ApplicationError(
            f"undo of {step.step} failed",
            type="UndoFailed",
            non_retryable=True,
            category=ON_PURPOSE,
        )
    undo_effect(
        world=step.world, saga=step.saga, step=step.step, idempotency_key=f"{step.saga}:{step.step}"
    )
