"""A person's answer to a halted saga, tied to the question it answers.

A saga that halts for a person asks one question per failed undo, numbered in the order it
asks them (``Question``). An answer names its question (``handle.resolve(question,
answer)``, the question as ``handle.pending()`` gave it), and the workflow takes it only
while it waits on that very question: a double click, a client's retry, or an answer sent
before the question or after the end never settles another undo nobody looked at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidPipelineError, RollbackLessonsError
from ..operations import ANSWERS


@dataclass(frozen=True)
class Question:
    """What a halted saga asks: question ``number`` (1, 2, ... in the order it asks), about
    the undo of ``step``, the first of ``undos`` (the undos a "leave" leaves pending)."""

    number: int
    undos: tuple[str, ...]

    @property
    def step(self) -> str:
        return self.undos[0]

    def data(self) -> dict[str, Any]:
        return {"number": self.number, "undos": list(self.undos)}

    @classmethod
    def of(cls, data: Any) -> Question | None:
        """From a workflow's answer to "what do you ask?" (empty: nothing)."""
        if not data or not data.get("undos"):
            return None
        return cls(int(data["number"]), tuple(data["undos"]))


class AnswerRefused(RollbackLessonsError):
    """An answer to a question the saga is not asking (now): not yet asked, already
    answered, given up on, or the saga is over. Nothing was answered."""


def check_answer(question: object, answer: object) -> Question:
    """Refuse, before anything is sent, an answer that is not one of ``ANSWERS`` or that
    names no question."""
    if not isinstance(question, Question):
        raise InvalidPipelineError(
            f"resolve(question, answer) needs the question pending() returned, not {question!r}"
        )
    if answer not in ANSWERS:
        raise InvalidPipelineError(f"answer {answer!r} is not one of: {', '.join(ANSWERS)}")
    return question


def refuse_unless_asked(question: Question, asked: Question | None, run_id: str) -> None:
    """The caller's side of the rule: an answer to a question the saga is not asking now
    is refused, one line saying what it asks instead."""
    if asked == question:
        return
    now = (f"it asks question {asked.number}, about {asked.step}" if asked is not None
           else "it asks nothing now")  # fmt: skip
    raise AnswerRefused(
        f"saga {run_id} is not asking question {question.number} (about {question.step}): "
        f"{now}; nothing was answered"
    )
