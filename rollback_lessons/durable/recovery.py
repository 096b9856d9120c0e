"""Finish, after a crash, the rollback of every saga a journal shows unfinished.

An undo runs only by its registered name, with the arguments the journal holds and its
idempotency key, so one that ran just before a crash can safely run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..events import Event, EventKind, describe
from .journal import Journal, JournalRun, SagaRecord
from .registry import Registry, call_compensation, default_registry


@dataclass(frozen=True)
class Recovery:
    """What ``recover`` did for one saga."""

    saga_id: str
    name: str
    status: str
    undone: tuple[str, ...]
    dead_letters: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        dead = "; ".join(f"{step}: {why}" for step, why in self.dead_letters) or "-"
        undone = ", ".join(self.undone) or "-"
        return f"{self.saga_id} ({self.name}): {self.status}; undone {undone}; dead letters {dead}"


class _Resumed:
    """Continues a saga's event numbering where the crashed process left it."""

    def __init__(self, journal: Journal, saga: SagaRecord, last_seq: int) -> None:
        self.run = JournalRun(journal, saga.id, saga.name, new=False)
        self.seq = last_seq

    def emit(self, kind: str, step: str | None = None, **details: Any) -> None:
        self.seq += 1
        self.run.event(Event(self.seq, kind, step, details))


def recover(
    journal: Journal,
    registry: Registry | None = None,
    *,
    force: bool = False,
    batch: int = 500,
) -> list[Recovery]:
    """Finish the rollback of every saga that did not end; returns what was done.

    Each undo not yet done runs once, newest first; done ones are skipped. Compensations
    are looked up by name in ``registry`` only: an unknown name becomes a dead letter and
    nothing is imported or run. Sagas whose process is still alive are left alone unless
    ``force``. Progress is committed every ``batch`` undos: an undo that ran but was not
    yet marked done runs again after a new crash, which its idempotency key makes harmless.
    """
    registry = registry if registry is not None else default_registry
    reports = []
    since_commit: list[JournalRun] = []

    def commit(done: bool = False) -> None:
        if done or len(since_commit) >= batch:
            journal.write([s for run in since_commit for s in run.take()])
            since_commit.clear()

    pending_of = journal.pending_undos()
    last_seq = journal.last_seqs()
    for saga in journal.unfinished():
        if not force and saga.owner_alive():
            continue
        resumed = _Resumed(journal, saga, last_seq.get(saga.id, 0))
        run = resumed.run
        pending = pending_of.get(saga.id, [])
        run.status("rolling_back")
        resumed.emit(
            EventKind.ROLLBACK_START, undos=len(pending), recovered=True, policy="continue"
        )
        undone, dead = [], []
        for undo in reversed(pending):
            resumed.emit(EventKind.UNDO, undo.step, attempt=undo.attempts + 1)
            try:
                if undo.compensation not in registry:
                    raise LookupError(
                        f"no compensation named {undo.compensation!r} in the registry; "
                        "it was not imported or run"
                    )
                fn = registry.resolve(undo.compensation)
                call_compensation(fn, undo.args, undo.key)
            except Exception as exc:
                reason = describe(exc)
                resumed.emit(
                    EventKind.UNDO_FAILED,
                    undo.step,
                    attempt=undo.attempts + 1,
                    error=reason,
                    then="dead_letter",
                )
                run.undo_dead(undo.position, 1, reason, flush=False)
                dead.append((undo.step, reason))
            else:
                resumed.emit(EventKind.UNDO_DONE, undo.step, attempt=undo.attempts + 1)
                run.undo_done(undo.position, 1, flush=False)
                undone.append(undo.step)
        earlier_dead = saga.dead > 0
        status = "rollback_incomplete" if dead or earlier_dead else "rolled_back"
        resumed.emit(
            EventKind.ROLLBACK_DONE, status=status, undone=len(undone), dead_letters=len(dead)
        )
        run.add(
            "UPDATE sagas SET status = ?, ended = ?, error = COALESCE(error, ?) WHERE id = ?",
            (status, time.time(), "recovered after a crash", saga.id),
        )
        since_commit.append(run)
        commit()
        reports.append(Recovery(saga.id, saga.name, status, tuple(undone), tuple(dead)))
    commit(done=True)
    return reports
