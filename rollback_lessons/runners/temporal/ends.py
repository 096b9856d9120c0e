"""How the workflow reads an activity's end: what failed in it, whether its call's end is
unknown (it may have landed, or may yet), and whether its call never began. The workflow
only says what it saw; the machine decides what that leaves."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import CancelledError as ActivityCancelled
from temporalio.exceptions import TimeoutError as ServerTimeout

with workflow.unsafe.imports_passed_through():  # plain data, no I/O
    from ...errors import RemoteError
    from ..wire import ErrorRecord

IN_DOUBT = "StepTimedOut"
"""The error of an action still running past ``step_timeout`` (the worker measures it,
from its turn): its call goes on, its end unknown."""
ABANDONED = "AbandonedCall"
"""The error of an action still running when its runner closed (``activities.Threads``):
its call goes on on its thread, its end unknown, as ``IN_DOUBT`` (attack21's T1: told as
a clean failure, another worker rolled back without it and its effect landed after)."""
SHUT = "WorkerShutdown"  # (the SDK's core's, a call past the worker's shutdown grace: attack59 T4)
CUT = "CancelledError"
"""An activity its worker's loop cancelled (``asyncio.run`` ending on a ``sys.exit``), failed
by the SDK with no record: its end unknown (``end_unknown``; attack51 F2: a clean failure)."""
NOT_CALLED = "RunnerClosing"
"""A call a worker refused to begin (its runner closing, the run not hosted there, or a
cancel heard before the call): the workflow schedules it again, for whichever worker takes
the run up, unless the run's cancel stops it there (attack21's T1; attack69 F2)."""


def cause_of(err: BaseException) -> tuple[BaseException, bool]:
    """What really failed inside an activity (the activity put the facts in its details),
    and whether it was a cancellation (never retried: the machine is told it interrupted)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.details:
        return ErrorRecord(**cause.details[0]).to_exception(), False
    if isinstance(cause, ApplicationError) and cause.type in (CUT, ABANDONED, SHUT):  # (ours: none)
        said = "its worker stopped mid-call" if cause.type == CUT else cause.message
        return RemoteError(cause.type, f"{said}: its end unknown", (cause.type,)), False
    name = type(cause).__name__
    return RemoteError(name, str(cause), (name,)), "Cancel" in name


def timed_out(err: ActivityError) -> bool:
    """Did a call end on its own timeout (``step_timeout`` in its worker, ``IN_DOUBT``, or
    the server's)? Its own failure, as a step's error is: it wins over a cancel asked while
    it ran, as in process (attack199 F2: the run said ``cancelled``, its error the timeout)."""
    cause = err.cause
    return isinstance(cause, ServerTimeout) or (
        isinstance(cause, ApplicationError) and cause.type == IN_DOUBT
    )


def end_unknown(err: ActivityError) -> bool:
    """Did a call go on unheard: past ``step_timeout`` in its worker (``IN_DOUBT``), left
    running by a runner that closed (``ABANDONED``), timed out by the server, or cut by its
    worker's loop (``CUT``, no record)? An action's effect may land yet: the step was cut
    short (undone if its undo was logged before it, reported leaked if not); an undo's
    attempt may be done: asked again. Never a clean failure."""
    cause = err.cause
    return timed_out(err) or (
        isinstance(cause, ApplicationError)
        and (cause.type in (ABANDONED, SHUT) or (cause.type == CUT and not cause.details))
    )


def server_timed_out(err: ActivityError, step: str, step_timeout: float) -> BaseException | None:
    """The error of an undo with no timeout of its own that the server timed out after
    ``step_timeout`` (its activity's start-to-close), told as an undo past its own timeout
    is (``calls.still_running``): the timeout named, and its call, if it began (it waits
    for an earlier call of the run still running), went on in its worker's thread, and may
    still complete (or has). None for any other end. (attack87 F1:
    dead-lettered as the SDK's bare "activity StartToClose timeout", no value, nothing
    saying the call went on: an operator re-doing the refund by hand may double it.)"""
    cause = err.cause
    if not isinstance(cause, ServerTimeout) or cause.type != TimeoutType.START_TO_CLOSE:
        return None
    return ErrorRecord.of(past_step_timeout(step, step_timeout), step).to_exception()


def past_step_timeout(step: str, step_timeout: float) -> TimeoutError:
    """That error, whoever tells it first: the server, or the worker whose wait for the call
    reached the server's deadline (ci134: its bare ``TimeoutError()`` won the race, once in
    ten runs, and the dead letter named no timeout)."""
    return TimeoutError(
        f"undo of step {step!r} did not end within step_timeout ({step_timeout:g} s), its "
        "timeout as it has none of its own: the server stopped waiting; its call, if it "
        "began (it waits for any earlier call of the run still running), went on in its "
        "worker, and may still complete (or has)"
    )


def not_called(err: ActivityError, unturned: bool = False) -> bool:
    """Never begun: refused by a worker (``NOT_CALLED``), or an action never given its turn
    whose end is unknown (its refusal lost with its worker: attack61 H2)?"""
    refused = isinstance(err.cause, ApplicationError) and err.cause.type == NOT_CALLED
    return refused or (unturned and end_unknown(err))


def never_started(err: ActivityError) -> bool:
    """Cancelled before any worker started it (the SDK dropped it unsent, or the server
    cancelled it still scheduled: no started event): its call never began (attack69 F2:
    told cut short after its effect, leaked, though nothing ran)."""
    return isinstance(err.cause, ActivityCancelled) and not err.started_event_id
