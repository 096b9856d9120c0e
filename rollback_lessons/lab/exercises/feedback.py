"""What feedback says of an answer: the learner's own line where it raised, and the shapes
an answer takes that are not what was asked (one rule each, for every exercise)."""

from __future__ import annotations

import enum
import inspect
import linecache
import sysconfig
import traceback
from collections.abc import Iterator, Set
from pathlib import Path
from typing import Any

# -- the learner's own line ----------------------------------------------------------------

_OURS = tuple(
    str(Path(p).resolve())
    for p in {
        str(Path(__file__).resolve().parents[2]),  # rollback_lessons
        *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
    }
)


def _learners(frame: traceback.FrameSummary) -> bool:
    name = frame.filename
    if name.startswith("<frozen") or name == "<string>":
        return False
    if name.startswith("<"):
        return True  # a cell run by Exercise.run, or an interactive prompt
    return not str(Path(name).resolve()).startswith(_OURS)


def raised(error: BaseException, name: str) -> str:
    """'your refund raised KeyError('booking-7') at line 3: `...`': the error and the
    learner's own line where it broke (the deepest frame of their code)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _learners(f)]
    what = f"your {name} raised {type(error).__name__}: {error}"
    if not str(error):
        what = f"your {name} raised {type(error).__name__}"
    key = error.args[0] if isinstance(error, KeyError) and len(error.args) == 1 else None
    if isinstance(key, enum.Enum) and isinstance(key, str):  # a step's Kind: a str to them
        what = f"your {name} raised KeyError: {str(key)!r} (no key {str(key)!r} where it looked)"
    if frames:
        frame = frames[-1]
        line = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
        where = f"line {frame.lineno}" + (f" of {frame.name}" if frame.name != "<module>" else "")
        what += f", at {where}" + (f": `{line}`" if line else "")
    return what


def not_names(returned: Any, names: str) -> str | None:
    """What is wrong with ``returned`` where a list of step names is asked for, ``names``
    (such as "the steps' names (record.step)"), said as feedback; None when it is a list or
    a tuple of strings. One rule for every exercise that asks for names (learn83 F3: a set,
    a str, a generator or numbers were told a reason about their content)."""
    if isinstance(returned, list | tuple):
        others = [n for n in returned if not isinstance(n, str)]
        if not others:
            return None
        kind = type(others[0]).__name__
        return (
            f"returned {list(returned)!r}, which holds {others[0]!r}, "
            f"{'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind}, "
            f"not a name: return {names}, a list of strings"
        )
    if isinstance(returned, str):
        return f"returned the str {returned!r}: return {names}, a list of strings (one each)"
    if isinstance(returned, Set):
        return f"returned a set, {returned!r}, which has no order: return {names}, a list, in order"
    if inspect.isgenerator(returned) or isinstance(returned, Iterator):
        return (
            f"returned a {type(returned).__name__}, not a list: return {names} as a list "
            "(`[... for ...]`, or `list(...)` around it)"
        )
    return f"returned {returned!r}: return {names}, a list of strings"


def left_unappended(name: str, what: str, returned: Any = None) -> str:
    """What feedback says of an answer that handled each case but never appended ``what``
    to the list it was given, ``name`` (learn83 F4: it returned a new list, or rebound the
    name to one): the caller sees only the list it passed."""
    instead = f" (it returned {returned!r} instead)" if returned is not None else ""
    return (
        f"the {name} list it was given got nothing{instead}: append {what} to that very "
        f"list; a new list, returned or bound to the name {name}, is not the one the caller "
        "reads"
    )
