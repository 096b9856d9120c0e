"""What an action of a run playing a timing (``completion=``) waits on: its turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError, TemporalError

from .activities import closing, not_begun, refuse_if_closing

POLL = 0.2
"""Seconds at most between two looks at whether an action's turn came (``near``): the
longest its call may start after the step before it ended."""


def _turns(handle: WorkflowHandle[Any, Any], completion: Sequence[str],
           timeout: float) -> Callable[[str], None]:  # fmt: skip
    """What an action of a run playing ``completion`` waits on (in its activity's thread):
    every ready step was started at once (their activities are scheduled together), and of
    the steps the workflow says are running, the one named first in ``completion`` (unnamed
    ones last, in the order they started) is the one whose action is called next. The
    workflow answers (an Update, ``turn``) once it has heard the step before it end, so
    that step's completion is in the history first: the order Temporal resolves the steps
    in is the order they ran (asked once the Query ``running`` says it is first: ``near``).
    Its runner beginning to close ends the wait: the action is refused, never begun
    (``refuse_if_closing``), even if its turn came meanwhile. Told
    its turn, the action is called only once the workflow recorded that it begins (the
    Update ``begin``): a turn given to an activity whose worker was gone, never told, is
    no begin (fixtrace: reported leaked, though never called)."""
    loop = asyncio.get_running_loop()
    order = list(completion)
    rank = {name: n for n, name in enumerate(order)}

    async def near(step: str) -> None:
        """Return once ``step`` is first of the running (or no longer running), asking the
        Query ``running``: an Update waiting for its turn holds one of the few the server
        lets a run have in flight (10 by default), and those of the steps after it could
        hold them all, the first refused for ever (a group of 40: a livelock)."""
        pause = POLL / 16
        while (busy := await handle.query("running")) and step in busy:
            if min(busy, key=lambda s: rank.get(s, len(rank))) == step:
                return
            await asyncio.sleep(pause)
            pause = min(2 * pause, POLL)

    async def ask(update: str, args: list[Any], closed: Future[None]) -> None:
        try:  # (``asker``: its activity, so a stale ask, a worker gone, counts for no other)
            if update == "turn":
                await near(args[0])  # (the Update then waits only in a race: rarely)
            await handle.execute_update(update, args=args)
        except Exception as exc:  # (the SDK's UpdateCut, cancelled by the loop's end: so it
            if isinstance(exc.__cause__, asyncio.CancelledError):  # ends, not failed, which
                raise exc.__cause__ from None  # asyncio.run prints, traceback and all: T2)
            if not closed.done():  # (refused once close began: what the ask says is moot)
                raise

    def answered(step: str, update: str, args: list[Any], closed: Future[None]) -> None:
        """The workflow's answer to ``update``, unless its runner began to close first."""
        answer = asyncio.run_coroutine_threadsafe(ask(update, args, closed), loop)
        wait({answer, closed}, timeout, return_when=FIRST_COMPLETED)
        if closed.done():
            answer.cancel()
            refuse_if_closing(step)
        if answer.cancelled():
            raise not_begun(step, "its worker stopped before its turn")
        if not answer.done():  # (``timeout``: as long as every step's tries may take)
            answer.cancel()
            what = "turn was not given" if update == "turn" else "begin was not recorded"
            raise not_begun(step, f"its {what} within {timeout:g} s, the longest every "
                            "step's tries may take (turn_wait)")  # fmt: skip
        answer.result(0)

    def wait_turn(step: str) -> None:
        closed = closing()
        asker = activity.info().activity_id  # (in its activity's thread)
        for update, args in (("turn", [step, order, asker]), ("begin", [step, asker])):
            try:  # its turn; then its call begins: recorded first
                answered(step, update, args, closed)
            except ApplicationError:  # refused here (``not_begun``)
                raise
            except Exception as exc:  # refused by the workflow (its end heard first), or
                if update == "turn" and not isinstance(exc, TemporalError):  # unanswered (the
                    raise  # server unreachable): never called, asked again; not Temporal's: as is
                raise not_begun(step, f"its {update} was refused: {_said(exc)}") from None

    return wait_turn


def _said(exc: BaseException) -> str:
    """An Update's failure in one line: the workflow's own words when it refused it."""
    cause = getattr(exc, "cause", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
