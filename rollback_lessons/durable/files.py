"""The journal's file: its schema and versions, and how it is found, checked and made.

Everything here happens before a Journal trusts a file: a path is passed to SQLite escaped
(any character names that file), a file that is not a whole journal of a version this code
reads is refused in one line, and a new journal is made beside its path and linked into
place only once complete (a process killed while making it leaves no half-made journal).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import RollbackLessonsError, TakenOver

APP = "rollback-lessons"
SCHEMA_VERSION = 4
FINISHED = ("committed", "rolled_back", "rollback_incomplete", "halted")
_IDS = "SELECT id FROM sagas WHERE status IN ('running', 'rolling_back')"
_UNFINISHED = "SELECT id FROM sagas WHERE status IN ('running', 'rolling_back')"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sagas (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    owner_host TEXT NOT NULL,
    error TEXT,
    started REAL NOT NULL,
    ended REAL,
    owner_started REAL,
    pivot TEXT,
    pivot_state TEXT,
    claim_pid INTEGER,
    claim_host TEXT,
    claim_started REAL,
    claimed_at REAL,
    claim_gen INTEGER NOT NULL DEFAULT 0,
    policy TEXT,
    undo_order TEXT NOT NULL DEFAULT 'reverse'
);
CREATE INDEX IF NOT EXISTS sagas_status ON sagas (status);
CREATE TABLE IF NOT EXISTS events (
    saga_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (saga_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS undos (
    saga_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    step TEXT NOT NULL,
    compensation TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    semantic INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (saga_id, position)
) WITHOUT ROWID;
"""


# Older journals gain the columns of the versions after theirs when opened for writing.
_MIGRATE_1_TO_2 = [
    "ALTER TABLE sagas ADD COLUMN owner_started REAL",  # tells a reused pid from its owner
    "ALTER TABLE sagas ADD COLUMN pivot TEXT",  # the irreversible step, once it started
    "ALTER TABLE sagas ADD COLUMN pivot_state TEXT",  # started | done
    "ALTER TABLE sagas ADD COLUMN claim_pid INTEGER",  # who is recovering it
    "ALTER TABLE sagas ADD COLUMN claim_host TEXT",
    "ALTER TABLE sagas ADD COLUMN claim_started REAL",
    "ALTER TABLE sagas ADD COLUMN claimed_at REAL",
]
_MIGRATE_2_TO_3 = [
    # the fencing token: bumped by every claim; a claimant's writes check it is still theirs
    "ALTER TABLE sagas ADD COLUMN claim_gen INTEGER NOT NULL DEFAULT 0",
    # a correction (semantic undo): recover keeps the run rollback_incomplete, as in process
    "ALTER TABLE undos ADD COLUMN semantic INTEGER NOT NULL DEFAULT 0",
]
_MIGRATE_3_TO_4 = [
    # the run's undo policy (wire.PolicySpec as JSON) and undo order, which recover obeys;
    # a saga written before has none: recover says which it falls back to (continue)
    "ALTER TABLE sagas ADD COLUMN policy TEXT",
    "ALTER TABLE sagas ADD COLUMN undo_order TEXT NOT NULL DEFAULT 'reverse'",
]
_MIGRATIONS = {1: _MIGRATE_1_TO_2, 2: _MIGRATE_2_TO_3, 3: _MIGRATE_3_TO_4}


class JournalError(RollbackLessonsError):
    """The file is not a journal this version can use; it was left untouched."""


class JournalTakenOver(JournalError, TakenOver):
    """Another process claimed this saga (``recover``, ``--force``): the process that held it
    (its owner or an earlier claimant) neither writes nor runs another undo."""


def _uri(path: Path, query: str) -> str:
    """A file URI for SQLite with every character of the path escaped (``#``, ``?``, ``%``,
    spaces, any Unicode): the path names exactly this file, never another."""
    return f"file:{quote(os.fspath(path.absolute()), safe='/')}?{query}"


