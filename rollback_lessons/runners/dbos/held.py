"""One live runner per DBOS file: DBOS's launch resumes every ``PENDING`` workflow on the
file (each process is DBOS's executor ``local``), a live process's too, which then ran a
step's action a second time (attack17's G1). An exclusive lock beside the file, held for the
runner's life, refuses a second launch before DBOS launches; the kernel drops it when the
process dies, so a relaunch after a crash is never refused."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ...errors import RollbackLessonsError


class FileInUse(RollbackLessonsError):
    """``DBOSRunner.start`` on a file another live runner holds (this process or another)."""


def lock_path(database: Path) -> Path:
    """The lock file beside ``database`` (``dbos.sqlite.lock``)."""
    return database.with_name(database.name + ".lock")


def hold(database: Path) -> int:
    """Take the lock on ``database`` for this runner (its descriptor: ``let_go`` it), or
    refuse in one line, naming the process holding it."""
    where = lock_path(database)
    fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FileInUse(
            f"DBOS runs on {database} in another live process (pid {holder}, lock {where}): "
            "a second launch would resume its running sagas and run their steps again; "
            "close that runner first (a process that died holds nothing)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def let_go(fd: int) -> None:
    """Release the lock (closing its descriptor drops it)."""
    os.close(fd)
