"""Calling a step's action or undo in process: what may be called, what it may return,
and a deadline for a synchronous call. The saga machine (``machine.py``) decides which call
comes next; these only make the call safely."""

from __future__ import annotations

import functools
import inspect
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

PLAIN = frozenset({int, float, str, bool, bytes, dict, list, tuple, set})
"""Results that are surely neither awaitables nor generators (checked without inspect)."""

_GENERATORS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


_FUNCTION = types.FunctionType
_NOT_PLAIN = _GENERATORS | inspect.CO_COROUTINE


def _plain(fn: object) -> bool:
    """A plain function (through partials and bound methods): neither a generator nor a
    coroutine function, decided from its code flags without inspect's slower checks."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)
    if type(fn) is not _FUNCTION:
        return False
    return not fn.__code__.co_flags & _NOT_PLAIN


def plain(fn: object) -> bool:
    """A plain Python function, told by its type and code flags alone: the common case, and
    the one ``make bench`` times (a with-block of lambdas)."""
    return type(fn) is _FUNCTION and not fn.__code__.co_flags & _NOT_PLAIN  # type: ignore[attr-defined]


def is_async(fn: object) -> bool:
    """A coroutine function (through partials and bound methods)?"""
    return not _plain(fn) and inspect.iscoroutinefunction(fn)


SYNC_ONLY = "the synchronous Rollback cannot await it (use AsyncRollback)"
IN_A_STEP = (
    "a Step takes a plain function, which may return an awaitable for `await saga.arun(state)`"
    " (`lambda state: book(state)`)"
)


def check_callable(
    fn: object, role: str, step: str, *, allow_async: bool, why: str = SYNC_ONLY
) -> None:
    """Refuse what cannot run as ``step``'s ``role`` ("action", "undo"), before anything
    runs (``why``: what an async function is told)."""
    if _plain(fn):
        return
    if not callable(fn):
        raise TypeError(f"{what(role, step)} must be callable, got {fn!r}")
    # inspect looks through functools.partial, which is how Saga binds the state
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{what(role, step)} is a generator function: calling it would not run its body. "
            "Make it a plain function (return a value instead of yielding it)"
        )
    if not allow_async and inspect.iscoroutinefunction(fn):
        raise TypeError(f"{what(role, step)} is an async function; {why}")


def what(role: str, step: str) -> str:
    """How an error names a call: "undo of step 'charge'"."""
    return f"{role} of step {step!r}"


def call_sync(fn: Callable[..., Any], args: tuple[Any, ...], role: str, step: str) -> Any:
    """Call ``fn(*args)`` (``role`` of ``step``: "action", "undo"); an awaitable or a
    generator it returns is an error, never dropped silently."""
    result = fn(*args)
    if result is None or type(result) in PLAIN:
        return result
    return checked(result, role, step)


def checked(result: Any, role: str, step: str) -> Any:
    """A result, unless it is an awaitable or a generator (then a TypeError that says so)."""
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never leave it un-awaited and silently dropped
        raise TypeError(
            f"{what(role, step)} returned an awaitable; a synchronous run cannot await it "
            "(use AsyncRollback, or await saga.arun(state))"
        )
    if inspect.isgenerator(result):
        result.close()
        raise TypeError(f"{what(role, step)} returned a generator: its body never ran")
    return result


LATE: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Any]] = weakref.WeakKeyDictionary()
"""Per run (its driver), each call still running past its timeout, by (role, step): the
next attempt of that call waits for it rather than call again (attack47 F5)."""


def late(owner: object, role: str, step: str, call: Any = None) -> Any:
    """Take the call of ``role`` of ``step`` that outlived its timeout in ``owner``'s run
    (None if none); or, given ``call``, keep it."""
    if owner is None:
        return None
    if call is not None:
        LATE.setdefault(owner, {})[(role, step)] = call
        return None
    return LATE.get(owner, {}).pop((role, step), None)


def still_running(role: str, step: str, timeout: float) -> TimeoutError:
    """The error of an attempt that waited in vain for the previous one's call."""
    return TimeoutError(
        f"{what(role, step)}: its call past its timeout still ran after {timeout} s more "
        "(not called again while it runs; it may still complete)"
    )


def timed_out(role: str, step: str, timeout: float) -> TimeoutError:
    """The error of an attempt whose synchronous call outlived its timeout."""
    return TimeoutError(
        f"{what(role, step)} took longer than its timeout of {timeout} s (the call goes on "
        "in a helper thread and may still complete)"
    )


def call_timed(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    role: str,
    step: str,
    timeout: float,
    owner: object = None,
) -> Any:
    """Call with a deadline, in a helper thread: past ``timeout`` seconds the attempt fails.

    A synchronous call cannot be pre-empted: the hung call goes on in its thread. So that
    two calls never overlap (two refunds at once), the next attempt in ``owner``'s run does
    not call again while it runs: it waits for it (``timeout`` seconds more), and its late
    end is that attempt's (a late success is a success). The better fix is a timeout inside
    the call itself (a socket or HTTP timeout), or AsyncRollback, which cancels the awaited
    undo.
    """
    before = late(owner, role, step)
    if before is not None and (before[0].is_alive() or "error" not in before[1]):
        running, ended = before  # (one that failed meanwhile ended: called afresh)
        running.join(timeout)
        if running.is_alive():
            late(owner, role, step, before)
            raise still_running(role, step, timeout)
        if "error" in ended:
            raise ended["error"]
        return ended.get("result")
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call_sync(fn, args, role, step)
        except BaseException as exc:
            box["error"] = exc

    name = what(role, step)
    thread = threading.Thread(target=target, name=f"rollback-lessons {name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        late(owner, role, step, (thread, box))
        raise timed_out(role, step, timeout)
    if "error" in box:
        raise box["error"]
    return box.get("result")


def own_cancel(exc: BaseException) -> bool:
    """A step's (or undo's) own CancelledError (a library it awaits cancelled a future): a
    failure, not an interrupt; the task running it is not being cancelled."""
    if type(exc).__name__ != "CancelledError":
        return False
    import asyncio

    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop running
        return False
    return isinstance(exc, asyncio.CancelledError) and task is not None and not task.cancelling()
