"""A KeyboardInterrupt (or SystemExit) at the n-th instant of records.py's code while the
journal records the commit (``JournalRun.commit`` and what it calls there: ``_flush_with``,
``event``, ``flush``), for every n: each line, each entry, and each instant CPython hears a
Ctrl-C at (kbi_instants.py's: right after a call returns, a backward jump). Then, as if the
process had crashed after each later write, and once it ended: ``recover`` on that journal
(attack72 F2, F3). Each effect is then undone exactly once, or the saga is committed and
nothing was undone; and the run says committed if and only if the journal does. A commit's
statements left pending went with the rollback's writes: its event's seq reused (each write
failed, recover undid all again), or ``committed`` written mid-rollback (recover undid none).
Run by test_commit_pending.py in a fresh interpreter (kbi_instants.py says why).

usage: pending_instants.py DRIVER EXC [AT]  (DRIVER: run|graph|arun|rb|arb; EXC: kbi|exit;
AT: event|end, one trial only, at the first line after the commit's event, or its status, was
queued: attack72's instants; or second|full, every instant after the commit's write failed,
``TWICE``). Prints one JSON line: the count of instants, the ones tried, and
the problems found."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import kbi_instants
from conftest import dead_pid

from rollback_lessons import AsyncRollback, Rollback, Saga, Status, Step
from rollback_lessons._guards import AFTER_COMMIT
from rollback_lessons.durable import records
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation

NAMES = ("a", "b", "c")
world: list[str] = []
registry = Registry()
snapshots: list[tuple[str, list[str]]] = []  # (a copy of the journal after a write, the world)


@compensation("pending_instants_undo", registry)
def undo(k: str, idempotency_key: str | None = None) -> None:
    world.append("undo " + k)


class Tracer:
    """Counts the instants of records.py's frames while ``commit`` runs; raises at the n-th."""

    def __init__(self, n: int, exc: str, at: str = "") -> None:
        self.n, self.exc, self.at, self.count, self.fired = n, exc, at, 0, None
        self.depth = 0  # commit's frames on the stack
        self.armed = at not in TWICE  # (TWICE: counting once the commit's write failed)

    def glob(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != records.__file__:
            return None
        if frame.f_code is records.JournalRun.commit.__code__:
            self.depth += 1
        frame.f_trace_opcodes = True
        if self.depth and self.armed:
            self._tick(frame, "entry")
        return self.local

    def local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return" and frame.f_code is records.JournalRun.commit.__code__:
            self.depth -= 1
        elif self.depth and self.armed and event == "line" and self.at not in TWICE:
            self._tick(frame, "line")
        elif (
            self.depth
            and self.armed
            and event == "opcode"
            and frame.f_lasti in kbi_instants.instants(frame.f_code)
        ):
            self._tick(frame, "after a call or a jump")
        return self.local

    def _tick(self, frame: FrameType, kind: str) -> None:
        self.count += 1
        if self.count == self.n or (self.at and kind == "line" and queued(frame, self.at)):
            self.fired = (frame.f_code.co_name, frame.f_lineno, kind)
            sys.settrace(None)
            frame.f_trace = None
            if self.exc == "exit":
                raise SystemExit(143)
            raise KeyboardInterrupt(f"at {self.fired}")


TWICE = {"second": KeyboardInterrupt, "full": sqlite3.OperationalError}
"""The commit's write fails first (a Ctrl-C at its entry, or a full disk), then a Ctrl-C at
each instant CPython hears one at (no line: it never lands there) of what follows, its
clean-up (attack75 F2: a comprehension's start in it left the commit's statements pending)."""


def queued(frame: FrameType, at: str) -> bool:
    """The commit's ``at`` (its ``event``, or its ``end``: the saga's status) is pending in
    the frame's run: the first line of records.py after it was queued, before any write."""
    run = frame.f_locals.get("self")
    if not isinstance(run, records.JournalRun):
        return False
    if at == "end":
        return any("status = 'committed'" in sql for sql, _ in run._pending)
    return any(
        sql.startswith("INSERT INTO events") and p[2] == "committed" for sql, p in run._pending
    )


def snapshotting(folder: str, tracer: Tracer) -> Any:
    """``Journal.write``, copying the journal after each write once the tracer fired (a
    crash right after it), with the world as it was then."""
    real = Journal.write

    def write(self: Journal, *args: Any, **kwargs: Any) -> Any:
        if not tracer.armed and tracer.depth:  # (the commit's write: it fails first)
            tracer.armed = True
            raise TWICE[tracer.at]("database or disk is full")
        result = real(self, *args, **kwargs)
        if tracer.fired is not None:
            snapshots.append((copied(self.path, folder), list(world)))
        return result

    return write


NOT_A_COPY = ("UPDATE sagas SET writer = NULL", "DELETE FROM meta WHERE key LIKE 'writer %'")
"""What makes a copy of the moment a crash at that instant: the file with its -wal, whose
writers' marks go (``writers``); a copy of a journal its writer runs on holds its mark, and
is refused."""


def copied(path: str, folder: str) -> str:
    """A copy of the journal at ``path`` as its last commit left it, in a new file that
    holds it whole (no log beside it)."""
    copy = tempfile.mktemp(suffix=".db", dir=folder)
    source, target = sqlite3.connect(path), sqlite3.connect(copy)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
        for sql in NOT_A_COPY:
            target.execute(sql)
        target.commit()
    finally:
        source.close()
        target.close()
    return copy


def trial(driver: str, tracer: Tracer, path: str) -> tuple[Any, BaseException | None]:
    """One run on ``driver``: its outcome (None if it raised with none), what it raised."""
    world.clear()

    def act(k: str) -> Any:
        return lambda *_: world.append(k)

    outcome, raised, rb = None, None, None
    journal = Journal(path)
    steps = [Step(k, act(k), undo.bind(k=k)) for k in NAMES]
    sys.settrace(tracer.glob)
    try:
        if driver == "run":
            outcome = Saga(steps).run({}, journal=journal, run_id="r")
        elif driver == "graph":  # (its steps launched one at a time: ``completion=``)
            outcome = Saga(steps).run({}, journal=journal, run_id="r", completion=list(NAMES))
        elif driver == "arun":
            outcome = asyncio.run(Saga(steps).arun({}, journal=journal, run_id="r"))
        elif driver == "rb":
            rb = Rollback(journal=journal, run_id="r")
            with rb:
                for k in NAMES:
                    rb.do(k, act(k), undo.bind(k=k))
        else:
            rb = AsyncRollback(journal=journal, run_id="r")

            async def body() -> None:
                async with rb:
                    for k in NAMES:
                        await rb.do(k, act(k), undo.bind(k=k))

            asyncio.run(body())
    except BaseException as exc:
        raised = exc
    finally:
        sys.settrace(None)
    journal.close()
    return (rb.outcome if rb is not None else outcome), raised


def recovered(path: str, before: list[str], dead: int, folder: str) -> tuple[str, str, list[str]]:
    """``recover`` on a copy of the journal at ``path``, its process gone: the saga's
    status before and after, and the world (``before``, then what recover did)."""
    copy = copied(path, folder)
    world[:] = before
    with Journal(copy) as journal:
        found = journal.saga("r").status
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead,))])
        recover(journal, registry)
        status = journal.saga("r").status
    return found, status, list(world)


