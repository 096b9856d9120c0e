"""A with-block's clock once a step of it retries (``Rollback``, ``AsyncRollback``)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from .clock import Clock, SystemClock


class Wakeable:
    """A with-block's clock once a step of it retries: a wait on the system clock ends as
    soon as the block failed (``Rollback._stop_tries``), not a whole backoff later."""

    def __init__(self, clock: Clock, woken: threading.Event, awoken: Any = None) -> None:
        self.clock, self.woken, self.awoken = clock, woken, awoken

    def sleep(self, seconds: float) -> None:
        if type(self.clock) is SystemClock:
            self.woken.wait(seconds)  # (a Ctrl-C still lands here, as in time.sleep)
        else:
            self.clock.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        if type(self.clock) is SystemClock and self.awoken is not None:
            import asyncio  # (AsyncRollback's: the wait ends once its block failed)

            with contextlib.suppress(TimeoutError):  # (the wait ran its whole time)
                await asyncio.wait_for(self.awoken.wait(), seconds)
        else:
            await self.clock.asleep(seconds)

    def time(self) -> float:
        return self.clock.time()

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def run_id(self, name: str) -> str:
        return self.clock.run_id(name)
