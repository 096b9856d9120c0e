"""The saga's rules in one home, as data and small functions (like h11's ``_state.py``).

The in-process engine, ``recover`` and every production runner (Temporal today) import
these instead of restating them: which kinds of step exist, what status a run ends in,
when a failure halts instead of compensating, how an injected fault behaves and what it
says, which options are valid, and the saga as plain data (``SagaPlan``) that a remote
engine can carry, with its result (``RunRecord``) turned back into the same ``Outcome``.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from .errors import InjectedFault, InjectedTimeout, InvalidPipelineError, RemoteError
from .faults import Fault, action_error, undo_error, undo_fails  # noqa: F401 (remote.py, until step 3)
from .outcome import DeadLetter, Outcome, Status
from .policies import RetryPolicy

Register = Literal["before", "after"]
UndoOrder = Literal["reverse", "forward"]
REGISTER_CHOICES = ("before", "after")
UNDO_ORDERS = ("reverse", "forward")


class Kind(StrEnum):
    GATE = "gate"
    """A check that changes nothing (verify a card, read a price): no undo; it may fail."""
    COMPENSABLE = "compensable"
    """Changes something and has an undo (or, with none, an effect nothing undoes)."""
    PIVOT = "pivot"
    """Irreversible: once it succeeds, the saga must go forward (sending an email)."""
    RETRIABLE = "retriable"
    """After the pivot: retried forward (its retry policy, or FORWARD_RETRY), never undone."""


IRREVERSIBLE = frozenset({Kind.PIVOT, Kind.RETRIABLE})
"""Kinds whose effect stays when the saga rolls back (a gate has no effect to undo)."""

FORWARD_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.5, multiplier=2.0, max_delay=5.0)
"""How a retriable step with no retry policy of its own is retried before the saga halts."""


# -- options --------------------------------------------------------------------------


def check_register(value: object, what: str = "register") -> None:
    if value not in REGISTER_CHOICES:
        raise InvalidPipelineError(f"{what} must be 'before' or 'after', got {value!r}")


def check_undo_order(value: object) -> None:
    if value not in UNDO_ORDERS:
        raise InvalidPipelineError(f"undo_order must be 'reverse' or 'forward', got {value!r}")


# -- how a run ends ---------------------------------------------------------------------


def status_of(
    *, failed: bool, halted: bool, dead_letters: bool, leaked: bool, semantic: bool = False
) -> Status:
    """The one status rule: committed, halted, rollback_incomplete or rolled_back.

    ``rolled_back`` promises the world is as it was. A semantic compensation (a correction
    email) makes things right without making them as they were, so it is incomplete.
    """
    if not failed:
        return Status.COMMITTED
    if halted:
        return Status.HALTED
    if dead_letters or leaked or semantic:
        return Status.ROLLBACK_INCOMPLETE
    return Status.ROLLED_BACK


def halts_forward(pivot_done: bool, failed_kind: str | None) -> bool:
    """A retriable step that fails after the pivot halts for a person: nothing is undone
    across a point of no return."""
    return pivot_done and failed_kind == Kind.RETRIABLE


# -- the saga as data -------------------------------------------------------------------


@dataclass
class RetrySpec:
    """A RetryPolicy as plain data (exception types by name)."""

    max_attempts: int
    initial_delay: float
    multiplier: float
    max_delay: float
    non_retryable: list[str] = field(default_factory=list)

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1`` (as ``RetryPolicy.delay``)."""
        return min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)

    @classmethod
    def of(cls, policy: RetryPolicy) -> RetrySpec:
        return cls(
            max_attempts=policy.max_attempts,
            initial_delay=policy.initial_delay,
            multiplier=policy.multiplier,
            max_delay=policy.max_delay,
            non_retryable=[t.__name__ for t in policy.no_retry_on],
        )


@dataclass
class StepPlan:
    name: str
    kind: str
    has_undo: bool
    register: str
    retry: RetrySpec | None = None
    semantic: bool = False


@dataclass
class SagaPlan:
    """What a remote engine needs to run a saga: names, kinds, options; no code."""

    run_id: str
    name: str
    steps: list[StepPlan]
    policy: str  # continue | retry | halt
    undo_retry: RetrySpec | None
    then: str  # after undo retries run out: dead_letter | halt
    undo_order: str
    step_timeout: float = 60.0
    halt_wait: float | None = 0.0
    """On a halt, how long a remote engine waits for a person (None: as long as it takes)."""


@dataclass
class ErrorRecord:
    """An exception as data; ``fault`` is set when it was injected, so nothing is parsed."""

    type: str
    message: str
    step: str | None = None
    fault: str | None = None

    @classmethod
    def of(cls, error: BaseException, step: str | None = None) -> ErrorRecord:
        if isinstance(error, InjectedFault):
            return cls(type(error).__name__, str(error), error.step, str(error.fault))
        if isinstance(error, RemoteError):
            return cls(error.type_name, str(error), step, None)
        return cls(type(error).__name__, str(error), step, None)

    def describe(self) -> str:
        """Like ``events.describe`` for the live exception: ``Type('message')``."""
        return f"{self.type}({self.message!r})"

    def to_exception(self) -> BaseException:
        if self.fault is not None:
            cls = InjectedTimeout if self.fault == Fault.FAIL_AFTER_EFFECT else InjectedFault
            return cls(self.step or "", self.fault, self.message)
        return RemoteError(self.type, self.message)


@dataclass
class DeadLetterRecord:
    step: str
    error: ErrorRecord
    attempts: int


@dataclass
class RunRecord:
    """A run's result as plain data (what a workflow returns); ``to_outcome`` makes it whole."""

    status: str
    completed: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    semantic: list[str] = field(default_factory=list)
    error: ErrorRecord | None = None
    failed_step: str | None = None
    events: list[list[Any]] = field(default_factory=list)  # [seq, kind, step, details]

    def to_outcome(
        self,
        *,
        steps: tuple[str, ...],
        kinds: Mapping[str, str],
        labels: Mapping[str, str],
        name: str,
        run_id: str | None,
        state_before: Mapping[str, Any] | None = None,
        state_after: Mapping[str, Any] | None = None,
    ) -> Outcome:
        return Outcome(
            status=Status(self.status),
            steps=steps,
            completed=tuple(self.completed),
            compensated=tuple(self.compensated),
            dead_letters=tuple(
                DeadLetter(d.step, d.error.to_exception(), d.attempts) for d in self.dead_letters
            ),
            pending=tuple(self.pending),
            leaked=tuple(self.leaked),
            semantic=tuple(self.semantic),
            error=self.error.to_exception() if self.error is not None else None,
            failed_step=self.failed_step,
            rows=tuple(
                (kind, step, tuple(details.items()), None) for _, kind, step, details in self.events
            ),
            state_before=state_before,
            state_after=state_after,
            kinds=dict(kinds),
            labels=dict(labels),
            name=name,
            run_id=run_id,
        )


class NamedUndo:
    """An undo stored by name with JSON arguments (``durable.registry.BoundUndo`` is one).

    It is called with no state (its arguments are bound), and a journal can write it down
    and run it again after a crash: the engine needs to know only that much.
    """

    name: str
    args: Mapping[str, Any]

    def __call__(self, idempotency_key: str | None = None) -> Any:
        raise NotImplementedError
