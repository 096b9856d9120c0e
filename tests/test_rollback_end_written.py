"""The rollback's end is written before its observers hear it, as the commit is (attack70
F2): a Ctrl-C in an observer of ``rollback_done`` left the journal ``rolling_back`` while the
process lived (``recover`` refused the saga: "its process is still running"), the outcome
``rolled_back``, not a word. A Ctrl-C that cuts that write, or comes before it, says the
journal still shows the saga unfinished."""

from __future__ import annotations

import pytest
from test_interrupt_ends import DRIVERS, notes, run_on, world_steps

from rollback_lessons import Status
from rollback_lessons.durable.journal import Journal
from rollback_lessons.journaling import JournalWriter
from rollback_lessons.machine import Machine, Phase

UNFINISHED = "the journal still shows the saga unfinished, for recover to finish"


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_rollbacks_end_is_in_the_journal_before_its_observers_hear_it(driver, tmp_path):
    world: list[str] = []
    heard: list[str] = []
    with Journal(str(tmp_path / "j.db")) as journal:

        def on_event(event: object) -> None:
            if str(event.kind) == "rollback_done":  # type: ignore[attr-defined]
                heard.append(journal.saga("r").status)
                raise KeyboardInterrupt  # (a Ctrl-C heard in the observer)

        steps = world_steps(world, True)
        outcome, raised = run_on(
            driver, steps, fail=True, journal=journal, run_id="r", on_event=on_event
        )
        status, unfinished = journal.saga("r").status, journal.unfinished()
    assert world == ["do a", "do b", "undo b", "undo a"]
    assert heard == ["rolled_back"]
    assert isinstance(raised, KeyboardInterrupt)
    assert status == "rolled_back" and unfinished == []
    assert UNFINISHED not in notes(raised)
    assert outcome is None or outcome.status is Status.ROLLED_BACK


@pytest.mark.parametrize("where", ["before", "commit", "write", "tried"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_in_the_write_of_the_rollbacks_end_says_whether_the_journal_recorded_it(
    driver, where, tmp_path
):
    """A Ctrl-C as the write of the rollback's end began (``before``): the journal still
    shows the saga unfinished, as said. One once its COMMIT returned (as it returned, as
    ``Journal.write`` did, as the writer's ``tried`` did) said "unless that landed ... recover
    finishes it" of an end the journal showed, nothing left to recover (attack72 F4): the
    journal is read back, and the note says it is recorded."""
    world: list[str] = []
    with Journal(str(tmp_path / "j.db")) as journal, pytest.MonkeyPatch.context() as mp:
        real, real_tried, con = journal.write, JournalWriter.tried, journal._con
        armed: list[bool] = []

        def write(statements, **kw):  # type: ignore[no-untyped-def]
            end = any("rolled_back" in str(s) for s in statements)
            if end and where == "before":
                raise KeyboardInterrupt
            armed[:] = [end]
            out = real(statements, **kw)
            if end and where == "write":
                raise KeyboardInterrupt  # (as Journal.write returned: written)
            return out

        def execute(sql, *args):  # type: ignore[no-untyped-def]
            out = type(con).execute(con, sql, *args)
            if sql == "COMMIT" and armed == [True] and where == "commit":
                armed[:] = []
                raise KeyboardInterrupt  # (as COMMIT returned)
            return out

        def tried(self, write, *args, **kw):  # type: ignore[no-untyped-def]
            out = real_tried(self, write, *args, **kw)
            if armed == [True] and where == "tried":
                armed[:] = []
                raise KeyboardInterrupt  # (as the writer's tries returned)
            return out

        mp.setattr(journal, "write", write)
        mp.setattr(con, "execute", execute)
        mp.setattr(JournalWriter, "tried", tried)
        outcome, raised = run_on(
            driver, world_steps(world, True), fail=True, journal=journal, run_id="r"
        )
        mp.undo()
        status = journal.saga("r").status
    assert world == ["do a", "do b", "undo b", "undo a"]
    assert status == ("rolling_back" if where == "before" else "rolled_back")
    assert isinstance(raised, KeyboardInterrupt)
    if where == "before":
        said = "the Ctrl-C came as the journal recorded the rollback's end: unless that landed, "
        said += UNFINISHED
    else:
        said = "the Ctrl-C came once the journal had recorded the rollback's end: it shows the "
        said += "saga rolled_back, and recover has nothing of it to finish"
        assert "unless that landed" not in notes(raised) and UNFINISHED not in notes(raised)
    assert said in notes(raised)
    assert outcome is None or any(said in n for n in outcome.notes)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_as_the_machine_ends_the_rollback_says_the_journal_shows_it_unfinished(
    driver, tmp_path
):
    """A Ctrl-C inside the machine's own end of the rollback (``_rollback_done``, as its
    ``status()`` call returns), before the journal heard of it: it says so."""
    world: list[str] = []
    real = Machine.status
    cut: list[bool] = []

    def status(self):  # type: ignore[no-untyped-def]
        if self.phase is Phase.DONE and self.rolling and not cut:
            cut.append(True)
            raise KeyboardInterrupt  # (as the call returned)
        return real(self)

    with Journal(str(tmp_path / "j.db")) as journal, pytest.MonkeyPatch.context() as mp:
        mp.setattr(Machine, "status", status)
        outcome, raised = run_on(
            driver, world_steps(world, True), fail=True, journal=journal, run_id="r"
        )
        mp.undo()
        shown = journal.saga("r").status
    assert cut and world == ["do a", "do b", "undo b", "undo a"]
    assert shown == "rolling_back"
    assert isinstance(raised, KeyboardInterrupt)
    said = "the Ctrl-C came before the journal recorded the rollback's end: " + UNFINISHED
    assert said in notes(raised)
    assert outcome is None or any(said in n for n in outcome.notes)


@pytest.mark.parametrize("at", ["interruption_name", "cut_by"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_inside_the_end_of_a_cut_rollback_never_says_every_undo_had_run(
    driver, at, monkeypatch
):
    """A second Ctrl-C inside the machine's end of a rollback a first one cut (as it names
    the interruption, or as it hands on its end), which then runs again: that end said
    "every undo had run" of undos never run (found with repeated real Ctrl-Cs under
    ``asyncio.run``), or said the rollback cut twice. Said once, naming what is left."""
    import rollback_lessons.machine as machine

    real = getattr(machine, at)
    cut: list[bool] = []

    def second(exc: BaseException) -> str:
        if not cut:
            cut.append(True)
            raise KeyboardInterrupt  # (as the call began)
        return real(exc)  # type: ignore[no-any-return]

    def on_event(event: object) -> None:
        if str(event.kind) == "rollback_start":  # type: ignore[attr-defined]
            raise KeyboardInterrupt  # the first

    world: list[str] = []
    monkeypatch.setattr(machine, at, second)
    outcome, raised = run_on(driver, world_steps(world), fail=True, on_event=on_event)
    monkeypatch.undo()
    assert cut and world == ["do a", "do b"]
    said = [n for n in notes(raised).splitlines() if "rollback interrupted" in n]  # type: ignore[arg-type]
    assert len(said) == 1 and said[0].endswith("not known to be undone: b, a"), said
    assert outcome is None or outcome.pending == ("b", "a")
