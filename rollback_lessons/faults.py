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


# The fault space: what can go wrong at each step, in the order a learner meets it. The
# panel offers these choices; the explorer (and a test) can enumerate them.
ACTION_CHOICES: tuple[Fault, ...] = (Fault.FAIL, Fault.FAIL_AFTER_EFFECT)
UNDO_CHOICES: tuple[Fault, ...] = (Fault.UNDO_FAILS, Fault.UNDO_FAILS_ONCE)
ACTION_FAULTS = frozenset(ACTION_CHOICES)
UNDO_FAULTS = frozenset(UNDO_CHOICES)
LABELS = {
    Fault.FAIL: "fail",
    Fault.FAIL_AFTER_EFFECT: "fail after effect",
    Fault.UNDO_FAILS: "undo fails",
    Fault.UNDO_FAILS_ONCE: "fails once",
}
"""Short names for controls and picture legends."""


def fault_space(steps: Iterable[tuple[str, bool]]) -> list[tuple[str, Fault]]:
    """Every single fault of a pipeline: ``steps`` is (name, has an undo) in order.

    Each step can fail before or after its effect; each step with an undo can have that
    undo fail always or once.
    """
    space = []
    for name, has_undo in steps:
        space += [(name, fault) for fault in ACTION_CHOICES]
        if has_undo:
            space += [(name, fault) for fault in UNDO_CHOICES]
    return space


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
