"""Failure injection: which step breaks, and how, checked before anything runs."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from .errors import (
    InjectedFault,
    InjectedTimeout,
    InvalidPipelineError,
    UnknownFaultError,
    UnknownStepError,
)


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
    Fault.UNDO_FAILS_ONCE: "undo fails once",
}
"""Short names for controls and picture legends: the words a learner reads for a fault,
wherever a panel names one (its dropdowns, its run line, the explorer's grid)."""


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


_BY_NAME = {f.value: f for f in Fault}


def _fault(value: object, step: str) -> Fault:
    found = _BY_NAME.get(value) if isinstance(value, str) else None  # (faster than Fault())
    if found is not None:
        return found
    try:
        return Fault(str(value))
    except ValueError:
        raise UnknownFaultError(
            f"unknown fault {value!r} for step {step!r}; "
            f"choose from: {', '.join(f.value for f in Fault)}"
        ) from None


def saga_faults(inject: InjectionLike | None, saga: Any) -> dict[str, StepFaults]:
    """The faults ``inject`` asks of ``saga`` (a ``Saga``), checked as ``saga.run`` checks
    them, against its steps and the steps with an undo: every engine refuses the same
    faults before anything runs (attack113 F1: an undo fault on a step with no undo was
    refused in process and ignored by four engines, the saga committed)."""
    undos = [s.name for s in saga.specs() if s.has_undo]
    return normalize_injection(inject, saga.names, undos)


def normalize_injection(
    inject: InjectionLike | None,
    steps: Collection[str] | None = None,
    undos: Collection[str] | None = None,
) -> dict[str, StepFaults]:
    """Validate ``{"step": "fail" | ("fail_after_effect", "undo_fails"), ...}``.

    With ``steps`` given, a name outside it is refused; every error lists the valid choices.
    With ``undos`` given (the steps that have an undo), an undo fault on any other step is
    refused: it could never happen.
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
        if undo and undos is not None and step not in undos:
            raise InvalidPipelineError(
                f"inject gives step {step!r} the fault {str(undo[0])!r}, but it has no undo: "
                "the fault could never happen"
            )
        out[step] = StepFaults(action[0] if action else None, undo[0] if undo else None)
    return out


# -- how an injected fault behaves ------------------------------------------------------


def action_error(step: str, fault: Fault) -> InjectedFault:
    """The error an injected action fault raises (before or after the step's effect)."""
    if fault is Fault.FAIL_AFTER_EFFECT:
        return InjectedTimeout(step, fault, f"{step}: injected timeout after its effect")
    return InjectedFault(step, fault, f"{step}: injected failure before its effect")


def undo_fails(fault: Fault | None, attempt: int) -> bool:
    """Does an injected undo fault make attempt ``attempt`` (1-based) fail?"""
    return fault is Fault.UNDO_FAILS or (fault is Fault.UNDO_FAILS_ONCE and attempt == 1)


def undo_error(step: str, fault: Fault) -> InjectedFault:
    return InjectedFault(step, fault, f"undo of {step}: injected failure")


def failing_action(fn: Callable[..., Any], step: str, fault: Fault) -> Callable[..., Any]:
    """``fn`` with an injected fault: it fails before its effect, or right after it (an
    awaitable it returns is awaited first). Wrapped once, when the step is handed over."""
    if fault is Fault.FAIL:

        def before(*args: Any) -> Any:
            raise action_error(step, fault)

        return before

    def after(*args: Any) -> Any:
        result = fn(*args)
        if result is not None and hasattr(result, "__await__"):
            return _after_awaited(result, step, fault)
        raise action_error(step, fault)

    return after


async def _after_awaited(result: Any, step: str, fault: Fault) -> Any:
    await result
    raise action_error(step, fault)


class FailingUndo:
    """An undo with an injected fault: attempt n fails as the fault says, else it runs."""

    __slots__ = ("calls", "fault", "fn", "step")

    def __init__(self, fn: Callable[..., Any], step: str, fault: Fault) -> None:
        self.fn, self.step, self.fault, self.calls = fn, step, fault, 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        if undo_fails(self.fault, self.calls):
            raise undo_error(self.step, self.fault)
        return self.fn(*args)


_E = TypeVar("_E", bound=BaseException)


def untraced(error: _E) -> _E:
    """An injected fault loses its traceback: it shows only the engine's own frames, and
    would keep them (and the whole run) alive as long as the outcome is kept; the explorer
    keeps tens of thousands. A real error keeps its traceback."""
    if type(error) in _INJECTED:
        error.__traceback__ = None
    return error


_INJECTED = frozenset({InjectedFault, InjectedTimeout})
