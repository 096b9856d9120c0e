"""The hand-written booking workflow's twin in the engine: the same steps on the same SQLite
world, each compensation logged before its step, the email a pivot with no undo, the
loyalty points retried forward after it (three attempts, then a halt), a failing undo a
dead letter. Running both with the same faults and comparing them shows the hand-written
Temporal code does what the lessons' engine does (tests/test_temporal_booking.py)."""

from __future__ import annotations

from functools import partial

from ...clock import VirtualClock
from ...policies import RetryPolicy
from ...saga import Saga, Step
from ..crashlab import apply_effect, undo_effect
from .workflows import COMPENSABLE, FORWARD, FORWARD_RETRY, PIVOT, BookingInput

FORWARD_ATTEMPTS = RetryPolicy(
    max_attempts=FORWARD_RETRY.maximum_attempts,
    initial_delay=FORWARD_RETRY.initial_interval.total_seconds(),
    multiplier=FORWARD_RETRY.backoff_coefficient,
)


def _do(world: str, saga: str, step: str, state: object) -> None:
    apply_effect(world, saga, step)


def _down_for(attempts: int, world: str, saga: str, step: str, state: dict) -> None:
    """A service down for ``attempts`` calls (a 503 each), then doing the step."""
    state[f"{step} calls"] = calls = state.get(f"{step} calls", 0) + 1
    if calls <= attempts:
        raise ConnectionError(f"{step}: service unavailable (503)")
    apply_effect(world, saga, step)


def booking_twin(world: str, saga_id: str, points_down: int = 0) -> Saga:
    """The engine's Saga for ``BookingSaga`` on ``world`` (a crashlab SQLite file); the
    loyalty service is down for ``points_down`` attempts. Its retry waits on a virtual clock."""
    steps = [
        Step(
            name,
            partial(_do, world, saga_id, name),
            undo_effect.bind(world=world, saga=saga_id, step=name),
            register="before",
        )
        for name in COMPENSABLE
    ]
    steps.append(Step(PIVOT, partial(_do, world, saga_id, PIVOT), kind="pivot"))
    steps += [
        Step(
            name,
            partial(_down_for, points_down, world, saga_id, name),
            kind="retriable",
            retry=FORWARD_ATTEMPTS,
        )
        for name in FORWARD
    ]
    return Saga(steps, name="booking-twin", clock=VirtualClock())


def faults_of(booking: BookingInput) -> dict[str, str | tuple[str, str]]:
    """The workflow's input as the engine's ``inject=`` faults (an email that times out
    after it went: ``fail_after_effect``)."""
    faults: dict[str, str | tuple[str, str]] = {step: "undo_fails" for step in booking.undo_fails}
    if booking.fail_at is not None:
        both = booking.fail_at in faults
        faults[booking.fail_at] = ("fail", "undo_fails") if both else "fail"
    if booking.email_times_out:
        faults[PIVOT] = "fail_after_effect"
    return faults


def single_faults(world: str, saga_id: str) -> list[BookingInput]:
    """No fault, each step failing, each undo failing (with the email failing, so that
    every undo runs), and the loyalty service down for a while (then back in time): the
    single faults of the booking."""
    cases = [BookingInput(world, saga_id)]
    cases += [
        BookingInput(world, saga_id, fail_at=step) for step in (*COMPENSABLE, PIVOT, *FORWARD)
    ]
    cases += [BookingInput(world, saga_id, fail_at=PIVOT, undo_fails=[s]) for s in COMPENSABLE]
    cases.append(BookingInput(world, saga_id, points_down=2))
    return cases
