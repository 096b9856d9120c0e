"""A journal's connection left open for good, its -wal beside the file as after a crash:
when closing it, the last, would write the -wal back into a file that cannot say it is
whole (``writers._ending``)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .room import no_room


@contextlib.contextmanager
def stuck_on(stuck: list[str], path: Path) -> Iterator[None]:
    """Marks that could not be taken away for want of room (a full disk, ``ulimit -f``):
    said in ``stuck``. Closed, this connection, the last, wrote the -wal back into a file
    naming them, the dead owner's too, then could not tidy: a whole file refused for good
    (attack265 F1: a recover run on a full disk after a crash). Left open instead, the -wal
    stays beside it, as after a crash, until the process ends."""
    try:
        yield
    except sqlite3.Error as exc:
        if "full" in str(exc) or "I/O" in str(exc) or no_room(path, str(exc)):
            stuck.append(str(exc))
        raise


def left_open(con: sqlite3.Connection) -> None:
    """At the process's end, a journal's connection that a thread may write on yet, or whose
    file names sagas awaiting recover, is never closed (a reference kept for good): Python's
    teardown closing it, the last connection, wrote the -wal back into a file that named
    them, refused as a copy alone though whole (attack257 F1: two services ending at once,
    each saw the other's open; a reader closing after). Left open, the -wal stays beside the
    file, as a crash leaves it, and the file is read with it; the next last close tidies."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(con))
