"""Failure injection: which step breaks, and how, checked before anything runs."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from typing import NamedTuple

from .errors import InvalidPipelineError, UnknownFaultError, UnknownStepError


class Fault(StrEnum):
    FAIL = "fail"
    """The step raises before its effect."""
    FAIL_AFTER_EFFECT = "fail_after_effect"
    """The effect happens, then the call raises (a timeout after a card was charged)."""
    UNDO_FAILS = "undo_fails"
    """The step's undo raises on every attempt."""
    UNDO_FAILS_ONCE = "undo_fails_once"
    """The step's undo raises on its first attempt only."""


ACTION_FAULTS = frozenset({Fault.FAIL, Fault.FAIL_AFTER_EFFECT})
UNDO_FAULTS = frozenset({Fault.UNDO_FAILS, Fault.UNDO_FAILS_ONCE})

InjectionLike = Mapping[str, str | Iterable[str]]


class StepFaults(NamedTuple):
    action: Fault | None
    undo: Fault | None


NO_FAULTS = StepFaults(None, None)


def _fault(value: object, step: str) -> Fault:
    try:
        return Fault(str(value))
    except ValueError:
        raise UnknownFaultError(
            f"unknown fault {value!r} for step {step!r}; "
            f"choose from: {', '.join(f.value for f in Fault)}"
        ) from None


def normalize_injection(
    inject: InjectionLike | None, steps: Collection[str] | None = None
) -> dict[str, StepFaults]:
    """Validate ``{"step": "fail" | ("fail_after_effect", "undo_fails"), ...}``.

    With ``steps`` given, a name outside it is refused; every error lists the valid choices.
    """
    if not inject:
        return {}
    if not isinstance(inject, Mapping):
        raise TypeError(f"inject must be a mapping of step name to fault, got {inject!r}")
    out: dict[str, StepFaults] = {}
    for step, spec in inject.items():
        if steps is not None and step not in steps:
            raise UnknownStepError(
                f"inject names unknown step {step!r}; the steps are: {', '.join(steps)}"
            )
        if spec is None or spec == "ok":
            continue
        faults = [_fault(spec, step)] if isinstance(spec, str) else [_fault(s, step) for s in spec]
        action = [f for f in faults if f in ACTION_FAULTS]
        undo = [f for f in faults if f in UNDO_FAULTS]
        if len(action) > 1 or len(undo) > 1:
            raise InvalidPipelineError(
                f"step {step!r} gets at most one action fault and one undo fault, got {faults}"
            )
        out[step] = StepFaults(action[0] if action else None, undo[0] if undo else None)
    return out
