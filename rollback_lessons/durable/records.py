"""The writer of one saga's records (``JournalRun``); the records a journal holds (a saga,
an undo, a claim) are ``rows``', re-exported here.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..events import Event, EventKind, describe, stored
from ..rules import NamedUndo, idempotency_key
from .files import _UNFINISHED, JournalError, JournalUnusable, Written
from .owner import me
from .rows import Claimed, SagaRecord, UndoRecord  # noqa: F401 (re-exported: its names)
from .shadow import Shadow
from .values import MOST_ATTEMPTS

RELEASE = (
    "INSERT OR IGNORE INTO events (saga_id, seq, kind, step, details) SELECT ?1,"
    " COALESCE(MAX(seq), 0) + 1, 'released', NULL, ?2 FROM events WHERE saga_id = ?1"
)

AWAITING = "awaiting recover"
"""``sagas.writer`` of an unfinished saga no journal holds, till the last close (``_tidy``):
a file alone showing one was taken while the journal was open (recover may have ended it)."""
GIVE_BACK = (  # a recover's claim given back (its id last; one taken over since: the holder's)
    "UPDATE sagas SET claim_pid = NULL, claim_host = NULL, claim_started = NULL,"
    f" claim_space = NULL, writer = '{AWAITING}' WHERE claim_pid = ? AND claim_host = ?"
    " AND claim_space IS ? AND status IN ('running', 'rolling_back') AND id = ?"
)
LET_GO = f"UPDATE sagas SET writer = '{AWAITING}' WHERE id = ?"
"""A saga no journal holds: let go (released) for recover to take (``AWAITING``)."""

if TYPE_CHECKING:
    from .journal import Journal


HEARD = "the run was cancelled by its caller"
"""The saga's error once its caller's cancel was heard (recovered ``cancelled``, attack36 F3)."""

NO_UNDO = ""
"""The compensation of a step that has no undo: its row only says it started (``no_undo``)."""

RETURNED = (  # a step's undo logged once it returned (its undo_registered): no more an intent
    "UPDATE undos SET state = 'pending' WHERE saga_id = ? AND step = ? AND state = 'intent'"
    " AND compensation != ?"
)
LOGGED = (  # the same, read so by recover's claim in a journal written before (F4 too;
    # of a saga halted for a person too: its undos pending, named so, attack66 F6)
    "UPDATE undos SET state = 'pending' WHERE state = 'intent' AND compensation != ''"
    f" AND saga_id IN ({_UNFINISHED} OR status = 'halted') AND EXISTS (SELECT 1 FROM events e"
    " WHERE e.saga_id = undos.saga_id AND e.step = undos.step AND e.kind = 'undo_registered')"
)


class JournalRun:
    """One saga's records; the engine calls it, and it commits at the points that matter."""

    def __init__(
        self,
        journal: Journal,
        saga_id: str,
        name: str,
        *,
        new: bool,
        gen: int = 0,
        policy: str | None = None,
        undo_order: str = "reverse",
        graph: str | None = None,
    ) -> None:
        self.journal, self.saga_id, self.name = journal, saga_id, name
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._position, self.left_said = 0, ""  # (what recover finds: its end's line)
        self.kept = Shadow()  # (its committed writes: what it left, the file unread)
        self.gen = gen  # the claim it writes under: 0 for its owner, never claimed
        if new:
            pid, host, started, space = me()
            row = (saga_id, name, pid, host, time.time(), started, policy, undo_order, graph)
            writer = getattr(getattr(journal, "_mark", None), "key", None)  # (its mark's)
            self._pending.append((
                "INSERT INTO sagas (id, name, status, owner_pid, owner_host, started,"
                " owner_started, policy, undo_order, graph, owner_space, writer) VALUES"
                " (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, space, writer),
            ))  # fmt: skip

    def key(self, step: str) -> str:
        return idempotency_key(self.saga_id, step)

    def take_id(self) -> None:
        """Write the saga's row now: the id its caller chose is checked and taken in one
        step (its INSERT), so two processes never both take it (the second is refused)."""
        path, saga = self.journal.path, self.saga_id
        try:
            self.flush(sync=False, fenced=False)  # (an interrupt: left pending, never lost)
        except sqlite3.IntegrityError:
            raise JournalError(f"saga {saga!r} is already in {path}; ids must be unique") from None
        except sqlite3.Error as exc:  # a full disk, an I/O error: before any step, so one line
            raise JournalError(
                f"saga {saga!r} could not be written to {path} ({describe(exc)}): nothing ran"
            ) from None

    def event(self, event: Event) -> None:
        """The event, written with the next write. An ``undo_registered`` carries its step's
        ``intent`` row to ``pending`` in the same write (one append: no Ctrl-C between), so
        the journal never says the undo was logged while its row says the step may have
        leaked (attack63 F4: a Ctrl-C at ``confirm`` left it so: recover never undid it)."""
        self._pending += self._event_statements(event)  # (one C call: queued whole or not)

    def _event_statements(self, event: Event) -> list[tuple[str, tuple[Any, ...]]]:
        statement = (
            "INSERT INTO events (saga_id, seq, kind, step, details) VALUES (?, ?, ?, ?, ?)",
            (self.saga_id, event.seq, event.kind, event.step, stored(event.details)),
        )
        if event.kind != EventKind.UNDO_REGISTERED:
            return [statement]
        return [statement, (RETURNED, (self.saga_id, event.step, NO_UNDO))]

    def register(
        self, step: str, undo: NamedUndo, state: str = "pending", semantic: bool = False,
        timeout: float | None = None, position: int | None = None,
    ) -> int:  # fmt: skip
        """Write the undo durably; returns its position (the engine undoes in reverse).

        ``state="intent"``: the step is about to run and its undo will be logged only after
        it succeeds. If the process dies in between, recover reports the step as leaked
        (it may have happened, and nothing may undo it) instead of losing it silently.
        ``timeout``: the step's own undo timeout, which recover applies as the run does.
        ``position``: one ``reserve`` gave (else the next)."""
        position = self.reserve() if position is None else position
        args = json.dumps(dict(undo.args))
        timeout = None if timeout is None else float(timeout)  # (10**20 s: an int SQLite
        # cannot hold, a finite duration Step takes, read back the same: attack84 F7)
        statement = (
            "INSERT INTO undos (saga_id, position, step, compensation, args, state, semantic,"
            " timeout) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.saga_id, position, step, undo.name, args, state, int(semantic), timeout),
        )
        self._flush_with([statement], keep=state != "intent")
        return position

    def reserve(self) -> int:
        """The next row's position, taken before it is written: its writer knows the row
        whenever a Ctrl-C lands (attack55 F1: a step never called reported leaked)."""
        self._position += 1
        return self._position

    def no_undo(self, step: str, position: int | None = None) -> int:
        """A step with no undo is about to run: an ``intent`` whose compensation is
        ``NO_UNDO``, written durably before it runs. Interrupted or killed inside it, recover
        reports it leaked (it may have happened, nothing undoes it), as a run in process does;
        ``no_undo_done`` once it returned, ``abandon`` if it failed before its effect."""
        position = self.reserve() if position is None else position
        statement = (
            "INSERT INTO undos (saga_id, position, step, compensation, args, state)"
            " VALUES (?, ?, ?, ?, '{}', 'intent')",
            (self.saga_id, position, step, NO_UNDO),
        )
        self._flush_with([statement], keep=False)
        return position

    def _flush_with(self, statements: list[tuple[str, tuple[Any, ...]]], *, keep: bool) -> None:
        """Write ``statements`` with what is pending. If that fails, ``keep`` them for the
        next write (an undo the engine logged) or drop them (an intent, a pivot about to
        start, a commit: what they say will not be so, so nothing of them must be written).
        Queued inside the ``try``: a Ctrl-C or exit at any instant, even before the write
        was tried, drops them too (attack72 F2, F3: the commit's left pending, the rollback's
        writes carried it: its seq reused, or the saga said committed). Taken back by their
        place, saved before they were queued, with no call in between: a comprehension is a
        function, and a second Ctrl-C at its start left the commit's pending (attack75 F2).
        Nothing queues during a write, so they are there or nowhere (written: gone)."""
        start = len(self._pending)
        end = start + len(statements)
        try:
            self._pending += statements  # (one C call: queued whole or not at all)
            self.flush()
        except BaseException:
            if not keep:  # (gone already if it was written: a Ctrl-C as COMMIT returned)
                del self._pending[start:end]  # (no call: no instant for a Ctrl-C)
            raise

    def confirm(self, position: int) -> bool:
        """The step of an ``intent`` succeeded: its undo is logged, written at once (what is
        done from here on, a slow next step with nothing to write, may be killed: recover
        must find the undo, not a step that leaked). Without waiting for the disk: the
        next durable commit syncs it, and until then a power loss leaves the step reported
        leaked, as before it returned. If it cannot be written now, it goes with the next
        write (a step's call returned: the run is not failed for that): then False."""
        self._set_state(position, "pending")
        try:
            self.flush(sync=False)
        except Exception:  # (kept in _pending by flush)
            return False
        return True

    def no_undo_done(self, position: int) -> None:
        """A step with no undo returned (``no_undo``): nothing to undo, its effect stands by
        design. Written at once, as ``confirm`` is (a slow next step with nothing to write
        may be killed: recover must not report a step that returned as leaked). Its one call
        is counted (``attempts`` 1), which tells it from a step refused, written ``not_run``
        too: recover's record names it done and kept even if its done event was not written
        (``report.done_steps``)."""
        self._pending.append((
            "UPDATE undos SET state = 'not_run', attempts = 1 WHERE saga_id = ? AND position = ?",
            (self.saga_id, position),
        ))  # fmt: skip
        with contextlib.suppress(Exception):  # (kept in _pending by flush)
            self.flush(sync=False)

    def abandon(self, position: int) -> None:
        """The step of an ``intent`` failed before its effect: nothing to undo."""
        self._set_state(position, "not_run")

    def intend(self, position: int) -> None:
        """An ``abandon``ed step is tried again: an ``intent`` once more (with the next write)."""
        self._set_state(position, "intent")

    def abandon_now(
        self, positions: list[int], pivot: str | None = None, withdrawn: Sequence[str] = ()
    ) -> None:
        """``abandon``, written now on its own (fenced): a run a Ctrl-C cut leaves its other
        writes to ``recover``, yet a step it never ran must not be reported leaked there,
        nor a ``pivot`` never called be one recover may not undo across (``refused``), nor
        an undo ``withdrawn`` (its step never called) be run there."""
        statements = [self._state_statement(p, "not_run") for p in positions]
        statements += [self._withdraw_statement(step) for step in withdrawn]
        if pivot is not None:
            statements.append(self._pivot_statement(pivot, "refused"))
        self.journal.write(statements, fences={self.saga_id: self.gen})
        self.kept.committed(statements)

    def release(self, *, now: bool = True) -> None:
        """A run an interruption cut, its process living on (a notebook's Interrupt, a service
        that caught the Ctrl-C): it runs nothing more of the saga, so ``recover`` may take it
        while that process lives (attack101 F5: "still running; stop it first", for as long as
        the kernel lived). Written ``now``, fenced, last (``Journal.released``); or after
        what is pending, with it (owed: attack276 F1, held for the service's life)."""
        pid, host, started, space = me()
        owner = stored({"pid": pid, "host": host, "started": started, "space": space})
        statements = [(RELEASE, (self.saga_id, owner)), (LET_GO, (self.saga_id,))]
        if now:
            return self.journal.write(statements, fences={self.saga_id: self.gen})
        self._pending += statements

    def withdraw(self, step: str) -> None:
        """The undo of ``step``, logged before its action, which was never called (the
        write of that undo failed, or a Ctrl-C came right after it): not run, so ``recover``
        never runs it (with the next write; nothing, if its row was never written)."""
        self._pending.append(self._withdraw_statement(step))

    def _withdraw_statement(self, step: str) -> tuple[str, tuple[object, ...]]:
        sql = "UPDATE undos SET state = 'not_run' WHERE saga_id = ? AND step = ? AND state = ?"
        return sql, (self.saga_id, step, "pending")

    def owe(self) -> bool:
        """Its last writes failed: owed (True), with its journal's next write or close; not
        if closed (it writes nothing more, attack276 F3)."""
        return self.journal.owed.add(self)

    def leaked(self, position: int) -> None:
        """The step of an ``intent`` may have happened (cut short in its call), and no undo
        was logged for it: reported, never undone (written with the saga's end)."""
        self._set_state(position, "leaked")

    def holds(self) -> None:
        """Raise JournalTakenOver unless the saga is still this run's (after each step)."""
        self.journal.holds(self.saga_id, self.gen)

    def shown(self) -> tuple[SagaRecord, dict[int, str]]:
        """The saga and each undo row's state, as the journal shows them (a full disk still
        reads), closed under the run, afresh (attack262): what ``recover`` will find."""
        sql = "SELECT position, state FROM undos WHERE saga_id = ?"  # (no undo's rows too)
        try:
            return self.journal.saga(self.saga_id), dict(self.journal._rows(sql, (self.saga_id,)))
        except JournalUnusable:  # (a Journal of the same file: its class, no import cycle)
            with type(self.journal)(self.journal.path, readonly=True) as fresh:
                return fresh.saga(self.saga_id), dict(fresh._rows(sql, (self.saga_id,)))

    def kept_shown(self) -> tuple[str | None, dict[int, str]] | None:
        """``shown`` (pivot, rows) of a file unread: as this run's committed writes left it."""
        return self.kept.shown(self.saga_id)

    def late_effect(self, step: str, why: str) -> None:
        """The step's call returned after another process took the saga over: its effect
        may have landed after that process undid it. Written past the fence, and only ever
        to say less (an undo done becomes leaked; a saga rolled_back, rollback_incomplete):
        the journal never keeps saying rolled_back over an effect that may stand."""
        text = f"its step returned after the saga was taken over ({why}): it may stand"
        self.journal.write([
            ("UPDATE undos SET state = 'leaked', error = ?"
             " WHERE saga_id = ? AND step = ? AND state IN ('done', 'pending')",
             (text, self.saga_id, step)),
            ("UPDATE sagas SET status = 'rollback_incomplete', error = ?"
             " WHERE id = ? AND status IN ('rolled_back', 'cancelled')",
             (f"step {step!r}: {text}", self.saga_id)),
        ])  # fmt: skip

    def ran_on(self, step: str, why: str) -> None:
        """``step`` was undone while its call still ran (the wait for it given up): its
        effect may land after its undo. Its done row is written ``leaked``, saying why, with
        the run's end: a person checks it, and ``recover`` names it until it is settled
        (attack95 F1: "nothing left for a person", exit 0, the charge standing)."""
        self._pending.append((  # (a dead undo's row too, its error kept: attack99 F8)
            "UPDATE undos SET state = 'leaked', error = CASE state WHEN 'dead'"
            " THEN ? || ' (' || COALESCE(error, '') || ')' ELSE ? END"
            " WHERE saga_id = ? AND step = ? AND state IN ('done', 'dead')",
            (why, why, self.saga_id, step),
        ))  # fmt: skip

    def _set_state(self, position: int, state: str) -> None:
        self._pending.append(self._state_statement(position, state))

    def _state_statement(self, position: int, state: str) -> tuple[str, tuple[object, ...]]:
        return (
            "UPDATE undos SET state = ? WHERE saga_id = ? AND position = ?",
            (state, self.saga_id, position),
        )

    def status(self, status: str, *, flush: bool = False) -> None:
        self._pending.append(("UPDATE sagas SET status = ? WHERE id = ?", (status, self.saga_id)))
        if flush:
            self.flush()

    def pivot(self, step: str, state: str, *, flush: bool = True) -> None:
        """An irreversible step ``started`` (written before it runs), is ``done``, or
        ``refused`` (it failed before any effect, so the rollback goes on across it).

        Both are written at once (one saga has one pivot): recover never compensates
        across one that started or is done, and the person it is left for learns whether
        it surely happened. ``flush=False``: with the next write (the run's last batch).
        """
        if not flush:
            self._pending.append(self._pivot_statement(step, state))
            return
        self._flush_with([self._pivot_statement(step, state)], keep=state != "started")

    def _pivot_statement(self, step: str, state: str) -> tuple[str, tuple[object, ...]]:
        return (
            "UPDATE sagas SET pivot = ?, pivot_state = ? WHERE id = ?",
            (step, state, self.saga_id),
        )

    def undo_done(self, position: int, attempts: int, *, flush: bool | None = True) -> Any:
        """The undo ran; never over a step reported ``leaked`` (``late_effect``: its effect
        landed after recover undid it, and may stand). ``flush=None``: the statement, made
        for its caller to keep (recover: at once as the undo returns)."""
        statement = (
            f"UPDATE undos SET state = 'done', attempts = MIN(attempts + ?, {MOST_ATTEMPTS})"
            " WHERE saga_id = ? AND position = ? AND state != 'leaked'",
            (attempts, self.saga_id, position),
        )
        if flush is None:
            return statement
        self._pending.append(statement)
        if flush:
            self.flush()

    def undo_retried(self, position: int, *, flush: bool = True) -> None:
        """An attempt of the undo failed and it will be tried again (or a person asked): the
        attempt is counted, so a recover after a crash goes on with the policy's count."""
        self._pending.append(
            (
                f"UPDATE undos SET attempts = MIN(attempts + 1, {MOST_ATTEMPTS})"
                " WHERE saga_id = ? AND position = ?",
                (self.saga_id, position),
            )
        )
        if flush:
            self.flush()

    def undo_dead(self, position: int, attempts: int, error: str, *, flush: bool = True) -> None:
        self._pending.append(
            (
                f"UPDATE undos SET state = 'dead', attempts = MIN(attempts + ?, {MOST_ATTEMPTS}),"
                " error = ? WHERE saga_id = ? AND position = ?",
                (attempts, error, self.saga_id, position),
            )
        )
        if flush:
            self.flush()

    def commit(self, event: Event, leaked: Sequence[int] = ()) -> None:
        """Every step is done: the commit and its event, written now or not at all; with it,
        ``leaked``, the rows of the steps whose error the block caught after their effect
        may have happened (the committed outcome names them: a person checks them)."""
        end = (
            "UPDATE sagas SET status = 'committed', error = NULL, ended = ? WHERE id = ?",
            (time.time(), self.saga_id),
        )
        leaks = [self._state_statement(p, "leaked") for p in leaked]
        self._flush_with([*self._event_statements(event), *leaks, end], keep=False)

    def end(self, status: str, error: BaseException | str | None, *, flush: bool = True) -> None:
        """The saga's last status, with what is pending (``flush=False``: the caller
        flushes, and may try again: a failed flush keeps every statement pending)."""
        text = describe(error) if isinstance(error, BaseException) else error
        self._pending.append(
            (
                "UPDATE sagas SET status = ?, error = ?, ended = ? WHERE id = ?",
                (status, text, time.time(), self.saga_id),
            )
        )
        if flush:
            self.flush()

    def cancel_heard(self) -> None:
        """The caller's cancel was heard: said in the saga's row, with the next write (the
        run's observers hear of it only after that write: ``AT_ONCE``)."""
        self._pending.append(
            ("UPDATE sagas SET error = ? WHERE id = ? AND error IS NULL", (HEARD, self.saga_id))
        )

    def written_soon(self) -> None:
        """What is pending, written now without waiting for the disk (as ``confirm``): a
        process may be killed in what its observers hear next. Else with the next write."""
        if self._pending:
            with contextlib.suppress(Exception):  # (kept in _pending by flush)
                self.flush(sync=False)

    def give(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        """The statements not yet written, moved onto ``batch`` (its caller writes it): no
        instant for a Ctrl-C between (attack72: ``batch += run.take()`` lost them)."""
        batch += self._pending
        self._pending = []

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))

    def flush(self, *, sync: bool = True, fenced: bool = True) -> None:
        """Write what is pending (``fenced``: under this run's claim). Taken inside the
        ``try``, in one instant with no call: an interrupt anywhere leaves them pending,
        never lost (attack116 F2: the saga's row, taken, then dropped by a Ctrl-C before
        its write; the events after it written, a journal recover called damaged)."""
        written = Written()  # (first: a Ctrl-C as it returned lost what ``take`` took)
        statements: list[tuple[str, tuple[Any, ...]]] = []
        try:
            statements, self._pending = self._pending, []
            fences = {self.saga_id: self.gen} if fenced else None
            self.journal.write(statements, fences=fences, sync=sync, written=written)
        except BaseException:  # (a Ctrl-C as COMMIT returned, or after: written, not again)
            if not written.committed:
                self._pending[:0] = statements  # nothing written: they go with the next
            raise
        finally:
            if written.committed:
                self.kept.committed(statements)