def _open_read_only(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """Open for reading only. In a folder nobody may write, SQLite cannot make the WAL's
    shared-memory file: without a WAL the file is read as immutable (nothing can change it
    there); with one, it is refused, as the sagas the WAL holds would be left out."""
    con = sqlite3.connect(
        _uri(path, "mode=ro"), uri=True, isolation_level=None, check_same_thread=False,
        timeout=timeout,
    )  # fmt: skip
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        con.close()
        if os.access(path.parent, os.W_OK):
            raise
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise JournalError(
                f"{path} has a write-ahead log ({wal.name}) that SQLite can read only with "
                f"{path.name}-shm beside it, and its folder is read-only: copy the journal "
                "with its -wal file to a writable folder (or make this one writable)"
            ) from None
        con = sqlite3.connect(
            _uri(path, "immutable=1"), uri=True, isolation_level=None, check_same_thread=False
        )
    return con


def _schema_version(path: Path, meta: Mapping[str, Any]) -> int:
    """The journal's schema version, or one line saying why it has none that can be used."""
    raw = meta.get("schema_version")
    try:
        version = int(raw) if isinstance(raw, str | int) and str(raw).strip().isdigit() else 0
    except ValueError:
        version = 0
    if version < 1:
        raise JournalError(
            f"{path} has no valid journal schema_version ({raw!r}); it was not changed"
        )
    return version


def _inspect(path: Path, create: bool) -> int | None:
    """The schema version of an existing journal, None for a new one; never writes."""
    if path.is_dir():
        raise JournalError(f"{path} is a directory, not a journal")
    if not path.exists() or path.stat().st_size == 0:
        if not create:
            what = "no journal at" if not path.exists() else "an empty file, not a journal:"
            raise JournalError(f"{what} {path}")
        return None
    if not os.access(path, os.R_OK):
        raise JournalError(f"cannot read {path}: permission denied")
    try:
        con = _open_read_only(path)
    except sqlite3.OperationalError as exc:
        raise JournalError(f"cannot open {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a readable journal (corrupt?): {exc}") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables and create:
            return None  # another process is creating it right now, or it is empty: ours
        if "meta" not in tables:
            raise JournalError(f"{path} is an SQLite file but not a {APP} journal")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("app") != APP:
            damage = [str(r[0]).splitlines()[-1] for r in con.execute("PRAGMA quick_check")]
            if damage != ["ok"]:
                raise JournalError(f"{path} is damaged ({damage[0][:200]}); it was not changed")
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a readable journal (corrupt?): {exc}") from None
    finally:
        con.close()
    if meta.get("app") != APP:
        raise JournalError(f"{path} is not a {APP} journal (app={meta.get('app')!r})")
    version = _schema_version(path, meta)
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path} uses journal schema {version}; this version of {APP} understands up to "
            f"{SCHEMA_VERSION}. Upgrade rollback-lessons to read it."
        )
    return version


def _schema_statements() -> list[tuple[str, tuple[Any, ...]]]:
    return [
        *((s, ()) for s in _SCHEMA.split(";") if s.strip()),
        ("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP,)),
        ("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)),
    ]


def _create_whole(path: Path) -> None:
    """Make a new journal beside ``path`` and link it into place only once its schema is
    written: a process killed while creating it leaves no half-made journal that ``recover``
    would refuse (only a hidden ``.creating`` file). If another process linked its own
    first, theirs is used."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.creating")
    try:
        con = sqlite3.connect(_uri(tmp, "mode=rwc"), uri=True, isolation_level=None)
        try:  # written into the file itself (a rollback journal), then switched to WAL
            con.execute("BEGIN IMMEDIATE")
            for sql, params in _schema_statements():
                con.execute(sql, params)
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
        with contextlib.suppress(FileExistsError):  # another process linked its own first
            os.link(tmp, path)
    except (sqlite3.Error, OSError) as exc:  # a full disk, a folder gone: one line
        raise JournalError(f"cannot create the journal {path}: {exc}") from None
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + x) for x in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


SAGA_STATUSES = (
    "running", "rolling_back", "committed", "rolled_back", "rollback_incomplete", "halted",
    "cancelled",
)  # fmt: skip
PIVOT_STATES = ("started", "done", "refused")
UNDO_STATES = ("pending", "intent", "done", "dead", "leaked", "not_run")
_VALUE_CHECKS = (
    (
        "a saga's status",
        "SELECT id, status FROM sagas WHERE typeof(status) != 'text'"
        f" OR status NOT IN ({', '.join(map(repr, SAGA_STATUSES))}) LIMIT 1",
    ),
    (
        "a saga's pivot state",
        "SELECT id, pivot_state FROM sagas WHERE pivot_state IS NOT NULL"
        " AND (typeof(pivot_state) != 'text'"
        f" OR pivot_state NOT IN ({', '.join(map(repr, PIVOT_STATES))})) LIMIT 1",
    ),
    (
        "an undo's state",
        "SELECT saga_id || ' #' || position, state FROM undos WHERE typeof(state) != 'text'"
        f" OR state NOT IN ({', '.join(map(repr, UNDO_STATES))}) LIMIT 1",
    ),
    (
        "an undo's semantic flag",
        "SELECT saga_id || ' #' || position, semantic FROM undos"
        " WHERE semantic IS NOT NULL AND semantic NOT IN (0, 1) LIMIT 1",
    ),
)


def _bad_value(con: sqlite3.Connection) -> str | None:
    """The first value outside what the journal ever writes (a byte changed on disk, which
    SQLite's checks pass: there are no checksums of the values), or None."""
    for what, sql in _VALUE_CHECKS:
        row = con.execute(sql).fetchone()
        if row is not None:
            return f"{what} is {row[1]!r} (in {row[0]!r}), which the journal never writes"
    return None
