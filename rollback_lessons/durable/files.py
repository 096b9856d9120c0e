"""The journal's file: its schema and versions, and how it is found, checked and made.

Everything here happens before a Journal trusts a file: a path is passed to SQLite escaped
(any character names that file), a file that is not a whole journal of a version this code
reads is refused in one line, and a new journal is made beside its path and linked into
place only once complete (a process killed while making it leaves no half-made journal).
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
import sqlite3
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._checks import check_flag
from .._numbers import plain_number
from .._words import counted
from ..errors import JournalError, TakenOver
from .room import no_room
from .txn import Written, begin, heal, healed, transaction  # noqa: F401 (its names)
from .walcheck import wal_damage

APP = "rollback-lessons"
SCHEMA_VERSION = 8
FINISHED = ("committed", "rolled_back", "rollback_incomplete", "halted")
_IDS = _UNFINISHED = "SELECT id FROM sagas WHERE status IN ('running', 'rolling_back')"

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
    undo_order TEXT NOT NULL DEFAULT 'reverse', graph TEXT,  -- graph: a graph's dependencies
    owner_space TEXT, claim_space TEXT,  -- the PID namespace and boot their pids are from
    writer TEXT  -- the mark of the journal that holds it unfinished (``writers``)
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
    timeout REAL,
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
    # the run's undo policy (wire.PolicySpec as JSON) and undo order, which recover obeys
    "ALTER TABLE sagas ADD COLUMN policy TEXT",
    "ALTER TABLE sagas ADD COLUMN undo_order TEXT NOT NULL DEFAULT 'reverse'",
]
_MIGRATE_4_TO_5 = [
    # the step's own undo timeout (Step(undo_timeout=...)), which recover applies as the run did
    "ALTER TABLE undos ADD COLUMN timeout REAL",
]
_MIGRATE_5_TO_6 = ["ALTER TABLE sagas ADD COLUMN graph TEXT"]  # a graph's dependencies (JSON)
# where the owner's and the claimer's pids name them (owner.process_space); NULL: before
_MIGRATE_6_TO_7 = [f"ALTER TABLE sagas ADD COLUMN {who}_space TEXT" for who in ("owner", "claim")]
_MIGRATE_7_TO_8 = ["ALTER TABLE sagas ADD COLUMN writer TEXT"]  # (``writers``: a torn copy)
_MIGRATIONS = {1: _MIGRATE_1_TO_2, 2: _MIGRATE_2_TO_3, 3: _MIGRATE_3_TO_4, 4: _MIGRATE_4_TO_5,
               5: _MIGRATE_5_TO_6, 6: _MIGRATE_6_TO_7, 7: _MIGRATE_7_TO_8}  # fmt: skip
WRITING: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()  # (this process's writers)


class Waiting(sqlite3.Connection):
    """A journal's connection: SQLite waits for another process's lock in turns of
    ``TURN_MS`` (its busy timeout), each statement tried again up to the connection's whole
    ``wait`` (its ``timeout``), so a Ctrl-C is heard within a turn, not once the whole wait
    is over (attack55 L3: ``recover --wait 20`` ended 18 s after it), at no cost when no
    other process holds the lock (make bench: a busy timeout set per transaction cost 30%)."""

    wait = 0.0
    gave_up = False  # (its last wait for a lock ran out: its close tries once, attack229 F1)
    stopping: Sequence[int] = ()
    """Signals held meanwhile (``writers.closing``): one ends the wait (attack229 F1)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            if self.wait * 1000 <= TURN_MS:
                self.gave_up = True
                raise
        deadline = time.monotonic() + self.wait - TURN_MS / 1000  # (one turn waited)
        while True:  # (a statement refused for a lock did nothing: tried again as it was)
            try:
                done = super().execute(sql, parameters)
                self.gave_up = False
                return done
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                if time.monotonic() >= deadline or self.stopping:
                    self.gave_up = True
                    raise


TURN_MS = 100  # SQLite's busy wait is a C loop no Ctrl-C reaches: waited in turns this long


