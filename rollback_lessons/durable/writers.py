"""Which processes hold a journal open for writing, kept in the journal itself, so that a
file found without its ``-wal`` can tell whether it is whole.

SQLite copies the ``-wal``'s writes back into the file from time to time (a checkpoint,
every 1000 pages) and removes the ``-wal`` as its last connection closes. The file alone (a
copy of it, or the file whose ``-wal`` was deleted) is the journal as of the last checkpoint:
a saga begun before it shows unfinished, though it may have committed since, and recover
would undo it (attack211 F1: a committed saga undone, exit 0). So each Journal that writes
leaves a mark (its process) with its first write, before any checkpoint can copy a write of
it, and takes it away as it closes: a file with no ``-wal`` beside it holding the mark of a
process that no longer runs (or that cannot be checked from here) is one that process never
closed, its newest writes in a ``-wal`` that is not here: refused. Opened with its ``-wal``,
the file and the ``-wal`` hold all that process wrote: the marks of processes that ended
are taken away."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sqlite3
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._held import held
from ..errors import JournalError
from .owner import me, process_alive
from .walcheck import holds_a_commit

PREFIX = "writer "
_MARKS = "SELECT key, value FROM meta WHERE substr(key, 1, 7) = 'writer '"


class Alone(JournalError):
    """A journal's file found without its ``-wal``, and not whole: refused, nothing run."""


def lone(path: str | os.PathLike[str]) -> bool:
    """No ``-wal`` beside the journal that SQLite would read a commit from (none, empty as a
    reader's open leaves it, cut short of its first whole frame), looked at before a
    connection here makes one."""
    return not holds_a_commit(Path(path))


def _who(value: object) -> tuple[int, str, float | None, str | None] | None:
    """A mark's process (pid, host, start, space), or None for one that is not a mark."""
    try:
        found = json.loads(str(value))
        pid, host, started, space = found["pid"], found["host"], found["started"], found["space"]
    except (ValueError, TypeError, KeyError):
        return None
    if type(pid) is not int or type(host) is not str:
        return None
    if not (started is None or type(started) in (int, float)):
        return None
    return pid, host, started, space if type(space) is str else None


def _ended(who: tuple[int, str, float | None, str | None] | None) -> bool | None:
    """False while the mark's process runs, True once it ended, None if not known here."""
    if who is None:
        return None
    alive = process_alive(*who)
    return None if alive is None else not alive


def check(con: sqlite3.Connection, path: Path, alone: bool) -> list[str]:
    """Refuse a file found ``alone`` (no ``-wal``) that holds a mark: its process never
    closed it (ended, or running on with it open by another name: a copy taken while it ran,
    attack213 F4), unless a ``-wal`` came meanwhile (a writer that began as this one opened);
    otherwise the keys of the marks of processes that ended (their writes are all here: the
    file with its ``-wal``)."""
    marks = [(key, _who(value)) for key, value in con.execute(_MARKS).fetchall()]
    if alone and marks and lone(path):
        who = marks[0][1]
        by = "a process" if who is None else f"process {who[0]} on {who[1]}"
        name = shlex.quote(str(path))
        raise Alone(
            f"cannot open the journal {path}: it was last written by {by}, which did not "
            "close it, and its -wal is not beside it (a copy of the file alone, or its -wal "
            "deleted): its newest writes are missing, a saga shown unfinished may have ended, "
            "and recover would undo it. Use it with its -wal; if another program wrote that "
            f"back into it (the sqlite3 shell opened it last), say so: sqlite3 {name} "
            f"\"DELETE FROM meta WHERE key LIKE '{PREFIX}%'\""
        )
    return [key for key, who in marks if _ended(who) is True]


