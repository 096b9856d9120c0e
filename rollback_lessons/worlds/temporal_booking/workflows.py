"""The booking saga as a Temporal workflow, written by hand.

Each compensation is appended to a list (before its step when the step can fail after
its effect, after it otherwise); on failure the list is run in reverse. Temporal keeps
the workflow's history, so if the worker dies, another one replays it and carries on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from .activities import StepInput

STEPS = ("reserve_room", "charge_card", "send_email")
# a worker that dies mid-activity: its activity is retried elsewhere after this long
ACTIVITY_TIMEOUT = timedelta(seconds=2)
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    maximum_attempts=5,
    non_retryable_error_types=["StepFailed", "UndoFailed"],
)

Undo = Callable[[StepInput], Awaitable[None]]


async def compensate(compensations: list[StepInput], undo: Undo, dead_letters: list[str]) -> None:
    """Run the compensations newest first; one that fails becomes a dead letter, and the
    rest still run. (Lesson 08's exercise asks for this function.)"""
    for call in reversed(compensations):
        try:
            await undo(call)
        except ActivityError:
            dead_letters.append(call.step)


COMPENSATE: list[Callable[[list[StepInput], Undo, list[str]], Awaitable[None]]] = [compensate]
"""The compensation the workflow runs; an exercise puts the learner's own here (its worker
runs workflows unsandboxed, so it sees the change)."""


@dataclass
class BookingInput:
    world: str
    saga: str
    fail_at: str | None = None
    undo_fails: list[str] = field(default_factory=list)


@dataclass
class BookingResult:
    status: str
    undone: list[str] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)


@workflow.defn(name="BookingSaga")
class BookingSaga:
    @workflow.run
    async def run(self, booking: BookingInput) -> BookingResult:
        compensations: list[StepInput] = []
        try:
            for step in STEPS:
                call = StepInput(
                    booking.world,
                    booking.saga,
                    step,
                    fail=step == booking.fail_at,
                    undo_fails=step in booking.undo_fails,
                )
                compensations.append(call)  # logged before: the undo is idempotent
                await workflow.execute_activity(
                    "booking.do", call, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
                )
        except ActivityError:
            undone: list[str] = []
            dead: list[str] = []

            async def undo(call: StepInput) -> None:
                await workflow.execute_activity(
                    "booking.undo",
                    call,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=RETRY,
                )
                undone.append(call.step)

            await COMPENSATE[0](list(compensations), undo, dead)
            return BookingResult("rollback_incomplete" if dead else "rolled_back", undone, dead)
        return BookingResult("committed")
