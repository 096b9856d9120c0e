"""One live runner per DBOS file: DBOS's launch resumes every ``PENDING`` workflow on the
file (each process is DBOS's executor ``local``), a live process's too, which then ran a
step's action a second time (attack17's G1). An exclusive lock on the file itself, held for
the runner's life, refuses a second launch before DBOS launches, by whatever name it is
reached (a symlink, a hard link: attack19's F4; a lock per name let each name's launch in);
the kernel drops it when the process dies (and any child it forked, which shares it), so a
relaunch after a crash is never refused. A runner closed while a saga still runs a step on one
of its threads keeps it until that thread stops (``runner.close``: attack20's N1)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ...errors import RollbackLessonsError


class FileInUse(RollbackLessonsError):
    """``DBOSRunner.start`` on a file another live runner holds (this process or another)."""


class FileUnusable(RollbackLessonsError):
    """``DBOSRunner.start`` on a file that cannot be opened (its folder missing, say): one
    line, before DBOS launches."""


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
    return fd


def _holder(fd: int) -> str:
    """The pid holding the ``flock`` on ``fd``'s file, as the kernel lists it (``unknown``
    where it lists none)."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as listed:
            for line in listed:
                # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF" ("->": a waiter)
                parts = line.split()
                if parts[1:2] == ["FLOCK"] and len(parts) > 5 and parts[5] == key:
                    return parts[4]
    except OSError:
        pass
    return "unknown"


def who(holder: str) -> tuple[str, str]:
    """Who holds the lock, truly, and what to do: the kernel lists the process that took it,
    and a child it forked (``os.fork``, multiprocessing's fork) shares it, holding it after
    that process died (attack20's N4: a dead pid was called "another live process")."""
    close = "close that runner first (a process that died holds nothing)"
    if holder == str(os.getpid()):
        return f"in this process (pid {holder}), or a process forked from it", close
    try:
        os.kill(int(holder), 0)
    except ProcessLookupError:
        return (
            f"in a process forked from pid {holder}, which has died",
            "the fork holds the lock until it exits: end it first",
        )
    except (ValueError, OSError):  # ("unknown", or alive but not ours to signal)
        pass
    return f"in another live process (pid {holder}, or a process forked from it)", close


def let_go(fd: int) -> None:
    """Release the lock: unlocked first, as a process forked while it was held shares its
    open file description and kept it past ``close`` (a relaunch then refused, blaming a
    runner already closed: attack21's D4), then its descriptor closed."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
