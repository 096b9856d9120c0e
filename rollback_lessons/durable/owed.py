"""The last writes of runs a failed write stopped (a disk full for a moment as a rollback
ended): written with the journal's next write, its next claim, or as it closes (or, left
unclosed, as the process ends), so that a disk full only for a moment leaves a journal that
tells the saga as it ran (attack270 F1: they were dropped for good, the saga left
``running``, its undos run again by recover and one named leaked)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Any, Protocol

from .files import JournalTakenOver


class Run(Protocol):
    saga_id: str
    left_said: str  # (what recover finds, said as the run's note said it; "": not known)

    def flush(self, *, sync: bool = True) -> None: ...


class Owed:
    """A journal's runs whose last writes failed, oldest first."""

    def __init__(self, journal: Any) -> None:
        self._journal = journal
        self._runs: list[Run] = []
        self._paying = threading.Lock()  # (one payer; its own writes, nested, pay nothing)
        self.why = ""  # the last payment's failure (a settle refused says it)

    def runs(self) -> list[Run]:
        """The runs still owed, oldest first."""
        return list(self._runs)

    def add(self, run: Run) -> bool:
        """``run`` owed, unless its journal is closed: it writes nothing more (attack276 F3:
        its line at the process's end blamed a full disk). Is it owed?"""
        if self._journal.closed:
            return False
        self._runs.append(run)
        self._hook()  # (a journal left unclosed as the process ends: a last try, attack272 F1)
        return True

    def _hook(self) -> None:
        atexit.unregister(self._at_end)  # (once: registered again, never twice)
        atexit.register(self._at_end)

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
        atexit.unregister(self._at_end)  # (all paid: nothing keeps the journal alive; one
        if self._runs:  # owed meanwhile, by another thread, hooked again)
            self._hook()

    def _paid_one(self) -> bool:
        """The first run's writes written (or dropped: taken over); False if they failed."""
        try:
            self._runs[0].flush()
        except JournalTakenOver:
            pass
        except Exception as exc:  # (no room yet: with the next write, or the close)
            self.why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return False
        del self._runs[0]
        return True

    def _at_end(self) -> None:
        """The last try as the process ends, its journal unclosed, waiting for another's
        lock no longer than the end allows all journals (``writers.exit_left``: it waited
        each one's whole timeout, attack274 F1); what is left unwritten, or a signal
        cutting it, said in one line (a traceback from atexit, attack274 F2), as a journal
        closed as its disk was full or its file locked, which cannot write them then
        (attack274 F3; not "a full disk" whatever kept them, attack276 F3)."""
        from .writers import exit_left

        if os.getpid() != self._journal._pid:  # (a fork's: its parent's runs, not its own)
            return
        why = "its journal was closed before they could be, its disk full or file locked"
        con = None if self._journal.closed else self._journal._con
        wait = getattr(con, "wait", 0.0)
        try:
            if con is not None:
                con.wait = exit_left()
                self.pay()
                why = "the disk still full, or its file locked by another"
        except BaseException as exc:  # (a Ctrl-C, a SIGTERM handler's sys.exit: the ends
            why = f"{type(exc).__name__} as they were written"  # after it wait no more)
            exit_left(cut=True)
        finally:
            if con is not None:
                con.wait = wait
        told = [run for run in self._runs if getattr(run, "told_at_end", True)]  # (a claim:
        # it goes with the process, recover takes it: nothing to say, attack279 F2)
        plain = [run for run in told if not getattr(run, "left_said", "")]
        for run in told:  # (what recover finds, as the run's note said it: attack307 F2,
            if run not in plain:  # "recover finishes it", which halted at a pivot)
                print(f"{self._line(repr(run.saga_id), why)}: {run.left_said}", file=sys.stderr)
        if plain:
            sagas = ", ".join(repr(run.saga_id) for run in plain)
            print(
                f"{self._line(sagas, why)}: recover finishes it, calling again any undo that "
                "ran here unrecorded (same idempotency keys)",
                file=sys.stderr,
            )

    def _line(self, sagas: str, why: str) -> str:
        return (
            f"rollback-lessons: the last writes of saga {sagas} in {self._journal.path} were "
            f"not written as this process ended ({why})"
        )
