"""The blank a learner fills in (``____``), and what an answer still has blank: an
untouched starter is not attempted; a half-filled one is told which blanks are left
(learn73 F12: it was told "not attempted yet")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class _Blank:
    """``____``: the blank a learner fills in; an answer still blank is not attempted."""

    def __repr__(self) -> str:
        return "____"


____ = _Blank()


def _walk(answer: Any, where: str, blank: list[str], filled: list[str]) -> None:
    """Note each place in ``answer`` (inside dicts, lists and tuples too) as blank or filled;
    a function counts as neither (a starter's stub is one)."""
    if answer is ____ or answer is Ellipsis:
        blank.append(where)
    elif isinstance(answer, dict):
        for key, value in answer.items():
            _walk(value, f"{where}[{key!r}]", blank, filled)
    elif isinstance(answer, list | tuple):
        for index, value in enumerate(answer):
            _walk(value, f"{where}[{index}]", blank, filled)
    elif not callable(answer):
        filled.append(where)


def left_blank(answers: Sequence[Any], names: Sequence[str]) -> str | None:
    """What to say of answers with a blank left (None: none is): "not attempted yet" when
    nothing was filled in, else the blanks by name."""
    blank: list[str] = []
    filled: list[str] = []
    for index, answer in enumerate(answers):
        name = names[index] if index < len(names) else f"answer {index + 1}"
        _walk(answer, name, blank, filled)
    if not answers or (blank and not filled):
        return "not attempted yet: fill in the blanks."
    if not blank:
        return None
    return f"still blank: {', '.join(blank)}; fill in every blank."