class Mark:
    """A journal's mark: written with its first write (a journal only read leaves none, and
    opening it waits for no writer's lock), taken away as it closes (``leave``: ``close``,
    or the journal collected unclosed, or the process's end: SQLite's connection closes
    then, the file checkpointed whole, which its mark left behind would refuse). The marks
    of processes that ended (``gone``: read with their -wal there) go with its first write,
    and those of any that ended since, as it closes (``_leave``)."""

    def __init__(self, journal: object, con: sqlite3.Connection, gone: list[str]) -> None:
        pid, host, started, space = me()
        self.key = PREFIX + uuid.uuid4().hex
        self.value = json.dumps({"pid": pid, "host": host, "started": started, "space": space})
        self.gone, self.done = gone, False
        self.leave = weakref.finalize(journal, _leave, con, self, pid)

    def statements(self) -> list[tuple[str, tuple[Any, ...]]]:
        """What a write adds until one has committed (``done``)."""
        if self.done:
            return []
        mine = ("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (self.key, self.value))
        return [*(("DELETE FROM meta WHERE key = ?", (key,)) for key in self.gone), mine]


def _leave(con: sqlite3.Connection, mark: Mark, pid: int) -> None:
    """Take a mark away (never from a fork: its parent's), and the marks of processes that
    ended, read now, or of every other process when none has the journal open (SQLite's
    own test before it writes the -wal back as the last connection closes): this
    connection's -wal holds all they wrote (attack213 F1, F5: a writer killed while another
    ran on, which then closed last, or one in another container, left its mark in a whole
    file, refused). Waited for a writer's lock a few seconds at least (a journal of
    ``timeout=0`` left its mark at a moment's lock). A write that fails (a full disk) leaves
    them: the file is refused once alone, never taken for whole when it may not be."""
    if os.getpid() != pid:
        return
    wait = getattr(con, "wait", None)
    with contextlib.suppress(sqlite3.Error):
        if con.in_transaction:  # (one a Ctrl-C left open: rolled back as SQLite's close would)
            con.execute("ROLLBACK")
        marks = [(key, _who(value)) for key, value in con.execute(_MARKS)]
        alone = _nobody_else(con)
        keys = [key for key, who in marks if key == mark.key or _ended(who)
                or (alone and (who is None or who[0] != pid))]  # fmt: skip
        if keys:
            con.wait = max(wait or 0.0, LEAVE_WAIT)  # type: ignore[attr-defined]
            con.execute(f"DELETE FROM meta WHERE key IN ({', '.join('?' * len(keys))})", keys)
    if wait is not None:
        con.wait = wait  # type: ignore[attr-defined]


LEAVE_WAIT = 5.0
"""Seconds a closing journal waits for a writer's lock to take its mark away, whatever its
own ``timeout``."""


def _nobody_else(con: sqlite3.Connection) -> bool:
    """Does no other process have the journal open? Each connection holds a read lock on
    the dead-man switch byte of its ``-shm`` (SQLite's unix VFS: byte 128) while open;
    ``F_GETLK`` tells whether another process's lock is there (this process's own are not
    told). False where that cannot be read."""
    try:
        import fcntl
        import struct

        [(_, _, name)] = [row for row in con.execute("PRAGMA database_list") if row[1] == "main"]
        fd = os.open(os.path.realpath(name) + "-shm", os.O_RDONLY)
    except (ImportError, OSError, ValueError, sqlite3.Error):
        return False
    try:
        asked = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 128, 1, 0)
        told = fcntl.fcntl(fd, fcntl.F_GETLK, asked)
        return struct.unpack("@hhqqi4x", told)[0] == fcntl.F_UNLCK
    except (OSError, struct.error):
        return False
    finally:
        os.close(fd)


def closing(mark: Mark | None, close: Callable[[], None]) -> None:
    """``mark`` taken away (once) then ``close`` the journal's connection, a Ctrl-C
    (or SIGTERM) held meanwhile and raised after: cut between the two, the mark stayed in a
    file SQLite then closed whole."""
    kept: list[int] = []
    try:
        with held(kept):
            if mark is not None:
                mark.leave()
            close()
    finally:
        for signum in dict.fromkeys(kept):
            signal.raise_signal(signum)


@contextlib.contextmanager
def closed_unless(con: sqlite3.Connection, path: Path) -> Iterator[None]:
    """``con`` closed if the block raises (a read-only journal refused: said as a journal
    that cannot be opened is, with its path)."""
    try:
        yield
    except BaseException as exc:
        con.close()
        if isinstance(exc, JournalError) and not isinstance(exc, Alone):
            raise JournalError(f"cannot open the journal {path}: {exc}") from None
        raise


def read_only(path: Path) -> Path | None:
    """The journal's file a writer cannot write: itself, or its ``-wal`` or ``-shm`` beside
    it (SQLite writes all three: attack76 F4, a read-only ``-shm`` was told as the journal's
    "attempt to write a readonly database"); None if each is writable or absent."""
    real = Path(os.path.realpath(path))  # (a symlink's files are its target's: attack204)
    sides = (real, *(real.with_name(real.name + end) for end in ("-wal", "-shm")))
    return next((p for p in sides if p.exists() and not os.access(p, os.W_OK)), None)
