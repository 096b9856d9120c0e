"""Exercises that answer back: ``check()``, ``hint()`` and ``solution()`` for each.

One grading core for every lesson (``lesson01`` ... ``lesson13``; ``ALL`` maps ids such as
``"02.1"`` to the exercises):

- **Shape**: an answer is accepted when it can be called the way the engine calls it
  (``function``): extra parameters with defaults, ``*args`` and keyword-only parameters
  with defaults are fine. Word answers are normalised (``choose``): case, spaces, hyphens
  and underscores, singular or plural, ``None`` for "none".
- **Behaviour**: a check is a property over worlds the learner never saw (``forall``): a
  generator with a fixed seed draws the world's free values (amounts, keys, ids, how many
  steps and their names, other people's records before and after the learner's, writes
  in between), so the verdict is the same every time; the worlds are tried smallest
  first, so a failure is reported in the smallest world where it happens, in the
  lesson's terms.
- **Errors**: when the answer raises, the feedback shows the learner's own line
  (``raised``), never an engine's internals.
- **Progress**: a correct check is remembered in a small JSON file in the Jupyter data
  directory (``progress()``; ``progress(reset=True)`` forgets it).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import html
import inspect
import io
import linecache
import random
import re
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..._shutdown import exits_told
from ..._words import counted
from ...calls import is_async
from .blanks import ____ as ____
from .blanks import left_blank
from .feedback import _learners as _learners
from .feedback import left_unappended as left_unappended
from .feedback import not_names as not_names
from .feedback import raised as raised
from .tracking import Progress as Progress
from .tracking import progress as progress
from .tracking import progress_file as progress_file
from .tracking import record
from .tracking import reset_progress as reset_progress

W = TypeVar("W")


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
        text = html.escape(str(self)).replace("\n", "<br>")  # what the answer printed
        style = f"border-left:6px solid {colour[self.status]};padding:4px 10px"
        return f'<div style="{style}">{text}</div>'


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
    answer_names: tuple[str, ...] = ()
    """The names the learner's cell defines, in the order ``check`` takes them."""
    setup: str = ""
    """What the lesson has imported before the exercise cell (for ``run``)."""
    stops: str = "a saga stops there, as at a Ctrl-C"
    """What a SystemExit raised in the answer stops, in this exercise's terms (``no_failure``)."""
    _next_hint: int = field(default=0, repr=False)

    def check(self, *answers: Any) -> Result:
        result = self._grade(answers)
        if result.passed:
            record(self.id)
        return result

    def _grade(self, answers: tuple[Any, ...]) -> Result:
        blank = left_blank(answers, self.answer_names)
        if blank is not None:
            return Result(self.id, "not attempted", blank)
        if self.answer_names and len(answers) != len(self.answer_names):  # (learn73 F5)
            wanted = f"check({', '.join(self.answer_names)})"
            said = (
                f"{wanted} takes {counted(len(self.answer_names), 'answer')}; it got {len(answers)}"
            )
            return Result(self.id, "incorrect", said)
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed), exits_told():  # prints once per world;
                message = self.checker(*answers)  # a SystemExit is told below, not warned
        except NotAttempted as exc:
            return Result(self.id, "not attempted", str(exc) or "not attempted yet.")
        except Incorrect as exc:
            return Result(self.id, "incorrect", str(exc))
        except Exception as exc:  # the learner's code broke where no world expected it
            if any(_learners(f) for f in traceback.extract_tb(exc.__traceback__)):
                return Result(self.id, "incorrect", raised(exc, "code"))
            from .unread import unread  # (no line of theirs: the engine's or the check's)

            return Result(self.id, "incorrect", unread(exc, answers))
        except BaseException as exc:  # SystemExit, a CancelledError: raised by the learner's
            from .unread import no_failure  # code, told; a Ctrl-C (or one not theirs) stops

            stop = no_failure(exc, self.stops)
            if stop is None:
                raise
            return Result(self.id, "incorrect", stop)
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
        """Check ``code`` as if it were typed into the exercise's cell, after the lesson's
        imports (``setup``), and never raise: code that does not parse, or raises (a name
        the lesson never imported), is feedback too."""
        namespace: dict[str, Any] = {"____": ____, "__name__": "__exercise__"}
        filename = f"<exercise {self.id}>"
        lines = code.splitlines(keepends=True)
        linecache.cache[filename] = (len(code), None, lines, filename)  # for the learner's line
        try:
            compiled = compile(code, filename, "exec")
        except SyntaxError as exc:
            where = f" at line {exc.lineno}" if exc.lineno else ""
            return Result(self.id, "incorrect", f"your cell is not Python{where}: {exc.msg}")
        _import_setup(self.setup, code, namespace)
        try:
            exec(compiled, namespace)
        except Exception as exc:
            return Result(self.id, "incorrect", raised(exc, "cell"))
        except BaseException as exc:  # exit() in a cell is feedback too; a Ctrl-C is not
            if isinstance(exc, KeyboardInterrupt):
                raise
            return Result(self.id, "incorrect", raised(exc, "cell"))
        return self.check(*(namespace.get(name, ____) for name in self.answer_names))


