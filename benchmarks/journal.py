"""What durability costs: the journal per step against a bare SQLite commit, and recovery."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation

from .common import table

STEP_TARGET = 1.2
RECOVERY_TARGET_S = 1.0
registry = Registry()


@compensation("bench.noop", registry)
def noop_undo(n: int) -> None:
    pass


def bare_commits(path: Path, n: int) -> float:
    """Seconds per step for an insert and a commit at the journal's durability."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE log (saga TEXT, step INTEGER, undo TEXT)")
    start = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO log VALUES (?, ?, ?)", ("s", i, json.dumps({"n": i})))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed / n


def journal_steps(path: Path, sagas: int, steps: int) -> float:
    """Seconds per step for sagas of no-op steps, each logging its undo in the journal."""
    saga = Saga(
        [Step(f"s{i}", lambda s: None, noop_undo.bind(n=i)) for i in range(steps)], name="bench"
    )
    with Journal(path) as journal:
        start = time.perf_counter()
        for _ in range(sagas):
            saga.run({}, journal=journal)
        elapsed = time.perf_counter() - start
    return elapsed / (sagas * steps)


def recovery_seconds(path: Path, count: int) -> float:
    """Seconds to recover ``count`` sagas left running by a dead process (2 undos each)."""
    with Journal(path) as journal:
        statements = []
        for n in range(count):
            saga = f"dead-{n}"
            statements.append(
                (
                    "INSERT INTO sagas (id, name, status, owner_pid, owner_host, started)"
                    " VALUES (?, 'bench', 'running', 99999, 'elsewhere', 0)",
                    (saga,),
                )
            )
            for position in (1, 2):
                statements.append(
                    (
                        "INSERT INTO undos (saga_id, position, step, compensation, args)"
                        " VALUES (?, ?, ?, 'bench.noop', ?)",
                        (saga, position, f"s{position}", json.dumps({"n": position})),
                    )
                )
        journal.write(statements)
        start = time.perf_counter()
        reports = recover(journal, registry, force=True)
        elapsed = time.perf_counter() - start
        assert len(reports) == count and not journal.unfinished()
    return elapsed


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # Alternate the rounds so that both see the same disk and the same load; keep the
        # best of each (fsync times on a shared machine vary by tens of percent).
        bares, steps, shorts = [], [], []
        for i in range(7):
            bares.append(bare_commits(base / f"bare{i}.db", 300))
            steps.append(journal_steps(base / f"journal{i}.db", 30, 10))
            shorts.append(journal_steps(base / f"short{i}.db", 60, 3))
        bare, per_step, short = min(bares), min(steps), min(shorts)
        recovery = recovery_seconds(base / "recover.db", 10_000)
    ratio = per_step / bare
    rows = [
        (
            "journal per step, sagas of 10 steps / bare insert+commit (WAL, FULL)",
            f"{per_step * 1e3:.3f} / {bare * 1e3:.3f} ms = {ratio:.2f}x",
            f"<= {STEP_TARGET}x",
            "meets" if ratio <= STEP_TARGET else "misses",
        ),
        (
            "the same, sagas of 3 steps (the saga's end is one more commit)",
            f"{short * 1e3:.3f} / {bare * 1e3:.3f} ms = {short / bare:.2f}x",
            "-",
            "",
        ),
        (
            "recover 10,000 unfinished sagas (2 undos each)",
            f"{recovery:.2f} s",
            f"< {RECOVERY_TARGET_S} s",
            "meets" if recovery < RECOVERY_TARGET_S else "misses",
        ),
    ]
    print("Journal (on this machine's disk, in a temporary directory)")
    print(table(rows, ("measure", "result", "target", "verdict")))
