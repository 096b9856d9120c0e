"""Which processes hold a journal open for writing, kept in the journal itself, so that a
file found without its ``-wal`` can tell whether it is whole.

SQLite copies the ``-wal``'s writes back into the file from time to time (a checkpoint,
every 1000 pages) and removes the ``-wal`` as its last connection closes. The file alone (a
copy of it, or the file whose ``-wal`` was deleted) is the journal as of the last checkpoint:
a saga begun before it shows unfinished, though it may have committed since, and recover
would undo it (attack211 F1: a committed saga undone, exit 0). So each Journal that writes
leaves a mark (its process) with its first write, before any checkpoint can copy a write of
it, and takes it away as it closes: a file with no ``-wal`` beside it holding a mark is one
its process never closed (ended, or running on with it open under another name), its newest
writes in a ``-wal`` that is not here: refused. A journal closing takes away the marks of
processes that ended, and, its close the last connection's, every mark left. A non-journal
connection closing last (the sqlite3 shell) leaves marks in a whole file: refused, the line
names the statement that says it is whole."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sqlite3
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._held import held
from .._late_threads import end_left
from ..errors import JournalError
from . import left_open as leaving
from .files import _UNFINISHED, connect
from .forked import _HELD, _inode
from .holding import runs_on
from .left_open import awaiting_recover, left_open, left_stuck, stuck_keys, stuck_on, unstuck
from .left_open import cut_ending as cut_end
from .left_open import held_collected as collected
from .owner import me, process_alive
from .records import AWAITING
from .shell import for_shell
from .txn import transaction

PREFIX = "writer "
_ARE_MARKS = f"substr(key, 1, {len(PREFIX)}) = '{PREFIX}'"
_MARKS = f"SELECT key, value FROM meta WHERE {_ARE_MARKS}"


class Alone(JournalError):
    """A journal's file found without its ``-wal``, and not whole: refused, nothing run."""


def lone(path: str | os.PathLike[str]) -> bool:
    """No ``-wal`` beside the journal, or one with no frame (its 32-byte header at most: a
    reader's open made it, empty), looked at before a connection here makes one. (A -wal
    cut short of its frames reads as frames never written: that cannot be told, as
    ``walcheck`` says.)"""
    try:
        return os.stat(os.path.realpath(path) + "-wal").st_size <= 32
    except OSError:
        return True


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


SETTLE = 1.0
"""Seconds a file found alone that would be refused is looked at again: another process's
last close may be between writing the -wal back and clearing what it names (``_tidy``)."""


def check(con: sqlite3.Connection, path: Path, alone: bool) -> list[str]:
    """``_check``, a refusal of a file found alone looked at again for ``SETTLE`` seconds
    (attack258 F1: the journal itself, opened as another process closed it last, refused for
    a saga awaiting recover that close was about to say whole, 4 opens in 10)."""
    until = time.monotonic() + SETTLE
    while True:
        try:
            return _check(con, path, alone)
        except Alone:
            if time.monotonic() >= until:
                raise
            time.sleep(0.05)


