"""A full disk, told as one: SQLite says "disk I/O error" when it cannot make a journal's
``-shm`` beside it, nothing of room."""

from __future__ import annotations

import os
from pathlib import Path

ROOM = 64 * 1024  # below this much free space beside a journal, SQLite's -shm (32 KB) and
# the WAL's first pages may not fit: an error opening or writing it is told as no room


def no_room(path: Path, said: str = "") -> str:
    """Why SQLite failed on ``path`` if the cause is a full disk (its "disk I/O error" when
    it cannot make ``-shm`` says nothing of room): a clause to add to the error, else "".
    When SQLite ``said`` the disk is full, so it is, whatever is free by now (closing the
    journal removed its ``-wal``, attack41 F4)."""
    try:
        st = os.statvfs(path.parent)
    except (OSError, AttributeError, ValueError):  # (no statvfs here: nothing to add)
        return ""
    free = st.f_bavail * st.f_frsize
    if free >= ROOM and "disk is full" not in said:
        return ""
    return (
        f"; no room on its disk ({free} bytes free): SQLite makes {path.name}-wal and "
        f"{path.name}-shm beside it; free some space and run it again"
    )


def unopened(path: Path, said: str) -> str:
    """What to add to SQLite's error ``said`` opening ``path``: no room (named once, with the
    files it makes beside it), or those files, and a guess if it spoke of the disk."""
    guess = "; a full disk?" if "disk" in said else ""
    return no_room(path, said) or (
        f"{guess} (SQLite writes {path.name}-wal and {path.name}-shm beside it)"
    )
