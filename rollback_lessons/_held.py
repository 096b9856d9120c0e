"""SIGINT and SIGTERM held (only noted) while something must not be cut: a runner's stop in
its finalizer (``runners.closed``), what an interrupted command writes and says before it ends
(recover's clean-up, the interrupt's one line: attack66 F1, F3)."""

from __future__ import annotations

import contextlib
import os
import select
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
    finally:  # SIGINT's last, in a finally of its own: a signal as the other's is put back
        # (its handler raising) leaves neither swapped for the rest of the process
        try:
            if signal.SIGTERM in swapped:
                signal.signal(signal.SIGTERM, swapped[signal.SIGTERM])
        finally:
            if signal.SIGINT in swapped:
                signal.signal(signal.SIGINT, swapped[signal.SIGINT])


@contextlib.contextmanager
def telling(ending: list[Any]) -> Iterator[None]:
    """``held``, as an interrupt's output and its one line are written (``ending``: its exit
    status, and its line, ``b""`` once said); in the command, a further signal ends the
    process with that status after a last non-blocking try at the line: an output that
    blocks (a reader that stalls) hung it, deaf to every signal (attack71 F2). What it tells
    is already written in the journal."""
    from . import _starting

    if not _starting._is_the_command() or threading.current_thread() is not threading.main_thread():
        with held([]):
            yield
        return
    kept: list[int] = []
    with held(kept):
        for which in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(which) is not None:
                signal.signal(which, lambda signum, frame: _heard(signum, ending, kept))
        yield


def _heard(signum: int, ending: list[Any], kept: list[int]) -> None:
    """A further signal as the interrupt is told: held, unless its output blocks (stdout or
    stderr a pipe that takes no more): then the end, ``ending``'s status."""
    try:
        ready = select.select([], [1, 2], [], 0)[1]
    except (OSError, ValueError):  # (one closed: no write of it blocks)
        ready = [1, 2]
    if len(ready) < 2:
        _last(*ending)
    kept.append(signum)


def _last(status: int, line: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        blocking = os.get_blocking(2)
        os.set_blocking(2, False)
        try:
            os.write(2, line)
        finally:
            os.set_blocking(2, blocking)
    os._exit(status)
