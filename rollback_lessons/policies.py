"""Retry timing and the three answers to a failed undo, as small strategy objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .errors import UnknownPolicyError

Decision = float | Literal["dead_letter", "halt"]
"""What to do after a failed undo attempt: a delay in seconds means retry after it."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with a cap, for actions and for undos.

    ``retry_on`` lists the exception types worth another attempt; ``no_retry_on``
    wins over it, for errors that a retry cannot fix (a declined card).
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 10.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    no_retry_on: tuple[type[BaseException], ...] = ()
    timeout: float | None = None
    """Seconds one undo attempt may take before it counts as failed (None: no limit)."""

    def __post_init__(self) -> None:
        if self.timeout is not None and not (
            isinstance(self.timeout, int | float) and self.timeout > 0
        ):
            raise ValueError(f"timeout must be a number of seconds > 0, got {self.timeout!r}")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        for label in ("retry_on", "no_retry_on"):
            types = getattr(self, label)
            if not isinstance(types, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in types
            ):
                raise TypeError(f"{label} must be a tuple of exception types, got {types!r}")

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``."""
        return min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        """The wait before another attempt, or None when there should be none."""
        if attempt >= self.max_attempts or not self.retries(error):
            return None
        return self.delay(attempt)

    def retries(self, error: BaseException) -> bool:
        return isinstance(error, self.retry_on) and not isinstance(error, self.no_retry_on)


class UndoPolicy:
    """Decides what a failed undo attempt leads to."""

    name: str = ""
    max_attempts: int = 1

    @property
    def timeout(self) -> float | None:
        """How long one undo attempt may take (a hung undo then fails like any other)."""
        return None

    def decide(self, attempt: int, error: BaseException) -> Decision:
        raise NotImplementedError


@dataclass(frozen=True)
class Continue(UndoPolicy):
    """Record a dead letter and go on undoing the rest (the default)."""

    name = "continue"

    def decide(self, attempt: int, error: BaseException) -> Decision:
        return "dead_letter"


@dataclass(frozen=True)
class Retry(UndoPolicy):
    """Retry the undo with backoff; when attempts run out, dead-letter it (or halt)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    then: Literal["dead_letter", "halt"] = "dead_letter"
    name = "retry"

    def __post_init__(self) -> None:
        if self.then not in ("dead_letter", "halt"):
            raise ValueError(f"then must be 'dead_letter' or 'halt', got {self.then!r}")

    @property
    def max_attempts(self) -> int:  # type: ignore[override]
        return self.retry.max_attempts

    @property
    def timeout(self) -> float | None:
        return self.retry.timeout

    def decide(self, attempt: int, error: BaseException) -> Decision:
        delay = self.retry.next_delay(attempt, error)
        return self.then if delay is None else delay


@dataclass(frozen=True)
class Halt(UndoPolicy):
    """Stop compensating and hand what is left to a person."""

    name = "halt"

    def decide(self, attempt: int, error: BaseException) -> Decision:
        return "halt"


POLICIES: dict[str, type[UndoPolicy]] = {"continue": Continue, "retry": Retry, "halt": Halt}

PolicyLike = str | UndoPolicy


def resolve_policy(policy: PolicyLike) -> UndoPolicy:
    """Turn ``"continue" | "retry" | "halt"`` (or a policy object) into a policy object."""
    if isinstance(policy, UndoPolicy):
        return policy
    if isinstance(policy, str) and policy in POLICIES:
        return POLICIES[policy]()
    raise UnknownPolicyError(
        f"unknown undo policy {policy!r}; choose one of: {', '.join(POLICIES)}"
    )
