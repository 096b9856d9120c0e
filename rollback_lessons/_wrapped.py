"""A coroutine a plain function handed back to a synchronous run, holding work that had
begun: ``asyncio.wait_for(loop.run_in_executor(None, charge), 5)``, or an ``async def``
closing over such a Future. Closing the coroutine does not stop that work, so the call may
have had its effect and its work may go on (attack98 F8: taken as a clean refusal, retried,
it charged three times at once): ``MayHaveRun``, never called again in that run."""

from __future__ import annotations

import inspect
import sys
from typing import Any

from .errors import MayHaveRun


def holds_work(thing: Any) -> bool:
    """Does ``thing`` (a coroutine or an async generator not started, or an awaitable object
    of one's own) hold a Future not yet done, an asyncio one or a pool's, among its
    arguments, the names it closes over, or its attributes (attack102 F6: a Task or an
    object of one's own holding the work was taken as nothing done, retried three times)?"""
    frame = next((f for n in ("cr_frame", "ag_frame", "gi_frame")
                  if (f := getattr(thing, n, None)) is not None), None)  # fmt: skip
    try:
        values = list(frame.f_locals.values() if frame is not None else vars(thing).values())
    except Exception:  # (a frame that cannot say, an object of no __dict__: holding nothing)
        return False
    return True in [_pending(v) for v in values]  # (no generator left suspended: a Ctrl-C
    # as the gc closed it was dropped, attack54 F4)


def _pending(value: Any) -> bool:
    asyncio, pools = sys.modules.get("asyncio"), sys.modules.get("concurrent.futures")
    future = (asyncio is not None and asyncio.isfuture(value)) or (
        pools is not None and isinstance(value, pools.Future)
    )
    try:
        return bool(future and not value.done())
    except Exception:  # (a Future-like whose done() raises: in doubt, held)
        return True


def refused(result: Any, what: str, hint: str) -> BaseException:
    """The error of a synchronous call (``what``: "action of step 'b'") that returned an
    awaitable, which it closes (never left un-awaited and silently dropped): a clean
    ``TypeError``, or ``MayHaveRun`` if it held work already begun."""
    held = holds_work(result)
    if inspect.iscoroutine(result) or inspect.isgenerator(result):
        result.close()
    if not held:
        return TypeError(f"{what} returned an awaitable; a synchronous run cannot await it {hint}")
    return runs_on(what, "an awaitable", hint)


def runs_on(what: str, kind: str, hint: str) -> MayHaveRun:
    """The error of a call that handed back ``kind`` holding work that had begun."""
    error = MayHaveRun(
        f"{what} returned {kind} holding work that had begun (a run_in_executor Future?): a "
        f"synchronous run cannot await it, and that work may go on, and may have had its "
        f"effect {hint}"
    )
    error.goes_on = True  # (never called again in that run: ``errors.goes_on``)
    return error
