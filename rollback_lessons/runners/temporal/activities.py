"""The activities: each runs one call of a saga's own callables, in this process (a step's
action or one attempt of its undo), on a daemon thread of its own, so that a call that
never returns can be abandoned when the runner closes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ...faults import NO_FAULTS
from .. import hosted, remote
from ..wire import ErrorRecord
from .workflow import ACTION, UNDO, StepCall

BENIGN = ApplicationErrorCategory.BENIGN  # a step's failure is data: logged at DEBUG, no WARNING


# -- the activities: they run the saga's own callables, in this process ------------------


def step_started(run_id: str, step: str) -> threading.Event:
    """Set when ``step``'s action activity has started (tests wait on it to cancel)."""
    return hosted.hosted(run_id).started.setdefault(step, threading.Event())


GATES: dict[str, Callable[[str], None]] = {}
"""By run id: what an action waits on before it is called, when its run plays a chosen
timing (``completion``): its turn, as ``saga.run(completion=...)`` gives it."""

RUNNING: dict[str, dict[str, str]] = {}
"""The calls under way, by task queue (one per runner): what ``close`` reports as
abandoned when a call does not end in time."""


@contextlib.contextmanager
def _running(what: str) -> Iterator[None]:
    info = activity.info()
    calls = RUNNING.setdefault(info.task_queue, {})
    key = f"{info.workflow_id}/{info.activity_id}"
    calls[key] = f"{what} (run {info.workflow_id})"
    try:
        yield
    finally:
        calls.pop(key, None)


@activity.defn(name=ACTION)
def run_action(call: StepCall) -> None:
    run = hosted.hosted(call.run_id)
    gate = GATES.get(call.run_id)
    if gate is not None:
        gate(call.step)
    step_started(call.run_id, call.step).set()
    fault = run.faults.get(call.step, NO_FAULTS).action
    with _running(f"the action of {call.step!r}"):
        error = remote.run_action(run.saga, call.step, run.state, fault)
    run.calls.append(("action", call.step, error is None))
    if error is not None:
        raise _application_error(error)


@activity.defn(name=UNDO)
def run_undo(call: StepCall) -> None:
    run = hosted.hosted(call.run_id)
    if ("undo", call.step, True) in run.calls:  # done here, its end lost with the server
        return  # (``workflow``: the attempt's end unheard, it is asked again)
    fault = run.faults.get(call.step, NO_FAULTS).undo
    with _running(f"attempt {call.attempt} of the undo of {call.step!r}"):
        error = remote.run_undo(
            run.saga, call.step, run.state, fault, call.attempt, call.run_id, call.timeout
        )
    run.calls.append(("undo", call.step, error is None))
    if error is not None:
        raise _application_error(error)


class AbandonedCalls(RuntimeWarning):
    """A runner closed while steps or undos were still running in this process: they were
    left to finish (or hang) on their own threads; Temporal's history says what they were."""


class Threads(ThreadPoolExecutor):
    """Each activity on a daemon thread of its own: a step or an undo that never returns
    can be abandoned (``abandon``: its activity fails, the worker can stop) and does not
    hold up the interpreter's exit (a thread pool's threads are joined at exit). A
    ThreadPoolExecutor by type, as the SDK asks of the executor of synchronous
    activities; its pool is never used."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self._pending: set[Future[Any]] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                with contextlib.suppress(InvalidStateError):  # abandoned meanwhile
                    future.set_exception(exc)
            else:
                with contextlib.suppress(InvalidStateError):
                    future.set_result(result)
            finally:
                self._pending.discard(future)

        self._pending.add(future)
        threading.Thread(target=work, name="rollback-lessons activity", daemon=True).start()
        return future

    def abandon(self) -> int:
        """Fail every call still running (its thread runs on, its result is dropped): how
        many there were."""
        pending = list(self._pending)
        for future in pending:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(AbandonedCall("abandoned when the runner closed"))
        return len(pending)


def _application_error(error: ErrorRecord) -> ApplicationError:
    """A failure as Temporal carries it: the facts (type and its ancestors, the injected
    fault) in ``details``, not in the message, and no cause (its own ``__str__`` may not
    print). Never retried by Temporal: the machine in the workflow decides."""
    return ApplicationError(
        error.message,
        vars(error),
        type=error.type,
        non_retryable=True,
        category=BENIGN,
    )


class AbandonedCall(Exception):
    """The activity's call was still running when its runner closed."""
