"""The booking saga as a Temporal workflow, written by hand.

The steps run in a safe order (lesson 04): the room and the charge can be undone, the
email cannot (the pivot), and the loyalty points come after it. Each compensation is
appended to a list before its step runs (the undos are idempotent); when the room or the
charge fails, the list is run in reverse. The email gets no compensation and one attempt
(a second attempt could send it twice). Refused (it was not sent), the room and the charge
are undone; timed out (it may have gone), nothing is undone: the saga waits for a person's
Signal, as the generic runner's halt does (the engine's pivot rule,
``machine.pivot_in_doubt``). A step after it is retried forward by its RetryPolicy and
never compensated; if it still fails, the saga halts for a person. Temporal keeps the
workflow's history, so if the worker dies, another one replays it and carries on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.exceptions import TimeoutError as TimedOut

with workflow.unsafe.imports_passed_through():
    from .activities import StepInput

COMPENSABLE = ("reserve_room", "charge_card")
PIVOT = "send_email"
FORWARD = ("award_points",)
STEPS = (*COMPENSABLE, PIVOT, *FORWARD)
# a worker that dies mid-activity: its activity times out after this long (then it is
# retried elsewhere; the email is in doubt)
ACTIVITY_TIMEOUT = timedelta(seconds=2)
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    maximum_attempts=5,
    non_retryable_error_types=["StepFailed", "UndoFailed"],
)
FORWARD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_attempts=3,
)
"""A step after the pivot: retried forward, three attempts (as the engine's FORWARD_RETRY),
then the saga halts for a person; it is never compensated."""
ONCE = RetryPolicy(maximum_attempts=1)
"""The email's one attempt: a retry after a timeout could send it twice."""
ANSWERS = ("sent", "not sent")
"""What a person answers about an email in doubt, having looked at the mail server."""

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
    points_down: int = 0
    """For how many attempts the loyalty service is down (award_points, after the pivot)."""
    email_times_out: bool = False
    """The mail server takes the email, and its reply never comes: the call times out."""


@dataclass
class BookingResult:
    status: str
    undone: list[str] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # left for a person (halted)


ALWAYS = 1_000  # attempts a service stays down when a step after the pivot is told to fail


def step_input(booking: BookingInput, step: str) -> StepInput:
    """The activity's input for ``step`` of ``booking``, with the faults asked for."""
    forward = step in FORWARD
    return StepInput(
        booking.world,
        booking.saga,
        step,
        fail=step == booking.fail_at and not forward,  # a step up to the pivot fails for good
        undo_fails=step in booking.undo_fails,
        down_for=(ALWAYS if step == booking.fail_at else booking.points_down) if forward else 0,
        times_out=step == PIVOT and booking.email_times_out,
    )


@workflow.defn(name="BookingSaga")
class BookingSaga:
    def __init__(self) -> None:
        self.waiting: list[str] = []  # the undos a person is asked about (the email in doubt)
        self.answer: str | None = None

    @workflow.query(name="pending")
    def pending(self) -> list[str]:
        """The undos left for a person while the saga waits for one (empty otherwise)."""
        return list(self.waiting)

    @workflow.signal(name="resolve")
    def resolve(self, answer: str) -> None:
        """A person's answer: the email was "sent" (go on) or "not sent" (compensate)."""
        if self.waiting and answer in ANSWERS:
            self.answer = answer

    @workflow.run
    async def run(self, booking: BookingInput) -> BookingResult:
        compensations: list[StepInput] = []
        try:
            for step in COMPENSABLE:
                call = step_input(booking, step)
                compensations.append(call)  # logged before: the undo is idempotent
                await workflow.execute_activity(
                    "booking.do", call, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
                )
        except ActivityError:
            return await self.roll_back(compensations)
        try:  # the pivot: no compensation (it cannot be unsent) and one attempt
            await workflow.execute_activity(
                "booking.do",
                step_input(booking, PIVOT),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ONCE,
            )
        except ActivityError as err:
            if not isinstance(err.cause, TimedOut):  # refused: it was not sent
                return await self.roll_back(compensations)
            # timed out: it may have gone, so undo nothing unless a person says it did not
            if await self.ask_a_person(compensations) == "not sent":
                return await self.roll_back(compensations)
        for step in FORWARD:  # past the point of no return: retried forward, never undone
            try:
                await workflow.execute_activity(
                    "booking.do",
                    step_input(booking, step),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=FORWARD_RETRY,
                )
            except ActivityError:
                return BookingResult("halted", pending=[step])  # for a person, forward
        return BookingResult("committed")

    async def ask_a_person(self, compensations: list[StepInput]) -> str:
        """Halt: wait for a person's Signal, as long as it takes (a durable wait); a Query
        shows what waits."""
        self.waiting = [call.step for call in reversed(compensations)]
        await workflow.wait_condition(lambda: self.answer is not None)
        self.waiting = []
        return str(self.answer)

    async def roll_back(self, compensations: list[StepInput]) -> BookingResult:
        """Run the compensations through ``COMPENSATE[0]``, each undo an activity."""
        undone: list[str] = []
        dead: list[str] = []

        async def undo(call: StepInput) -> None:
            await workflow.execute_activity(
                "booking.undo", call, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
            )
            undone.append(call.step)

        await COMPENSATE[0](list(compensations), undo, dead)
        return BookingResult("rollback_incomplete" if dead else "rolled_back", undone, dead)
