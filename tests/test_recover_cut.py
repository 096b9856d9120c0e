"""A Ctrl-C (or a signal handler's sys.exit) that lands in recover's write of an event, at
every one of its events: recover stops (the Ctrl-C stays one), never ends the saga halted or
rolled_back with an undo unrun; the next recover finishes it (attack45 F2: the machine cut
its rollback there, as it must in process, and recover wrote the cut run's end)."""

from __future__ import annotations

import pytest
from conftest import crash_at_first_undo

from rollback_lessons import Saga, Step
from rollback_lessons.durable import records
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import RecoveryInterrupted, recover
from rollback_lessons.durable.registry import Registry, compensation

CALLS: list[str] = []
REGISTRY = Registry()


@compensation("release", REGISTRY)
def release(step: str, idempotency_key: str | None = None) -> None:
    CALLS.append(step)


def saga() -> Saga:
    steps = [Step(s, lambda state: None, release.bind(step=s)) for s in "abc"]
    return Saga([*steps, Step("d", lambda state: 1 / 0)], name="cut")


def events_of_a_recover(path) -> int:
    count = [0]
    real = records.JournalRun.event

    def counting(self, event):
        count[0] += 1
        return real(self, event)

    with pytest.MonkeyPatch.context() as mp, Journal(path) as journal:
        mp.setattr(records.JournalRun, "event", counting)
        recover(journal, REGISTRY)
    return count[0]


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_at_any_event_of_recover_leaves_the_rest_for_the_next(tmp_path, raised):
    crash_at_first_undo(tmp_path / "n.db", saga())
    total = events_of_a_recover(tmp_path / "n.db")
    assert total >= 5  # (rollback_start, three undo/undo_done pairs, rollback_done)
    for n in range(1, total + 1):
        path = tmp_path / f"j{n}.db"
        crash_at_first_undo(path, saga())
        CALLS.clear()
        real, count = records.JournalRun.event, [0]

        def cut(self, event, n=n, count=count, real=real):
            count[0] += 1
            if count[0] == n:
                raise raised(0) if raised is SystemExit else raised()
            return real(self, event)

        expected = KeyboardInterrupt if raised is KeyboardInterrupt else RecoveryInterrupted
        with pytest.MonkeyPatch.context() as mp, Journal(path) as journal:
            mp.setattr(records.JournalRun, "event", cut)
            with pytest.raises(expected):
                recover(journal, REGISTRY)
            assert journal.saga("s").status == "rolling_back", n  # not ended halted/rolled_back
        first = list(CALLS)
        CALLS.clear()
        with Journal(path) as journal:
            report = recover(journal, REGISTRY)
            assert [r.status for r in report.recovered] == ["rolled_back"], n
            assert journal.saga("s").status == "rolled_back"
        # every undo ran, in order; one cut before its done was written runs once more
        assert set(CALLS) | set(first) == {"a", "b", "c"}, n
        assert len(first) + len(CALLS) <= 4, (n, first, CALLS)


def test_an_interrupt_after_the_last_saga_still_names_what_recover_finished(tmp_path, monkeypatch):
    """attack45 F5: a Ctrl-C as recover read which sagas wait for a person (all finished)
    lost the list: the CLI printed none of them and said vaguely that some were left."""
    from rollback_lessons.durable import recovery

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recovery, "waiting_in", interrupted)
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt) as caught:
            recover(journal, REGISTRY)
        assert journal.saga("s").status == "rolled_back"
    assert [r.saga_id for r in caught.value.recovered] == ["s"]  # type: ignore[attr-defined]
    assert caught.value.unfinished == ()  # type: ignore[attr-defined]


def test_a_recover_that_stopped_gives_its_claims_back(tmp_path):
    """attack45 F6: a recover() that raised in a process that lives on (a service, a
    kernel) kept its claim: every other recover, --force too, said the saga was "being
    recovered by process N (it is still running)" until that process ended."""
    from rollback_lessons.durable.recovery import RegistryFailed

    class Down(Registry):
        def resolve(self, name):
            raise ConnectionError("registry service down")

    down = Down()
    down.add("release", lambda step, idempotency_key=None: None)
    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    with Journal(path) as journal:
        with pytest.raises(RegistryFailed):
            recover(journal, down)
        row = journal.saga("s")
        assert (row.claim_pid, row.claim_host, row.status) == (None, None, "rolling_back")
        report = recover(journal, REGISTRY)  # (and it is taken up again)
    assert [r.status for r in report.recovered] == ["rolled_back"]


