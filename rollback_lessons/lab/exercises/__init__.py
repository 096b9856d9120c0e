"""Exercises that answer back: ``check()``, ``hint()`` and ``solution()`` for each.

``q.check(answer)`` runs the learner's answer against real cases and says precisely what
is wrong (which undo ran when, which state was not restored), or "not attempted yet"
while the starter code is untouched. Each lesson module (``lesson02`` ...) holds its
questions as ``q1``, ``q2``...; ``ALL`` maps ids such as ``"02.1"`` to them.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class _Blank:
    """``____``: the blank a learner fills in; an answer still blank is not attempted."""

    def __repr__(self) -> str:
        return "____"


____ = _Blank()


def _blank(answer: Any) -> bool:
    """Is a blank left anywhere in the answer (inside a dict or a list too)?"""
    if answer is ____ or answer is Ellipsis:
        return True
    if isinstance(answer, dict):
        return any(_blank(v) for v in answer.values())
    if isinstance(answer, list | tuple):
        return any(_blank(v) for v in answer)
    return False


class NotAttempted(Exception):
    """The starter code is still there."""


class Incorrect(Exception):
    """The answer is wrong; the message says how."""


@dataclass(frozen=True)
class Result:
    exercise: str
    status: str  # "correct" | "incorrect" | "not attempted"
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        icon = {"correct": "✓ Correct", "incorrect": "✗ Not yet", "not attempted": "…"}
        return f"{icon[self.status]} ({self.exercise}): {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {"correct": "#009E73", "incorrect": "#D55E00", "not attempted": "#555555"}
        return (
            f'<div style="border-left:6px solid {colour[self.status]};padding:4px 10px">'
            f"{html.escape(str(self))}</div>"
        )


@dataclass(frozen=True)
class Code:
    """Code shown as a highlighted block in a notebook, plain in a terminal."""

    source: str

    def __str__(self) -> str:
        return self.source

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.source}\n```"


@dataclass
class Exercise:
    id: str
    title: str
    checker: Callable[..., str]
    hints: tuple[str, ...]
    solution_code: str
    wrong_answers: tuple[str, ...] = ()
    """Deliberately wrong code: the tests make sure ``check`` rejects each."""
    right_answers: tuple[str, ...] = ()
    """Other shapes of a right answer (keywords, other control flow): each must pass."""
    answer_names: tuple[str, ...] = ()
    """The names the learner's cell defines, in the order ``check`` takes them."""
    setup: str = ""
    """What the lesson has imported before the exercise cell (for ``run``)."""
    _next_hint: int = field(default=0, repr=False)

    def check(self, *answers: Any) -> Result:
        if not answers or any(_blank(a) for a in answers):
            return Result(self.id, "not attempted", "not attempted yet: fill in the blanks.")
        try:
            message = self.checker(*answers)
        except NotAttempted as exc:
            return Result(self.id, "not attempted", str(exc) or "not attempted yet.")
        except Incorrect as exc:
            return Result(self.id, "incorrect", str(exc))
        except Exception as exc:  # the learner's code broke in a way no case expected
            return Result(self.id, "incorrect", f"your code raised {exc!r}")
        return Result(self.id, "correct", message)

    def hint(self, n: int | None = None) -> str:
        """Hint ``n`` (from 1), or the next one each time it is called."""
        if n is None:
            n = self._next_hint % len(self.hints) + 1
            self._next_hint += 1
        if not 1 <= n <= len(self.hints):
            raise ValueError(f"there are {len(self.hints)} hints for {self.id}")
        return f"Hint {n}/{len(self.hints)}: {self.hints[n - 1]}"

    def solution(self) -> Code:
        return Code(self.solution_code)

    def run(self, code: str) -> Result:
        """Check ``code`` as if it were typed into the exercise's cell (for tests)."""
        namespace: dict[str, Any] = {"____": ____}
        exec(self.setup, namespace)
        exec(code, namespace)
        return self.check(*(namespace.get(name, ____) for name in self.answer_names))


def function(answer: Any, name: str, params: int = 1) -> Callable[..., Any]:
    """The answer must be a function of ``params`` arguments."""
    if not callable(answer):
        raise Incorrect(f"{name} should be a function, got {answer!r}")
    try:
        count = len(inspect.signature(answer).parameters)
    except (TypeError, ValueError):
        return answer
    if count != params:
        raise Incorrect(f"{name} should take {params} argument(s), it takes {count}")
    return answer


def step_names(answer: Any) -> list[str]:
    """The answer must be a list of step names."""
    if not isinstance(answer, list | tuple) or not all(isinstance(n, str) for n in answer):
        raise Incorrect(f"write the order as a list of step names, got {answer!r}")
    return list(answer)


def attempted(fn: Callable[..., Any], *args: Any) -> None:
    """A starter function raises NotImplementedError; call it once on scratch input."""
    try:
        fn(*args)
    except NotImplementedError:
        raise NotAttempted("not attempted yet: replace `raise NotImplementedError`.") from None
    except Exception:
        pass  # it may fail on scratch input; the real cases will say so


ALL: dict[str, Exercise] = {}


def register(*exercises: Exercise) -> None:
    for exercise in exercises:
        ALL[exercise.id] = exercise


def __getattr__(name: str) -> Any:
    # ``from rollback_lessons.exercises import lesson02`` imports the module on demand.
    if name.startswith("lesson"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)


def load_all() -> dict[str, Exercise]:
    """Import every lesson's exercises; returns ``ALL``."""
    from . import (  # noqa: F401
        lesson01,
        lesson02,
        lesson03,
        lesson04,
        lesson05,
        lesson06,
        lesson07,
        lesson08,
        lesson09,
        lesson10,
        lesson11,
    )

    return ALL
