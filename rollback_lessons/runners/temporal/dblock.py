"""One dev server per ``db_file`` (attack46's F8): a second runner on a file a live server
of a runner used started a second server on it (two servers on one SQLite file, nothing
refused), or saw it stop on SQLite's "database is locked", blamed on another program's
database ("give a new file": a file without the saga's history). A runner that starts the
server takes an exclusive ``flock`` on the file, as the DBOS runner does on its own
(``runners.flocks``: the file itself, so every name of it meets the lock), and keeps it for
the server's life; a second runner is refused before any server starts, in one line naming
the holder and what to do.

The lock goes with the server, not with the runner: the server inherits it as it is spawned
(a file that exists), and the server's reaper (``runners.reaper``), which ends with it, is
given it once it answers, the runner's own descriptor closed. A server lost (killed) while
its runner lives lets the file go to the next start; a runner's process killed leaves it to
its server until the reaper stopped that, and a start meanwhile waits for it (``WAIT_DEAD``).
A file the server is to create (it refuses an empty one: "no such table: namespaces") is
locked once the server made it; until then the folder is locked, so that another start on
that name waits."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import reaper
from ..flocks import alive, holder, let_go
from .server import START_LIMIT, TemporalUnavailable, _server_processes, server_binary


class DbFileInUse(TemporalUnavailable):
    """``TemporalRunner.start`` on a ``db_file`` a live runner's dev server keeps its
    histories in (this process or another): refused before any server starts."""


WAIT_DEAD = reaper.GRACE + 5.0
"""Seconds a start waits for a lock whose taker has died: the server it started holds it
until its reaper has stopped it (SIGTERM, then SIGKILL after ``reaper.GRACE``)."""

SERVERS: dict[tuple[int, int], tuple[str, DbLock]] = {}
"""The address of each dev server a runner of this process started on a ``db_file``, by
the file's (device, inode): named to a second runner on the file."""


