"""A second Ctrl-C after a first that came as a step started (attack58 F3): the first is
handled, "b was not run", and the step's intent row must say so in the journal whatever the
second cuts (the rollback, the run's end), so ``recover`` never reports b leaked, nor asks a
person about a pivot nobody called."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rollback_lessons import _guards
from rollback_lessons.durable import records
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.machine import Machine
from rollback_lessons.saga import Saga, Step

WORLD: list[str] = []
REGISTRY = Registry()
UNDO = REGISTRY.add("undo", lambda name, idempotency_key=None: WORLD.append(f"undo {name}"))


def _act(name: str):
    return lambda state: WORLD.append(f"do {name}")


SECOND = {  # where the second Ctrl-C lands: (object, attribute)
    "in-not-run": (Machine, "logged"),  # (inside the machine's not_run, as it withdraws)
    "before-rollback": (_guards, "committed"),  # (the driver's rule, before the rollback)
    "at-the-end": (_guards, "left_notes"),  # (the run's end, before its last write)
}


@pytest.mark.parametrize("second", list(SECOND))
@pytest.mark.parametrize("pivot", [False, True], ids=["step", "pivot"])
def test_a_second_ctrl_c_leaves_a_step_never_called_not_run_in_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: str, pivot: bool
) -> None:
    """Before: the intent row was written not run only by the run's last write; a second
    Ctrl-C before it (32 instants) left it, and recover said "leaked (may have happened, no
    undo logged) b" (for a pivot: halted, "check whether 'b' happened")."""
    WORLD.clear()
    cuts: list[str] = []
    write = "no_undo" if pivot else "register"
    real_write = getattr(records.JournalRun, write)

    def first(self, step, *args, **kwargs):  # b's intent row written: then a Ctrl-C
        done = real_write(self, step, *args, **kwargs)
        if step == "b" and not cuts:
            cuts.append("first")
            raise KeyboardInterrupt
        return done

    owner, name = SECOND[second]
    real_second = getattr(owner, name)

    def then(*args, **kwargs):
        done = real_second(*args, **kwargs)
        if cuts == ["first"]:
            cuts.append("second")
            raise KeyboardInterrupt
        return done

    monkeypatch.setattr(records.JournalRun, write, first)
    monkeypatch.setattr(owner, name, then)
    b = (Step("b", _act("b"), kind="pivot") if pivot else
         Step("b", _act("b"), UNDO.bind(name="b")))  # fmt: skip
    c = Step("c", _act("c"), kind="retriable")
    saga = Saga([Step("a", _act("a"), UNDO.bind(name="a")), b, c], name="s")
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(KeyboardInterrupt):
        saga.run({}, journal=journal, run_id="r1")
    monkeypatch.undo()
    journal.close()
    assert cuts == ["first", "second"]
    assert "do b" not in WORLD
    con = sqlite3.connect(tmp_path / "j.db")
    con.execute("UPDATE sagas SET owner_pid = 999999")  # the process is gone
    con.commit()
    con.close()
    with Journal(tmp_path / "j.db") as again:
        report = recover(again, REGISTRY)
        status = again.saga("r1").status
        assert again.leaked("r1") == [], str(report)
    assert status == "rolled_back", str(report)
    assert WORLD.count("undo a") == 1 and "do b" not in WORLD and "undo b" not in WORLD
