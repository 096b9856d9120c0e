"""A journal's transactions: BEGIN IMMEDIATE ... COMMIT whatever lands when, and a
transaction a Ctrl-C left open healed (rolled back)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


class Written:
    """Whether a transaction's COMMIT took effect (``transaction``)."""

    committed = False


def heal(con: sqlite3.Connection) -> None:
    """Roll back a transaction left open: a Ctrl-C as ``transaction``'s ``with`` exited
    (contextlib's ``__exit__`` entry, its generator never resumed) leaves it holding SQLite's
    write lock for the process's life, and its own connection reading writes nobody
    committed (attack55 F2: other processes locked out, the next saga refused)."""
    if con.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")


class healed:
    """``with healed(con), transaction(con):``: ``heal`` before it, and after, one frame out
    of the transaction's own exit (a Ctrl-C at its entry is raised through this one)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        heal(con)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        heal(self.con)


@contextlib.contextmanager
def transaction(con: sqlite3.Connection, written: Written | None = None) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, whatever lands when: a Ctrl-C is raised as a call
    returns, so after BEGIN took the write lock or after COMMIT wrote. An open transaction
    is rolled back (never left holding the lock); one that committed is said so
    (``written``), so that its caller does not write it again. A COMMIT that SQLite itself
    refused (disk full, an I/O error: it rolls back by itself) did not commit."""
    at_commit, mark = False, getattr(con, "mark", None)  # (its journal's: ``writers.Mark``)
    try:
        begin(con)
        yield
        for sql, params in mark.statements() if mark is not None else ():  # (with its first
            con.execute(sql, params)  # write, whichever: a claim too, attack215 F2)
        at_commit = True
        con.execute("COMMIT")
        if written is not None:
            written.committed = True
        if mark is not None:
            mark.committed()  # (a write that took it away: the next marks again)
        if getattr(con, "gave_up", False):  # (a wait that ran out before: its close waits
            con.gave_up = False  # type: ignore[attr-defined]  # again, attack232 F1)
    except BaseException as exc:
        if type(exc) is GeneratorExit:  # (closed by the gc: a Ctrl-C cut the ``with``'s exit,
            raise  # ``heal`` rolled it back, its connection may be closed since)
        if con.in_transaction:
            con.execute("ROLLBACK")
        elif at_commit and written is not None and not isinstance(exc, sqlite3.Error):
            written.committed = True  # (the COMMIT returned; a Ctrl-C came as it did)
        raise
    finally:
        if mark is not None:  # (a claim's, of nothing: this transaction's only)
            mark.leaving = False


def begin(con: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE: a journal's connection waits for the write lock in turns."""
    con.execute("BEGIN IMMEDIATE")
