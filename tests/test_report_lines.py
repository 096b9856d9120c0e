"""What a person reads of a saga left for them names everything they must act on
(attack41 F2, F7, F9): a halted recovery's line its leaked steps, a rollback made incomplete
by a correction why, a halt after the pivot every step to finish forward, those never begun
too."""

from __future__ import annotations

import pytest

from rollback_lessons import Kind, Saga, Status, Step
from rollback_lessons.durable.report import Recovery


def test_a_halted_recoverys_line_names_its_leaked_steps():
    record = Recovery(
        Status.HALTED, ("a", "b", "c"), completed=("a", "b"), pending=("b", "a"),
        leaked=("c",), reason="the undo of b failed (ConnectionError('down')) and the undo "
        "policy halts for a person; pending: b, a", run_id="k", name="s",
    )  # fmt: skip
    assert str(record).endswith("pending: b, a; leaked (may have happened, no undo logged) c")


def test_a_rollback_a_correction_left_incomplete_says_why():
    record = Recovery(
        Status.ROLLBACK_INCOMPLETE, ("b", "email"), completed=("b", "email"),
        compensated=("email", "b"), semantic=("email",), run_id="k", name="sem",
    )  # fmt: skip
    said = str(record)
    assert said.startswith("k (sem): rollback_incomplete; undone email, b; dead letters -")
    assert said.endswith("; compensated by a new action, not undone: email")


def _after_pivot() -> Saga:
    def nothing(state: dict) -> None:
        return None

    return Saga([
        Step("reserve", nothing, nothing),
        Step("email", nothing, None, kind=Kind.PIVOT),
        Step("charge_forward", nothing, None, kind=Kind.RETRIABLE),
        Step("send_receipt", nothing, None, kind=Kind.RETRIABLE),
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "ends"),
    [({"charge_forward": "fail"}, "finish charge_forward forward by hand (retried, never "
      "undone), then the steps not begun: send_receipt"),
     ({"send_receipt": "fail"}, "finish send_receipt forward by hand (retried, never undone)"),
     ({"email": "fail_after_effect"}, "; if it did happen, finish forward by hand: "
      "charge_forward, send_receipt")],
)  # fmt: skip
def test_a_halt_after_the_pivot_names_every_step_to_finish_forward(fault, ends):
    outcome = _after_pivot().run({}, inject=fault)
    (halted,) = [e for e in outcome.events if e.kind == "halted"]
    assert outcome.status is Status.HALTED and halted.details["reason"].endswith(ends)


def test_a_closed_journal_read_is_one_typed_line(tmp_path):
    """attack41 F8: ``sagas()``, ``table()``, ``events()`` of a closed Journal raised
    sqlite3's raw ProgrammingError; a second close still does nothing."""
    from rollback_lessons.durable.journal import Journal, JournalUnusable

    journal = Journal(tmp_path / "j.db")
    journal.close()
    journal.close()
    for read in (journal.sagas, journal.table, lambda: journal.events("r")):
        with pytest.raises(JournalUnusable, match=r"j\.db'\) is closed: open it again"):
            read()
