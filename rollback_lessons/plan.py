"""Plans: the engine's loops say what to do, and a driver does it (the sans-IO split).

The retry and compensation loops are written once, as generators that yield typed
operations (``Call(fn, what)``, ``Sleep(seconds)``) and are sent back the exception a call
raised (or None). ``drive`` carries a plan out synchronously, ``adrive`` awaits; the same
loop serves ``with`` and ``async with`` without two copies drifting apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from .clock import Clock


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``fn()``; ``what`` names it in error messages ("undo of step 'charge'")."""

    fn: Callable[[], Any]
    what: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` on the run's clock (a VirtualClock never really sleeps)."""

    seconds: float


Op = Call | Sleep
Plan = Generator[Op, "BaseException | None", None]
"""Yields what to do next; is sent the exception the last call raised, or None."""


def check_callable(fn: object, what: str, *, allow_async: bool) -> None:
    """Refuse what cannot run as a step's action or undo, before anything runs."""
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


def drive(plan: Plan, clock: Clock) -> Any:
    """Carry out a plan synchronously; return the last call's result.

    Only ``Exception`` is sent back into the plan: a KeyboardInterrupt or SystemExit
    propagates to the caller, which decides what is left undone.
    """
    result = None
    try:
        op = next(plan)
        while True:
            sent: BaseException | None = None
            if isinstance(op, Sleep):
                clock.sleep(op.seconds)
            else:
                try:
                    result = call_sync(op.fn, op.what)
                except Exception as exc:
                    sent = exc
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
            if isinstance(op, Sleep):
                await clock.asleep(op.seconds)
            else:
                try:
                    result = op.fn()
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as exc:
                    sent = exc
            op = plan.send(sent)
    except StopIteration:
        return result