def connect(path: Path, timeout: float) -> sqlite3.Connection:
    """The journal's own connection for writing: this file, never a URI's other reading
    (``_uri``), waiting up to ``timeout`` for another process's lock, in turns (``Waiting``)."""
    con = sqlite3.connect(
        _uri(path, "mode=rw"), uri=True, isolation_level=None, check_same_thread=False,
        timeout=min(timeout, TURN_MS / 1000), factory=Waiting,
    )  # fmt: skip
    con.wait = timeout  # type: ignore[attr-defined]
    WRITING.add(con)  # (a fork never closes it: ``forked.inherited``)
    return con


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a journal opened for writing to this version's schema, in one transaction."""
    with healed(con), transaction(con):
        current = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        at = int(current[0])  # another process may have migrated it meanwhile
        if at < SCHEMA_VERSION:
            for step in range(at, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    try:
                        con.execute(statement)
                    except sqlite3.OperationalError as exc:  # (its tables newer: attack48 L1)
                        raise JournalError(
                            f"its schema_version ({at}) is older than its tables ({exc}), "
                            "which the journal never writes; it was not changed"
                        ) from None
            version = (str(SCHEMA_VERSION),)
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", version)


class JournalTakenOver(JournalError, TakenOver):
    """Another process claimed this saga (``recover``, ``--force``): the process that held it
    (its owner or an earlier claimant) neither writes nor runs another undo."""


class JournalUnusable(JournalError, ValueError):
    """A Journal that cannot record a saga (closed, read-only), given to a run: refused."""


def _duration(value: object) -> bool:
    """A timeout as the journal writes one: a finite number of seconds above 0."""
    return type(value) in (int, float) and 0 < value < math.inf  # type: ignore[operator]


def _cell(text: str) -> str:
    """A value as one cell of a table: quoted and escaped if it would break the line."""
    return text if text.isprintable() else repr(text)


MAX_WAIT = 2147483.647  # SQLite's longest wait for a lock (its busy timeout: an int of ms)


def _check_arguments(path: object, create: object, readonly: object, given: object) -> None:
    """Journal's arguments, refused before any file is touched (a timeout named as given)."""
    timeout = plain_number(given)
    for name, flag in (("create", create), ("readonly", readonly)):
        check_flag(flag, f"Journal's {name}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        kind = type(timeout).__name__
        raise TypeError(f"Journal's timeout must be a number of seconds, got {kind} {given!r}")
    if not (0 <= timeout <= MAX_WAIT and math.isfinite(timeout)):  # (10**400: no overflow)
        raise ValueError(f"Journal's timeout must be 0 to {MAX_WAIT} seconds, got {given!r}")
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"a journal's path must be a str or a path, got {path!r}")
    if not os.fsdecode(path) or "\0" in os.fsdecode(path):  # (a NUL: SQLite cuts it there)
        raise ValueError(f"a journal's path cannot be empty or hold a NUL character: {path!r}")
    if names_a_folder(os.fsdecode(path)):  # (``Path`` drops it: another file's name)
        raise ValueError(no_file(os.fsdecode(path)))


def names_a_folder(text: str) -> bool:
    """Does ``text`` end as only a folder's name does ("x/", "x/.", "x/..", ".")? ``Path``
    takes "x/" and "x/." for the file ``x`` (attack291 F3, attack294 F4: made, or read)."""
    return text.endswith(("/", os.sep)) or os.path.basename(text) in (".", "..")


def no_file(text: str) -> str:
    """Why a journal's path names no file: empty, or a folder's name."""
    if not text:
        return "a journal's path cannot be empty"
    return f"a journal's path names a file, and {text!r} is a folder's name"


SQLITE_HEADER = b"SQLite format 3\x00"  # (every SQLite file's first 16 bytes; empty: new)


def _uri(path: Path, query: str) -> str:
    """A file URI naming this file, never another: every byte escaped (``#``, ``?``, ``%``,
    any Unicode, a byte not UTF-8), its authority empty (``//tmp/j.db`` is no host)."""
    return f"file://{quote(os.fsencode(path.absolute()), safe='/')}?{query}"


def _open_read_only(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """Open for reading only. In a folder nobody may write (no WAL's shared-memory file):
    read as immutable without a WAL; refused with one, whose sagas would be left out. A file
    at rest (no WAL) of another user's (root's look too): read as immutable too (opened so,
    SQLite made its -wal and -shm, this user's, and its owner could write it no more,
    attack281 F1: a `journal show` by another user locked it out for good)."""
    real = Path(os.path.realpath(path))  # (a symlink's files are its target's: attack204)
    if _others(real) and not real.with_name(real.name + "-wal").exists():
        return sqlite3.connect(  # (opened again for each read: ``reads.reading``, 282 F1)
            _uri(path, "immutable=1"),
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            factory=Look,
        )
    con = sqlite3.connect(  # (its first read waits in turns, ``begin``'s: attack60 F1)
        _uri(path, "mode=ro"), uri=True, isolation_level=None, check_same_thread=False,
        timeout=min(timeout, TURN_MS / 1000))  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            except UnicodeDecodeError:  # (SQLite's error names a damaged schema's name,
                con.close()  # not UTF-8: Python cannot read it, attack281 F2, a traceback)
                bad = "malformed database schema (a name not UTF-8)"
                raise sqlite3.DatabaseError(bad) from None
        con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")  # (its later reads)
    except sqlite3.OperationalError:
        con.close()
        if os.access(real.parent, os.W_OK):
            raise
        if (wal := real.with_name(real.name + "-wal")).exists() and wal.stat().st_size > 0:
            raise JournalError(
                f"{path} has a write-ahead log ({wal}) that SQLite can read only with "
                f"{real.name}-shm beside it, and its folder is read-only: copy the journal "
                "with its -wal file to a writable folder (or make that one writable)"
            ) from None
        con = sqlite3.connect(
            _uri(path, "immutable=1"), uri=True, isolation_level=None, check_same_thread=False
        )
    return con


class Look(sqlite3.Connection):
    """Another user's journal at rest, read as immutable: opened again for each read
    (``reads.reading``), so each sees the file as it lies then."""


def _others(path: Path) -> bool:
    """Is ``path`` another user's, or one this user may not write?"""
    try:
        return path.stat().st_uid != os.geteuid() or not os.access(path, os.W_OK)
    except OSError:
        return False


def _schema_version(path: Path, meta: Mapping[str, Any]) -> int:
    """The journal's schema version, or one line saying why it has none that can be used."""
    raw = meta.get("schema_version")
    text = str(raw)  # (as the journal writes it: ASCII digits, nothing around: attack45 L5)
    ok = isinstance(raw, str | int) and text.isascii() and text.isdigit() and text[0] != "0"
    version = int(text) if ok else 0
    if version < 1:
        raise JournalError(
            f"{path} has no valid journal schema_version ({raw!r}); it was not changed"
        )
    return version


def _inspect(path: Path, create: bool, timeout: float = 30.0) -> int | None:
    """The schema version of an existing journal, None for a new one; never writes (it
    waits ``timeout`` for a lock another process holds, as the journal would)."""
    if path.is_dir():
        raise JournalError(f"{path} is a directory, not a journal")
    if path.is_symlink() and not path.exists():  # (SQLite: "unable to open database file")
        raise JournalError(f"{path} is a symbolic link to no file (dangling, or a loop)")
    if path.exists() and not path.is_file():  # SQLite would wait on a FIFO, fail on a device
        raise JournalError(f"{path} is not a regular file (a device, a FIFO or a socket)")
    if path.exists() and (others := _other_names(path)):
        raise JournalError(
            f"{path} has {counted(others, 'other name')} (hard links): SQLite finds the journal's "
            "write-ahead log by name, so a process using another name would not see this "
            "one's claims and writes (an undo could run twice); keep one name (remove the "
            "other links, or copy the file)"
        )
    if path.is_file() and _mounted_onto(path):
        raise JournalError(
            f"{path} is a file mounted onto its path (a bind mount, a container's single-file "
            "volume): SQLite keeps the journal's write-ahead log beside the path, so a process "
            "using the file by its other path would not see this one's claims and writes (an "
            "undo could run twice); mount the folder that holds it instead"
        )
    if torn := wal_damage(path):  # (before SQLite reads it, whoever opens it: attack127 F1)
        if not path.exists():  # (no file to call damaged: attack294 F6)
            raise JournalError(f"no journal at {path}, but beside it {torn}; nothing was changed")
        raise JournalError(f"{path} is damaged ({torn}); it was not changed")
    if not path.exists() or path.stat().st_size == 0:
        if not create:
            what = "no journal at" if not path.exists() else "an empty file, not a journal:"
            raise JournalError(f"{what} {path}")
        return None
    if not os.access(path, os.R_OK):
        raise JournalError(f"cannot read {path}: permission denied")
    try:
        con = _open_read_only(path, timeout)
    except sqlite3.OperationalError as exc:
        held = f" (another process holds it; waited {timeout:g} s)" if "locked" in str(exc) else ""
        raise JournalError(f"cannot open {path}: {exc}{held or no_room(path)}") from None
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


def _other_names(path: Path) -> int:
    """How many names the journal's file has besides ``path`` (hard links: attack50 F4),
    not counting the hidden ones of its own making (``_create_whole``, as it links it)."""
    st = path.stat()
    if st.st_nlink < 2:
        return 0
    ours = 0
    for hidden in path.parent.glob(f".{glob.escape(path.name)}.*.creating"):
        with contextlib.suppress(OSError):  # (gone meanwhile: its creator unlinked it)
            ours += os.path.samestat(hidden.stat(), st)
    return max(st.st_nlink - 1 - ours, 0)


def _mounted_onto(path: Path) -> bool:
    """Is ``path`` itself a mount point, a file bind-mounted onto it (attack53 F7: two paths
    of one name each, two write-ahead logs; Linux's mount table, else not known: False)?"""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
            points = [line.split()[4] for line in table if len(line.split()) > 4]
    except OSError:
        return False
    real = os.path.realpath(path)
    octal = re.compile(r"\\([0-7]{3})")  # (the table writes a space as \040)
    return any(octal.sub(lambda m: chr(int(m.group(1), 8)), p) == real for p in points)


def _create_whole(path: Path) -> None:
    """Make a new journal beside ``path``, linked into place only once its schema is written:
    a process killed while creating it leaves no half-made journal that ``recover`` would
    refuse (only a hidden ``.creating`` file). Another process's linked first is used."""
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
    except (sqlite3.Error, OSError) as exc:  # a full disk, a folder gone: one line (a
        why = f"{exc}{no_room(path, str(exc))}"  # file-size limit named: attack154 F1)
        raise JournalError(f"cannot create the journal {path}: {why}") from None
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + x) for x in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
