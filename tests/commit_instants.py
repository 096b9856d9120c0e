"""A KeyboardInterrupt at the n-th instant CPython 3.11 hears a Ctrl-C at in the package's
code, from the last step's return to the run's end, for every n, with a journal (attack70
F1, F4): the journal says committed if and only if the run says so (its outcome, or the
KeyboardInterrupt's note) and nothing was undone. The instants are kbi_instants.py's (a
function's entry, right after a call returns, a backward jump), in any file of the package.
Run by test_commit_final.py in a fresh interpreter (kbi_instants.py says why).

usage: commit_instants.py DRIVER EVERY OFFSET  (DRIVER: run|graph|arun|rb|arb). Prints one JSON
line: the count of instants, the ones tried, and the problems found."""

from __future__ import annotations

import asyncio
import json
import reprlib
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import kbi_instants

import rollback_lessons
from rollback_lessons import AsyncRollback, Rollback, Saga, Status, Step
from rollback_lessons._guards import AFTER_COMMIT
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

PACKAGE = str(Path(rollback_lessons.__file__).parent)
world: list[str] = []
registry = Registry()
ENTRY = {"rb": "__exit__", "arb": "__aexit__"}.get(sys.argv[1] if len(sys.argv) > 1 else "")


@compensation("commit_instants_undo", registry)
def undo(k: str, idempotency_key: str | None = None) -> None:
    world.append("undo " + k)


class Tracer(kbi_instants.Tracer):
    """Counts the instants once ``armed`` (the last step's action ran), in any file of the
    package; raises at the n-th."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.armed = False

    def arm(self) -> None:
        """From here on (the last step's action runs): its callers in the package traced."""
        self.armed = True
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename.startswith(PACKAGE):
                frame.f_trace, frame.f_trace_opcodes = self.local, True
            frame = frame.f_back  # type: ignore[assignment]

    def wanted(self, frame: FrameType) -> bool:
        if not self.armed or not frame.f_code.co_filename.startswith(PACKAGE):
            return False
        # (an outcome's repr, asyncio's own, as asyncio.run ends: not the run's)
        return frame.f_back is None or frame.f_back.f_code.co_filename != reprlib.__file__

    def where(self, frame: FrameType, kind: str) -> Any:
        return (Path(frame.f_code.co_filename).name, frame.f_code.co_name, frame.f_lineno, kind)

    def _tick(self, frame: FrameType, kind: str) -> None:
        if self.armed:
            super()._tick(frame, kind)


def act(k: str, tracer: Tracer, last: bool) -> Any:
    def action(*_: Any) -> None:
        world.append(k)
        if last and not tracer.armed:
            tracer.arm()

    return action


def trial(driver: str, tracer: Tracer, path: str) -> tuple[Any, BaseException | None]:
    """One run on ``driver``: its outcome (None if it raised with none), what it raised."""
    world.clear()
    names = ("a", "b", "c")
    outcome, raised = None, None
    journal = Journal(path)
    rb: Any = None
    sys.settrace(tracer.glob)
    try:
        if driver in ("run", "arun", "graph"):
            saga = Saga(
                [Step(k, act(k, tracer, k == "c"), undo.bind(k=k)) for k in names], name="ci"
            )
            if driver == "run":
                outcome = saga.run({}, journal=journal, run_id="r")
            elif driver == "graph":  # (its steps launched one at a time: ``completion=``)
                outcome = saga.run({}, journal=journal, run_id="r", completion=list(names))
            else:
                outcome = asyncio.run(saga.arun({}, journal=journal, run_id="r"))
        elif driver == "rb":
            rb = Rollback(journal=journal, run_id="r")
            with rb:
                for k in names:
                    rb.do(k, act(k, tracer, k == "c"), undo.bind(k=k))
        else:
            rb = AsyncRollback(journal=journal, run_id="r")

            async def body() -> None:
                async with rb:
                    for k in names:
                        await rb.do(k, act(k, tracer, k == "c"), undo.bind(k=k))

            asyncio.run(body())
    except BaseException as exc:
        raised = exc
    finally:
        sys.settrace(None)
    if rb is not None:
        outcome = rb.outcome
    journal.close()
    return outcome, raised


def check(driver: str, n: int, folder: str) -> tuple[Any, list[str]] | None:
    """Trial ``n``: None once n is past the last instant; else where it fired and problems."""
    tracer = Tracer(n)
    path = f"{folder}/j{n}.db"
    outcome, raised = trial(driver, tracer, path)
    if tracer.fired is None:
        return None
    with Journal(path) as journal:
        status = journal.saga("r").status
    bad: list[str] = []
    undone = [w for w in world if w.startswith("undo ")]
    if tracer.fired[1:] == (ENTRY, tracer.fired[2], "entry") and tracer.fired[0] == "rollback.py":
        if status != "running" or undone or outcome is not None:  # Python's own (README)
            bad.append(f"at the block's end's entry: journal {status}, undone {undone}")
        return tracer.fired, bad
    if not isinstance(raised, KeyboardInterrupt):
        bad.append(f"the Ctrl-C was not re-raised: {raised!r}")
    notes = getattr(raised, "__notes__", ())
    said = (outcome is not None and outcome.status is Status.COMMITTED) or AFTER_COMMIT in notes
    if (status == "committed") != said or said == bool(undone):
        bad.append(f"journal {status}, said committed: {said}, undone {undone}; {notes}")
    if said and AFTER_COMMIT not in notes:
        bad.append("committed, and the Ctrl-C does not say so")
    return tracer.fired, bad


def main() -> None:
    driver, every, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # (no disk syncs: twice as quick)
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        trial(driver, Tracer(0), f"{folder}/warm.db")  # (caches filled: each run the same)
        counter = Tracer(0)
        trial(driver, counter, f"{folder}/count.db")
        total = counter.count
        tried, problems = [], []
        for n in range(1 + offset, total + 1, every):
            result = check(driver, n, folder)
            if result is None and n > total - 10:  # (asyncio.run's end: a few more or less)
                break
            assert result is not None, f"instant {n} of {total} never came"
            fired, bad = result
            tried.append(n)
            problems += [f"n={n} {fired}: {b}" for b in bad]
    print(json.dumps({"total": total, "tried": tried, "problems": problems}))


if __name__ == "__main__":
    main()
