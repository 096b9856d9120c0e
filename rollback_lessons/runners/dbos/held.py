"""One live runner per DBOS file: DBOS's launch resumes every ``PENDING`` workflow on the
file (each process is DBOS's executor ``local``), a live process's too, which then ran a
step's action a second time (attack17's G1). An exclusive lock on the file itself, held for
the runner's life, refuses a second launch before DBOS launches, by whatever name it is
reached (a symlink, a hard link: attack19's F4; a lock per name let each name's launch in);
the kernel drops it when the process dies (and any child it forked, which shares it), so a
relaunch after a crash is never refused. A runner closed while a saga still runs a step on one
of its threads keeps it until that thread stops (``runner.close``: attack20's N1).

The file locked is the one DBOS opens: its URL is made here (``url``), the path escaped as the
journal escapes its own, so no character in a name points SQLite at another file (attack24's
M2); and a file that is not SQLite, or is another program's database (a rollback journal),
is refused before DBOS adds its tables to it (M3)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from ...durable.files import APP, SQLITE_HEADER, _uri
from ...errors import RollbackLessonsError
from ..flocks import alive
from ..flocks import holder as _holder
from ..flocks import let_go as let_go


class FileInUse(RollbackLessonsError):
    """``DBOSRunner.start`` on a file another live runner holds (this process or another)."""


class FileUnusable(RollbackLessonsError):
    """``DBOSRunner.start`` on a file that cannot be opened (its folder missing, say), that
    is not SQLite, or that holds another program's tables (a rollback journal): one line,
    before DBOS launches."""


def url(database: Path) -> str:
    """DBOS's (SQLAlchemy's) URL for ``database``: a SQLite ``file:`` URI with every byte of
    the path escaped (the journal's own ``_uri``), its ``%`` escaped once more, as SQLAlchemy
    unquotes the database part of a URL. ``sqlite:///j%41.sqlite`` opened ``jA.sqlite``, and
    ``j?x=1`` opened ``j``: another file than the one locked, so a second runner reaching
    the data by its plain name was not refused (attack24's M2). ``mode=rw``: ``hold`` made
    the file."""
    uri, _, query = _uri(database, "mode=rw").partition("?")
    return f"sqlite:///{uri.replace('%', '%25')}?{query}&uri=true"


def _not_for_dbos(database: Path, fd: int) -> str | None:
    """Why DBOS must not use the file ``fd`` holds (None: it may): not SQLite (DBOS failed
    with SQLAlchemy's three-line error and a logged traceback), or SQLite with tables that
    are not DBOS's (DBOS added its own beside them: a rollback journal given by mistake
    took them). An empty file is a new database. It is opened read-write (it was read-only): a
    process killed while SQLite held a write transaction on the file left a hot ``-journal``
    beside it, which SQLite rolls back as it first reads, and cannot on a read-only
    connection ("attempt to write a readonly database"): DBOS's own, healthy file was called
    unreadable, and every relaunch refused for ever (attack87's F6)."""
    head = os.pread(fd, len(SQLITE_HEADER), 0)
    if not head:
        return None
    if head != SQLITE_HEADER:
        return "it is not a SQLite database"
    try:
        con = sqlite3.connect(_uri(database, "mode=rw"), uri=True)
        try:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            tables = sorted(str(name) for (name,) in rows if not str(name).startswith("sqlite_"))
            if not tables or "dbos_migrations" in tables:
                return None
            if {"meta", "sagas"} <= set(tables):
                app = con.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
                if app == (APP,):
                    return "it is a rollback journal, not a DBOS file (DBOS would add its tables)"
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"it is not a readable SQLite database ({exc})"
    shown = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
    return f"it holds another program's tables ({shown}), not DBOS's"


def hold(database: Path) -> int:
    """Take the lock on ``database`` for this runner (its descriptor: ``let_go`` it), or
    refuse in one line, naming the process holding it. The lock is ``flock`` on the file
    itself (created empty if new: SQLite takes an empty file for a new database), which
    SQLite's own locks (``fcntl``) never meet; it is closed only before DBOS launches or
    once it is destroyed (closing a descriptor of the file drops this process's ``fcntl``
    locks on it), or once the last of its sagas' threads stopped after that."""
    try:
        fd = os.open(database, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise FileUnusable(
            f"DBOS cannot use {database}: {exc.strerror or exc} (nothing was launched)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        where, then = who(holder)
        raise FileInUse(
            f"DBOS runs on {database} {where}: a second launch would resume its running "
            f"sagas and run their steps again; {then}"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        why = _not_for_dbos(database, fd)
    except BaseException:
        let_go(fd)
        raise
    if why is not None:
        let_go(fd)
        raise FileUnusable(f"DBOS cannot use {database}: {why} (nothing was launched)")
    return fd


def who(holder: str) -> tuple[str, str]:
    """Who holds the lock, truly, and what to do: the kernel lists the process that took it,
    and a child it forked (``os.fork``, multiprocessing's fork) shares it, holding it after
    that process died (attack20's N4: a dead pid was called "another live process")."""
    close = "close that runner first (a process that died holds nothing)"
    if holder == str(os.getpid()):
        return f"in this process (pid {holder}), or a process forked from it", close
    if not alive(holder):
        return (
            f"in a process forked from pid {holder}, which has died",
            "the fork holds the lock until it exits: end it first",
        )
    return f"in another live process (pid {holder}, or a process forked from it)", close
