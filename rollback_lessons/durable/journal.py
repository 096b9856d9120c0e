"""A durable journal in SQLite, so a rollback survives the process that started it.

An in-memory undo log dies with its process: if the process is killed between step 2 and
step 3, steps 1 and 2 stay done forever. The journal writes each undo (a registered
compensation name and JSON arguments, never pickled code) with a durable commit before
the engine relies on it, and ``recover`` finishes the rollback of every saga that did not
end. Undos receive an idempotency key (``"<saga id>:<step>"``), so one that ran just
before a crash can safely run again.

One durable commit per compensable step: events in between are buffered and written with
the next commit (nothing about them is needed to recover). An undo logged after its step
is written as the step returns, without waiting for the disk (``JournalRun.confirm``): a
process killed during the next step leaves it to be undone, not reported leaked; the next
durable commit syncs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._numbers import plain_number
from ..events import Event, as_told
from ..policies import UndoPolicy
from ..rules import check_run_id, check_text
from . import forked, holding, room, shadow, writers
from .as_claimed import cancelled_by
from .files import (  # noqa: F401 (re-exported: the journal's names, as before)
    _IDS,
    _MIGRATIONS,
    _UNFINISHED,
    APP,
    FINISHED,
    SCHEMA_VERSION,
    JournalError,
    JournalTakenOver,
    JournalUnusable,
    Written,
    _cell,
    _check_arguments,
    _create_whole,
    _duration,
    _inspect,
    _migrate,
    _open_read_only,
    _schema_statements,
    _uri,
    connect,
    heal,
    healed,
    transaction,
)
from .forked import Closed, JournalForked, close, no_new_saga, not_forked  # noqa: F401
from .kept import UnjournaledPolicy, policy_data, policy_of  # noqa: F401 (re-exported)
from .owed import Owed
from .reads import reading, undo_record, unfinished_undos
from .records import LOGGED, NO_UNDO, Claimed, JournalRun, SagaRecord, UndoRecord, me
from .settle import Settled, settle, table
from .values import _bad_value


class Journal:
    """A journal file; thread-safe, and shareable by processes (SQLite WAL); not by a fork."""

    closed: bool

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        readonly: bool = False,
        timeout: float = 30.0,
    ) -> None:
        """Open (or, with ``create``, make) a journal; anything else is refused untouched.

        ``readonly`` only reads (``journal show``); ``timeout`` is how long to wait for a
        lock another process holds (a finite number of seconds, 0 or more). Arguments of
        the wrong type or value are refused before any file is touched."""
        _check_arguments(path, create, readonly, timeout)
        forked.not_inherited(path, self)  # (a fork of one that has it open: attack215 F1)
        timeout = plain_number(timeout)  # (numpy's, a Decimal: the number it holds, F8)
        self.path, alone = Path(path), writers.lone(path)  # (before any connection makes a -wal)
        self.readonly = readonly
        self.closed = False
        version = _inspect(self.path, create and not readonly, timeout)
        if readonly:
            assert version is not None
            if version < 2:  # (a version-2 journal reads as it is: it lacks only fencing)
                raise JournalError(
                    f"{self.path} uses journal schema {version}; open it once for writing "
                    "(any rollback-lessons command but show) to upgrade it"
                )
        elif version is not None and (ro := writers.read_only(self.path)) is not None:
            raise JournalError(
                f"{ro} is read-only; this command writes to it (make it writable first)"
            )
        elif not (real := Path(os.path.realpath(self.path))).parent.is_dir():  # (a symlink's
            raise JournalError(f"the folder of {self.path} is not a folder that exists")  # its
        elif not os.access(real.parent, os.W_OK):  # target's: attack204 F2; not "read-only",
            raise JournalError(  # as os.access says of a folder that is not)
                f"the folder of {real} is read-only; SQLite writes {real.name}-wal beside it"
            )
        self._version = version if version is not None else SCHEMA_VERSION
        self._pid = os.getpid()  # the process whose connection this is (``not_forked``)
        self._opener = me()  # (and who it is: a fork is told whether it still runs)
        self._lock = threading.RLock()
        self.owed = Owed(self)  # (runs whose last writes failed: with the next write, or the close)
        self._claimed_at: int | None = None  # data_version as this connection last claimed
        if readonly:
            self._con = _open_read_only(self.path, timeout)
            with writers.closed_unless(self._con, self.path):
                writers.check(self._con, self.path, alone)
            return
        if version is None and not self.path.exists():
            _create_whole(self.path)  # it exists whole, or not at all
        self._con = connect(self.path, timeout)  # always this file (never ":memory:")
        try:
            gone = writers.check(self._con, self.path, alone) if version is not None else []
            self._mark = writers.Mark(self, self._con, gone, self.path, self._lock)  # (written
            self._con.mark = self._mark  # type: ignore[attr-defined]  # with its first)
            self._open(version)  # (a file refused is not migrated first)
        except (sqlite3.Error, JournalError) as exc:  # a full disk (no room for the WAL's)
            self._con.close()
            if isinstance(exc, writers.Alone):
                raise
            more = room.unopened(self.path, str(exc)) if isinstance(exc, sqlite3.Error) else ""
            raise JournalError(
                f"cannot open the journal {self.path}: {exc}{more}; nothing was run"
            ) from None

    def _open(self, version: int | None) -> None:
        """Set the connection up (WAL, durable commits), and write the schema a journal
        found empty lacks, or the columns of later versions one written before lacks."""
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")  # a commit survives power loss
        if version is None:  # an empty file found in place: IF NOT EXISTS, as others may
            self.write(_schema_statements())
        elif version < SCHEMA_VERSION:
            self._migrate(version)
            self._version = SCHEMA_VERSION

    def _migrate(self, version: int) -> None:
        with self._lock:
            _migrate(self._con)

    # -- writing -------------------------------------------------------------------------

    def write(
        self, statements: list[tuple[str, tuple[Any, ...]]], *,
        fences: Mapping[str, int] | None = None, sync: bool = True,
        written: Written | None = None,
    ) -> None:  # fmt: skip
        """Apply statements in one durable transaction (``written`` says, even when an
        exception ends the call, whether they were committed). Statements of the same text
        run together (in the order each text first appears), which keeps every insert
        before the updates of the rows it adds. So a batch must not hold two statements of
        different texts that update the same row. ``fences``
        maps saga ids to the claim generation the writer holds (0: its owner, never
        claimed); the transaction first checks each is still so, or writes nothing.
        ``sync=False``: committed without waiting for the disk (SQLite's synchronous=NORMAL
        in WAL mode): it survives the process being killed at once, and a power loss once
        the next durable commit has synced the log after it.
        """
        if not statements:
            return
        if self.readonly:
            raise JournalError(f"{self.path} was opened read-only")
        not_forked(self._pid, self.path, self._opener)
        self.owed.pay()  # (a run's last writes that failed before: first, on their own)
        grouped = shadow.grouped(statements)  # (same texts together)
        written = written if written is not None else Written()
        opened = holding.tracking(self._mark, grouped, written, fences or ())  # (its sagas)
        with self._lock, opened, room.named(Path(self.path)):  # (a full disk named)
            try:
                heal(self._con)  # (one a Ctrl-C left open: attack55 F2)
                if not sync:
                    self._con.execute("PRAGMA synchronous=NORMAL")
                with transaction(self._con, written):
                    if fences and not self._quiet():
                        for saga_id, gen in fences.items():
                            self._check_fence(saga_id, gen)
                    for sql, rows in grouped.items():
                        self._con.executemany(sql, rows)
            finally:
                heal(self._con)  # (a Ctrl-C as the ``with`` exited, COMMIT not run: undone)
                if not sync:  # (never raising over the error that ended the write)
                    with contextlib.suppress(Exception):
                        self._con.execute("PRAGMA synchronous=FULL")

    def _check_fence(self, saga_id: str, gen: int) -> None:
        row = self._con.execute(
            "SELECT claim_gen, claim_pid, claim_host FROM sagas WHERE id = ?", (saga_id,)
        ).fetchone()
        if row is not None and row[0] != gen:
            raise JournalTakenOver(
                f"saga {saga_id!r} was taken over by process {row[1]} on {row[2]} "
                "(recover); this process stopped: it writes and undoes nothing more of it"
            )

    def holds(self, saga_id: str, gen: int) -> None:
        """Raise JournalTakenOver unless the claim ``gen`` on the saga is still current
        (checked before each undo a claimant runs, so a taken-over one runs no other). While
        no other connection has committed since this one claimed (SQLite's data_version),
        nobody can have taken it over: the row is read only when someone has written."""
        not_forked(self._pid, self.path, self._opener)
        with reading(self):  # (its own claim, as on disk: attack72 F1)
            if not self._quiet():
                self._check_fence(saga_id, gen)

    def _quiet(self) -> bool:
        """Has no other connection committed since this one last claimed? Then no claim it
        holds can have been taken over (an owner, which never claims, always checks)."""
        version = self._con.execute("PRAGMA data_version").fetchone()[0]
        return self._claimed_at is not None and version == self._claimed_at

    def claim(
        self, decide: Callable[[SagaRecord, list[UndoRecord]], str | None]
    ) -> tuple[list[Claimed], list[tuple[SagaRecord, str]]]:
        """Claim unfinished sagas for recovery and read what is left of each, in ONE
        transaction: no two claimers, and no undo logged or done between the read and the
        claim. Each claim bumps the saga's generation (its fencing token).

        ``decide`` (given the saga and its pending undos) returns None to claim a saga, or
        the reason to leave it alone."""
        not_forked(self._pid, self.path, self._opener)
        self.owed.pay()  # (first: a run's writes, under its claim, never past this one's)
        pid, host, started, space = me()
        with self._lock, room.named(Path(self.path)), healed(self._con), transaction(self._con):
            self._con.execute(LOGGED)  # (a step that returned, its undo logged: not leaked)
            pending = unfinished_undos(self, "pending")
            intents = unfinished_undos(self, "intent")
            claimed, skipped = [], []
            for saga in self._sagas_locked("WHERE s.status IN ('running', 'rolling_back')", ()):
                reason = decide(saga, pending.get(saga.id, []))
                if reason is None:
                    claimed.append(saga)
                else:
                    skipped.append((saga, reason))
            writers.claiming(self._mark, self._con, [s.id for s in claimed])  # (its mark's)
            self._con.executemany(
                "UPDATE sagas SET claim_pid = ?, claim_host = ?, claim_started = ?, claim_space"
                " = ?, claimed_at = ?, claim_gen = claim_gen + 1, writer = ? WHERE id = ?",
                [(pid, host, started, space, time.time(), self._mark.key, s.id) for s in claimed],
            )
            gens = dict(self._con.execute(f"SELECT id, claim_gen FROM sagas WHERE id IN ({_IDS})"))
            seqs = self._last_seqs_locked()
            version = self._con.execute("PRAGMA data_version").fetchone()[0]
        self._claimed_at = version  # (read inside: no other commit could come between)
        out = [
            Claimed(s, gens[s.id], pending.get(s.id, []), intents.get(s.id, []), seqs.get(s.id, 0))
            for s in claimed
        ]
        return out, skipped

    def start(
        self,
        name: str,
        saga_id: str | None = None,
        *,
        policy: UndoPolicy | None = None,
        undo_order: str = "reverse",
        after: Mapping[str, Sequence[str]] | None = None,
    ) -> JournalRun:
        """A new saga in this journal (written with its first commit; under an id the
        caller chose, at once: two processes never both take it), with the undo ``policy``
        and ``undo_order`` its run obeys, which ``recover`` obeys too (``after``: a graph's
        steps' dependencies, which its undo order needs). A policy that cannot be written
        down (``policy_data``) is refused here, before any step. Its name and id are refused
        if a line of ``journal show`` or ``recover`` could not carry them as one cell (a line
        break would forge a row), and an id with ':' too: an undo's idempotency key is
        ``"<saga id>:<step>"``, so its first ':' must end the saga id."""
        if self.readonly or self.closed:
            raise JournalUnusable(
                f"{self!r} is {'closed' if self.closed else 'opened read-only'}: a saga cannot "
                "be journalled in it (open it with Journal(path))"
            )
        check_text(name, "a journalled saga's name")
        no_new_saga(self._pid, self.path)  # (a fork's: refused, run_id or not: attack217 F2)
        if saga_id is not None:
            check_run_id(saga_id, "a journalled saga's run_id")
        written = policy_data(policy) if policy is not None else None
        run = JournalRun(
            self, saga_id or uuid.uuid4().hex, name, new=True, policy=written,
            undo_order=undo_order,
            graph=None if after is None else json.dumps([[s, list(d)] for s, d in after.items()]),
        )  # fmt: skip
        if saga_id is not None:  # another process may be starting a saga under it now
            run.take_id()
        return run

    # -- reading -------------------------------------------------------------------------

    # Each read is ``reading``'s: what is on disk, never a transaction a cut write left open.

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with reading(self):
            return self._con.execute(sql, params).fetchall()

    def sagas(self, where: str = "", params: tuple[Any, ...] = ()) -> list[SagaRecord]:
        with reading(self):
            return self._sagas_locked(where, params)

    def _sagas_locked(self, where: str, params: tuple[Any, ...]) -> list[SagaRecord]:
        rows = self._con.execute(
            "SELECT s.id, s.name, s.status, s.owner_pid, s.owner_host, s.error,"
            " SUM(u.state IN ('pending', 'done', 'dead')), SUM(u.state = 'done'),"
            " SUM(u.state = 'dead'),"
            " s.owner_started, s.pivot, s.pivot_state, s.claim_pid, s.claim_host, s.claim_started,"
            + (" s.policy, s.undo_order" if self._version >= 4 else " NULL, 'reverse'")
            + (", s.graph" if self._version >= 6 else ", NULL")
            + ", SUM(u.state = 'leaked')"
            + (", s.owner_space, s.claim_space" if self._version >= 7 else ", NULL, NULL")
            + f" FROM sagas s LEFT JOIN undos u ON u.saga_id = s.id {where}"
            " GROUP BY s.id ORDER BY s.started, s.id",
            params,
        ).fetchall()
        # the columns in SagaRecord's field order (its counts 0, not NULL, with no undo)
        counted = [(*r[:6], *(n or 0 for n in r[6:9]), *r[9:-3], r[-3] or 0, *r[-2:]) for r in rows]
        return [SagaRecord(*row) for row in counted]

    def saga(self, saga_id: str) -> SagaRecord:
        found = self.sagas("WHERE s.id = ?", (saga_id,))
        if not found:
            raise KeyError(f"no saga {saga_id!r} in {self.path}")
        return found[0]

    def unfinished(self) -> list[SagaRecord]:
        """Sagas that neither committed nor finished their rollback."""
        return self.sagas("WHERE s.status IN ('running', 'rolling_back')")

    def undos(self, saga_id: str) -> list[UndoRecord]:
        """The saga's undos, as logged (a step with no undo has none: ``leaked`` names it)."""
        rows = self._rows(  # (each column recover reads, as it reads them: attack292 F1)
            "SELECT saga_id, position, step, compensation, args, state, attempts, error, semantic,"
            f" {'timeout' if self._version >= 5 else 'NULL'} FROM undos"
            " WHERE saga_id = ? AND compensation != ? ORDER BY position", (saga_id, NO_UNDO),
        )  # fmt: skip
        return [undo_record(self, r) for r in rows]

    def events(self, saga_id: str) -> list[Event]:
        sql = "SELECT seq, kind, step, details FROM events WHERE saga_id = ? ORDER BY seq"
        rows = self._rows(sql, (saga_id,))
        return [Event(seq, kind, step, as_told(details)) for seq, kind, step, details in rows]

    def cancelled(self, saga_id: str) -> bool:
        """Was the saga's rollback its caller's cancel (its ``rollback_start`` event says so,
        or its row, heard before: ``cancel_heard``)? ``recover`` then ends it ``cancelled``."""
        sql = "SELECT details FROM events WHERE saga_id = ? AND kind = 'rollback_start'"
        error = self._rows("SELECT error FROM sagas WHERE id = ?", (saga_id,))
        started = [d for (d,) in self._rows(sql, (saga_id,))]  # (what the rollback said wins)
        return cancelled_by(started, error[0][0] if error else None)

    def leaked(self, saga_id: str) -> list[str]:
        """The steps of a saga whose effect may stand with nothing to undo it (``leaked``)."""
        sql = "SELECT step FROM undos WHERE saga_id = ? AND state = 'leaked' ORDER BY position"
        return [step for (step,) in self._rows(sql, (saga_id,))]

    def released(self, saga: SagaRecord) -> bool:
        """Did its owner, living on, let the saga go (``UndoJournalRun.release``: a run an
        interruption cut)? Then ``recover`` takes it though that process still runs."""
        sql = "SELECT details FROM events WHERE saga_id = ? AND kind = 'released'"
        owner = {"pid": saga.owner_pid, "host": saga.owner_host, "started": saga.owner_started,
                 "space": saga.owner_space}  # fmt: skip
        rows = self._con.execute(sql, (saga.id,)).fetchall()  # (inside recover's claim)
        return owner in [json.loads(d) for (d,) in rows]  # (no generator left suspended)

    def ran_on(self, saga_id: str) -> list[str]:
        """The steps of a saga given up while their work ran on (their ``step_failed`` event
        says ``runs_on``, durable before any undo ran): undone or not, they may land later."""
        sql = ("SELECT step FROM events WHERE saga_id = ? AND kind = 'step_failed'"
               " AND json_extract(details, '$.runs_on') = 1 ORDER BY seq")  # fmt: skip
        return [step for (step,) in self._rows(sql, (saga_id,))]

    def pending_undos(self) -> dict[str, list[UndoRecord]]:
        """The undos not yet done of every unfinished saga, by saga, oldest first."""
        with reading(self):
            return unfinished_undos(self, "pending")

    def intents(self) -> dict[str, list[UndoRecord]]:
        """Steps of unfinished sagas that started, their undo not yet logged (may have leaked)."""
        with reading(self):
            return unfinished_undos(self, "intent")

    def last_seqs(self) -> dict[str, int]:
        """The last event number of every unfinished saga."""
        with reading(self):
            return self._last_seqs_locked()

    def _last_seqs_locked(self) -> dict[str, int]:
        rows = self._con.execute(
            "SELECT saga_id, MAX(seq) FROM events"
            f" WHERE saga_id IN ({_UNFINISHED}) GROUP BY saga_id"
        ).fetchall()
        return {saga_id: seq for saga_id, seq in rows}

    def integrity_check(self) -> str:
        return str(self._rows("PRAGMA integrity_check")[0][0])

    def quick_check(self, pragma: str = "quick_check") -> str:
        """SQLite's quick check of every page: "ok", or the first damage found, in one line
        (``pragma="integrity_check"``: also every index against its table, which ``recover``
        asks before any undo, as an overwritten page may pass the quick check)."""
        problems = [
            line.strip()
            for row in self._rows(f"PRAGMA {pragma}")
            for line in str(row[0]).splitlines()
            if line.strip() and not line.startswith("***")
        ]
        if problems == ["ok"]:  # the pages are sound; are the values ones it writes?
            with reading(self):
                return _bad_value(self._con, self._version) or "ok"
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        return f"{problems[0]}{more}"

    def table(self) -> str:
        """The sagas and their status, as a text table (``rollback-lessons journal show``),
        and a line for each saga settled by hand (``settle``)."""
        return table(self)

    def settle(self, saga_id: str, note: str) -> Settled:
        """Record that a person dealt with a saga ended for one (halted, or with dead letters
        or a step leaked): who, when, and ``note``; ``recover`` no longer names it. Refused
        with a ``SettleRefused`` (nothing written) for any other saga, or one settled."""
        return settle(self, saga_id, note)

    def close(self) -> None:
        if os.getpid() == self._pid and not self.closed:  # (a run's last writes that failed:
            self.owed.pay()  # a last try; outside the lock, as a write pays: attack272 F2)
        with self._lock:  # (its mark taken away first, never in a fork: its parent's)
            con, self.closed, self._con = self._con, True, Closed(self)  # type: ignore[assignment]
            writers.closing(getattr(self, "_mark", self), lambda: close(con, self._pid))

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"
