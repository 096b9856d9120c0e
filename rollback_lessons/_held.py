"""SIGINT and SIGTERM held (only noted) while something must not be cut: a runner's stop in
its finalizer (``runners.closed``), what an interrupted command writes and says before it ends
(recover's clean-up, the interrupt's one line: attack66 F1, F3)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def held(kept: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM, while inside, only noted in ``kept`` (in the main thread: a signal
    is heard there only). (Python's handlers, swapped: a signal mask holds one thread only;
    one set outside Python is left alone.)"""
    swapped: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for which in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(which) is not None:
                swapped[which] = signal.signal(which, lambda signum, frame: kept.append(signum))
    try:
        yield
    finally:
        for which, handler in swapped.items():
            signal.signal(which, handler)
