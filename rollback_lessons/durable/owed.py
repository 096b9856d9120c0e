"""The last writes of runs a failed write stopped (a disk full for a moment as a rollback
ended): written with the journal's next write, or as it closes, so that a disk full only
for a moment leaves a journal that tells the saga as it ran (attack270 F1: they were dropped
for good, the saga left ``running``, its undos run again by recover and one named leaked)."""

from __future__ import annotations

import threading
from typing import Protocol

from .files import JournalTakenOver


class Run(Protocol):
    def flush(self, *, sync: bool = True) -> None: ...


class Owed:
    """A journal's runs whose last writes failed, oldest first."""

    def __init__(self) -> None:
        self._runs: list[Run] = []
        self._paying = threading.Lock()  # (one payer; its own writes, nested, pay nothing)

    def add(self, run: Run) -> None:
        self._runs.append(run)

    def pay(self) -> None:
        """Write each run's kept writes, under its claim: a run taken over since (``recover
        --force``) is its new holder's to finish, dropped. A write that fails keeps the rest
        for the next; an interruption too, and is raised."""
        if not self._runs or not self._paying.acquire(blocking=False):
            return
        try:
            while self._runs:
                try:
                    self._runs[0].flush()
                except JournalTakenOver:
                    pass
                except Exception:  # (no room yet: with the next write, or the close)
                    return
                del self._runs[0]
        finally:
            self._paying.release()
