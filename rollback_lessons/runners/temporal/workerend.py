"""The worker's end as an activity hears it (``WorkerEnd``), and the heartbeats every
activity sends while it runs, so that the server hears a worker that is gone within
``HEARTBEAT_TIMEOUT`` seconds (attack64 F3)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from .activities import _SUBMITTED, not_begun, run_action, withdrawn
from .timeouts import BEAT
from .workflow import StepCall


class WorkerEnd(Interceptor):
    """The worker's end cutting an attempt: failed as never begun if its call had not begun
    (``withdrawn``: attack57 F3), its end if its call had ended (L2), not as the SDK's
    ``CancelledError`` the workflow counts in doubt; and a signal as it starts (``_started``)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Cut(next)


def _raise(exc: BaseException) -> None:
    raise exc


class _Cut(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self._outbound = outbound  # (its ``heartbeat``: on the loop, never blocking it)
        super().init(outbound)

    async def _beating(self) -> None:
        """A heartbeat every ``BEAT`` s while the activity runs, whatever its call does: a
        worker killed is heard within ``HEARTBEAT_TIMEOUT``. A cancel the server answers
        with is held back while a call runs or waits for its turn (the activities' shield:
        a cancel never cuts a call short), as before heartbeats were sent."""
        while True:
            self._outbound.heartbeat()
            await asyncio.sleep(BEAT)

    async def _started(self, input: ExecuteActivityInput) -> Any:
        """A Ctrl-C or SIGTERM's ``sys.exit`` heard in the loop's thread as the SDK starts the
        call (``Thread.start``) is not its failure (attack59 T1: the process went on): raised
        from the loop, which ends; the call runs (in doubt: the loop's end cuts it) or never."""
        try:
            return await super().execute_activity(input)
        except (KeyboardInterrupt, SystemExit) as exc:  # (a call's own are data: ``_start``)
            submitted, loop = _SUBMITTED.get(), asyncio.get_running_loop()
            loop.call_soon(_raise, exc)
            if submitted is not None and not submitted.cancel():  # its thread runs it
                return await asyncio.wrap_future(submitted)
            await loop.create_future()  # never begun: the loop's end cancels this wait

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        beats = asyncio.get_running_loop().create_task(self._beating())
        try:
            return await self._started(input)
        except (asyncio.CancelledError, CancelledError) as exc:
            ended = isinstance(exc, asyncio.CancelledError) or activity.is_worker_shutdown()
            call = input.args[0] if input.args else None
            action = getattr(input.fn, "__name__", "") == run_action.__name__
            if ended and action and isinstance(call, StepCall) and withdrawn(call):
                raise not_begun(call.step, "its worker stopped before its turn") from None
            sub = _SUBMITTED.get()
            if ended and sub is not None and sub.done() and not sub.cancelled():
                return sub.result()  # its call ended (attack59 L2): its end, not "cut short"
            raise
        finally:
            beats.cancel()