def _import_setup(setup: str, code: str, namespace: dict[str, Any]) -> None:
    """Run the lesson's imports (``setup``) that bind a name ``code`` uses: the same names
    as in the notebook, without importing a panel or an engine the answer never touches."""
    used = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
    for statement in ast.parse(setup).body:
        if not isinstance(statement, ast.Import | ast.ImportFrom):
            raise TypeError(f"an exercise's setup holds imports only, got {ast.unparse(statement)}")
        for alias in statement.names:
            bound = alias.asname or alias.name.split(".")[0]
            if bound in used:
                one = copy.copy(statement)
                one.names = [alias]
                exec(ast.unparse(one), namespace)


# -- the shape of an answer ---------------------------------------------------------------


def function(answer: Any, call: str, *, asynchronous: bool = False) -> Callable[..., Any]:
    """The answer must be callable the way the engine calls it, ``call`` (such as
    ``"undo_deposit(state)"``): with that many positional arguments. More parameters are
    fine when they have defaults (or are ``*args``); keyword-only ones need defaults. The
    engine awaits it only when ``asynchronous``."""
    name, _, args = call.partition("(")
    count = len([a for a in args.rstrip(")").split(",") if a.strip()])
    kind = "async def" if asynchronous else "def"
    if not callable(answer):
        raise Incorrect(f"{name} should be a function, `{kind} {call}: ...`; got {answer!r}")
    if is_async(answer) != asynchronous:  # (as the engines tell it: calls.is_async)
        raise Incorrect(
            f"{name} must be `{kind}`: "
            + (
                "it awaits what it calls"
                if asynchronous
                else "the engine calls it and does not await it, so an `async def` never runs"
            )
        )
    try:
        signature = inspect.signature(answer)
    except (TypeError, ValueError):
        return answer  # a builtin or an object whose signature Python cannot read
    try:
        signature.bind(*range(count))
    except TypeError:
        params = list(signature.parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p.name for p in positional if p.default is p.empty]
        keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        yours = f"def {name}({', '.join(str(p) for p in params)})"
        if keywords:
            names = ", ".join(keywords)
            why = f"{names} must be given by keyword, and nobody will: give it a default"
        elif len(required) > count:
            extra = required[count:]
            why = f"it needs {len(required)}; give {', '.join(extra)} a default, or drop it"
        elif not varargs and len(positional) < count:
            why = f"it takes {len(positional)}"
        else:  # pragma: no cover - bind failed for a reason not foreseen
            why = "Python cannot call it that way"
        raise Incorrect(
            f"{name} is called as {call}, with {count} argument{'s' * (count != 1)}; "
            f"yours is `{yours}`: {why}."
        ) from None
    return answer


def _word(word: str) -> str:
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def canonical(text: Any) -> str:
    """A word answer as compared: case, spaces, hyphens and underscores, and a plural
    ending do not matter ("Commutative-update" is "commutative updates"); None is "none"."""
    text = re.sub(r"[^\w\s-]", "", str("none" if text is None else text))  # "halt." is "halt"
    words = re.split(r"[\s\-_]+", text.strip().lower())
    return "".join(_word(w) for w in words if w)


def choose(answer: Any, choices: Sequence[str], what: str) -> str:
    """The one of ``choices`` that ``answer`` names, however it is spelled (see
    ``canonical``); otherwise Incorrect, listing the choices."""
    if isinstance(answer, str) or answer is None:
        found = {canonical(c): c for c in choices}.get(canonical(answer))
        if found is not None:
            return found
    raise Incorrect(f"{what}: {answer!r} is not one of: {', '.join(map(repr, choices))}")


