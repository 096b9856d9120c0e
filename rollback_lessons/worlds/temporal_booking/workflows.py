"""The booking saga as a Temporal workflow, written by hand.

Each compensation is appended to a list (before its step when the step can fail after
its effect, after it otherwise); on failure the list is run in reverse. Temporal keeps
the workflow's history, so if the worker dies, another one replays it and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from .activities import StepInput

STEPS = ("reserve_room", "charge_card", "send_email")
# a worker that dies mid-activity: its activity is retried elsewhere after this long
ACTIVITY_TIMEOUT = timedelta(seconds=3)
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    maximum_attempts=5,
    non_retryable_error_types=["StepFailed"],
)


@dataclass
class BookingInput:
    world: str
    saga: str
    fail_at: str | None = None


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
                call = StepInput(booking.world, booking.saga, step, step == booking.fail_at)
                compensations.append(call)  # logged before: the undo is idempotent
                await workflow.execute_activity(
                    "booking.do", call, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
                )
        except ActivityError:
            undone, dead = [], []
            for call in reversed(compensations):  # newest first
                try:
                    await workflow.execute_activity(
                        "booking.undo",
                        call,
                        start_to_close_timeout=ACTIVITY_TIMEOUT,
                        retry_policy=RETRY,
                    )
                    undone.append(call.step)
                except ActivityError:
                    dead.append(call.step)  # a dead letter: the result says so
            return BookingResult("rollback_incomplete" if dead else "rolled_back", undone, dead)
        return BookingResult("committed")
