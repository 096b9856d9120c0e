"""A policy of one's own decides in a local activity, not in the workflow's code: its answer
is recorded in the history (a marker), so a replay reads it instead of asking again, and a
``decide`` may take its time and need not be deterministic (attack293 F3: one that ran 2 s
failed the workflow task on the SDK's deadlock check, retried for ever, the run never ending).
It runs in this process, where the policy is hosted, given the error the workflow holds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():  # plain data and the policy, no I/O
    from ...errors import interrupts
    from ...events import describe
    from ...policies import Said, decided
    from .. import hosted
    from ..error_record import ErrorRecord
    from ..wire import SagaPlan
    from .ends import ABANDONED, CUT, SHUT

DECIDE = "rollback_lessons.decide"
ENDED = (ABANDONED, SHUT, CUT)  # (the worker's end cut it: no answer)
PATCH = "rollback_lessons.decide-in-a-local-activity"
"""Runs started before this change decided in the workflow's code: replayed, they still do."""


@dataclass
class DecideCall:
    """Ask run ``run_id``'s policy after ``attempt`` of ``step``'s undo failed with ``error``
    (an ``ErrorRecord``'s data: the very exception here, while its run keeps it)."""

    run_id: str
    step: str
    attempt: int
    error: dict[str, Any]


@activity.defn(name=DECIDE)
def run_decide(call: DecideCall) -> list[Any]:
    """``decided``'s answer as data: ``["delay", s]``, ``["text", t]`` (a text it returned),
    ``["said", t]`` (anything else, as the machine words it), ``["none"]``; or ``["cut",
    record]``: ``decide`` raised a Ctrl-C or ``sys.exit``, kept to be re-raised
    (``hosted.interrupted``) and the rollback cut there, as in process."""
    from .activities import _executor  # (it imports the workflow, which imports this)
    from .running import running

    error = ErrorRecord(**call.error).to_exception()
    asking = f"the undo policy's decide after attempt {call.attempt} of the undo of {call.step!r}"
    try:
        with running(asking, _executor()):  # (named if its runner closes meanwhile: F3)
            answer = decided(hosted.policy(call.run_id), call.attempt, error)
    except BaseException as exc:
        if not interrupts(exc):
            raise
        return ["cut", dataclasses.asdict(hosted.interrupted(call.run_id, exc, call.step))]
    if answer is None:
        return ["none"]
    if isinstance(answer, Said):
        return ["said", str(answer)]
    return ["text", answer] if isinstance(answer, str) else ["delay", float(answer)]  # type: ignore[arg-type]


def error_data(err: ActivityError, error: BaseException, step: str) -> dict[str, Any]:
    """What the local activity is given of ``error``: the record the undo's activity sent
    (so it finds the very exception) unless the workflow told another (a timeout)."""
    cause = err.cause
    sent = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else None
    if isinstance(sent, dict) and ErrorRecord(**sent).to_exception() is error:
        return sent
    return dataclasses.asdict(ErrorRecord.of(error, step))


async def asked(plan: SagaPlan, step: str, attempt: int, data: dict[str, Any]) -> Any:
    """The machine's ``decide`` for this failure (``Machine.undo_failed``'s ``by``): the
    policy's answer, recorded; or the Ctrl-C or exit it raised (a BaseException). A local
    activity that fails (its runner closing, no answer within ``step_timeout``) is an answer
    the machine cannot follow: it halts for a person, saying why."""
    call = DecideCall(plan.run_id, step, attempt, data)
    try:
        said = await workflow.execute_local_activity(
            DECIDE,
            call,
            start_to_close_timeout=timedelta(seconds=plan.step_timeout),
            retry_policy=RetryPolicy(maximum_attempts=1),  # (a decide is asked once)
        )
    except FailureError as err:  # (a local activity's failure is its cause, unwrapped)
        cause = err.cause if isinstance(err, ActivityError) and err.cause is not None else err
        if type(cause).__name__ == "CancelledError" or getattr(cause, "type", "") in ENDED:
            raise RuntimeError(  # (not an answer: its workflow task fails, and is tried
                f"the undo policy's decide was cut as its worker ended ({describe(cause)}): "
                "asked again by the next"  # again by the next worker: attack304 F3, the
            ) from None  # run failed for good, nothing undone, nothing said)
        text = f"nothing (no answer within step_timeout: {describe(cause)})"
        said = ["said", text if len(text) <= 80 else f"{text[:75]}..."]  # (as ``decided``)
    kind, *value = said
    if kind == "cut":
        return ErrorRecord(**value[0]).to_exception()
    answer = None if kind == "none" else Said(value[0]) if kind == "said" else value[0]
    return lambda *_: answer
