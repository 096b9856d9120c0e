"""attack66 F1, F2, F4: what a recover that stops midway writes and says, another process
holding the journal's lock.

F1: a second Ctrl-C (or SIGTERM) during the clean-up's single write attempt was raised in it:
the line said "what it undid is recorded", the undo not recorded. F2: a recover in a process
that lives on (a notebook, a service) stopped by a registry that fails, while another process
held the lock for a moment, tried its claims' release once: they stayed held until the
process ended, and the next recover could not take those sagas. F4: the line said the undos
"will run again" when the clean-up's try had written them.
"""

import signal
import sqlite3
import threading

import pytest
from conftest import dead_pid
from test_cli_exits import _crashed

from rollback_lessons.cli import main
from rollback_lessons.durable import recovery
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import RegistryFailed, recover
from rollback_lessons.durable.registry import Registry

CALLS: list[str] = []
HOLDER: list[sqlite3.Connection] = []
PATH: list[str] = []


def undo(step: str, idempotency_key: str | None = None) -> None:
    """The undo; as the first one runs, another process takes the journal's write lock."""
    CALLS.append(step)
    if len(CALLS) == 1 and "hold" in PATH:
        holder = sqlite3.connect(PATH[0], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        HOLDER.append(holder)


registry = Registry()  # (importable by name: ``--registry test_recover_cleanup_waits``)
registry.add("exits.undo", undo)


@pytest.fixture
def writes(tmp_path, monkeypatch):
    """A crashed saga (undos c, b, a pending); each journal write's wait, and ``before``
    (called with the wait before each write is tried)."""
    path = _crashed(tmp_path)
    PATH[:], HOLDER[:], CALLS[:] = [str(path), "hold"], [], []
    waits: list[float] = []
    before: list = []
    real = Journal.write

    def write(self, statements, **kw):  # type: ignore[no-untyped-def]
        waits.append(self._con.wait)
        for hook in before:
            hook(self._con.wait)
        return real(self, statements, **kw)

    monkeypatch.setattr(Journal, "write", write)
    yield path, waits, before
    for holder in HOLDER:
        holder.rollback()


def _args(path, wait: str) -> list[str]:
    return ["recover", str(path), "--registry", "test_recover_cleanup_waits", "--wait", wait]


def test_a_second_ctrl_c_in_the_cleanups_write_keeps_the_first_ones_line(
    writes, monkeypatch, capsys
):
    """F1: the Ctrl-C in the wait of an undo's write, then a second one (a real SIGINT) in
    the clean-up's one try: the line says the undo is not recorded, and names the saga left."""
    path, _, before = writes

    def undo_ran(self, run):  # (the first Ctrl-C, heard in the wait of the undo's write)
        raise KeyboardInterrupt

    def second(wait: float) -> None:
        if wait == 0.0:  # (the clean-up's try)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(recovery.Writer, "undo_ran", undo_ran)
    before.append(second)
    assert main(_args(path, "2")) == 130
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "recover interrupted (Ctrl-C); the undos it ran since its last write are not " in err
    assert "will run again next time" in err and "saga 's'" in err, err
    assert "what it undid is recorded" not in err
    before.clear()
    monkeypatch.undo()
    HOLDER.pop().rollback()
    with Journal(path) as journal:  # (its claim left: the process that made it has ended)
        journal.write([("UPDATE sagas SET claim_pid = ?, claim_started = NULL", (dead_pid(),))])
        [done] = recover(journal, registry).recovered
    assert str(done.status) == "rolled_back" and CALLS == ["c", "c", "b", "a"]


class _Failing(Registry):
    """The registry's service goes down at its second lookup, as another process takes the
    journal's write lock for a moment (it lets go once a write waits for it)."""

    let_go = threading.Event()

    def resolve(self, name):  # type: ignore[no-untyped-def]
        if CALLS:
            held = threading.Event()
            threading.Thread(target=_hold, args=(held,), daemon=True).start()
            held.wait(10)
            raise ConnectionError("registry service down")
        return super().resolve(name)


def _hold(held: threading.Event) -> None:
    holder = sqlite3.connect(PATH[0], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    held.set()
    _Failing.let_go.wait(30)
    holder.rollback()
    holder.close()


def test_a_recover_stopped_in_a_live_process_gives_its_claims_back_waiting_for_the_lock(
    writes,
):
    """F2: this process lives on after recover stopped (registry failed). Its claims' release
    waits for the lock as the journal's wait says (not one try): given back, the next recover
    takes the saga at once."""
    path, waits, before = writes
    PATH.remove("hold")
    failing = _Failing()
    failing.add("exits.undo", undo)
    _Failing.let_go.clear()
    stopped_at: list[int] = []

    def wait_seen(wait: float) -> None:  # (the other process lets go once a write waits)
        if stopped_at:
            _Failing.let_go.set()

    before.append(wait_seen)
    with Journal(path, timeout=10) as journal:
        real = recovery.cleaned

        def cleaned(*a):  # type: ignore[no-untyped-def]
            stopped_at.append(len(waits))
            return real(*a)

        recovery.cleaned = cleaned
        try:
            with pytest.raises(RegistryFailed, match="registry service down"):
                recover(journal, failing)
        finally:
            recovery.cleaned = real
        assert waits[stopped_at[0] :] and set(waits[stopped_at[0] :]) == {10.0}, waits
        assert journal.saga("s").claim_pid is None  # (given back, this process alive)
        [done] = recover(journal, registry).recovered
    assert str(done.status) == "rolled_back" and CALLS == ["c", "b", "a"]


def test_a_write_that_ran_out_and_was_written_on_the_next_try_is_said_recorded(writes, capsys):
    """F4: the write of c's undo runs out of its wait; the other process lets go just then,
    and the clean-up's try writes it: the line says so, never "will run again"; c is not
    run again."""
    path, _, before = writes

    def let_go(wait: float) -> None:
        if wait == 0.0 and HOLDER:  # (the clean-up's try)
            HOLDER.pop().rollback()

    before.append(let_go)
    assert main(_args(path, "0.5")) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "another connection holds it (another process's, or one its registry opened); " in err
    assert "waited 0.5 s" in err
    assert "the undos it ran are recorded all the same (a second try wrote them)" in err, err
    assert "will run again" not in err
    with Journal(path) as journal:
        assert [u.state for u in journal.undos("s")].count("done") == 1
        assert journal.saga("s").claim_pid is None  # (the lock free: its claim given back)
        [done] = recover(journal, registry).recovered
    assert str(done.status) == "rolled_back" and CALLS == ["c", "b", "a"]