def judged(status: str, seen: list[str]) -> str | None:
    """What is wrong with ``seen``: None if committed with nothing undone, or rolled back
    with each effect undone exactly once."""
    undone = [w for w in seen if w.startswith("undo ")]
    if status == "committed" and not undone:
        return None
    if status == "rolled_back" and sorted(undone) == [f"undo {k}" for k in NAMES]:
        return None
    return f"journal {status}, world {seen}"


def check(
    driver: str, exc: str, n: int, folder: str, dead: int, at: str = ""
) -> tuple[Any, list[str]]:
    """Trial ``n`` (or ``at``): where it fired (None if it never did), and problems."""
    tracer = Tracer(n, exc, at)
    path = f"{folder}/j{n}.db"
    snapshots.clear()
    real = Journal.write
    Journal.write = snapshotting(folder, tracer)  # type: ignore[method-assign]
    try:
        outcome, raised = trial(driver, tracer, path)
    finally:
        Journal.write = real  # type: ignore[method-assign]
    if tracer.fired is None:
        return None, []
    bad: list[str] = []
    if not isinstance(raised, SystemExit if exc == "exit" else KeyboardInterrupt):
        bad.append(f"the interrupt was not re-raised: {raised!r}")
    notes = getattr(raised, "__notes__", ())
    after = AFTER_COMMIT.replace("Ctrl-C", "SystemExit" if exc == "exit" else "Ctrl-C")
    said = (outcome is not None and outcome.status is Status.COMMITTED) or after in notes
    ended, final = list(world), list(snapshots)
    for where, (copy, before) in [*((f"crash after write {i}", s) for i, s in enumerate(final)),
                                  ("the process ended", (path, ended))]:  # fmt: skip
        found, status, seen = recovered(copy, before, dead, folder)
        if (found == "committed") != said:  # (F3: written so by the rollback's first write)
            bad.append(f"{where}: the journal says {found}, the run said committed: {said}")
        wrong = judged(status, seen)
        if wrong:
            bad.append(f"{where}, then recover: {wrong}")
    return tracer.fired, bad


def main() -> None:
    driver, exc = sys.argv[1], sys.argv[2]
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # (no disk syncs: quicker)
    dead = dead_pid()
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        at = sys.argv[3] if len(sys.argv) > 3 else ""
        if at and at not in TWICE:  # (one instant, named)
            fired, bad = check(driver, exc, 0, folder, dead, sys.argv[3])
            assert fired is not None, f"the commit's {sys.argv[3]} was never queued"
            print(json.dumps({"total": 1, "tried": [fired], "problems": bad}))
            return
        trial(driver, Tracer(0, exc, at), f"{folder}/warm.db")  # (caches filled: the same)
        counter = Tracer(0, exc, at)
        real = Journal.write
        Journal.write = snapshotting(folder, counter)  # type: ignore[method-assign]
        try:
            trial(driver, counter, f"{folder}/count.db")
        finally:
            Journal.write = real  # type: ignore[method-assign]
        tried, problems = [], []
        for n in range(1, counter.count + 1):
            fired, bad = check(driver, exc, n, folder, dead, at)
            assert fired is not None, f"instant {n} of {counter.count} never came"
            tried.append(n)
            problems += [f"n={n} {fired}: {b}" for b in bad]
    said = {"total": counter.count, "tried": tried, "problems": problems}
    print(json.dumps({**said, "armed": counter.armed}))


if __name__ == "__main__":
    main()