def _check(con: sqlite3.Connection, path: Path, alone: bool) -> list[str]:
    """Refuse a file found ``alone`` (no ``-wal``) that holds a mark: its process never
    closed it (ended, or running on with it open by another name: a copy taken while it ran,
    attack213 F4), unless a ``-wal`` came meanwhile (a writer that began as this one opened);
    otherwise the keys of the marks of processes that ended (their writes are all here: the
    file with its ``-wal``)."""
    marks = [(key, _who(value)) for key, value in con.execute(_MARKS).fetchall()]
    held = _held_unfinished(con) if alone and not marks else None
    if held is not None and held[1] == AWAITING and lone(path):
        raise Alone(  # (attack245: a recover finished it in the -wal, rerun on the copy)
            f"cannot open the journal {path}: its saga {held[0]!r} awaits recover, and the "
            "journal was open when this file was left without its -wal (a copy of the file "
            "alone, or its -wal deleted): a recover may have ended that saga since, and "
            "would be run again here: use the journal itself, with its -wal, or a .backup "
            "taken once no process has it open; if it is whole (a program other than a "
            f"Journal closed it last), say so: sqlite3 {for_shell(str(path), sqlite3=True)} "
            f"\"UPDATE sagas SET writer = NULL WHERE writer = '{AWAITING}'\""
        )
    if held is not None and lone(path):
        raise Alone(  # (a copy read across a checkpoint: an old page of meta, a newer one of
            f"cannot open the journal {path}: its saga {held[0]!r} is shown unfinished, held by "
            "a journal whose mark is not in the file: this file is torn (a copy taken as "  # its
            "SQLite wrote pages back into it) or a part of it is missing; a saga shown "  # sagas,
            "unfinished may have ended, and recover would undo it: use the journal itself, "
            "with its -wal, or a copy taken with sqlite3's .backup"  # attack244 F1)
        )
    if alone and marks and lone(path):
        who = marks[0][1]
        by = "a process" if who is None else f"process {who[0]} on {who[1]}"
        name = for_shell(str(path), sqlite3=True)
        if who is not None and _ended(who) is False:  # (a -wal a checkpoint(TRUNCATE)
            raise Alone(  # emptied, or one deleted and made again: not told apart, 241 F2)
                f"cannot open the journal {path}: process {who[0]} on {who[1]}, which runs "
                "on, writes it (a saga of it may be running), and no -wal with its writes is "
                "beside it: if this "
                "is a copy of the file alone or a backup taken while it ran, its newest writes "
                "are missing (a saga shown unfinished may have ended, and recover would undo "
                "it): use the journal itself; if it is the journal itself, its -wal was emptied "
                "(a checkpoint(TRUNCATE)) or deleted: open it again once that process has "
                "written again or closed it. Never take away the mark of a running process"
            )
        raise Alone(  # (attack229 F2: "did not close it" of one that could not write)
            f"cannot open the journal {path}: it was last written by {by}, which did not "
            "close it, or could not take its mark away as it did, and its -wal is not beside "
            "it: if this is a copy of the file alone, a backup taken while it ran, or its -wal "
            "was deleted, its newest writes are missing, a saga shown unfinished may have "
            "ended, and recover would undo it. Use it with its -wal; if it is whole (another "
            "program, the sqlite3 shell, closed it last and wrote the -wal back into it, or "
            "that process ran out of disk as it ended), say so: "
            f"sqlite3 {name} \"DELETE FROM meta WHERE key LIKE '{PREFIX}%'"
            + ("; UPDATE sagas SET writer = NULL" if _named(con) else "")  # (schema 8: 248 F2)
            + '"'
        )
    return [key for key, who in marks if _ended(who) is True]


def _named(con: sqlite3.Connection) -> bool:
    """Does the file's schema name each unfinished saga's journal (``sagas.writer``)?"""
    return any(row[1] == "writer" for row in con.execute("PRAGMA table_info(sagas)"))


