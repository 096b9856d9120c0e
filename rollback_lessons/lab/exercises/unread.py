"""What to tell a learner when a check breaks outside their own code (``Exercise._grade``).

No line of the learner's is in the traceback, so the error was raised by the check or the
engine on what the answer gave them. Each cause gets its own true line (fixex73's note):
the engine's own errors say what the engine refused; a learner's method called with
arguments it does not take (an override whose signature differs from the method it
replaces: the TypeError is raised at the call, in our code) names that method and the
signature it must keep; only an error reading a record (a key, an attribute, a type that
is not there) is asked about a record replaced.

A BaseException that is no Exception (SystemExit, asyncio.CancelledError, a class of the
learner's) raised in the learner's own code is told too (``no_failure``): it is no failure
of that call but a stop of whatever runs it. A KeyboardInterrupt is never told: a real
Ctrl-C must still stop ``check()``, wherever it lands.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import traceback
from typing import Any

from ...errors import InvalidPipelineError, RollbackLessonsError

_ARITY = re.compile(r"^([\w.<>]+)\(\) (?:takes|missing|got an unexpected|got multiple)")
_READING = (KeyError, IndexError, AttributeError, TypeError)  # a record not as the check left it


def unread(exc: Exception, answers: tuple[Any, ...]) -> str:
    """The feedback for ``exc``, raised where no line of the learner's is."""
    said = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, InvalidPipelineError):
        return f"the engine refuses what your answer gave it ({said})"
    if isinstance(exc, RollbackLessonsError):
        return f"the engine stopped on what your answer gave it ({said})"
    if isinstance(exc, TypeError) and (found := _called(exc, answers)) is not None:
        return found
    if isinstance(exc, _READING):
        return (
            f"the check could not read what your answer left behind ({said}): did it "
            "replace or remove a record?"
        )
    return f"the check broke on what your answer did ({said})"


def no_failure(exc: BaseException, stops: str = "a saga stops there, as at a Ctrl-C") -> str | None:
    """The feedback for a BaseException that is no Exception, raised in the learner's code
    (in ``exc`` or an error it came from: asyncio turns a task's into a new one); None for
    a KeyboardInterrupt or one with no line of theirs (a real stop: it must propagate).
    ``stops`` says what stops there in the exercise's own terms."""
    from . import _learners as frame_is_learners  # (the package imports this module)
    from . import raised

    theirs, seen = None, exc
    for _ in range(8):  # (a short chain: __cause__ or __context__)
        if any(frame_is_learners(f) for f in traceback.extract_tb(seen.__traceback__)):
            theirs = seen
            break
        if (seen := seen.__cause__ or seen.__context__) is None:  # type: ignore[assignment]
            break
    if (
        theirs is None
        or isinstance(exc, KeyboardInterrupt)
        or isinstance(theirs, KeyboardInterrupt)
    ):
        return None
    if isinstance(theirs, SystemExit):
        why = "SystemExit asks the whole program to stop (exit() and sys.exit() raise it)"
    elif isinstance(theirs, asyncio.CancelledError):
        why = "asyncio.CancelledError says the task running your code was cancelled"
    else:
        why = f"A BaseException that is no Exception, as {type(theirs).__name__} is, says the "
        why += "program is being stopped from outside"
    return (
        f"{raised(theirs, 'code')}. {why}, not that this call failed: nothing takes it for a "
        f"failure ({stops}), and this check stopped too; to say the "
        "call failed, raise an Exception (a ValueError, say)"
    )


def _called(exc: TypeError, answers: tuple[Any, ...]) -> str | None:
    """A learner's function called with arguments it does not take, if that is what
    ``exc`` says: named, with the signature of the method it overrides."""
    match = _ARITY.match(str(exc))
    if match is None:
        return None
    name = match.group(1)
    for owner, fn in _functions(answers):
        if getattr(fn, "__qualname__", None) != name:
            continue
        what = f"your {name} was called with arguments it does not take (TypeError: {exc})"
        for base in owner.__mro__[1:] if owner is not None else ():
            kept = vars(base).get(fn.__name__)
            if kept is not None and not _learners(kept) and callable(kept):
                takes = ", ".join(inspect.signature(kept).parameters)
                shown = f"{base.__name__}.{fn.__name__}({takes})"
                return f"{what}: it overrides {shown}, so it must take the same"
        return what
    return None


def _functions(answers: tuple[Any, ...]) -> list[tuple[type | None, Any]]:
    """The learner's own functions among the answers: an answer, its class's methods, and
    those of what it holds (a Retry holds a RetryPolicy), one level down."""
    seen: list[Any] = []
    for answer in answers:
        seen += [answer, *getattr(answer, "__dict__", {}).values()]
    found: list[tuple[type | None, Any]] = []
    for thing in seen:
        if inspect.isfunction(thing) and _learners(thing):
            found.append((None, thing))
        cls = thing if isinstance(thing, type) else type(thing)
        for owner in cls.__mro__:
            found += [(owner, f) for f in vars(owner).values() if inspect.isfunction(f)]
    return [(owner, f) for owner, f in found if _learners(f)]


def _learners(fn: Any) -> bool:
    """Was ``fn`` written by the learner (not in this package, the stdlib or a library)?"""
    from . import _learners as frame_is_learners  # (the package imports this module)

    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    return frame_is_learners(traceback.FrameSummary(code.co_filename, 0, fn.__name__))
