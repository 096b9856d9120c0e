"""A journal's connection left open for good, its -wal beside the file as after a crash:
when closing it, the last, would write the -wal back into a file that cannot say it is
whole (``writers._ending``)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

from .forked import _HELD
from .records import AWAITING
from .room import no_room

_STUCK: dict[tuple[int, str], dict[str, tuple[sqlite3.Connection, str]]] = {}
"""By (process, file): the marks of journals whose close could not take them away, each with
its connection left open (and its ``_HELD`` key); the next write or close of a journal of
that file in the process takes them away and closes it (attack267 F1: a service whose close
met a full disk had every ``.backup`` refused for as long as it lived, room back or not)."""


def left_stuck(path: Path, key: str, con: sqlite3.Connection, held: str) -> None:
    """``key``'s mark, in ``path``, could not be taken away: ``con`` is left open."""
    left_open(con)
    _STUCK.setdefault((os.getpid(), str(path)), {})[key] = (con, held)


def stuck_keys(path: Path) -> list[str]:
    """The marks this process could not take away from ``path``."""
    return list(_STUCK.get((os.getpid(), str(path)), ()))


def unstuck(path: Path, keys: list[str]) -> None:
    """``keys`` taken away from ``path`` (a write committed it): their connections closed."""
    left = _STUCK.get((os.getpid(), str(path)), {})
    for key in keys:
        con, held = left.pop(key, (None, ""))
        if con is not None:
            _HELD.pop(held, None)
            with contextlib.suppress(Exception):
                con.close()


@contextlib.contextmanager
def stuck_on(stuck: list[str], path: Path) -> Iterator[None]:
    """Marks that could not be taken away for want of room (a full disk, ``ulimit -f``):
    said in ``stuck``. Closed, this connection, the last, wrote the -wal back into a file
    naming them, the dead owner's too, then could not tidy: a whole file refused for good
    (attack265 F1: a recover run on a full disk after a crash). Left open instead, the -wal
    stays beside it, as after a crash, until the process ends."""
    try:
        yield
    except sqlite3.Error as exc:
        if "full" in str(exc) or "I/O" in str(exc) or no_room(path, str(exc)):
            stuck.append(str(exc))
        raise


def left_open(con: sqlite3.Connection) -> None:
    """At the process's end, a journal's connection that a thread may write on yet, or whose
    file names sagas awaiting recover, is never closed (a reference kept for good): Python's
    teardown closing it, the last connection, wrote the -wal back into a file that named
    them, refused as a copy alone though whole (attack257 F1: two services ending at once,
    each saw the other's open; a reader closing after). Left open, the -wal stays beside the
    file, as a crash leaves it, and the file is read with it; the next last close tidies."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(con))


def awaiting_recover(con: sqlite3.Connection) -> bool:
    """Does the file show a saga no journal holds (``AWAITING``), for the last close to
    clear (``_tidy``)?"""
    with contextlib.suppress(sqlite3.Error):  # (a schema before version 8: none)
        sql = "SELECT 1 FROM sagas WHERE writer = ? LIMIT 1"
        return con.execute(sql, (AWAITING,)).fetchone() is not None
    return False


def cut_ending(con: sqlite3.Connection, path: Path, exc: BaseException, exiting: bool) -> None:
    """A Ctrl-C (an exit) as an unclosed journal's end ran in its finalizer: Python only
    prints it ("Exception ignored", a traceback), and its teardown then closed the connection,
    the last, writing the -wal back into a file whose mark stayed: refused as a copy alone,
    though whole (attack305). Left open instead, as a crash leaves it, said in one line; mid-
    program (a journal collected unclosed) the Ctrl-C is passed on to the main thread."""
    left_open(con)
    with contextlib.suppress(Exception):
        print(
            f"rollback-lessons: a {type(exc).__name__} as the journal {path} was ended "
            "unclosed (close it before the program ends): its end cut, its connection left "
            "as a crash leaves it, the -wal beside the file, read with it",
            file=sys.__stderr__ or sys.stderr,
        )
    if not exiting and issubclass(type(exc), KeyboardInterrupt):
        _passed_on()


def wait_cut(con: sqlite3.Connection, key: str, path: Path, cut: list[int], exiting: bool) -> None:
    """A signal held as an unclosed journal's end waited for another process's lock at the
    program's end (``exiting``), which cut that wait: said in one line (attack310 F9: said
    nowhere, Python's own line held back too), with what the file keeps of this process (its
    mark, ``key``, as a crash leaves it: read so); mid-program a Ctrl-C is passed on instead."""
    import signal

    if not exiting or not cut:
        return
    what = "a Ctrl-C" if signal.SIGINT in cut else "a SIGTERM"
    kept = "nothing of this process is left in it"
    with contextlib.suppress(Exception):
        if con.execute("SELECT 1 FROM meta WHERE key = ?", (key,)).fetchone() is not None:
            kept = "this process's mark is left in it, as a crash leaves one (read so)"
    with contextlib.suppress(Exception):
        print(
            f"rollback-lessons: {what} as the journal {path} was ended unclosed at the "
            "program's end (close it before the program ends) cut its wait for another "
            f"process's lock: {kept}",
            file=sys.__stderr__ or sys.stderr,
        )


def _passed_on() -> None:
    """A Ctrl-C heard in a finalizer, raised in the main thread a moment later, from a
    thread: raised in the finalizer, Python would print it and drop it."""
    import signal
    import threading

    main = threading.main_thread().ident
    later = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT))
    later.daemon = True
    later.start()


@contextlib.contextmanager
def held_collected(collected: bool, cut: list[int]) -> Iterator[None]:
    """An unclosed journal's end as it is collected mid-program (``collected``): SIGINT and
    SIGTERM held throughout, a Ctrl-C then passed on to the main thread, as one its end held
    itself (``cut``) (attack309 F8: one after its connection closed left marks in a file
    without its -wal, refused, and the line said the -wal was there). Else as it is."""
    if not collected:
        yield
        return
    import signal

    from .._held import held

    noted: list[int] = []
    with held(noted):
        yield
    if signal.SIGINT in [*noted, *cut]:
        _passed_on()