def test_a_ctrl_c_right_after_the_claim_still_gives_the_claims_back(tmp_path, monkeypatch):
    """attack48 F2: heard as the claim returned, before the part that gives claims back: a
    kernel that caught it kept the sagas from every other recover until it ended."""
    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    real = Journal.claim

    def claim(self, decide):
        real(self, decide)  # (committed)
        raise KeyboardInterrupt

    monkeypatch.setattr(Journal, "claim", claim)
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt) as caught:
            recover(journal, REGISTRY)
        row = journal.saga("s")
        assert (row.claim_pid, row.status) == (None, "rolling_back")
    assert not hasattr(caught.value, "unfinished")  # (not known: said in general, not "none")
    monkeypatch.undo()
    with Journal(path) as journal:
        assert [r.status for r in recover(journal, REGISTRY).recovered] == ["rolled_back"]


def test_an_undo_that_returned_is_never_run_again_whatever_comes_after(tmp_path, monkeypatch):
    """attack48 F8: a Ctrl-C heard in the ~15 instants after an undo returned (the machine
    told, its record not yet taken to be written) left it pending: run again next time."""
    from rollback_lessons.machine import Machine

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    real = Machine.undo_ok

    def undo_ok(self):
        raise KeyboardInterrupt

    CALLS.clear()
    monkeypatch.setattr(Machine, "undo_ok", undo_ok)
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        recover(journal, REGISTRY)
    assert CALLS == ["c"]
    monkeypatch.setattr(Machine, "undo_ok", real)
    with Journal(path) as journal:
        assert [r.status for r in recover(journal, REGISTRY).recovered] == ["rolled_back"]
    assert CALLS == ["c", "b", "a"]  # (c once)


def test_a_ctrl_c_as_the_last_write_returns_still_names_what_it_finished(tmp_path, monkeypatch):
    """attack48 F10: committed, then the Ctrl-C before the report was moved to 'recorded':
    the sagas the journal shows rolled back were named left unfinished, none finished."""
    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    real = Journal.write

    def write(self, statements, **kwargs):
        real(self, statements, **kwargs)
        if any("UPDATE sagas SET status" in sql for sql, _ in statements):
            raise KeyboardInterrupt  # (as the write that ends the saga returns)

    monkeypatch.setattr(Journal, "write", write)
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt) as caught:
            recover(journal, REGISTRY)
        assert journal.saga("s").status == "rolled_back"
    assert [r.saga_id for r in caught.value.recovered] == ["s"]  # type: ignore[attr-defined]
    assert caught.value.unfinished == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize("where", ["close", "print"])
def test_a_ctrl_c_after_recover_returned_still_tells_what_it_finished(
    tmp_path, monkeypatch, capsys, where
):
    """attack48 F11: heard as the journal closed, or as the report was printed: no saga
    named (the second message even suggested some were left)."""
    import sys
    import types

    from rollback_lessons import cli

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    if where == "close":
        real = Journal.__exit__

        def exit_(self, *args):
            real(self, *args)
            raise KeyboardInterrupt

        monkeypatch.setattr(Journal, "__exit__", exit_)
    else:

        def say(*lines):
            raise KeyboardInterrupt

        monkeypatch.setattr(cli, "_say", say)
    monkeypatch.setitem(sys.modules, "cut_reg", types.SimpleNamespace(registry=REGISTRY))
    assert cli.main(["recover", str(path), "--registry", "cut_reg"]) == 130
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    if where == "close":
        assert out.startswith("s (cut): rolled_back") and "no saga it claimed is left" in line
    else:
        assert "as recover printed its report: it finished 1 saga 's', recorded" in line
    monkeypatch.undo()
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolled_back"


def test_a_ctrl_c_as_recover_marks_itself_running_does_not_refuse_every_later_one(
    tmp_path, monkeypatch
):
    """attack48 F12: heard as the ContextVar's set returned (before the try that resets it):
    a kernel then refused every recover, on any journal, as 'called from an undo'."""
    import contextvars

    from rollback_lessons.durable import exclusive

    real = exclusive._recovering

    class CutAfterSet:
        cut = True

        def get(self):
            return real.get()

        def set(self, value):
            token = real.set(value)
            if CutAfterSet.cut:
                CutAfterSet.cut = False
                raise KeyboardInterrupt
            return token

        def reset(self, token):
            real.reset(token)

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())

    def kernel() -> list[str]:  # (one context for both, as a kernel keeps across cells)
        with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
            recover(journal, REGISTRY)
        with Journal(path) as journal:
            return [str(r.status) for r in recover(journal, REGISTRY).recovered]

    monkeypatch.setattr(exclusive, "_recovering", CutAfterSet())
    assert contextvars.copy_context().run(kernel) == ["rolled_back"]


