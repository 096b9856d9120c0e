"""recover's writes after an interrupt, or after a write that ran out of its wait (attack63
F1-F3): another process holds the journal's lock partway through a recover.

F1: after a Ctrl-C in a lock wait, the write of what ran and the claims' release each
waited the whole ``--wait`` again (a Ctrl-C ignored for 2 x ``--wait``). F2: the line then
said "what it undid is recorded" when that write had failed. F3: a wait that ran out took
3 x ``--wait``, and its line did not say another process held the lock. Now those writes
are tried once (the claims' release, after no interrupt, waits: attack66 F2), the line says
what will run again, and the claims left are taken over by the next recover once their
process has ended.
"""

import sqlite3

import pytest
from conftest import dead_pid
from test_cli_exits import _crashed

from rollback_lessons.cli import main
from rollback_lessons.durable import recovery
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

CALLS: list[str] = []
HOLDER: list[sqlite3.Connection] = []
PATH: list[str] = []
registry = Registry()  # (importable by name: ``--registry test_recover_cut_writes``)


def undo(step: str, idempotency_key: str | None = None) -> None:
    """The undo; as the first one runs, another process takes the journal's write lock."""
    CALLS.append(step)
    if len(CALLS) == 1:
        holder = sqlite3.connect(PATH[0], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        HOLDER.append(holder)


registry.add("exits.undo", undo)


@pytest.fixture
def held(tmp_path, monkeypatch):
    """A crashed saga (undos c, b, a pending), and the wait of each journal write made."""
    path = _crashed(tmp_path)
    PATH[:], HOLDER[:], CALLS[:] = [str(path)], [], []
    waits: list[float] = []
    real = Journal.write

    def write(self, statements, **kw):  # type: ignore[no-untyped-def]
        waits.append(self._con.wait)
        return real(self, statements, **kw)

    monkeypatch.setattr(Journal, "write", write)
    yield path, waits
    for holder in HOLDER:
        holder.rollback()


def _finished_by_the_next_recover(path) -> None:
    """The recover that was cut has ended (its claim a dead process's): the next takes the
    saga over and finishes it; the undo whose record was not written runs again."""
    HOLDER.pop().rollback()
    with Journal(path) as journal:
        assert journal.saga("s").claim_pid is not None  # (its claim was left)
        journal.write([("UPDATE sagas SET claim_pid = ?, claim_started = NULL", (dead_pid(),))])
        [done] = recover(journal, registry).recovered
    assert str(done.status) == "rolled_back" and CALLS == ["c", "c", "b", "a"]


def test_a_ctrl_c_in_a_lock_wait_mid_recover_tries_its_last_writes_once(held, monkeypatch, capsys):
    path, waits = held

    def undo_ran(self, run):  # (the Ctrl-C heard in the wait of the undo's write)
        raise KeyboardInterrupt

    monkeypatch.setattr(recovery.Writer, "undo_ran", undo_ran)
    args = ["recover", str(path), "--registry", "test_recover_cut_writes", "--wait", "2"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "recover interrupted (Ctrl-C); the undos it ran since its last write are not " in err
    assert "will run again next time (same idempotency key)" in err
    assert "what it undid is recorded" not in err
    assert CALLS == ["c"] and waits[-2:] == [0.0, 0.0], waits  # (before: 2 s each)
    monkeypatch.undo()
    _finished_by_the_next_recover(path)


def test_a_wait_that_runs_out_mid_recover_names_the_lock_and_waits_once(held, capsys):
    path, waits = held
    args = ["recover", str(path), "--registry", "test_recover_cut_writes", "--wait", "0.5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert (
        "locked'); another connection holds it (another process's, or one its registry "
        "opened); waited 0.5 s; a longer --wait waits more)"
    ) in err
    assert "the undos it ran since its last write will run again next time" in err
    # (before: the whole wait, three times; the write of what ran tried once; the claims'
    # release waits, no interrupt: a process that lives on gives them back, attack66 F2)
    assert waits[-3:] == [0.5, 0.0, 0.5], waits
    _finished_by_the_next_recover(path)
