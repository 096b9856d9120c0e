"""The last writes of runs a failed write stopped (a disk full for a moment as a rollback
ended): written with the journal's next write, its next claim, or as it closes (or, left
unclosed, as the process ends), so that a disk full only for a moment leaves a journal that
tells the saga as it ran (attack270 F1: they were dropped for good, the saga left
``running``, its undos run again by recover and one named leaked)."""

from __future__ import annotations

import atexit
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
        self._at_exit = False

    def add(self, run: Run) -> None:
        self._runs.append(run)
        if not self._at_exit:  # (a journal left unclosed as the process ends: a last try,
            atexit.register(self.pay)  # before its marks go; attack272 F1)
            self._at_exit = True

    def pay(self) -> None:
        """Write each run's kept writes, under its claim: a run taken over since (``recover
        --force``) is its new holder's to finish, dropped. A write that fails keeps the rest
        for the next; an interruption too, and is raised. One thread pays at a time (a
        ``with``: no instant between the lock taken and its release assured, attack272 F2);
        another thread's write, or this one's nested, goes on without waiting."""
        if not self._runs or self._paying.locked():
            return
        with self._paying:  # (no ``try`` right inside: a tracer's Ctrl-C at its line skips
            while self._runs and self._paid_one():  # 3.11's ``with`` cleanup: held for good)
                pass
        if self._at_exit and not self._runs:  # (all paid: nothing keeps the journal alive)
            self._at_exit = False
            atexit.unregister(self.pay)

    def _paid_one(self) -> bool:
        """The first run's writes written (or dropped: taken over); False if they failed."""
        try:
            self._runs[0].flush()
        except JournalTakenOver:
            pass
        except Exception:  # (no room yet: with the next write, or the close)
            return False
        del self._runs[0]
        return True
