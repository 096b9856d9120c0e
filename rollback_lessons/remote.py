"""One task of a saga done for a remote engine: run a step's action or undo in this process,
with its injected fault, and hand the failure back as data. Temporal's activities, the Step
Functions worker and the BPMN script tasks all do it here, so they fail alike; and a remote
run's RunRecord becomes the same Outcome as ``saga.run`` gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .faults import Fault
from .outcome import Outcome
from .rules import ErrorRecord, NamedUndo, RunRecord, action_error, undo_error, undo_fails
from .saga import Saga, State, snapshot


def error_record(error: BaseException, step: str) -> ErrorRecord:
    """The error as data; a badly behaved ``__str__`` must not take the worker down."""
    try:
        return ErrorRecord.of(error, step)
    except Exception:
        return ErrorRecord(
            type(error).__name__, f"<{type(error).__name__} with an unprintable message>", step
        )


def run_action(saga: Saga, step: str, state: State, fault: Fault | None) -> ErrorRecord | None:
    """Do ``step``'s action (an injected fault fails it before or after its effect)."""
    if fault is Fault.FAIL:
        return ErrorRecord.of(action_error(step, fault), step)
    try:
        saga[step].action(state)
    except Exception as exc:
        return error_record(exc, step)
    if fault is Fault.FAIL_AFTER_EFFECT:
        return ErrorRecord.of(action_error(step, fault), step)
    return None


def run_undo(
    saga: Saga, step: str, state: State, fault: Fault | None, attempt: int, run_id: str
) -> ErrorRecord | None:
    """Do attempt ``attempt`` of ``step``'s undo; a registered undo gets the run's own
    idempotency key, so a repeat after a crash changes nothing."""
    if undo_fails(fault, attempt):
        assert fault is not None
        return ErrorRecord.of(undo_error(step, fault), step)
    undo = saga[step].undo
    try:
        if isinstance(undo, NamedUndo):
            undo(idempotency_key=f"{run_id}:{step}")
        elif undo is not None:
            undo(state)
    except Exception as exc:
        return error_record(exc, step)
    return None


def outcome_of(
    saga: Saga,
    record: RunRecord,
    run_id: str,
    *,
    before: Mapping[str, Any] | None,
    state: State | None,
) -> Outcome:
    """A remote run's record as ``saga.run``'s Outcome (state after: a snapshot of ``state``)."""
    return record.to_outcome(
        steps=saga.names,
        kinds={s.name: str(s.kind) for s in saga.steps},
        labels={s.name: s.label for s in saga.steps if s.label},
        name=saga.name,
        run_id=run_id,
        state_before=before,
        state_after=snapshot(state) if state is not None else None,
    )
