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


class CancelWakes(Wakeable):
    """``saga.run``'s clock when its cancel is a ``threading.Event``: a wait to retry a
    step ends as soon as it is set, the cancel heard then (attack295 F1: the whole backoff
    was sat out first; ``arun``'s ends at once). A wait in the rollback (an undo's
    backoff, the cancel long set) is waited whole."""

    def __init__(self, clock: Clock, cancel: threading.Event, run: Any) -> None:
        super().__init__(clock, cancel)
        self.run = run

    def sleep(self, seconds: float) -> None:
        if self.run.m.rolling:
            self.clock.sleep(seconds)
        else:
            super().sleep(seconds)


def woken_by(cancel: object, run: Any) -> Clock:
    """The clock ``saga.run`` waits on: its own, or one its Event cancel wakes."""
    if isinstance(cancel, threading.Event) and type(run.clock) is SystemClock:
        return CancelWakes(run.clock, cancel, run)
    return run.clock  # type: ignore[no-any-return]
