"""Clocks: backoff sleeps, event times and run ids go through one of these, so tests and
notebooks never wait and print the same thing every time."""

from __future__ import annotations

import itertools
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Protocol


class Clock(Protocol):
    """Anything that can wait and tell the time; the engine only ever sleeps through one."""

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (for event timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for offsets within a run)."""
        ...

    def run_id(self, name: str) -> str:
        """A new id for a run of saga ``name``, to group its events in a log system."""
        ...


_PART = 1e8  # seconds (three years): a longer time.sleep is waited in parts


class SystemClock:
    """Real waiting and real time, for scripts and production; run ids are random."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def run_id(self, name: str) -> str:
        return f"{name}-{os.urandom(6).hex()}"

    def sleep(self, seconds: float) -> None:
        while seconds > _PART:  # (time.sleep refuses ~30 years and more: OverflowError)
            time.sleep(_PART)
            seconds -= _PART
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio  # only async users pay for importing asyncio

        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
"""The clock of every run not given one (it keeps no state, so one is enough)."""

EPOCH = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: where a VirtualClock's wall clock starts


class VirtualClock:
    """Pretends to wait: records each sleep and advances ``now`` instantly.

    Its time starts at ``EPOCH`` and moves only when it sleeps, and its run ids count up
    per saga name (``order-1``, ``order-2``), so a lesson prints the same every time.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._counts: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))

    def time(self) -> float:
        return EPOCH + self.now

    def monotonic(self) -> float:
        return self.now

    def run_id(self, name: str) -> str:
        return f"{name}-{next(self._counts[name])}"

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        import asyncio

        self.sleep(seconds)
        await asyncio.sleep(0)  # still yield, so cancellation can land as it would

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now:g})"