def names_list(answer: Any, names: Sequence[str], what: str) -> list[str]:
    """A list of names from ``names``: a list or tuple of them, or one string ("d, c, b",
    "d; c", "d -> c", or "d c" with no mark between), each spelled as ``choose`` allows;
    [] and None mean none."""
    if answer is None or (isinstance(answer, str) and canonical(answer) in ("none", "")):
        return []
    if isinstance(answer, str):
        answer = answer.strip().strip("[]()").replace('"', "").replace("'", "")
        parts = re.split(r"\s*(?:,|;|->|→)\s*", answer.strip())  # (the refusal says these)
        answer = [p for p in (parts if len(parts) > 1 else answer.split()) if p.strip()]
        try:
            return [choose(item, names, what) for item in answer]
        except Incorrect as wrong:  # (say how a string was read: "ab" is not "a, b")
            raise Incorrect(
                f"{wrong} (one string is read as names separated by commas, semicolons or "
                "arrows (->), or else by spaces or new lines)"
            ) from None
    if isinstance(answer, Iterable) and not isinstance(answer, list | tuple | Set | Mapping):
        answer = list(answer)  # a generator, reversed(...), a deque: its order is kept
    if not isinstance(answer, list | tuple):
        kind = type(answer).__name__
        raise Incorrect(
            f"{what}: write a list, in order, of names such as {list(names[:2])} (or one "
            f'string, "a, b"); got {"an" if kind[0] in "aeiou" else "a"} {kind}'
        )
    return [choose(item, names, what) for item in answer]


def call(fn: Callable[..., Any], *args: Any, name: str, where: str) -> Any:
    """``fn(*args)``; when it raises, Incorrect saying where (in the lesson's terms) and the
    learner's line."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotAttempted("not attempted yet: replace `raise NotImplementedError`.") from None
    except Exception as exc:
        raise Incorrect(f"{where}, {raised(exc, name)}") from None


def attempted(fn: Callable[..., Any], *args: Any) -> None:
    """A starter function raises NotImplementedError; call it once on scratch input."""
    try:
        fn(*args)
    except NotImplementedError:
        raise NotAttempted("not attempted yet: replace `raise NotImplementedError`.") from None
    except Exception:
        pass  # it may fail on scratch input; the real worlds will say where


# -- properties over generated worlds -------------------------------------------------------


def forall(worlds: Iterable[W], prop: Callable[[W], None], *, size: Callable[[W], Any]) -> int:
    """Run ``prop(world)`` on every world, smallest first (by ``size``); ``prop`` raises
    Incorrect for a world where the answer goes wrong. The first such world is the smallest
    one: its Incorrect is raised (with what the learner's code printed in it). Returns how
    many worlds were tried.

    The worlds come from a generator with a fixed seed: the same worlds, so the same
    verdict, every time. Each lesson draws them with ``generator(exercise id)``.
    """
    tried = 0
    for world in sorted(worlds, key=size):
        tried += 1
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                prop(world)
        except Incorrect as failure:
            again = io.StringIO()
            try:
                with contextlib.redirect_stdout(again):
                    prop(world)
            except Incorrect:
                raise Incorrect(str(failure) + _printed(printed.getvalue())) from None
            raise Incorrect(
                f"{failure} (Run again in the same world, your answer did the right thing: "
                "does it keep something between calls, such as a global?)"
            ) from None
    return tried


def generator(seed: str) -> random.Random:
    """The seeded random generator a check draws its worlds from."""
    return random.Random(f"rollback-lessons {seed}")


def _printed(text: str, limit: int = 8) -> str:
    """What the learner's code printed in that world (the first lines)."""
    lines = text.rstrip().splitlines()
    if not lines:
        return ""
    more = f"\n  ... ({len(lines) - limit} more lines)" if len(lines) > limit else ""
    return "\nIn that world your code printed:\n  " + "\n  ".join(lines[:limit]) + more


# -- the exercises -------------------------------------------------------------------------

ALL: dict[str, Exercise] = {}


def register(*exercises: Exercise) -> None:
    for exercise in exercises:
        ALL[exercise.id] = exercise


def __getattr__(name: str) -> Any:
    # ``from rollback_lessons.lab.exercises import lesson02`` imports the module on demand.
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
        lesson12,
        lesson13,
    )

    return ALL
