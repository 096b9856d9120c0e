"""A Ctrl-C as a step's undo is confirmed leaves it logged, as its events say (attack63 F4).

A step whose undo is logged after it returns has an ``intent`` row until ``confirm``. A
Ctrl-C at ``confirm``'s start left that row ``intent`` although the ``step_done`` and
``undo_registered`` events were written: with a halt, ``journal show`` counted no undo and
recover named nothing pending; after a crash in the rollback, recover said "no undo logged"
and never ran the undo of a step that had returned.
"""

import contextlib
from functools import partial

import pytest
from conftest import as_killed, dead_pid
from test_journal_no_undo import World, registry, undo
from test_journal_returned import BUSY, _kill

from rollback_lessons import Saga, Status, Step, VirtualClock
from rollback_lessons.durable import records
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.report import waiting_in


@pytest.fixture
def cut_confirm(monkeypatch):
    """The first ``JournalRun.confirm`` is cut by a Ctrl-C as it starts."""
    real, fired = records.JournalRun.confirm, []

    def confirm(self, position):  # type: ignore[no-untyped-def]
        if not fired:
            fired.append(position)
            raise KeyboardInterrupt
        return real(self, position)

    monkeypatch.setattr(records.JournalRun, "confirm", confirm)
    return fired


def _charge_then_ship(world: World) -> Saga:
    """charge (its undo's service busy: it fails), then ship (refused), the policy halt."""
    return Saga(
        [Step("charge", partial(world.act, "charge", None), BUSY.bind(step="charge")),
         Step("ship", partial(world.act, "ship", "before"), None)],
        policy="halt",
    )  # fmt: skip


def test_a_halt_after_a_ctrl_c_at_confirm_names_the_undo_pending(tmp_path, cut_confirm):
    world = World("confirm-halt")
    saga = _charge_then_ship(world)
    with Journal(tmp_path / "j.db") as journal:
        with contextlib.suppress(KeyboardInterrupt):
            saga.run({}, journal=journal, run_id="r", clock=VirtualClock())
        assert cut_confirm, "confirm was never called"
        assert [(u.step, u.state) for u in journal.undos("r")] == [("charge", "pending")]
        saga_row = journal.saga("r")
        assert (saga_row.status, saga_row.undos) == ("halted", 1)
        (waiting,) = waiting_in(journal)
        assert "pending charge" in str(waiting), str(waiting)


@pytest.mark.parametrize("before", [False, True], ids=["now", "journal-written-before"])
def test_a_crash_in_the_rollback_after_a_ctrl_c_at_confirm_is_undone(tmp_path, cut_confirm, before):
    """``before``: a journal written before the fix, its row left ``intent``: recover's claim
    reads it pending all the same, as its events say the undo was logged."""
    world = World("confirm-crash")
    undone = undo.bind(world=world.name, step="charge")
    saga = Saga([
        Step("charge", partial(world.act, "charge", None), undone),
        Step("ship", partial(world.act, "ship", "before"), None),
    ])  # fmt: skip

    def told(e) -> None:  # (killed as its rollback starts: nothing more written)
        if e.kind == "rollback_start":
            _kill(world)

    journal = Journal(tmp_path / "j.db")
    world.wrap(journal)
    with contextlib.suppress(KeyboardInterrupt):
        saga.run({}, journal=journal, run_id="r", clock=VirtualClock(), on_event=told)
    assert world.dead and cut_confirm and world.undone == []
    world.dead = False
    as_killed(journal)  # (a killed process closes nothing)
    with Journal(tmp_path / "j.db") as journal:
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        if before:
            journal.write([("UPDATE undos SET state = 'intent'", ())])
        (recovered,) = recover(journal, registry).recovered
        assert recovered.status is Status.ROLLED_BACK and recovered.leaked == ()
        assert [(u.step, u.state) for u in journal.undos("r")] == [("charge", "done")]
    assert world.undone == ["charge"]


def test_a_halted_saga_of_a_journal_written_before_is_named_pending_by_recover(
    tmp_path, cut_confirm
):
    """attack66 F6: the halt above in a journal written before the fix (its row left
    ``intent``): the claim's repair touched unfinished sagas only, so recover named nothing
    pending and ``journal show`` counted no undo. Now recover repairs a halted one too."""
    world = World("confirm-halt-before")
    saga = _charge_then_ship(world)
    with Journal(tmp_path / "j.db") as journal:
        with contextlib.suppress(KeyboardInterrupt):
            saga.run({}, journal=journal, run_id="r", clock=VirtualClock())
        journal.write([("UPDATE undos SET state = 'intent'", ())])  # (as written before)
        assert journal.saga("r").undos == 0
        report = recover(journal, registry)
        assert report.recovered == () and len(report.waiting) == 1
        assert "pending charge" in str(report.waiting[0]), str(report.waiting[0])
        assert (journal.saga("r").status, journal.saga("r").undos) == ("halted", 1)
