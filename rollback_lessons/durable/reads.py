"""How a Journal reads: what is on disk, never a transaction a cut write left open.

Two Ctrl-Cs as a write commits (the first at its ``with``'s exit, so COMMIT never runs; the
second at ``heal`` in ``Journal.write``'s ``finally``, so no ROLLBACK either) leave the
connection in a transaction nobody committed. Read through it, the journal says what it
does not hold: the commit's read-back said "committed" while the file said running, and
recover undid the saga the run called committed (attack72 F1). So each read first rolls
back what was left open, as each write does (``heal``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .files import _UNFINISHED, JournalError, Look, _duration, _open_read_only, heal
from .records import UndoRecord
from .values import as_written

if TYPE_CHECKING:
    from .journal import Journal


@contextlib.contextmanager
def reading(journal: Journal) -> Iterator[None]:
    """Hold the journal's lock and read what is on disk: a transaction open here is one a
    cut write left (the journal's own run inside this lock, never across a read of it), so
    it is rolled back first (never in a fork: its parent's connection, ``forked.close``)."""
    with journal._lock:
        if os.getpid() == journal._pid:
            heal(journal._con)
        if not isinstance(journal._con, Look):
            yield
            return
        journal._con.close()  # (another's journal, read as it lies now: not as it lay when
        journal._con = _open_read_only(journal.path)  # first read, attack282 F1, stale)
        try:
            yield
        except sqlite3.DatabaseError as exc:  # (its owner's close wrote pages back meanwhile)
            raise JournalError(
                f"{journal.path} changed as it was read (its owner wrote it back as this "
                f"process, another user, looked): look again ({exc})"
            ) from None


def unfinished_undos(journal: Journal, state: str) -> dict[str, list[UndoRecord]]:
    """The undos in ``state`` of every unfinished saga, by saga, oldest first (read under the
    journal's lock: ``reading``, or inside a transaction of its own, as ``claim``'s)."""
    timeout = "timeout" if journal._version >= 5 else "NULL"  # (read-only: as it is)
    rows = journal._con.execute(
        "SELECT saga_id, position, step, compensation, args, state, attempts, error,"
        f" semantic, {timeout} FROM undos WHERE state = ?"
        f" AND saga_id IN ({_UNFINISHED}) ORDER BY saga_id, position",
        (state,),
    ).fetchall()
    out: dict[str, list[UndoRecord]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(undo_record(journal, r))
    return out


def undo_record(journal: Journal, r: tuple[Any, ...]) -> UndoRecord:
    """An undo as recover reads it, checked: a record damaged into something else (an
    overwritten page that SQLite's checks pass) is refused before any undo runs."""
    try:
        args = as_written(r[4])
    except (TypeError, ValueError):
        args = None
    if not (
        isinstance(args, dict) and isinstance(r[1], int) and isinstance(r[2], str)
        and isinstance(r[3], str) and isinstance(r[6], int)
        and (r[9] is None or _duration(r[9]))
    ):  # fmt: skip
        raise JournalError(
            f"{journal.path} is damaged (undo {r[1]!r} of saga {r[0]!r} cannot be read); "
            "no undo was run"
        )
    return UndoRecord(r[0], r[1], r[2], r[3], args, r[5], r[6], r[7], bool(r[8]), r[9])
