"""A full disk, told as one: SQLite says "disk I/O error" when it cannot make a journal's
``-shm`` beside it, nothing of room."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOM = 64 * 1024  # below this much free space beside a journal, SQLite's -shm (32 KB) and
# the WAL's first pages may not fit: an error opening or writing it is told as no room


def no_room(path: Path, said: str = "") -> str:
    """Why SQLite failed on ``path`` if the cause is a full disk (its "disk I/O error" when
    it cannot make ``-shm`` says nothing of room): a clause to add to the error, else "".
    When SQLite ``said`` the disk is full, so it is, whatever is free by now (closing the
    journal removed its ``-wal``, attack41 F4). Said once: "" if ``said`` says it already."""
    if _NO_ROOM in said or _LIMIT in said:
        return ""
    limit = size_limit(path) if not said or "disk" in said else ""
    try:
        st = os.statvfs(path.parent)
    except (OSError, AttributeError, ValueError):  # (no statvfs here: nothing to add)
        return limit
    free = st.f_bavail * st.f_frsize
    if free >= ROOM and "disk is full" not in said:
        return limit
    now = " by now, SQLite's own files let go" if free >= ROOM else ""  # (attack174 F2)
    return f"; {_NO_ROOM} ({free} bytes free{now}): " + (_own_log(path, free) or (
        f"SQLite makes {path.name}-wal and {path.name}-shm beside it; free some space and run "
        "it again"
    ))  # fmt: skip


def _own_log(path: Path, free: int) -> str:
    """The journal's own ``-wal`` as what keeps its disk full, if it is (a reader's snapshot
    let it grow, attack285 F3): what room writing it back takes; else ""."""
    from .walcheck import growth

    with contextlib.suppress(OSError, ValueError):
        if (log := growth(path)) is not None and log[1] + ROOM > free and log[0] > log[1]:
            return (
                f"its own {path.name}-wal ({log[0]} bytes) takes it, and is given back only "
                f"once written into {path.name}, which needs {log[1]} bytes more for that (at "
                f"least): with no process using the journal, give this disk that room (or move "
                f"{path.name} and {path.name}-wal together to a disk that has it) and run "
                "it again"
            )
    return ""


_NO_ROOM, _LIMIT = "no room on its disk", "its file-size limit, ulimit"


def was_full(exc: BaseException) -> bool:
    """Did ``exc`` (a journal write's, ``told``) fail for want of room?"""
    said = str(exc)
    return _NO_ROOM in said or _LIMIT in said or "disk is full" in said


def told(exc: sqlite3.OperationalError, path: Path) -> sqlite3.OperationalError:
    """SQLite's error writing the journal at ``path``, its message naming a full disk or
    the process's file-size limit where either is the cause (a run's own write said only
    "disk I/O error": attack253 F1); ``exc`` itself otherwise."""
    clause = no_room(path, str(exc))
    if not clause:
        return exc
    named = sqlite3.OperationalError(f"{exc}{clause}")
    for attr in ("sqlite_errorcode", "sqlite_errorname"):
        with contextlib.suppress(AttributeError):
            setattr(named, attr, getattr(exc, attr))
    return named


@contextlib.contextmanager
def named(path: Path) -> Iterator[None]:
    """SQLite's errors writing the journal at ``path`` raised ``told``: a claim's, as a run's
    write's (recover's claim on a full disk said a bare "disk I/O error" through the API)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if (said := told(exc, path)) is exc:
            raise
        raise said from None


def unopened(path: Path, said: str) -> str:
    """What to add to SQLite's error ``said`` opening ``path``: no room (named once, with the
    files it makes beside it), or those files, and a guess if it spoke of the disk."""
    guess = "; a full disk?" if "disk" in said else ""
    return no_room(path, said) or (
        f"{guess} (SQLite writes {path.name}-wal and {path.name}-shm beside it)"
    )


def size_limit(path: Path) -> str:
    """A file-size limit on this process (``ulimit -f``): SQLite writing past it fails with
    "disk I/O error" (EFBIG), nothing of room or of the limit (attack154 F1): named, else
    "". Named only when a file of the journal's is within ``ONE_WRITE`` of it: a limit far
    above them was blamed for a "disk I/O error" of another cause (attack211 F2)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):  # (no such limit here)
        return ""
    if soft == resource.RLIM_INFINITY or _largest(path) + ONE_WRITE < soft:
        return ""
    return (
        f"; this process may write no file past {soft} bytes ({_LIMIT} "
        f"-f), and SQLite's files for {path.name} may need more: raise it and run it again"
    )


ONE_WRITE = 16 * 1024 * 1024  # more than one of a journal's transactions writes


def _largest(path: Path) -> int:
    """The size of the largest of the journal's files (itself, its -wal, its -shm)."""
    real = os.path.realpath(path)
    sizes = [0]
    for name in (real, real + "-wal", real + "-shm"):
        with contextlib.suppress(OSError):
            sizes.append(os.stat(name).st_size)
    return max(sizes)


def written_back(journal: Any) -> None:
    """A ``-wal`` that fills the journal's disk written back into its file first, and given
    back (``_own_log``): else the command's first write goes into the ``-wal`` too and takes
    the room the line asked for (attack286 F9: given it, recover asked for it again). Tried
    once, quietly: what fails is said by the write that fails after."""
    from .walcheck import growth

    path = Path(journal.path)
    with contextlib.suppress(Exception):
        st = os.statvfs(path.parent)  # (a -wal larger than the room left: written back)
        if (log := growth(path)) is not None and log[0] > st.f_bavail * st.f_frsize:
            with journal._lock:
                journal._con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
