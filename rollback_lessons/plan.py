"""Plans: the engine's loops say what to do, and a driver does it (the sans-IO split).

The retry and compensation loops are written once, as generators that yield typed
operations (``Call(fn, what)``, ``Sleep(seconds)``) and are sent back the exception a call
raised (or None). ``drive`` carries a plan out synchronously, ``adrive`` awaits; the same
loop serves ``with`` and ``async with`` without two copies drifting apart.
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from .clock import Clock


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``fn()``; ``what`` names it in error messages ("undo of step 'charge'").

    With ``timeout`` (seconds) an attempt that takes longer fails with ``TimeoutError``.
    """

    fn: Callable[[], Any]
    what: str
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` on the run's clock (a VirtualClock never really sleeps)."""

    seconds: float


Op = Call | Sleep
Plan = Generator[Op, "BaseException | None", None]
"""Yields what to do next; is sent the exception the last call raised, or None."""


_GENERATORS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def _plain(fn: object) -> bool:
    """A plain function (through partials and bound methods): neither a generator nor a
    coroutine function. The common case, decided from its code flags without inspect's
    slower checks; anything else goes the long way below."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)
    if type(fn) is not types.FunctionType:
        return False
    return not fn.__code__.co_flags & (_GENERATORS | inspect.CO_COROUTINE)


def check_callable(fn: object, what: str, *, allow_async: bool) -> None:
    """Refuse what cannot run as a step's action or undo, before anything runs."""
    if _plain(fn):
        return
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {fn!r}")
    # inspect looks through functools.partial, which is how Saga binds the state
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{what} is a generator function: calling it would not run its body. "
            "Make it a plain function (return a value instead of yielding it)"
        )
    if not allow_async and inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"{what} is an async function; the synchronous Rollback cannot await it "
            "(use AsyncRollback)"
        )


def call_sync(fn: Callable[[], Any], what: str) -> Any:
    """Call ``fn``; an awaitable or a generator it returns is an error, never dropped silently."""
    result = fn()
    if result is not None and inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never leave it un-awaited and silently dropped
        raise TypeError(
            f"{what} returned an awaitable; the synchronous Rollback cannot await it "
            "(use AsyncRollback)"
        )
    if inspect.isgenerator(result):
        result.close()
        raise TypeError(f"{what} returned a generator: its body never ran")
    return result


def call_timed(op: Call) -> Any:
    """Call with a deadline, in a helper thread: past ``op.timeout`` the attempt fails.

    A synchronous call cannot be pre-empted: the hung call goes on in its thread and its
    result is dropped. So an undo with a timeout must be idempotent (it may finish after a
    retry did), and the better fix is a timeout inside the call itself (a socket or HTTP
    timeout), or AsyncRollback, which cancels the awaited undo.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call_sync(op.fn, op.what)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"rollback-lessons {op.what}", daemon=True)
    thread.start()
    thread.join(op.timeout)
    if thread.is_alive():
        raise TimeoutError(f"{op.what} took longer than its timeout of {op.timeout} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def drive(plan: Plan, clock: Clock) -> Any:
    """Carry out a plan synchronously; return the last call's result.

    An ``Exception`` from a call is sent back into the plan (it decides: retry, dead
    letter, halt). A KeyboardInterrupt or SystemExit is thrown into it, so the plan can
    record what is left undone before it propagates.
    """
    result = None
    try:
        op = next(plan)
        while True:
            sent: BaseException | None = None
            try:
                if isinstance(op, Sleep):
                    clock.sleep(op.seconds)
                else:
                    result = call_timed(op) if op.timeout is not None else call_sync(op.fn, op.what)
            except Exception as exc:
                sent = exc
            except BaseException as exc:
                op = plan.throw(exc)  # the plan records what is left, then re-raises
                continue
            op = plan.send(sent)
    except StopIteration:
        return result


async def adrive(plan: Plan, clock: Clock) -> Any:
    """Carry out a plan, awaiting what the calls return and sleeping on the clock."""
    result = None
    try:
        op = next(plan)
        while True:
            sent: BaseException | None = None
            try:
                if isinstance(op, Sleep):
                    await clock.asleep(op.seconds)
                else:
                    result = op.fn()
                    if inspect.isawaitable(result):
                        if op.timeout is not None:  # cancels the awaited call when it is up
                            import asyncio  # only async users pay for importing asyncio

                            result = await asyncio.wait_for(result, op.timeout)
                        else:
                            result = await result
            except Exception as exc:
                sent = exc
            except BaseException as exc:  # CancelledError, KeyboardInterrupt, SystemExit
                op = plan.throw(exc)
                continue
            op = plan.send(sent)
    except StopIteration:
        return result
