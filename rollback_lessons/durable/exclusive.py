"""One ``recover`` of a journal file at a time in a process, and none called from its own
undo: two recovers of one file in one process would share its claims (one pid), and one
called from an undo the other runs would wait for itself forever."""

from __future__ import annotations

import contextvars
import os
import threading
from typing import TYPE_CHECKING

from .files import JournalError

if TYPE_CHECKING:
    from .journal import Journal


class RecoveryNested(JournalError, RuntimeError):
    """``recover`` called while this one runs, from its own undo (a compensation that
    "cleans up" by recovering, or a library it calls; awaited or timed, too): refused
    before anything, as it would wait forever for the recover that runs that undo."""


_recovering: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rollback_lessons_recovering", default=None
)  # the journal a recover of this thread (or of the undo it runs, awaited or timed) holds
_locks: dict[object, threading.RLock] = {}  # one per journal file: two recovers of one
_locks_guard = threading.Lock()  # file in one process would share its claims (same pid);
# two files' recovers never wait for each other (an undo backing off for an hour in one)


def _one_at_a_time(journal: Journal) -> threading.RLock:
    """The lock of ``journal``'s file, known by its device and inode (a second path to it,
    a link or a symlink, is the same file), or by its resolved path if it cannot be read."""
    try:
        st = os.stat(journal.path)
        key: object = (st.st_dev, st.st_ino)
    except OSError:
        key = os.path.realpath(journal.path)
    with _locks_guard:
        return _locks.setdefault(key, threading.RLock())


class recovering:
    """Hold ``journal``'s file for one recover; refuse (``RecoveryNested``) a recover called
    while one runs in this thread, or in an undo it runs (awaited or timed: the context
    goes with it). ``let_go`` is its exit, and ``recover``'s own if a Ctrl-C came as the
    ``with`` exited (``__exit__``'s entry: the mark left set, the file held, every later
    recover of the kernel refused as nested: attack55 F3)."""

    def __init__(self, journal: Journal) -> None:
        self.journal, self.lock = journal, _one_at_a_time(journal)
        self.token: contextvars.Token[str | None] | None = None
        self.marked = False

    def __enter__(self) -> None:
        holding = _recovering.get()
        if holding is not None:
            raise RecoveryNested(
                f"recover({self.journal!r}) was called from an undo that recover({holding}) "
                "is running: refused (it would wait for itself forever); nothing was claimed"
            )
        try:
            self.marked = True
            self.token = _recovering.set(repr(self.journal))
            self.lock.acquire()
        except BaseException:
            self.let_go()
            raise

    def __exit__(self, *exc: object) -> None:
        self.let_go()

    def let_go(self) -> None:
        """Give the file back and take the mark off (once; a Ctrl-C as ``set`` returned
        left no token: a kernel would refuse every recover, attack48 F12)."""
        if self.lock._is_owned():  # type: ignore[attr-defined]  # (this thread's: RLock)
            self.lock.release()
        if self.marked:
            self.marked = False
            if self.token is not None:
                _recovering.reset(self.token)
            else:
                _recovering.set(None)
