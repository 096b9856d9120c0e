"""The misconception bank: for every exercise, right answers in other shapes than its
solution, and wrong answers a learner writes, one (at least) for every kind of mistake
that applies to it, each with what its feedback must say. ``tests/test_exercise_bank.py``
runs them all: every right one passes, every wrong one fails, and says so truly."""

from __future__ import annotations

from dataclasses import dataclass, field

HARD_CODED = "hard-codes a value the lesson printed"
BY_POSITION = "selects by position or order"
BY_NAME = "selects by name or title instead of id"
NOT_IDEMPOTENT = "is not idempotent (run it twice)"
SETS_VALUE = "sets a value instead of inverting the step"
SORTS_BY_NAME = "sorts by name"
UNSHOWN_CASE = "ignores a case the lesson did not show"
NOT_ITS_OWN = "changes a record that is not its own"
OTHER = "another mistake of this exercise"
CLASSES = (
    HARD_CODED,
    BY_POSITION,
    BY_NAME,
    NOT_IDEMPOTENT,
    SETS_VALUE,
    SORTS_BY_NAME,
    UNSHOWN_CASE,
    NOT_ITS_OWN,
)


@dataclass(frozen=True)
class Wrong:
    kind: str
    code: str
    says: tuple[str, ...]
    """Fragments the feedback must contain (what went wrong, in which world)."""


@dataclass(frozen=True)
class Bank:
    right: tuple[str, ...]
    wrong: tuple[Wrong, ...]
    not_applicable: dict[str, str] = field(default_factory=dict)
    """The kinds of mistake that cannot happen in this exercise, and why."""


def bank() -> dict[str, Bank]:
    from . import lesson13, lesson_12, lessons_01_05, lessons_06_11

    return {**lessons_01_05.BANK, **lessons_06_11.BANK, **lesson_12.BANK, **lesson13.BANK}
