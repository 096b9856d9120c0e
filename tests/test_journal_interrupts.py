"""A Ctrl-C at the instants of a journal write (issue 25, fourth attacker): Python raises it
as a call returns, so after BEGIN took the write lock, or after COMMIT wrote. Simulated at
every write of a failing saga (the n-th BEGIN or COMMIT returns, then KeyboardInterrupt)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.graph import Parallel
from rollback_lessons.saga import Saga, Step

WORLD: list[str] = []
KEYS: set[str] = set()
REGISTRY = Registry()


def _undo(name: str, idempotency_key: str | None = None) -> None:
    if idempotency_key in KEYS:  # idempotent, as a journaled undo must be (lesson 07)
        return
    KEYS.add(idempotency_key or "")
    WORLD.append(f"undo {name}")


UNDO = REGISTRY.add("undo", _undo)


def _act(name: str):
    return lambda state: WORLD.append(f"do {name}")


def _boom(state) -> None:
    raise RuntimeError("card declined")


class _CtrlC:
    """The journal's connection, raising KeyboardInterrupt as its n-th ``sql`` returns."""

    def __init__(self, con: sqlite3.Connection, sql: str, n: int) -> None:
        self.con, self.sql, self.n, self.count = con, sql, n, 0

    def execute(self, sql: str, *args):
        done = self.con.execute(sql, *args)
        if sql == self.sql:
            self.count += 1
            if self.count == self.n:
                raise KeyboardInterrupt
        return done

    def __getattr__(self, name: str):
        return getattr(self.con, name)


def _trial(
    tmp: Path, sql: str, n: int, commits: bool, asked: bool = False, parallel: bool = False
) -> tuple[bool, bool, Counter, str] | None:
    WORLD.clear()
    KEYS.clear()
    journal = Journal(tmp / "j.db")
    wrapped = _CtrlC(journal._con, sql, n)
    journal._con = wrapped  # type: ignore[assignment]
    steps = [Step(x, _act(x), UNDO.bind(name=x)) for x in "abc"]
    if parallel:
        steps = [steps[0], Parallel(steps[1], steps[2])]
    saga = Saga(steps if commits else [*steps, Step("d", _boom)])
    reraised = False
    try:  # (a cancel function: each step's undo is written as it returns, before it is asked)
        saga.run({}, journal=journal, cancel=(lambda: False) if asked else None)
    except KeyboardInterrupt:
        reraised = True
    if wrapped.count < n:
        journal._con = wrapped.con
        journal.close()
        return None  # the run made fewer such calls
    left_open = wrapped.con.in_transaction
    journal._con = wrapped.con
    journal.close()
    con = sqlite3.connect(tmp / "j.db")
    status = con.execute("SELECT status FROM sagas").fetchone()[0]
    twice = "SELECT step FROM undos GROUP BY step HAVING COUNT(*) > 1"  # (one row a step)
    assert con.execute(twice).fetchall() == [], f"{sql} #{n}: an undo logged twice"
    con.execute("UPDATE sagas SET owner_pid = 999999")  # the process is gone
    con.commit()
    con.close()
    with Journal(tmp / "j.db") as again:
        recover(again, REGISTRY)
    done = Counter(WORLD)
    return reraised, left_open, done, status


@pytest.mark.parametrize(
    "asked, parallel", [(False, False), (True, False), (True, True)],
    ids=["", "cancel", "cancel-parallel"],
)  # fmt: skip
@pytest.mark.parametrize("commits", [False, True], ids=["fails", "commits"])
@pytest.mark.parametrize("sql", ["BEGIN IMMEDIATE", "COMMIT"])
def test_a_ctrl_c_as_a_journal_call_returns_is_raised_and_nothing_runs_twice(
    tmp_path, sql, commits, asked, parallel
):
    """Before: a Ctrl-C as BEGIN returned left the transaction open (every later write
    failed, the Ctrl-C swallowed by a confirm); one as COMMIT returned put the written
    statements back to be written again (UNIQUE failures, the journal left running, every
    undo run twice by recover); a commit's write raised ValueError over the Ctrl-C."""
    for n in range(1, 16):
        trial = tmp_path / f"{n}"
        trial.mkdir()
        found = _trial(trial, sql, n, commits, asked, parallel)
        if found is None:
            break
        raised, left_open, done, status = found
        assert raised, f"{sql} #{n}: the Ctrl-C was swallowed"
        assert not left_open, f"{sql} #{n}: the write transaction was left open"
        twice = [k for k, v in done.items() if v > 1]
        assert not twice, f"{sql} #{n}: {twice} ran twice: {WORLD}"
        undone = {k.split()[1] for k in done if k.startswith("undo")}
        did = {k.split()[1] for k in done if k.startswith("do")}
        if status == "committed":
            assert not undone, f"{sql} #{n}: committed, yet {undone} undone"
        else:
            assert undone == did, f"{sql} #{n}: {status}, did {did}, undid {undone}"
