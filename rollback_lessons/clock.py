"""Clocks: backoff sleeps go through one of these, so tests and notebooks never wait."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that can wait; the engine only ever sleeps through a clock."""

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real waiting, for scripts and production."""

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio  # only async users pay for importing asyncio

        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """Pretends to wait: records each sleep and advances ``now`` instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        import asyncio

        self.sleep(seconds)
        await asyncio.sleep(0)  # still yield, so cancellation can land as it would

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now:g})"
