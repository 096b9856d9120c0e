"""A task Step Functions itself failed or timed out (attack78 F2, F3): its ``sendMessage``
failed inside the service (``States.Runtime``), or its ``TimeoutSeconds`` passed while the
worker ran it (``States.Timeout``). No worker answered it: the saga machine was never told,
so the runner cannot go on as it would (the graph form waited for ever for a task that never
came; the list form's walk said ``HistoryDiverged``). The runner reads such a task in the
history and stops with ``EngineFailedTask``, its note saying what is left in effect (the
worker's own calls, which it knows: a step it finished after the engine gave up on it is
done, and named so)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..history import Worker, ask, do, undo
from ..wire import SagaPlan
from .asl import TASK, StepFunctionsError

ENGINE_EVENTS = ("TaskTimedOut", "TaskSubmitFailed", "TaskStartFailed")
"""History events of a task the engine ended itself (with ``TaskFailed`` of a ``States.``
error: the worker's errors are Python classes' names, never ``States.``)."""
LATE = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")
"""What Step Functions answers a worker's answer to a task it no longer waits for."""
STARTING = ("env", "callback_pool_manager")
"""What moto (in this process) lacks of an execution another thread has just started: it
answers a task by asking each running execution in turn whether the token is its own, and one
whose worker thread has not yet made its environment raises ``AttributeError`` before the
answer reaches its own execution (attack198 F1: 2 of 8 trials of 8 sagas at once, a run died
with its first step in effect). Nothing was told: the answer is sent again."""
STARTING_S = 5.0
"""For how many seconds an answer is sent again while moto starts another execution."""


class EngineFailedTask(StepFunctionsError):
    """Step Functions failed or timed out a task of the saga itself: the run is stopped
    there (nothing more undone by the runner); the note says what is left in effect."""


def engine_failures(history: Sequence[dict[str, Any]], plan: SagaPlan) -> list[str]:
    """Each task the engine ended itself, in one clear phrase (its state, the step, why)."""
    named = {
        state(s.key): f"{call} of step {s.name!r}"
        for s in plan.steps
        for state, call in ((do, "action"), (undo, "undo"), (ask, "question"))
    }
    where: dict[int, str] = {}
    found: list[str] = []
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            where[event["id"]] = event["stateEnteredEventDetails"]["name"]
            continue
        where[event["id"]] = where.get(event.get("previousEventId", 0), "")
        details: dict[str, Any] = next(
            (v for k, v in event.items() if k.endswith("EventDetails")), {}
        )
        error = str(details.get("error", ""))
        if kind in ENGINE_EVENTS or (kind == "TaskFailed" and error.startswith("States.")):
            state = where[event["id"]].removesuffix(TASK)
            how = "timed out" if kind == "TaskTimedOut" or error == "States.Timeout" else "failed"
            cause = str(details.get("cause", ""))[:200]
            said = f"{error or kind}: {cause}" if cause else error or kind
            found.append(f"Step Functions {how} the task of the {named.get(state, state)} ({said})")
    return found


def refuse_engine_failures(
    history: Sequence[dict[str, Any]], plan: SagaPlan, worker: Worker, *, note: bool = True
) -> None:
    """Raise ``EngineFailedTask`` if the engine ended a task itself; ``note``: with what is
    left in effect (else the caller's ``_stopped_if_cut`` adds it as it stops the run)."""
    found = engine_failures(history, plan)
    if not found:
        return
    error = EngineFailedTask(f"{found[0]}; the run stops there")
    if note:
        error.add_note(f"Step Functions: the execution was over; {worker.in_effect()}")
    raise error


def answer_late(send: Callable[..., Any], **request: Any) -> None:
    """Answer a task; one the engine no longer waits for (timed out: the history says so,
    ``refuse_engine_failures``) is let go: the worker did it, its calls say so."""
    try:
        past_starts(send, **request)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code not in LATE:
            raise


def past_starts(send: Callable[..., Any], **request: Any) -> None:
    """``send(**request)``, sent again while moto cannot reach an execution another thread
    has just started (``STARTING``): an answer to a task, a stop of that execution."""
    given_up_at = time.monotonic() + STARTING_S
    while True:
        try:
            send(**request)
            return
        except AttributeError as exc:
            if exc.name not in STARTING or time.monotonic() > given_up_at:
                raise
            time.sleep(0.005)
