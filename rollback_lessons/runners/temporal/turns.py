"""What an action of a run playing a timing (``completion=``) waits on: its turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle

from .activities import closing, not_begun, refuse_if_closing


def _turns(handle: WorkflowHandle[Any, Any], completion: Sequence[str],
           timeout: float) -> Callable[[str], None]:  # fmt: skip
    """What an action of a run playing ``completion`` waits on (in its activity's thread):
    every ready step was started at once (their activities are scheduled together), and of
    the steps the workflow says are running, the one named first in ``completion`` (unnamed
    ones last, in the order they started) is the one whose action is called next. The
    workflow answers (an Update, ``turn``) once it has heard the step before it end, so
    that step's completion is in the history first: the order Temporal resolves the steps
    in is the order they ran. Its runner beginning to close ends the wait: the action is
    refused, never begun (``refuse_if_closing``), even if its turn came meanwhile."""
    loop = asyncio.get_running_loop()
    order = list(completion)

    async def ask(step: str, asker: str, closed: Future[None]) -> None:
        try:  # (``asker``: its activity, so a stale ask, a worker gone, counts for no other)
            await handle.execute_update("turn", args=[step, order, asker])
        except Exception as exc:  # (the SDK's UpdateCut, cancelled by the loop's end: so it
            if isinstance(exc.__cause__, asyncio.CancelledError):  # ends, not failed, which
                raise exc.__cause__ from None  # asyncio.run prints, traceback and all: T2)
            if not closed.done():  # (refused once close began: what the ask says is moot)
                raise

    def wait_turn(step: str) -> None:
        closed = closing()
        asker = activity.info().activity_id  # (in its activity's thread)
        turn = asyncio.run_coroutine_threadsafe(ask(step, asker, closed), loop)
        wait({turn, closed}, timeout, return_when=FIRST_COMPLETED)
        if closed.done():
            turn.cancel()
            refuse_if_closing(step)
        if turn.cancelled():
            raise not_begun(step, "its worker stopped before its turn")
        turn.result(0)  # its turn (or, not given within ``timeout``, TimeoutError)

    return wait_turn
