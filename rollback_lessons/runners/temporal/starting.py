"""A saga's start: the ``start_workflow`` call, and its fate when it is cut short, by the
server's timeout (asked whether it landed: issue 25) or by the caller's cancel (attack69 F1:
a Ctrl-C as the start was on its way was raised bare, and the saga, started all the same,
ran on: a relaunch on the ``db_file`` took it forward to ``committed``)."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from ..._guards import cancelled_with
from . import ending
from .handle import _release
from .left import CANCEL_SENT, WorkerGone, compensated, worker_gone
from .lost import ServerSlow, ask
from .server import TemporalUnavailable

if TYPE_CHECKING:
    from .handle import SagaHandle
    from .runner import TemporalRunner


async def begin(runner: TemporalRunner, workflow: WorkflowHandle[Any, Any],
                start: Awaitable[Any]) -> None:  # fmt: skip
    """Send the start (``lost.ask``, as every call). One cut short on a server that answers
    may have landed: a Describe asks, and if it did, the saga runs, hosted here. One that did
    not is released and said in one line (``TemporalUnavailable``)."""
    try:
        try:
            await ask(workflow, start)
        except ServerSlow as slow:
            try:
                await workflow.describe()
            except RPCError:
                raise slow from None
    except (RPCError, TemporalUnavailable) as exc:
        _release(workflow.id)
        error = exc.error if isinstance(exc, TemporalUnavailable) else exc
        said = getattr(error, "message", None) or str(error)
        if isinstance(exc, ServerSlow):
            raise TemporalUnavailable(
                f"the Temporal server ({runner.address}) answers, but did not start saga "
                f"{workflow.id} in time ({said}): none of its steps ran here. Try again."
            ) from None
        raise TemporalUnavailable(
            f"the Temporal server ({runner.address}) did not answer when saga {workflow.id} "
            f"was started ({said}): none of its steps ran here. Is it running?"
        ) from None


async def cut(handle: SagaHandle, starting: asyncio.Future[None],
              stopped: asyncio.CancelledError) -> asyncio.CancelledError:  # fmt: skip
    """The caller's cancel (``stopped``: a Ctrl-C under ``asyncio.run``) came while its saga's
    start was on its way (``starting``, shielded from it): the start's fate is awaited. One
    that landed is cancelled in its turn and awaited to its end (it compensates), as a cancel
    a moment later is (``left.compensated``); one that did not start says so. A second
    cancel, or the loop's end cutting the start too, stops that wait: the saga's cancel is
    sent all the same (bounded), and the note (a ``WorkerGone`` warning too, if the worker
    is gone) names the run and whether it started. The cancel to raise, noted."""
    try:
        await asyncio.shield(starting)
    except Exception as exc:  # (``begin``'s one line: it did not start, nothing ran)
        stopped.add_note(f"saga {handle.run_id} was cancelled as it was started: {exc}")
        return stopped
    except BaseException:  # a second cancel, or the start cut (the loop's end, a stop in it)
        await _unsure(handle, starting, stopped)
        return stopped
    return cancelled_with(stopped, await compensated(handle, stopped))


async def _unsure(handle: SagaHandle, starting: asyncio.Future[None],
                  stopped: asyncio.CancelledError) -> None:  # fmt: skip
    """The wait for the start cut short: the start cut too, the saga's cancel sent (bounded:
    a relaunch then compensates a saga that started), and said."""
    starting.cancel()
    starting.add_done_callback(lambda done: done.cancelled() or done.exception())  # (read)
    asking = asyncio.ensure_future(handle.workflow.cancel())
    with contextlib.suppress(BaseException):  # (bounded; a further cancel ends it)
        await asyncio.wait_for(asyncio.shield(asking), CANCEL_SENT)
    error = asking.exception() if asking.done() and not asking.cancelled() else None
    run_id, runner = handle.run_id, handle.runner
    cut = (
        f"saga {run_id}'s caller was cancelled as it started it, and the wait for that start "
        "was cut too"
    )
    if isinstance(error, RPCError) and error.status is RPCStatusCode.NOT_FOUND:
        _release(run_id)
        stopped.add_note(
            f"{cut}: the server had no such saga when its cancel was sent, none of its steps ran"
        )
        return
    sent = asking.done() and not asking.cancelled() and error is None
    if ending.gone(runner._worker_task):
        started = "started" if sent else "may have started"
        note = f"{cut} (its event loop ending): it {started}; {worker_gone(runner, run_id, sent)}"
        warnings.warn(WorkerGone(note), stacklevel=4)
    else:
        note = (
            f"{cut}: it started, and its cancel was sent: it compensates in this runner's worker"
            if sent
            else f"{cut}: it may have started, and the server did not confirm its cancel: "
            f"cancel it (handle_for(saga, {run_id!r}).cancel()) to be sure"
        )
    stopped.add_note(note)
