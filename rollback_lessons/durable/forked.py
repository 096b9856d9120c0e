"""A journal in a process forked from the one that opened it (an undo or a step that
forked, its child returning into the engine instead of exiting): the child holds no saga,
and its SQLite connection is its parent's."""

from __future__ import annotations

import os
import sqlite3
import weakref
from pathlib import Path
from typing import Any

from .files import WRITING, JournalError, JournalTakenOver


class JournalForked(JournalTakenOver):
    """A process forked from the one that opened the journal (an undo or a step that forked,
    its child returning into the engine instead of exiting): it holds no saga, so it neither
    writes nor runs another undo (as one taken over); its parent goes on. (Its SQLite
    connection is its parent's: used from the child, it could damage the file.)"""


def not_forked(pid: int, path: Path, opener: tuple[Any, ...] | None = None) -> None:
    """Raise JournalForked unless this process is ``pid``, the one that opened the journal
    at ``path``: a child that returned from an undo (or a step) into the engine must not go
    on with its parent's rollback (each undo run twice, the parent ending on a constraint
    error), nor use its parent's connection. Checked before every write and every claim
    check, so before every undo too."""
    if os.getpid() != pid:
        runs = _runs(pid, opener)
        parent = (
            "its parent goes on"
            if runs
            # (attack85's note, a
            else (
                f"process {pid} has exited (or runs another program now): `recover` finishes "
                "its saga"  # daemonizing fork; attack88 F5, a parent that exec'd)
            )
        )
        forked = JournalForked(
            f"process {os.getpid()} is a fork of process {pid}, which opened {path} (an "
            "undo or a step forked, and its child returned into the engine instead of "
            f"exiting): it writes and undoes nothing; {parent}"
        )  # (what its note says next: nobody took it over, attack310 F10)
        forked.then = "its parent finishes it" if runs else "`recover` finishes its rollback"
        raise forked


def no_new_saga(
    pid: int, path: Path, what: str = "a saga cannot be journalled", nothing: str = "nothing ran"
) -> None:
    """Refuse a saga begun (or settled) in a fork of the process that opened the journal,
    before anything (attack217 F2: with a run_id its first write raised, told as an undo
    that forked; without one, the run ended halted; attack221 F2: a settle wrote through
    the parent's connection, and was lost once the parent closed, "settled", exit 0)."""
    if os.getpid() != pid:
        raise JournalForked(
            f"process {os.getpid()} is a fork of process {pid}, which opened {path}: {what} "
            "through a Journal a fork inherited (its SQLite connection is its parent's); "
            "open a Journal of its own in a process started with spawn or forkserver, or fork "
            f"before the journal is opened: {nothing}"
        )


def _runs(pid: int, opener: tuple[Any, ...] | None = None) -> bool:
    """Does the process that opened the journal still run (a fork's parent, or further up)?
    Told as ``recover`` tells an owner (``opener``: its pid, host, start time and space as
    the journal records them): one that exec'd another program, or whose pid another
    process now has, has not gone on (attack88 F5)."""
    from .owner import process_alive, process_start

    if opener is not None:
        return process_alive(*opener) is not False
    if os.getppid() == pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return process_start(pid) != -1.0  # (a zombie not yet reaped: exited)


def inherited() -> None:
    """In a child just forked: each journal connection its parent had open for writing is
    kept for good, never closed here. Python's end closed it: SQLite, seeing no other
    process's lock once a daemonizing parent had exited, wrote the -wal back and removed it,
    the dead parent's mark left in a whole file, refused as a copy (attack307 F1: its saga
    never recovered); a parent alive, it could have done so under it."""
    if WRITING:
        import ctypes  # (imported already: ``forking``)

        for con in list(WRITING):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(con))


def forking() -> None:
    """ctypes imported before the fork, not in the child (a pool's worker begun that much
    later: its parent's end terminated it before its job began)."""
    if WRITING:
        import ctypes  # noqa: F401


os.register_at_fork(before=forking, after_in_child=inherited)

_FORKED_AWAY: list[sqlite3.Connection] = []
"""Connections a forked child inherited and closed its Journal over: never closed there."""


def close(con: sqlite3.Connection, pid: int) -> None:
    """Close the connection, unless this is a fork of process ``pid``, which opened it: then
    it is only kept (from the garbage collector too), as closing it here could checkpoint
    and remove the WAL under the parent."""
    if os.getpid() != pid:
        _FORKED_AWAY.append(con)
    else:
        con.close()


class Closed:
    """A closed Journal's connection: any read of it is one typed line (``JournalUnusable``),
    not sqlite3's raw "Cannot operate on a closed database" (attack41 F8); closing it again
    does nothing."""

    def __init__(self, journal: object) -> None:
        self.journal = journal

    def close(self) -> None:
        """Closed already."""

    def __getattr__(self, name: str) -> Any:
        from .files import JournalUnusable

        raise JournalUnusable(f"{self.journal!r} is closed: open it again with Journal(path)")


_HELD: dict[str, tuple[tuple[int, int], int]] = {}
"""Each journal's file this process's connections hold, and the pid that opened it: a fork
inherits them (``not_inherited``)."""


def _inode(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def not_inherited(path: str | os.PathLike[str], journal: object) -> None:
    """Refuse a journal opened in a fork of a process that had it open: SQLite's locks do not
    pass to a fork, its inherited connection stands for them there, so a connection made here
    takes none, and the parent's close, the last as SQLite counts, took the -wal from under
    it (attack215 F1: a child's committed sagas lost, later children "corrupt?"). Else it is
    held from here, before its first connection (a fork as it opened: attack216 F3)."""
    try:
        here = _inode(Path(os.path.realpath(path)))
    except OSError:
        return
    key = f"open {id(journal)}"
    _HELD[key] = (here, os.getpid())
    weakref.finalize(journal, _HELD.pop, key, None)  # (one refused, or never closed)
    for inode, pid in list(_HELD.values()):
        if inode == here and pid != os.getpid():
            _HELD.pop(key, None)
            raise JournalError(
                f"process {os.getpid()} was forked from process {pid} while it had {path} "
                "open: SQLite's locks do not pass to a fork, so a journal opened here would "
                "lose its writes when that one closes; open it in a process started with "
                "spawn or forkserver, or fork before the journal is opened"
            )
