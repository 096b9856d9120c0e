"""The hand-written booking workflow's twin in the engine: the same three steps on the same
SQLite world, each undo logged before its step, a failing undo a dead letter. Running both
with the same faults and comparing them shows the hand-written Temporal code does what the
lessons' engine does (tests/test_temporal_booking.py)."""

from __future__ import annotations

from functools import partial

from ...saga import Saga, Step
from ..crashlab import apply_effect, undo_effect
from .workflows import STEPS, BookingInput


def _do(world: str, saga: str, step: str, state: object) -> None:
    apply_effect(world, saga, step)


def booking_twin(world: str, saga_id: str) -> Saga:
    """The engine's Saga for ``BookingSaga`` on ``world`` (a crashlab SQLite file)."""
    return Saga(
        [
            Step(
                name,
                partial(_do, world, saga_id, name),
                undo_effect.bind(world=world, saga=saga_id, step=name),
                register="before",
            )
            for name in STEPS
        ],
        name="booking-twin",
    )


def faults_of(booking: BookingInput) -> dict[str, str | tuple[str, str]]:
    """The workflow's input as the engine's ``inject=`` faults."""
    faults: dict[str, str | tuple[str, str]] = {step: "undo_fails" for step in booking.undo_fails}
    if booking.fail_at is not None:
        both = booking.fail_at in faults
        faults[booking.fail_at] = ("fail", "undo_fails") if both else "fail"
    return faults


def single_faults(world: str, saga_id: str) -> list[BookingInput]:
    """No fault, each step failing, and each undo failing (with the last step failing, so
    that every undo runs): the single faults of the booking."""
    cases = [BookingInput(world, saga_id)]
    cases += [BookingInput(world, saga_id, fail_at=step) for step in STEPS]
    cases += [BookingInput(world, saga_id, fail_at=STEPS[-1], undo_fails=[step]) for step in STEPS]
    return cases