class DbLock:
    """The lock of one runner's ``db_file`` (nothing without one): ``take``n before the
    server starts, ``passed`` to it as it is spawned, handed to the server's reaper once it
    answers (``started``): held by the server from then on, not by the runner, so that a
    server lost (killed) while its runner lives lets the file go to the next start."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.fd: int | None = None
        self.folder: int | None = None
        self.key: tuple[int, int] | None = None

    @classmethod
    async def take(cls, db_file: str | os.PathLike[str] | None) -> DbLock:
        """The lock of ``db_file`` (its folder's while the file does not exist yet), or
        ``DbFileInUse``; waits while another start in the folder runs (``START_LIMIT``)."""
        lock = cls(None if db_file is None else Path(db_file))
        if lock.path is None:
            return lock
        try:
            with contextlib.suppress(OSError):  # (a folder one may not read: not locked;
                where = Path(os.path.realpath(lock.path)).parent  # a symlink's: its target's,
                lock.folder = os.open(where, os.O_RDONLY | os.O_DIRECTORY)  # attack212 F2)
            if lock.folder is not None:
                await _wait(lock.folder, START_LIMIT + 5, lock._busy_folder, lambda pid: True)
            await lock._file(WAIT_DEAD)
        except BaseException:
            lock.let_go()
            raise
        return lock

    async def _file(self, wait: float) -> None:
        """Lock the file, if it exists (else later: ``started``)."""
        assert self.path is not None
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # (none yet; or one it may not read: the server says why)
            return
        st = os.fstat(self.fd)
        self.key = (st.st_dev, st.st_ino)
        await _wait(self.fd, wait, self._in_use, self._going)
        if self.folder is not None:  # the file is ours: other starts in the folder go on
            os.close(self.folder)
            self.folder = None

    @contextlib.contextmanager
    def passed(self) -> Iterator[None]:
        """While the server is spawned, it inherits the file's lock (a file that exists):
        its own from then on, until it stops."""
        if self.fd is not None:
            os.set_inheritable(self.fd, True)
        try:
            yield
        finally:
            if self.fd is not None:
                os.set_inheritable(self.fd, False)

    async def started(self, address: str) -> None:
        """The server answers at ``address``: a file it made is locked now; the lock is
        given to the server's reaper, which ends with the server (and stops it if this
        process dies), and the runner's own descriptor closed (kept where no reaper can
        be: no pidfds); the server is named to a second runner on the file."""
        passed = self.fd is not None
        if self.path is not None and self.fd is None:
            await self._file(0.0)
        if self.key is not None:
            SERVERS[self.key] = (address, self)
        if self.folder is not None:
            os.close(self.folder)
            self.folder = None
        pid = _server_at(address) if self.fd is not None else None
        kept = pid is not None and reaper.guard(pid, lambda: _server_at(address) == pid, self.fd)
        if self.fd is not None and (kept or passed):
            fd, self.fd = self.fd, None
            os.close(fd)  # (not unlocked: the server's and its reaper's lock)

    def let_go(self) -> None:
        """Release what the runner holds (once its server has stopped; again: nothing)."""
        if self.key is not None:
            if SERVERS.get(self.key, (None, None))[1] is self:
                del SERVERS[self.key]
            self.key = None
        if self.fd is not None:
            fd, self.fd = self.fd, None
            let_go(fd)
        if self.folder is not None:
            folder, self.folder = self.folder, None
            os.close(folder)

    def _going(self, pid: str) -> bool:
        """Is the lock about to go: its taker died (its server is being stopped), or is this
        process with no runner of it on the file any more (a reaper about to exit)?"""
        if pid == str(os.getpid()):
            return self.key not in SERVERS
        return not alive(pid)

    def _busy_folder(self, pid: str) -> DbFileInUse:
        return DbFileInUse(
            f"another runner (pid {pid}) has been starting a dev server on a new db_file in "
            f"{self.path and self.path.parent} for over {START_LIMIT + 5:g} s: "
            f"{self.path} was not used, nothing was started; try again"
        )

    def _in_use(self, pid: str) -> DbFileInUse:
        """Who keeps the file, in one line: a runner of this process (its server's address
        named), of another live process, or the server of a process that died."""
        assert self.fd is not None and self.path is not None
        ours = SERVERS.get(self.key) if self.key and pid == str(os.getpid()) else None
        address = ours[0] if ours else None
        then = "nothing was started"
        if address is not None:
            return DbFileInUse(
                f"{self.path} (db_file) is in use by the dev server of a runner of this "
                f"process (pid {pid}), at {address}: a second server would share the file. "
                "Close that runner first, or reach that server: "
                f"TemporalRunner.start({address!r}) then handle_for; {then}"
            )
        if alive(pid):
            return DbFileInUse(
                f"{self.path} (db_file) is in use by a runner of process {pid} (its Temporal "
                "dev server, or a DBOS runner): a second server would share the file. Wait "
                "for that runner to close, or close it, or reach its server by its address "
                f"(TemporalRunner.start(address)) then handle_for; {then}"
            )
        return DbFileInUse(
            f"{self.path} (db_file) is still in use by the dev server a runner of process "
            f"{pid} started, though that process has died: its reaper stops it (Linux 5.3 "
            f"or newer), which took over {WAIT_DEAD:g} s; stop it, then start again; {then}"
        )


def _server_at(address: str) -> int | None:
    """The pid of this process's dev server listening at ``address`` (its ``--port``)."""
    port = address.rpartition(":")[2]
    for pid in _server_processes(server_binary()):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a == b"--port" and b == port.encode() for a, b in itertools.pairwise(args)):
            return pid
    return None


async def _wait(
    fd: int, seconds: float, refused: Callable[[str], DbFileInUse], going: Callable[[str], bool]
) -> None:
    """Take the ``flock`` on ``fd``: at once if free; if held, waited for up to ``seconds``
    while ``going(pid)`` (the holder's) says it goes soon, then ``refused(pid)`` raised."""
    until, unknown = time.monotonic() + seconds, 0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = holder(fd)
        # ("unknown": let go between the two, or no /proc/locks: asked again a few times)
        unknown = unknown + 1 if pid == "unknown" else 0
        if time.monotonic() >= until or not (0 < unknown < 5 or going(pid)):
            raise refused(pid)
        await asyncio.sleep(0.05)