def _held_unfinished(con: sqlite3.Connection) -> tuple[str, str] | None:
    """A saga shown unfinished that a journal holds (its mark's key in ``sagas.writer``):
    in a whole file, its mark is there too (set with the saga, taken away after it ends or
    is let go). None where the schema has no such column yet (written before version 8)."""
    try:
        row = con.execute(
            "SELECT id, writer FROM sagas WHERE writer IS NOT NULL AND id IN"
            f" ({_UNFINISHED}) ORDER BY writer = '{AWAITING}' LIMIT 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else (str(row[0]), str(row[1]))


def _out(keys: list[str], then: str | None = AWAITING) -> list[tuple[str, tuple[Any, ...]]]:
    """Marks taken away, the sagas they held unfinished let go first (``sagas.writer``:
    ``AWAITING`` recover until the last close, ``then=None``): a cut between leaves the
    mark, which refuses the file alone (the safe side)."""
    if not keys:
        return []
    among = f"({', '.join('?' * len(keys))})"
    let_go = f"UPDATE sagas SET writer = CASE WHEN id IN ({_UNFINISHED}) THEN ? END WHERE"
    return [(f"{let_go} writer IN {among}", (then, *keys)),
            (f"DELETE FROM meta WHERE key IN {among}", tuple(keys))]  # fmt: skip


_WHOLE = "UPDATE sagas SET writer = NULL WHERE writer = ?"
"""The sagas awaiting recover, as no process has the file open: whole (``AWAITING``)."""


def claiming(mark: Mark, con: sqlite3.Connection, ids: list[str]) -> None:
    """In a claim's transaction: the sagas claimed are open (its mark's until recover ends
    them), and the marks of processes that ended go (attack244 F3: a dead owner's, whose saga
    this recover takes, stayed until a close: every backup of a service refused)."""
    mark.open.update(ids)
    mark.open_ever = mark.open_ever or bool(ids)
    mark.leaving = not mark.open  # (nothing claimed, nothing open: no mark, attack244 F4)
    mark.threads.update(dict.fromkeys(ids, threading.current_thread()))
    ended = [key for key, value in con.execute(_MARKS) if _ended(_who(value)) is True]
    for sql, params in _out(ended):
        con.execute(sql, params)


class Mark:
    """A journal's mark: written with its first write (a journal only read leaves none, and
    opening it waits for no writer's lock), taken away as it closes (``leave``: ``close``,
    or the journal collected unclosed, or the process's end). The marks of processes that
    ended (``gone``: read with their -wal there) go with its first write."""

    def __init__(self, journal: object, con: sqlite3.Connection, gone: list[str],
                 path: Path, lock: Any) -> None:  # fmt: skip
        pid, host, started, space = me()
        self.key, self.pid, self.lock = PREFIX + uuid.uuid4().hex, pid, lock
        self.path = Path(os.path.realpath(path))  # (its tidy's, whatever the folder then)
        self.value = json.dumps({"pid": pid, "host": host, "started": started, "space": space})
        self.gone, self.done, self.leaving = gone, False, False
        self.freeing: list[str] = []  # (this process's marks stuck in the file: ``stuck``)
        self.open: set[str] = set()  # (the sagas it began or claimed, not yet ended)
        self.open_ever = False  # (one ever: its close lets go of any still named)
        self.threads: dict[str, threading.Thread] = {}  # (each open saga's last writer)
        self.kept: list[int] = _UNCLOSED  # (signals its close holds: ``closing``'s)
        self.leave = weakref.finalize(journal, _end, con, self)
        if not _EXIT["hooked"]:  # (registered after weakref's own: run before the finalizers)
            atexit.register(_EXIT.__setitem__, "now", True)
            _EXIT["hooked"] = True
        _LIVE[:] = [*(leave for leave in _LIVE if leave.alive), self.leave]
        _at_pool_exit()
        self.held = f"open {id(journal)}"  # (a fork of this process holds its connection:
        with contextlib.suppress(OSError):  # a file made as it opened, held from here)
            _HELD.setdefault(self.held, (_inode(self.path), pid))

    def statements(self) -> list[tuple[str, tuple[Any, ...]]]:
        """What a write adds until one has committed (``done``); a write after which no saga
        of this journal is open (``leaving``) takes the mark away, and the next puts it back
        (``done`` unset before its COMMIT: a Ctrl-C as that returns leaves it so)."""
        self.freeing = stuck_keys(self.path)  # (taken away with it: ``committed``)
        gone = _out([*self.gone, *self.freeing])
        if self.leaving:
            self.done = False
            return [*gone, ("DELETE FROM meta WHERE key = ?", (self.key,))]
        if self.done:
            return _out(self.freeing)
        return [
            *gone,
            ("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (self.key, self.value)),
        ]

    def committed(self) -> None:
        """Its write committed: marked (unless it took the mark away), stuck ones gone."""
        self.done = not self.leaving
        if self.freeing:
            freeing, self.freeing = self.freeing, []
            unstuck(self.path, freeing)


def _end(con: sqlite3.Connection, mark: Mark) -> None:
    """A journal's end (never in a fork), under its lock: its mark and those of processes
    that ended taken away, its connection closed, then, if that close was the last, every
    mark left (``_tidy``): one of a writer that died as this one closed, or of another PID
    namespace (attack213 F1, F5; attack214 F4: its mark stayed in a whole file, refused). As
    the process ends, its connection is left to that end, the -wal with it: a thread may
    write on it yet (attack215 F3: closed under a daemon thread, SIGSEGV)."""
    cut: list[int] = []  # (signals held as an unclosed journal's end waited: attack237)
    try:  # (collected unclosed mid-program: signals held, a Ctrl-C passed on, attack309 F8)
        with collected(mark.kept is _UNCLOSED and not _EXIT["now"], cut):
            _ending(con, mark, cut)
    except (KeyboardInterrupt, SystemExit) as exc:  # (in a finalizer: Python prints it only,
        cut_end(con, mark.path, exc, _EXIT["now"] or sys.is_finalizing())  # (-wal: in)
    finally:
        if cut:  # (the ends after it at the process's end wait no more; a SIGTERM left to
            exit_left(cut=True)  # its default ends the process as it would have, said)
            leaving.wait_cut(con, mark.key, mark.path, cut, _EXIT["now"])
            if signal.SIGTERM in cut and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.raise_signal(signal.SIGTERM)  # (a Ctrl-C raised in a finalizer: dropped)


def _ending(con: sqlite3.Connection, mark: Mark, cut: list[int]) -> None:
    exiting = _EXIT["now"]
    hurry = _hurried(con) or (exiting and not exit_left())  # (after a signal at the end)
    if os.getpid() != mark.pid or not mark.lock.acquire(timeout=1.0 if exiting else LEAVE_WAIT):
        return  # (a thread holds it as the process ends: its mark goes with the next close)
    left: list[str] = []  # (the other marks in the file as it closes: ``_tidy``'s to take)
    awaiting = False  # (sagas no journal holds: ``AWAITING`` recover till the last close)
    stuck: list[str] = []  # (marks it could not take away for want of room)
    try:
        wait = getattr(con, "wait", None)
        with contextlib.suppress(sqlite3.Error):
            if con.in_transaction:  # (one a Ctrl-C left open: rolled back as its close would)
                con.execute("ROLLBACK")
            marks = [(key, _who(value)) for key, value in con.execute(_MARKS)]
            freeing = stuck_keys(mark.path)  # (this process's, stuck: attack267 F1)
            keys = [k for k, who in marks if k in (mark.key, *freeing) or _ended(who) is True]
            if exiting and runs_on(mark):  # (a thread writes its saga on: attack250 F1)
                keys = [key for key in keys if key != mark.key]
            elif mark.open_ever and mark.key not in keys:  # (its sagas let go, its mark gone
                keys.append(mark.key)  # with the last's end: an unfinished one named still)
            left = [key for key, _ in marks if key not in keys and key != mark.key]
            if keys:  # (a moment's lock waited for whatever its timeout: attack213 F1 (d),
                unclosed = mark.kept is _UNCLOSED  # (but once, interrupted; collected unclosed
                longest = LEAVE_WAIT if unclosed else max(wait or 0.0, LEAVE_WAIT)  # or at
                if exiting:  # its end: 5 s at most, a signal ending it, attack235 F1, F2; at
                    longest = exit_left()  # the process's end, 5 s for all: attack286 F5)
                con.wait = 0.0 if hurry else longest  # type: ignore[attr-defined]
                con.stopping = cut if unclosed else mark.kept  # type: ignore[attr-defined]
                with (
                    held(cut) if unclosed else contextlib.nullcontext(),
                    stuck_on(stuck, mark.path),
                ):
                    for sql, params in _out(keys):  # (its sagas let go first: cut between,
                        con.execute(sql, params)  # the mark left refuses the file alone)
                unstuck(mark.path, [key for key in keys if key in freeing])
            awaiting = awaiting_recover(con)  # (sagas no journal holds: the last close clears them)
        if stuck:  # (left open, its close never the last, attack265 F1)
            return left_stuck(mark.path, mark.key, con, mark.held)
        if exiting:
            if awaiting or runs_on(mark):
                left_open(con)
            return
        con.close()
        _HELD.pop(mark.held, None)
    finally:
        mark.lock.release()
    last = not os.path.exists(f"{mark.path}-wal")  # (SQLite removes it at the last
    if (left or awaiting) and last:  # close only: an empty one, a checkpoint's
        unclosed = mark.kept is _UNCLOSED
        with held(cut) if unclosed else contextlib.nullcontext():  # TRUNCATE, is held
            wait = 0.0 if hurry or cut else LEAVE_WAIT  # open by another: attack241 F1)
            _tidy(mark.path, wait, cut if unclosed else mark.kept, left)


def _hurried(con: sqlite3.Connection) -> bool:
    """A close that waits for no lock (one try, its marks left if it cannot: the safe side):
    an interrupt on its way (a Ctrl-C, a ``sys.exit``), or its last wait for a lock ran out
    (attack229 F1: recover's close waited ``--wait`` again, max 5 s, signals held)."""
    exc = sys.exc_info()[1]  # (a task's cancel, a generator's close: no interrupt, 232 F2)
    return getattr(con, "gave_up", False) or isinstance(exc, KeyboardInterrupt | SystemExit)


_UNCLOSED: list[int] = []  # (a mark's ``kept`` until ``closing`` gives it its own)
_EXIT: dict[str, Any] = {"hooked": False, "now": False, "pool": None}
"""``now`` is set as the process ends, before the journals' finalizers run; ``pool``: the
process that hooked its multiprocessing exit (``_at_pool_exit``)."""
_LIVE: list[weakref.finalize[Any, Any]] = []
"""The ends (``Mark.leave``) of this process's journals that write."""


def _at_pool_exit() -> None:
    """A worker of a fork pool (``multiprocessing``, ``ProcessPoolExecutor``) ends with
    ``os._exit`` after multiprocessing's own exit function, never atexit's: its journals'
    marks are taken away there (attack217 F1: they stayed, and the file another program
    closed last, a ``.backup``'s sqlite3, and its copy, were refused though whole)."""
    util = sys.modules.get("multiprocessing.util")
    if util is None or _EXIT["pool"] == os.getpid():
        return
    _EXIT["pool"] = os.getpid()  # (a fork's registry starts empty: hooked again there)
    util.Finalize(None, _leave_all, exitpriority=0)


def _leave_all() -> None:
    """As the process ends: each journal's end, its marks taken away, its connection left."""
    _EXIT["now"] = True
    for leave in list(_LIVE):
        leave()


def exit_left(cut: bool = False) -> float:
    """Seconds left of the process's end's wait, one for all its journals and calls left
    running (``_late_threads.end_left``); ``cut``: a signal ended it (attack285 F1)."""
    return end_left(cut, LEAVE_WAIT)


LEAVE_WAIT = 5.0
"""Seconds a closing journal waits for a writer's lock to take marks away, whatever its own
``timeout``."""


def _tidy(path: Path, wait: float, kept: list[int], left: list[str]) -> None:
    """After the last connection closed: the marks ``left`` in the file as it closed (no
    process had it open then) go, but those of processes running now, in a write that finds
    no -wal frame of anyone else's; a
    writer that began meanwhile keeps its own. Left as they were if it cannot (a lock, a
    full disk): the file is then refused alone, never taken for whole."""
    with contextlib.suppress(sqlite3.Error, OSError):
        con = connect(path, wait)
        con.stopping = kept  # type: ignore[attr-defined]
        try:
            with transaction(con):
                running = {
                    key for key, value in con.execute(_MARKS) if _ended(_who(value)) is False
                }
                if lone(path):  # (a running process's mark never: the -wal deleted under it,
                    for sql, params in _out([k for k in left if k not in running], None):
                        con.execute(sql, params)  # 244 F2; one that died as this closed goes:
                    if not running:  # 248 F1; no process has it open: whole, attack245)
                        con.execute(_WHOLE, (AWAITING,))
        finally:
            con.close()


def closing(mark: object, close: Callable[[], None]) -> None:
    """A journal's ``_end`` (its ``close`` in a fork; read-only, ``mark`` is the journal: it
    lets its file go, ``_HELD``), a Ctrl-C (or SIGTERM) held meanwhile and raised after: cut
    between them, a mark stayed in a file SQLite then closed whole."""
    kept: list[int] = []
    try:
        with held(kept):
            if isinstance(mark, Mark) and mark.pid == os.getpid() and mark.leave.alive:
                mark.kept = kept  # (a signal ends its wait for a lock: attack229 F1)
                mark.leave()
            else:
                close()
                if not isinstance(mark, Mark) and os.getpid() == getattr(mark, "_pid", None):
                    _HELD.pop(f"open {id(mark)}", None)
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
    return next(  # (one another process's close removed meanwhile is none: attack216 F2)
        (p for p in sides if p.exists() and not os.access(p, os.W_OK) and p.exists()), None
    )
