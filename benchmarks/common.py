"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable


def per_call(fn: Callable[[], object], *, repeat: int = 7, min_time: float = 0.2) -> float:
    """CPU seconds per call: the best of ``repeat`` rounds (the least disturbed by the
    machine; CPU time, as other processes share it)."""
    timer = timeit.Timer(fn, timer=time.process_time)
    number, _ = timer.autorange()
    number = max(number, int(number * min_time / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])
