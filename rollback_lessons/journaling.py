"""The engine's side of a journal: it writes down what the saga machine records, through the
``UndoJournalRun`` port (``durable.Journal`` is the one implementation), before anything
relies on it.

Every write follows an event of the machine, so no rule is told twice: an undo is written
when the machine logs it (``undo_registered``), written as an *intent* when its step starts
and the undo is to be logged only after it, or when a step that has no undo starts (so a
crash in between is reported as leaked, not lost), and marked done or dead when the machine
says so. A write that fails going forward is the caller's error; during the rollback it
becomes a note and the undos go on in memory.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from . import journal_end
from ._forward import cancels
from .errors import CommitNotRecorded, JournalError, RollbackLessonsError, TakenOver
from .events import KEPT, Event, EventKind, describe
from .journal_end import ATTEMPTS
from .journal_not_run import not_run_now
from .journal_notes import taken_did
from .machine import Machine
from .ports import UndoJournalRun
from .rules import Kind, NamedUndo

AT_ONCE = frozenset({
    EventKind.STEP_DONE, EventKind.STEP_FAILED, EventKind.STEP_RETRY, EventKind.PIPELINE_FAILED
})  # fmt: skip
"""Events whose records are written before the run's observers hear them (``written_soon``):
a process killed in an observer, or while a gate after a group runs, left a step that had
returned without its done event (recover undid a graph's branches in their start order,
attack36 F1) and one that refused cleanly with its intent (reported leaked, F7)."""


def typed(exc: Exception, at: str) -> Exception:
    """A write that failed going forward, as the run's error: the storage's own error (a full
    disk's ``sqlite3.OperationalError``) becomes one typed line, ``JournalError``, its cause
    chained by the caller (attack19 S3), which lets the package's own errors through."""
    return JournalError(f"the journal could not be written {at}: {describe(exc)}")


def task_cancel(m: Machine, kind: EventKind) -> bool:
    """Is this a step cut short by its task's cancellation (an ``AsyncRollback`` block's),
    which its rollback will hear as a cancel (``_guards.hand_off``), not declined? Said in
    the journal at once (attack38 F3: only once the rollback began). A run with no asyncio
    loaded has no task: importing it here, mid-saga, gave a Ctrl-C some forty imports to land
    in, where CPython swallows it (importlib's lock callback)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or kind is not EventKind.STEP_FAILED:
        return False
    cut = isinstance(m.tried, asyncio.CancelledError)
    if not cut or m.rolling:
        return False
    from .schedule import declines

    try:
        task = asyncio.current_task()
    except RuntimeError:  # (no loop running: not a task's)
        return False
    return task is not None and cancels(task) > 0 and declines(m) != "pivot"


class JournalWriter:
    """Writes one run down as its machine goes; ``watch`` sees each event."""

    def __init__(self, jrun: UndoJournalRun, machine: Machine) -> None:
        self.jrun: UndoJournalRun | None = jrun
        self.m = machine
        self.named: dict[str, NamedUndo] = {}  # each step's undo, to write down by name
        self.intents: dict[str, int] = {}  # positions of undos to log after their step
        self.bare: set[str] = set()  # steps with no undo: their intent is all that is written
        self.pivot: str | None = None  # the pivot written ``started``
        self.uncalled: str | None = None  # (that pivot, its start's write failed after it)
        self.halt_written = True  # the policy's halt for a person, if any, is in the journal
        self.refused: list[int] = []  # intents of steps that failed before any effect
        self.refusals: list[str] = []  # (their steps)
        self.cancel_told = False  # the caller's cancel, heard, is written (``cancel_heard``)
        self.rows: dict[int, str] = {}  # the step of each intent's row written (by its position)
        self.before: dict[str, int] = {}  # the rows of undos logged before their step
        self.dropped: UndoJournalRun | None = None  # the run a failed write stopped writing
        self.withdrawn = 0  # how many of the machine's ``withdrawn`` undos are written
        self.failed = False  # a write of the rollback failed (said once, in a note)
        self.unrecorded: list[str] = []  # undos run whose ``done`` no write carried yet
        self.taken: list[str] = []  # undos run whose ``done`` the journal took (or kept)
        self.unsure: list[str] = []  # undos logged (confirmed) that no write carried yet
        self.settled: dict[str, tuple[int, bool]] = {}  # undos written as their step returned
        self.resting: dict[str, int | None] = {}  # steps refused, to retry: their intent rows
        self.ending = self.ended = False  # the run's end: its write begun, done (a rollback's)
        self.runs_on = False  # a call of the run may go on (given up, past its timeout)
        machine.told_not_run = partial(not_run_now, self)  # (its row not run at once: F3)

    def watch(
        self, seq: int, kind: EventKind, step: str | None, details: Mapping[str, Any]
    ) -> None:
        """Write the event down. A write that fails going forward is the run's error (it
        fails there), one typed line (``typed``)."""
        try:
            self._write(seq, kind, step, details)
        except RollbackLessonsError:
            raise
        except Exception as exc:
            if kind is EventKind.STEP_START and step is not None and step == self.pivot:
                self.uncalled = step  # (written started, never called: attack268 F1)
            at = f"at the {kind._value_} event" + (f" of {step}" if step else "")
            raise typed(exc, at) from exc

    def _write(
        self, seq: int, kind: EventKind, step: str | None, details: Mapping[str, Any]
    ) -> None:
        jrun, m = self.jrun, self.m
        if jrun is None:
            return
        if kind is EventKind.COMMITTED:  # durable, or the run is not committed
            self.commit(Event(seq, kind, step, details), self.caught())
            return
        if kind is EventKind.HALTED and (forward := m.record().forward_said):  # (recover's
            steps = list(m.record().forward)  # lines, attack42 F3; ``steps`` to name them to
            details = {**details, KEPT: {"forward": forward, "steps": steps}}  # finish, 279 F1)
        elif kind is EventKind.ROLLBACK_DONE and m.pending:  # (their order: a graph's, F8)
            details = {**details, KEPT: {"left": list(m.pending)}}
        jrun.event(Event(seq, kind, step, details))
        if not self.cancel_told and (m.cancelled or task_cancel(m, kind)):  # (before:
            self.cancel_told = True  # a crash then is recovered cancelled, as it would end)
            jrun.cancel_heard()
        if kind is EventKind.PIPELINE_FAILED:  # (before the rollback's first write)
            self.withdraw(jrun)
        elif kind is EventKind.STEP_START:
            assert step is not None
            step_kind = m.kinds[step]
            # (each row known before it is written: a Ctrl-C as its write returns leaves it
            # known, so the run's end writes it not run: attack55 F1; never written, the
            # end's update of it changes nothing)
            if step_kind == Kind.PIVOT:
                self.pivot = step
                jrun.pivot(step, "started")  # durable: recover never undoes across it
            if details["register"] == "after" and step_kind != Kind.PIVOT:  # undo once it returns
                spec = m.spec
                semantic, timeout = bool(spec and spec.semantic), spec and spec.undo_timeout
                self.intents[step] = position = jrun.reserve()
                jrun.register(step, self.named[step], "intent", semantic, timeout or None,
                              position)  # fmt: skip
                self.rows[position] = step  # (once written: ``left_note``)
                self.unsure.clear()  # (written: what was kept went with it)
            elif details["register"] == "none" and step_kind != Kind.GATE:  # (a pivot too)
                self.intents[step] = position = jrun.reserve()
                jrun.no_undo(step, position)  # no undo: if it may have happened,
                self.rows[position] = step
                self.bare.add(step)  # its effect is leaked, never lost
                self.unsure.clear()
        elif kind is EventKind.UNDO_REGISTERED:
            assert step is not None
            entry = m.log[-1]
            if step in self.settled:  # written as the step returned (``settle``)
                entry.position, written = self.settled.pop(step)
                if not written:
                    self.unsure.append(step)
            elif step in self.intents:
                entry.position = self.intents.pop(step)
                if jrun.confirm(entry.position):  # (its write may fail: kept for the next)
                    self.unsure.clear()
                else:
                    self.unsure.append(step)
            else:  # durable before anything relies on it
                entry.position = self.before[step] = jrun.register(
                    step, self.named[step], "pending", entry.semantic, entry.timeout
                )
                self.unsure.clear()
        elif kind is EventKind.STEP_RETRY:
            self.rest(step)  # type: ignore[arg-type]
        elif kind is EventKind.STEP_FAILED:
            self.resting.pop(step, None)  # type: ignore[arg-type]
            self.runs_on = self.runs_on or bool(details.get("runs_on"))
            if step in self.intents and not details.get("after_effect"):
                self.refused.append(self.intents.pop(step))  # nothing happened: nothing
                self.refusals.append(step)
                jrun.abandon(self.refused[-1])  # to undo (written again at the end: ``end``)
            if step is not None and m.kinds.get(step) == Kind.PIVOT and m.doubt != step:
                jrun.pivot(step, "refused")  # before any effect: recover may roll back
        elif kind is EventKind.STEP_DONE:
            assert step is not None
            self.returned(step)
            self.settle(step)  # (written already if its driver said it returned)
            if m.kinds.get(step) == Kind.PIVOT:
                jrun.pivot(step, "done")
        elif kind is EventKind.ROLLBACK_START:  # every undo logged is durable before one runs
            self.durably(partial(jrun.status, flush=True), "rolling_back")
        elif kind is EventKind.UNDO_DONE:  # each attempt is counted once (a fix by hand: none)
            assert m.entry is not None
            by_hand = 0 if details.get("by_hand") else 1
            if not self.durably(jrun.undo_done, m.entry.position, by_hand):
                self.unrecorded.append(m.entry.step)  # (kept: written by the next write)
            self.taken.append(m.entry.step)  # (one a Ctrl-C cut before: said at the end)
        elif kind is EventKind.UNDO_FAILED and details["then"] == "dead_letter":
            assert m.entry is not None
            self.durably(jrun.undo_dead, m.entry.position, 1, details["error"])
        elif kind is EventKind.UNDO_FAILED:  # retried, or a person asked: counted now
            assert m.entry is not None
            written = self.durably(jrun.undo_retried, m.entry.position)
            self.halt_written = written or details["then"] != "halt"  # (a person's: F9)
        elif kind is EventKind.ROLLBACK_DONE and m.interruption is None:  # (before its
            journal_end.at_rollback_done(self)  # observers hear it, as a commit: attack70 F2)
        if kind in AT_ONCE and self.jrun is not None:
            self.jrun.written_soon()

    def rest(self, step: str) -> None:
        """An attempt of ``step`` refused with nothing done (no attempt of it had its
        effect), and it waits to retry: its intent is written not run (a pivot's start
        refused) before the wait and its observers (``AT_ONCE``), so a process killed there
        leaves nothing reported leaked, as a Ctrl-C there leaves nothing (attack40 F2)."""
        m, jrun, position = self.m, self.jrun, self.intents.get(step)
        if jrun is None or step in m.effected or m.doubt == step:  # (it may have happened)
            return
        if position is None and step != self.pivot:  # (logged before it: nothing to say)
            return
        if position is not None:
            jrun.abandon(position)
        if step == self.pivot:
            jrun.pivot(step, "refused", flush=False)
        self.resting[step] = position

    def retrying(self, step: str) -> None:
        """``step`` rested (``rest``) and its next attempt begins: its intent (a pivot's
        start) is written back, durably, before the call. If that write fails, it raises:
        the attempt is not made (the row says not run, truthfully)."""
        if step not in self.resting or self.jrun is None:
            return
        position = self.resting.pop(step)
        try:
            if position is not None:
                self.jrun.intend(position)
            if step == self.pivot:
                self.jrun.pivot(step, "started", flush=False)
            self.jrun.flush()
        except RollbackLessonsError:
            raise
        except Exception as exc:  # (one typed line, as every write going forward: attack42 F2)
            raise typed(exc, f"before the next attempt of {step}") from exc

    def withdraw(self, jrun: UndoJournalRun) -> list[str]:
        """The undos the machine withdrew (logged before a step whose action was then never
        called: ``Machine.withdraw``), not yet written not run: written with the next
        write, so that ``recover`` never runs them; returned."""
        steps = list(self.m.withdrawn[self.withdrawn :])
        for step in steps:
            jrun.withdraw(step)
        self.withdrawn = len(self.m.withdrawn)
        return steps

    def returned(self, step: str) -> None:
        """A step's call returned: is the saga still this run's? If ``recover --force`` took
        it over while the step ran, its effect may have landed after recover undid it:
        reported in the journal (the step leaked, the saga rollback_incomplete, if recover
        had ended it rolled_back) and in the outcome (TakenOver, the run halted)."""
        assert self.jrun is not None
        try:
            self.jrun.holds()
        except TakenOver as exc:
            try:  # (what recover did, before this write says the step's undo leaked)
                rows: dict[int, str] | None = self.jrun.shown()[1]
            except Exception:
                rows = None
            self.jrun.late_effect(step, describe(exc))
            did = taken_did(self, rows)
            self.jrun = None
            late = TakenOver(f"step {step!r} returned after {exc}: {did}; check {step!r} by hand")
            late.late = step  # (the outcome names it leaked, as the journal now does)
            raise late from None
        except RollbackLessonsError:
            raise
        except Exception as exc:  # (its read, no write: said so, attack264)
            why = f"as {step} returned (is the saga still this run's?): {describe(exc)}"
            raise JournalError(f"the journal could not be read {why}") from exc

    def settle(self, step: str) -> None:
        """The step returned: its undo logged after it is written at once (``confirm``), or,
        with no undo, it is written done (its effect stands by design, nothing to undo).
        Once per step: as its call returns (``_guards.returned``) or at its done event."""
        jrun = self.jrun
        if jrun is None or step not in self.intents:
            return
        position = self.intents[step]  # (taken out once kept where it goes, by no call: a
        if step in self.bare:  # Ctrl-C as a pop returned lost it, a second row was written
            jrun.no_undo_done(position)  # and the journal refused: attack53 F1; a Ctrl-C
            del self.intents[step]  # in the write: kept for the next)
        else:
            self.settled[step] = (position, False)  # (so if a Ctrl-C cuts the write)
            del self.intents[step]
            self.settled[step] = (position, jrun.confirm(position))

    def durably(self, write: Callable[..., None], *args: Any) -> bool:
        """A write during the rollback: if it fails, the undos still run in memory (False)."""
        try:
            write(*args)
            self.unrecorded.clear()  # (written: the writes kept went with it)
            self.unsure.clear()
        except TakenOver:
            self.jrun = None  # another process holds the saga now: stop, write nothing
            raise  # (the machine ends the rollback there: no other undo runs)
        except Exception as exc:  # kept, and written with the next write (a disk full for a
            self.went_on(exc)  # moment): the journal tells the true story once it can
            return False  # (attack23's F6: dropped, recover reran every undo and reported
        return True  # a step whose registration it lost leaked)

    def went_on(self, exc: Exception, what: str = "write") -> None:
        """The journal failed during the rollback (a write, or the read of its claim before
        a retry: attack263 F1, that cut the rollback, its note "the journal keeps them" of
        an undo never written): the undos go on in memory, said once."""
        if not self.failed:
            self.failed = True
            self.m.note(
                EventKind.JOURNAL_FAILED,
                f"journal {what} failed ({describe(exc)}); the rollback went on in memory, "
                "its writes kept for the next (until one succeeds, the journal shows the "
                "saga unfinished)",
            )

    def tried(
        self, write: Callable[[], None], attempts: int = ATTEMPTS, what: str | None = None
    ) -> list[str]:
        """Call ``write`` until it succeeds, ``attempts`` times at most (a busy file, a
        moment's I/O error): the errors of the attempts that failed (``attempts`` of them if
        none succeeded). Written after a failure, a note says so (``what`` was written at
        attempt N). Taken over: raised at once, this run writes nothing more."""
        errors: list[str] = []
        while len(errors) < attempts:
            try:
                write()
            except TakenOver:
                self.jrun = None  # another process holds the saga: it undoes, not us
                raise
            except Exception as exc:
                errors.append(describe(exc))
            else:
                if errors and what is not None:
                    self.m.notes = [
                        *self.m.notes,
                        f"journal write failed ({errors[0]}); {what} was written at "
                        f"attempt {len(errors) + 1}",
                    ]
                break
        return errors

    def caught(self) -> list[int]:
        """As the run commits, the rows of the steps that may have had their effect and did
        not complete (an error the block caught after it): ``leaked`` in the outcome, so in
        the journal too, with the commit (attack36 F4: the journal said nothing of them)."""
        m, rows = self.m, []
        doubt = [s for s in m.seen if s not in m.completed and (s in m.effected or s in m.leaked)]
        for step in doubt:
            if step in self.intents:
                rows.append(self.intents.pop(step))
            else:  # (its undo logged before it: never run now)
                rows += [e.position for e in m.log if e.step == step and e.position]
        return rows

    def commit(self, event: Event, leaked: Sequence[int] = (), attempts: int = ATTEMPTS) -> None:
        """Record the commit (and its event) in one write, tried ``attempts`` times (a busy
        file, a moment's I/O error). If it cannot be written, the run is not committed: the
        journal shows it unfinished, and ``recover`` would undo it, so the process rolls it
        back now instead of saying ``committed`` (CommitNotRecorded, to the driver)."""
        assert self.jrun is not None
        errors = self.tried(partial(self.jrun.commit, event, leaked), attempts, "the commit")
        if len(errors) < attempts:
            self.m.commit_written = True  # final: a Ctrl-C from here on undoes nothing (F1)
            return
        then = (  # (past its pivot nothing is undone: halted for a person, attack44 F4)
            "is halted for a person (its irreversible step happened: nothing is undone; recover "
            "leaves it so)"
            if self.m.pivot_done
            else "is rolled back (recover undoes again what this process could not record)"
        )
        raise CommitNotRecorded(
            f"every step was done, but the journal could not record the commit "
            f"({attempts} attempts: {errors[-1]}); the saga is not committed and {then}"
        )

    def end(self, error: BaseException | None) -> None:
        """The run ended: its last batch (``journal_end``; a rollback's was written at its
        end event already), or, after a Ctrl-C, what it leaves to ``recover``, said."""
        journal_end.end(self, error)