def test_a_ctrl_c_as_a_sagas_report_is_made_leaves_it_unfinished_as_said(tmp_path, monkeypatch):
    """attack49 F2: its status was committed by the interrupt's flush, yet the saga was named
    'left unfinished' and never named finished by anyone."""
    from rollback_lessons.durable import recovery

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())

    def build(*args, **kwargs):
        raise KeyboardInterrupt

    CALLS.clear()
    monkeypatch.setattr(recovery.Recovery, "build", build)
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt) as caught:
            recover(journal, REGISTRY)
        assert journal.saga("s").status == "rolling_back"  # (unfinished, as said)
        assert [u.state for u in journal.undos("s")] == ["done"] * 3  # (its undos recorded)
    assert caught.value.unfinished == ("s",)  # type: ignore[attr-defined]
    monkeypatch.undo()
    with Journal(path) as journal:
        assert [r.status for r in recover(journal, REGISTRY).recovered] == ["rolled_back"]
    assert CALLS == ["c", "b", "a"]  # (none run again)


def test_a_ctrl_c_as_recover_lets_its_file_go_still_names_what_it_finished(tmp_path, monkeypatch):
    """attack49 F4: all finished, none named, the line saying some were left."""
    from rollback_lessons.durable import exclusive

    real = exclusive.recovering.__exit__

    def cut_exit(self, *exc):
        real(self, *exc)
        raise KeyboardInterrupt  # (as the lock is let go)

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    monkeypatch.setattr(exclusive.recovering, "__exit__", cut_exit)
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt) as caught:
            recover(journal, REGISTRY)
    assert [r.saga_id for r in caught.value.recovered] == ["s"]  # type: ignore[attr-defined]
    assert caught.value.unfinished == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize("raised", [None, KeyboardInterrupt])
def test_a_recover_that_never_claimed_waits_for_no_lock_a_second_time(tmp_path, raised):
    """attack50 F1: a recover whose claim timed out on a lock another process held (or was
    cut by a Ctrl-C as it waited) then wrote, to give back claims it never made, through the
    same lock: it waited the whole ``timeout`` again (``--wait 5``: 10 s; the default: 60).
    Nothing claimed, nothing is written: the one line comes after one wait."""
    import sqlite3

    from rollback_lessons.errors import JournalError

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    writes: list[object] = []
    with Journal(str(path), timeout=0.2) as journal, pytest.MonkeyPatch.context() as mp:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        real = journal.write
        if raised is not None:

            def claim(decide):
                raise raised  # as it waited for the lock: nothing claimed

            mp.setattr(journal, "claim", claim)
        mp.setattr(journal, "write", lambda *a, **k: writes.append(a) or real(*a, **k))
        try:
            with pytest.raises(raised or (JournalError, sqlite3.OperationalError)):
                recover(journal, REGISTRY)
        finally:
            holder.rollback()
            holder.close()
    assert writes == []
    with Journal(str(path)) as journal:  # (and the saga is there for the next recover)
        assert [r.status for r in recover(journal, REGISTRY).recovered] == ["rolled_back"]


def test_a_ctrl_c_as_recover_prints_its_closing_lines_says_its_work_is_done(
    tmp_path, monkeypatch, capsys
):
    """attack50 L1: heard as recover printed its closing lines (dead letters, sagas for a
    person), after every saga's line: "the command did not finish", though its work did."""
    import sys
    import types

    from rollback_lessons import cli

    down = Registry()

    @compensation("release", down)
    def fails(step: str, idempotency_key: str | None = None) -> None:
        raise ConnectionError("refund service down")

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    real = cli._warn

    def warn(line: str) -> None:
        if "left dead letters" in line:
            raise KeyboardInterrupt
        real(line)

    monkeypatch.setattr(cli, "_warn", warn)
    monkeypatch.setitem(sys.modules, "down_reg", types.SimpleNamespace(registry=down))
    assert cli.main(["recover", str(path), "--registry", "down_reg"]) == 130
    out, err = capsys.readouterr()
    assert out.startswith("s (cut): rollback_incomplete")
    [line] = err.splitlines()
    assert "as recover printed its report: it finished 1 saga 's', recorded" in line


def test_a_lock_held_past_wait_says_how_long_it_waited(tmp_path, monkeypatch, capsys):
    """attack53 L1: "try --wait" even when --wait had been given."""
    import sqlite3
    import sys
    import types

    from rollback_lessons import cli

    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga())
    monkeypatch.setitem(sys.modules, "lock_reg", types.SimpleNamespace(registry=REGISTRY))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert cli.main(["recover", str(path), "--registry", "lock_reg", "--wait", "0.2"]) == 2
    finally:
        holder.rollback()
        holder.close()
    [line] = capsys.readouterr().err.splitlines()
    assert "another process holds it; waited 0.2 s; a longer --wait waits more" in line
