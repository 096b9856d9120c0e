"""One ``recover`` of a journal file at a time in a process, and none called from its own
undo: two recovers of one file in one process would share its claims (one pid), and one
called from an undo the other runs would wait for itself forever."""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator
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
_locks: dict[object, threading.Lock] = {}  # one per journal file: two recovers of one
_locks_guard = threading.Lock()  # file in one process would share its claims (same pid);
# two files' recovers never wait for each other (an undo backing off for an hour in one)


def _one_at_a_time(journal: Journal) -> threading.Lock:
    """The lock of ``journal``'s file, known by its device and inode (a second path to it,
    a link or a symlink, is the same file), or by its resolved path if it cannot be read."""
    try:
        st = os.stat(journal.path)
        key: object = (st.st_dev, st.st_ino)
    except OSError:
        key = os.path.realpath(journal.path)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


@contextlib.contextmanager
def recovering(journal: Journal) -> Iterator[None]:
    """Hold ``journal``'s file for one recover; refuse (``RecoveryNested``) a recover called
    while one runs in this thread, or in an undo it runs (awaited or timed: the context
    goes with it)."""
    holding = _recovering.get()
    if holding is not None:
        raise RecoveryNested(
            f"recover({journal!r}) was called from an undo that recover({holding}) is "
            "running: refused (it would wait for itself forever); nothing was claimed"
        )
    token = None
    try:
        token = _recovering.set(repr(journal))
        with _one_at_a_time(journal):
            yield
    finally:
        if token is not None:
            _recovering.reset(token)
        else:  # (a Ctrl-C as ``set`` returned: a kernel would refuse every recover: F12)
            _recovering.set(None)
