"""One task of a saga done for an engine: run a step's action or undo in this process, with
its injected fault, and hand the failure back as data. Temporal's activities, DBOS's steps,
the Step Functions worker and the BPMN script tasks all do it here, so they fail alike."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from .._commit_notes import after_commit, outcome_notes
from ..calls import LATE_IDS, call_sync, call_timed, own_cancel
from ..errors import OWN_CANCEL
from ..faults import Fault, action_error, undo_error, undo_fails
from ..outcome import Outcome, Status
from ..rules import NamedUndo, idempotency_key
from ..saga import Saga, State
from .wire import ErrorRecord

Record = Callable[[BaseException, str], ErrorRecord]
"""How a failure is made data (``ErrorRecord.of``; Step Functions' worker names it as its
retry rule matched it: ``stepfunctions.matched``)."""


def kept(run_id: str) -> Record:
    """``ErrorRecord.of`` for run ``run_id``'s calls: kept here if that run keeps."""
    return functools.partial(ErrorRecord.of, run=run_id)


def run_action(saga: Saga, step: str, state: State, fault: Fault | None,
               record: Record = ErrorRecord.of) -> ErrorRecord | None:  # fmt: skip
    """Do ``step``'s action (an injected fault fails it before or after its effect). It is
    called as ``saga.run`` calls it (``call_sync``): an awaitable or a generator it returns
    fails the step (its body never ran), never dropped and reported done."""
    if fault is Fault.FAIL:
        return ErrorRecord.of(action_error(step, fault), step)
    try:
        call_sync(saga[step].action, (state,), "action", step)
    except BaseException as exc:
        return record(failed(exc), step)
    if fault is Fault.FAIL_AFTER_EFFECT:
        return ErrorRecord.of(action_error(step, fault), step)
    return None


def run_undo(
    saga: Saga,
    step: str,
    state: State,
    fault: Fault | None,
    attempt: int,
    run_id: str,
    timeout: float | None = None,
    record: Record = ErrorRecord.of,
) -> ErrorRecord | None:
    """Do attempt ``attempt`` of ``step``'s undo; a registered undo gets the run's own
    idempotency key, so a repeat after a crash changes nothing. Past ``timeout`` seconds
    the attempt failed, measured here as in process (``call_timed``): an engine's own
    timer fires late, and an undo that ends in between must not count as done there; once
    late, its call is not made again in the run (``calls.call_timed``; a first attempt
    forgets an earlier run's of the same id)."""
    if attempt == 1:
        LATE_IDS.get(run_id, set()).discard(("undo", step))
    if undo_fails(fault, attempt):
        assert fault is not None
        return ErrorRecord.of(undo_error(step, fault), step)
    undo = saga[step].undo
    if undo is None:
        return None
    if isinstance(undo, NamedUndo):
        key = idempotency_key(run_id, step)
        fn: Callable[..., Any] = functools.partial(undo, idempotency_key=key)
        args: tuple[Any, ...] = ()
    else:
        fn, args = undo, (state,)
    try:
        if timeout is None:
            call_sync(fn, args, "undo", step)  # an awaitable or generator: a failed undo
        else:
            call_timed(fn, args, "undo", step, timeout, run_id)  # (never again once late)
    except BaseException as exc:
        return record(failed(exc), step)
    return None


def failed(exc: BaseException) -> BaseException:
    """A call's error, recorded as a failure; a call's own CancelledError is one, marked so
    (``errors.OWN_CANCEL``: in process a failure, attack94 F3: every engine took it for an
    interruption, a's undo never run); any other BaseException is raised (it cuts the call
    short, as in process)."""
    if isinstance(exc, Exception):
        return exc
    if not own_cancel(exc):
        raise exc
    exc.__dict__[OWN_CANCEL] = True
    return exc


def reraise(
    exc: BaseException | None, outcome: Outcome, raised: BaseException | None = None
) -> None:
    """The run is over: the BaseException that cut a call short (a Ctrl-C, ``sys.exit``) is
    raised again, as ``saga.run`` does once what was done is undone; its notes say what the
    rollback left (one that refuses notes is raised as is). ``raised``: raised instead, with
    those notes (an engine's own error made one line, ``exc`` its cause)."""
    if exc is None:
        return
    notes = outcome_notes(outcome)  # (the machine's wording, as saga.run's)
    if outcome.status == Status.COMMITTED:  # (it came once the saga committed: said so)
        notes.append(after_commit(exc))
    exc = exc if raised is None else raised
    for note in notes:
        if note not in getattr(exc, "__notes__", ()):
            with contextlib.suppress(Exception):
                exc.add_note(note)
    raise exc
