"""A durable journal in SQLite, so a rollback survives the process that started it.

An in-memory undo log dies with its process: if the process is killed between step 2 and
step 3, steps 1 and 2 stay done forever. The journal writes each undo (a registered
compensation name and JSON arguments, never pickled code) with a durable commit before
the engine relies on it, and ``recover`` finishes the rollback of every saga that did not
end. Undos receive an idempotency key (``"<saga id>:<step>"``), so one that ran just
before a crash can safely run again.

One commit per compensable step: events in between are buffered and written with the
next commit, because nothing about them is needed to recover.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import RollbackLessonsError
from ..events import Event, describe
from ..rules import NamedUndo

APP = "rollback-lessons"
SCHEMA_VERSION = 1
FINISHED = ("committed", "rolled_back", "rollback_incomplete", "halted")
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
    ended REAL
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
    PRIMARY KEY (saga_id, position)
) WITHOUT ROWID;
"""


class JournalError(RollbackLessonsError):
    """The file is not a journal this version can use; it was left untouched."""


@dataclass(frozen=True)
class SagaRecord:
    id: str
    name: str
    status: str
    owner_pid: int
    owner_host: str
    error: str | None
    undos: int
    undone: int
    dead: int

    def owner_alive(self) -> bool:
        """Is the process that ran this saga still running (on this machine)?"""
        if self.owner_host != socket.gethostname():
            return True  # cannot tell from here: assume it is
        try:
            os.kill(self.owner_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass(frozen=True)
class UndoRecord:
    saga_id: str
    position: int
    step: str
    compensation: str
    args: dict[str, Any]
    state: str
    attempts: int
    error: str | None

    @property
    def key(self) -> str:
        return idempotency_key(self.saga_id, self.step)


def idempotency_key(saga_id: str, step: str) -> str:
    return f"{saga_id}:{step}"


def _inspect(path: Path) -> int | None:
    """The schema version of an existing journal, None for a new one; never writes."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open {path}: {exc}") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            raise JournalError(f"{path} is an SQLite file but not a {APP} journal")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a readable journal (corrupt?): {exc}") from None
    finally:
        con.close()
    if meta.get("app") != APP:
        raise JournalError(f"{path} is not a {APP} journal (app={meta.get('app')!r})")
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path} uses journal schema {version}; this version of {APP} understands up to "
            f"{SCHEMA_VERSION}. Upgrade rollback-lessons to read it."
        )
    return version


class Journal:
    """A journal file; thread-safe, and shareable by processes (SQLite WAL)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        version = _inspect(self.path)
        self._lock = threading.RLock()
        self._con = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")  # a commit survives power loss
        if version is None:  # several processes may race to create it: IF NOT EXISTS
            statements: list[tuple[str, tuple[Any, ...]]] = [
                (s, ()) for s in _SCHEMA.split(";") if s.strip()
            ]
            statements += [
                ("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP,)),
                ("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)),
            ]
            self.write(statements)

    # -- writing -------------------------------------------------------------------------

    def write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Apply statements in one durable transaction.

        Statements of the same text run together (in the order each text first appears),
        which keeps every insert before the updates of the rows it adds.
        """
        if not statements:
            return
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for sql, params in statements:
            grouped.setdefault(sql, []).append(params)
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in grouped.items():
                    self._con.executemany(sql, rows)
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def start(self, name: str, saga_id: str | None = None) -> JournalRun:
        """A new saga in this journal (written with its first commit)."""
        if saga_id is not None and self._rows("SELECT 1 FROM sagas WHERE id = ?", (saga_id,)):
            raise JournalError(f"saga {saga_id!r} is already in {self.path}; ids must be unique")
        return JournalRun(self, saga_id or uuid.uuid4().hex, name, new=True)

    # -- reading -------------------------------------------------------------------------

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    def sagas(self, where: str = "", params: tuple[Any, ...] = ()) -> list[SagaRecord]:
        rows = self._rows(
            "SELECT s.id, s.name, s.status, s.owner_pid, s.owner_host, s.error,"
            " COUNT(u.position), SUM(u.state = 'done'), SUM(u.state = 'dead')"
            f" FROM sagas s LEFT JOIN undos u ON u.saga_id = s.id {where}"
            " GROUP BY s.id ORDER BY s.started, s.id",
            params,
        )
        return [
            SagaRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or 0, r[8] or 0) for r in rows
        ]

    def saga(self, saga_id: str) -> SagaRecord:
        found = self.sagas("WHERE s.id = ?", (saga_id,))
        if not found:
            raise KeyError(f"no saga {saga_id!r} in {self.path}")
        return found[0]

    def unfinished(self) -> list[SagaRecord]:
        """Sagas that neither committed nor finished their rollback."""
        return self.sagas("WHERE s.status IN ('running', 'rolling_back')")

    def undos(self, saga_id: str) -> list[UndoRecord]:
        rows = self._rows(
            "SELECT saga_id, position, step, compensation, args, state, attempts, error"
            " FROM undos WHERE saga_id = ? ORDER BY position",
            (saga_id,),
        )
        return [UndoRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:]) for r in rows]

    def events(self, saga_id: str) -> list[Event]:
        rows = self._rows(
            "SELECT seq, kind, step, details FROM events WHERE saga_id = ? ORDER BY seq",
            (saga_id,),
        )
        return [Event(seq, kind, step, json.loads(details)) for seq, kind, step, details in rows]

    def pending_undos(self) -> dict[str, list[UndoRecord]]:
        """The undos not yet done of every unfinished saga, by saga, oldest first."""
        out: dict[str, list[UndoRecord]] = {}
        for r in self._rows(
            "SELECT saga_id, position, step, compensation, args, state, attempts, error FROM undos"
            f" WHERE state = 'pending' AND saga_id IN ({_UNFINISHED}) ORDER BY saga_id, position"
        ):
            out.setdefault(r[0], []).append(
                UndoRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:])
            )
        return out

    def last_seqs(self) -> dict[str, int]:
        """The last event number of every unfinished saga."""
        rows = self._rows(
            "SELECT saga_id, MAX(seq) FROM events"
            f" WHERE saga_id IN ({_UNFINISHED}) GROUP BY saga_id"
        )
        return {saga_id: seq for saga_id, seq in rows}

    def integrity_check(self) -> str:
        return str(self._rows("PRAGMA integrity_check")[0][0])

    def table(self) -> str:
        """The sagas and their status, as a text table (``rollback-lessons journal show``)."""
        header = ("saga", "name", "status", "undos", "undone", "dead letters")
        rows = [
            (s.id, s.name, s.status, str(s.undos), str(s.undone), str(s.dead)) for s in self.sagas()
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
        ]
        return "\n".join(line.rstrip() for line in lines)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"


class JournalRun:
    """One saga's records; the engine calls it, and it commits at the points that matter."""

    def __init__(self, journal: Journal, saga_id: str, name: str, *, new: bool) -> None:
        self.journal, self.saga_id, self.name = journal, saga_id, name
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._position = 0
        if new:
            self._pending.append(
                (
                    "INSERT INTO sagas (id, name, status, owner_pid, owner_host, started)"
                    " VALUES (?, ?, 'running', ?, ?, ?)",
                    (saga_id, name, os.getpid(), socket.gethostname(), time.time()),
                )
            )

    def key(self, step: str) -> str:
        return idempotency_key(self.saga_id, step)

    def event(self, event: Event) -> None:
        self._pending.append(
            (
                "INSERT INTO events (saga_id, seq, kind, step, details) VALUES (?, ?, ?, ?, ?)",
                (self.saga_id, event.seq, event.kind, event.step, json.dumps(dict(event.details))),
            )
        )

    def register(self, step: str, undo: NamedUndo) -> int:
        """Write the undo durably; returns its position (the engine undoes in reverse)."""
        self._position += 1
        self._pending.append(
            (
                "INSERT INTO undos (saga_id, position, step, compensation, args)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.saga_id, self._position, step, undo.name, json.dumps(dict(undo.args))),
            )
        )
        self.flush()
        return self._position

    def status(self, status: str) -> None:
        self._pending.append(("UPDATE sagas SET status = ? WHERE id = ?", (status, self.saga_id)))

    def undo_done(self, position: int, attempts: int, *, flush: bool = True) -> None:
        self._pending.append(
            (
                "UPDATE undos SET state = 'done', attempts = attempts + ?"
                " WHERE saga_id = ? AND position = ?",
                (attempts, self.saga_id, position),
            )
        )
        if flush:
            self.flush()

    def undo_dead(self, position: int, attempts: int, error: str, *, flush: bool = True) -> None:
        self._pending.append(
            (
                "UPDATE undos SET state = 'dead', attempts = attempts + ?, error = ?"
                " WHERE saga_id = ? AND position = ?",
                (attempts, error, self.saga_id, position),
            )
        )
        if flush:
            self.flush()

    def end(self, status: str, error: BaseException | str | None) -> None:
        text = describe(error) if isinstance(error, BaseException) else error
        self._pending.append(
            (
                "UPDATE sagas SET status = ?, error = ?, ended = ? WHERE id = ?",
                (status, text, time.time(), self.saga_id),
            )
        )
        self.flush()

    def take(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements not yet written (the caller writes them, e.g. in a batch)."""
        pending, self._pending = self._pending, []
        return pending

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))

    def flush(self) -> None:
        self.journal.write(self.take())
