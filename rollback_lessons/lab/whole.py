"""A file written whole or not at all: a temp file of this writer's own beside it, synced,
then renamed over it. A Ctrl-C half way through (a lesson copied, attack41's lab_ctrl_c_copy)
or two writers at once (two kernels recording progress, attack41 F10) never leave a cut file."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import time
from pathlib import Path

STALE = 600.0  # seconds: a temp file this old is a killed writer's, never a live one's


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (the umask's mode, as a plain write would make it)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        _sweep(path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sweep(path: Path) -> None:
    """The temp files beside ``path`` that writers killed mid-write left (SIGKILL runs no
    cleanup: fixlab's note), removed once they are ``STALE``: hidden, but never kept."""
    for old in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - os.stat(old).st_mtime > STALE:
                os.unlink(old)
