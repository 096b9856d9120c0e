"""A SQLite file opened in WAL mode by several connections at the same moment.

Switching a new file to WAL needs its exclusive lock, and SQLite answers "database is locked"
at once, without waiting its busy timeout, when another connection holds the file's write
lock then (one creating the same file's tables, in its first rollback-journal mode). Four
threads opening a new world together lost a saga's first step that way, about 1 in 500 runs
(ci47). So the switch is asked again until the timeout, and the tables are made in a
``BEGIN IMMEDIATE`` (which does wait), not statement by statement.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect_wal(
    path: str | Path, schema: str, *, synchronous: str = "FULL", timeout: float = 30.0
) -> sqlite3.Connection:
    """A connection in autocommit, the file in WAL mode and ``schema`` (statements split by
    ``;``, each ``IF NOT EXISTS``) made; ``sqlite3.OperationalError`` past ``timeout``."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
    con = sqlite3.connect(path, isolation_level=None, timeout=timeout)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.002)  # (SQLite tells no one when the lock goes)
        con.execute(f"PRAGMA synchronous={synchronous}")
        con.execute("BEGIN IMMEDIATE")
        for statement in schema.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("COMMIT")
    except BaseException:
        con.close()
        raise
    return con
