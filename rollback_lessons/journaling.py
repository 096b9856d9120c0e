"""The engine's side of a journal: it writes down what the saga machine records, through the
``UndoJournalRun`` port (``durable.Journal`` is the one implementation), before anything
relies on it.

Every write follows an event of the machine, so no rule is told twice: an undo is written
when the machine logs it (``undo_registered``), written as an *intent* when its step starts
and the undo is to be logged only after it (so a crash in between is reported as leaked, not
lost), and marked done or dead when the machine says so. A write that fails going forward is
the caller's error; during the rollback it becomes a note and the undos go on in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from .errors import TakenOver
from .events import Event, EventKind, describe
from .machine import Machine
from .ports import UndoJournalRun
from .rules import Kind, NamedUndo


class JournalWriter:
    """Writes one run down as its machine goes; ``watch`` sees each event."""

    def __init__(self, jrun: UndoJournalRun, machine: Machine) -> None:
        self.jrun: UndoJournalRun | None = jrun
        self.m = machine
        self.named: dict[str, NamedUndo] = {}  # each step's undo, to write down by name
        self.intents: dict[str, int] = {}  # positions of undos to log after their step

    def watch(
        self, seq: int, kind: EventKind, step: str | None, details: Mapping[str, Any]
    ) -> None:
        jrun, m = self.jrun, self.m
        if jrun is None:
            return
        jrun.event(Event(seq, kind, step, details))
        if kind is EventKind.STEP_START:
            assert step is not None
            if m.kinds[step] == Kind.PIVOT:
                jrun.pivot(step, "started")  # durable: recover never undoes across it
            elif details["register"] == "after":  # a real undo once the step succeeded
                semantic = bool(m.spec and m.spec.semantic)
                self.intents[step] = jrun.register(step, self.named[step], "intent", semantic)
        elif kind is EventKind.UNDO_REGISTERED:
            assert step is not None
            entry = m.log[-1]
            if step in self.intents:
                entry.position = self.intents.pop(step)
                jrun.confirm(entry.position)
            else:  # durable before anything relies on it
                entry.position = jrun.register(step, self.named[step], "pending", entry.semantic)
        elif kind is EventKind.STEP_FAILED:
            if step in self.intents and not details.get("after_effect"):
                jrun.abandon(self.intents.pop(step))  # nothing happened: nothing to undo
            elif step is not None and m.kinds.get(step) == Kind.PIVOT and m.doubt != step:
                jrun.pivot(step, "refused")  # before any effect: recover may roll back
        elif kind is EventKind.STEP_DONE:
            if step is not None and m.kinds.get(step) == Kind.PIVOT:
                jrun.pivot(step, "done")
        elif kind is EventKind.ROLLBACK_START:  # every undo logged is durable before one runs
            self.durably(partial(jrun.status, flush=True), "rolling_back")
        elif kind is EventKind.UNDO_DONE:  # each attempt is counted once (a fix by hand: none)
            assert m.entry is not None
            self.durably(jrun.undo_done, m.entry.position, 0 if details.get("by_hand") else 1)
        elif kind is EventKind.UNDO_FAILED and details["then"] == "dead_letter":
            assert m.entry is not None
            self.durably(jrun.undo_dead, m.entry.position, 1, details["error"])
        elif kind is EventKind.UNDO_FAILED:  # retried, or a person asked: counted now
            assert m.entry is not None
            self.durably(jrun.undo_retried, m.entry.position)

    def durably(self, write: Callable[..., None], *args: Any) -> None:
        """A write during the rollback: if it fails, the undos still run in memory."""
        try:
            write(*args)
        except TakenOver:
            self.jrun = None  # another process holds the saga now: stop, write nothing
            raise  # (the machine ends the rollback there: no other undo runs)
        except Exception as exc:
            self.jrun = None  # the journal keeps the saga unfinished: recover finishes it
            self.m.note(
                EventKind.JOURNAL_FAILED,
                f"journal write failed ({describe(exc)}); the rollback went on in memory, "
                "and the journal still shows the saga unfinished",
            )

    def end(self, error: BaseException | None) -> None:
        """The run ended: its status, unless a Ctrl-C left it for ``recover`` to finish."""
        if self.jrun is None or self.m.interruption is not None:
            return
        if isinstance(self.m.error, TakenOver):
            return  # the new holder ends it
        status = str(self.m.status())
        if error is not None:
            self.durably(self.jrun.end, status, error)
            return
        try:  # a commit: every step is done, whatever the journal can say
            self.jrun.end(status, None)
        except TakenOver as exc:
            self.jrun = None
            self.m.note(
                EventKind.JOURNAL_FAILED,
                f"every step is done, but {describe(exc)}: that process may undo them",
            )
        except Exception as exc:
            self._commit_again(exc)

    def _commit_again(self, exc: Exception) -> None:
        """The commit's write failed: once more (a busy file, a moment's I/O error), then
        a note; the run committed either way, and its outcome says so."""
        assert self.jrun is not None
        try:
            self.jrun.flush()
        except Exception as again:
            self.jrun = None
            self.m.note(
                EventKind.JOURNAL_FAILED,
                f"journal write failed ({describe(again)}): every step is done, but the journal "
                "could not record the commit and still shows the saga unfinished; do not run "
                "recover on it (it would undo a committed saga) until the journal is writable "
                "and the saga marked committed",
            )
        else:
            self.m.note(
                EventKind.JOURNAL_FAILED,
                f"journal write failed ({describe(exc)}); written at the second attempt",
            )
