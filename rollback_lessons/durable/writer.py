"""How ``recover`` writes what it did: in batches, each committed before it is told."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._starting import kept
from ..events import describe
from .journal import Journal, JournalError, JournalTakenOver, Written
from .records import JournalRun
from .report import Recovery
from .room import no_room


class Writer:
    """Commits what recovery did, every ``every`` undos; reports only what it committed."""

    def __init__(self, journal: Journal, every: int) -> None:
        self.journal, self.every = journal, every
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.undos = 0
        self.staged: list[Recovery] = []
        self.recorded: list[Recovery] = []
        self.fences: dict[str, int] = {}  # the claims the statements are written under
        self.current = ""  # the saga being recovered
        self.run: JournalRun | None = None  # and its run
        self.final: tuple[str, tuple[Any, ...]] | None = None  # its status, once reported
        self.failed = ""  # a write that failed: what it said, but what will happen (F4)

    def undo_ran(self, run: JournalRun) -> None:
        run.give(self.statements)
        self.undos += 1
        if self.undos >= self.every:
            self.flush()
        kept()  # (the command's: its signal handlers and mask as the undo found them)

    def finished(self, run: JournalRun, report: Recovery) -> None:
        """A saga's end: what its run did, then its status (``final``) with its report."""
        run.give(self.statements)
        self.statements += [self.final] if self.final else []
        self.final = None
        self.staged.append(report)
        if self.every == 1 or self.undos >= self.every:
            self.flush()

    def reruns(self) -> bool:
        """Would an undo run again, were what is not yet written lost: does it record an
        undo's outcome? (One that carried only sagas' ends, their undos written before, runs
        none again: attack68 L2.)"""
        return any("undos" in sql.split()[1:3] for sql, _ in self.statements)  # (its table)

    def flush(self) -> None:
        if not self.statements:
            return
        written = Written()
        try:
            self.journal.write(self.statements, fences=self.fences, written=written)
        except JournalTakenOver:
            raise  # its own one line: another recover holds the saga now
        except Exception as exc:
            room = no_room(Path(self.journal.path), str(exc))  # (attack42 F14)
            if "locked" in str(exc):  # (named as at the claim: attack63 F3)
                wait = getattr(self.journal._con, "wait", 0.0)
                room = (  # (this process's own registry too: attack190)
                    "; another connection holds it (another process's, or one its registry "
                    f"opened); waited {wait:g} s; a longer --wait waits more"
                )
            self.failed = f"recover could not write to {self.journal.path} ({describe(exc)}{room})"
            rerun = RERUN if self.reruns() else ENDS_ONLY
            raise JournalError(f"{self.failed}; {rerun}") from None
        finally:
            if written.committed:  # (a Ctrl-C as the write returned: told all the same, F10)
                self.recorded, self.staged = self.recorded + self.staged, []
                self.statements, self.undos = [], 0
        self.fences = {s: g for s, g in self.fences.items() if s == self.current}


RERUN = (
    "the undos it ran since its last write will run again next time (their idempotency keys "
    "make that harmless)"
)
ENDS_ONLY = (
    "what it undid is recorded (no undo will run again); the end of the sagas it finished "
    "since its last write is not, and the next recover writes it"
)
RECORDED_LATER = "the undos it ran are recorded all the same (a second try wrote them)"
"""What a write that ran out of its wait says when recover's next try wrote it (attack66 F4)."""

UNRECORDED = (
    "the undos it ran since its last write are not recorded (that write failed) and will run "
    "again next time (same idempotency key)"
)
"""What an interrupted recover says when the write after the interrupt failed (attack63 F2)."""


def briefly(journal: Journal, write: Callable[[], None], short: bool = True) -> None:
    """``write`` (the journal's writes in it) tried once, one turn of SQLite's busy wait, if
    ``short``, never its whole wait: recover's writes after an interrupt, or after a write
    that ran out of its wait (attack63 F1, F3: each waited the whole ``--wait`` again). What
    they fail to write is safe: a claim left by a process that ended is taken over by the
    next recover. The wait is put back in this call's own ``finally``, with no call before
    it: a ``@contextmanager``'s, put back in contextlib's ``__exit__``, was skipped by a
    Ctrl-C at that call's entry, and a process that lives on kept a wait of 0 (fixleft)."""
    con = journal._con
    wait = getattr(con, "wait", None)  # (a closed journal's: nothing to shorten)
    try:
        if short and wait is not None:
            con.wait = 0.0  # type: ignore[attr-defined]
        write()
    finally:
        if wait is not None:
            con.wait = wait  # type: ignore[attr-defined]
