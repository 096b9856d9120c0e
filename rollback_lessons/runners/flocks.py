"""``flock`` helpers the runners share (DBOS's file, Temporal's ``db_file``): who holds a
lock, and letting one go. An ``flock`` is on the file itself, so every name of it (a symlink,
a hard link) meets the same lock, and SQLite's own locks (``fcntl``) never meet it; the
kernel drops it once every descriptor sharing it is closed (a process that died holds
nothing, unless a child it started shares the descriptor)."""

from __future__ import annotations

import fcntl
import os


def holder(fd: int) -> str:
    """The pid holding the ``flock`` on ``fd``'s file, as the kernel lists it (the process
    that took it; ``unknown`` where it lists none)."""
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


def alive(pid: str) -> bool:
    """Is process ``pid`` alive (one we may not signal is; ``unknown`` is taken as alive)?"""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OSError):
        pass
    return True


def let_go(fd: int) -> None:
    """Release the lock: unlocked first, as a process forked while it was held shares its
    open file description and kept it past ``close`` (a relaunch then refused, blaming a
    runner already closed: attack21's D4), then its descriptor closed."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
