"""What a person reads of a saga left for them names everything they must act on
(attack41 F2, F7, F9): a halted recovery's line its leaked steps, a rollback made incomplete
by a correction why, a halted outcome every step to finish forward after its pivot, those
never begun too."""

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
    ("fault", "forward", "when"),
    [({"charge_forward": "fail"}, ("charge_forward", "send_receipt"), "after the pivot"),
     ({"send_receipt": "fail"}, ("send_receipt",), "after the pivot"),
     ({"email": "fail_after_effect"}, ("charge_forward", "send_receipt"), "if the pivot happened"),
     ({"reserve": "fail"}, (), "")],
)  # fmt: skip
def test_a_halt_after_the_pivot_names_every_step_to_finish_forward(fault, forward, when):
    outcome = _after_pivot().run({}, inject=fault)
    assert outcome.forward == forward
    line = f"  forward       {', '.join(forward)}  ({when}: finish by hand)"
    assert (line in str(outcome).splitlines()) == bool(forward)


@pytest.mark.parametrize(
    ("fault", "forward"),
    [({"charge_forward": "fail"}, "charge_forward, send_receipt (after the pivot"),
     ({"send_receipt": "fail"}, "send_receipt (after the pivot"),
     ({"email": "fail_after_effect"}, "charge_forward, send_receipt (if the pivot happened")],
)  # fmt: skip
def test_every_recover_after_the_run_names_the_steps_to_finish_forward(tmp_path, fault, forward):
    """attack42 F3: the run's outcome named them, but the journal did not keep them, so
    every later ``recover`` line (the operator's only account) named neither the step that
    failed nor those never begun. The halted event keeps what the outcome said."""
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.recovery import recover
    from rollback_lessons.durable.registry import Registry, compensation

    registry = Registry()
    release = compensation("lines.release", registry)(lambda idempotency_key=None: None)
    saga = _after_pivot()
    saga = Saga([Step("reserve", lambda s: None, release.bind()), *saga.steps[1:]])
    with Journal(tmp_path / "j.db") as journal:
        outcome = saga.run({}, inject=fault, journal=journal, run_id="t1")
    assert outcome.status is Status.HALTED
    for _ in range(2):  # every later recover too
        with Journal(tmp_path / "j.db") as journal:
            (waiting,) = recover(journal, registry).waiting
        assert f"; forward {forward}: finish by hand)" in str(waiting)


def test_a_pivot_that_refused_cleanly_leaves_nothing_to_finish_forward():
    """attack44 F2: the pivot refused before any effect (compensated across, as any failed
    step), the rollback halted by its policy: the outcome named the steps after it "to
    finish forward (if the pivot happened)", for a pivot the engine knows did not."""
    saga = Saga([Step("a", lambda s: None, lambda s: None), *_after_pivot().steps[1:]],
                policy="halt")  # fmt: skip
    outcome = saga.run({}, inject={"email": "fail", "a": "undo_fails"})
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)
    assert outcome.forward == () and "  forward " not in str(outcome)


def test_a_halt_before_the_pivot_began_names_nothing_forward():
    saga = Saga([Step("a", lambda s: None, lambda s: None), *_after_pivot().steps], policy="halt")
    outcome = saga.run({}, inject={"reserve": "fail", "a": "undo_fails"})
    assert outcome.status is Status.HALTED and outcome.forward == ()


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


@pytest.mark.parametrize("undo_order", ["reverse", "by_dependency"])
def test_every_recover_names_a_halted_graphs_pending_undos_in_its_runs_order(tmp_path, undo_order):
    """attack42 F8: the run's outcome listed a graph's pending undos in its undo order
    (b2 ended last, so it is undone first), recover's later lines by the rows' positions."""
    from rollback_lessons import Parallel
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.recovery import recover
    from rollback_lessons.durable.registry import Registry, compensation

    registry = Registry()
    undo = compensation("lines.graph", registry)(lambda k, idempotency_key=None: None)

    def step(name: str) -> Step:
        return Step(name, lambda s: None, undo.bind(k=name))

    saga = Saga([step("a"), Parallel([step("b"), step("b2")], step("c")), step("x"), step("d")],
                policy="halt")  # fmt: skip
    with Journal(tmp_path / "j.db") as journal:
        outcome = saga.run({}, inject={"d": "fail", "x": "undo_fails"}, journal=journal,
                           run_id="g1", undo_order=undo_order,
                           completion=["c", "b", "b2", "a", "x", "d"])  # fmt: skip
    assert outcome.status is Status.HALTED
    with Journal(tmp_path / "j.db") as journal:
        (waiting,) = recover(journal, registry).waiting
    assert waiting.pending == outcome.pending


def test_a_run_that_failed_for_no_steps_reason_says_the_run_failed():
    """attack44 F5: a saga's run broken outside any step (its cancel function's error here)
    said "the block failed with", though a saga has no block."""
    asked: list[int] = []

    def cancel() -> bool:
        asked.append(1)
        if len(asked) > 1:
            raise RuntimeError("cancel function broke")
        return False

    steps = [Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None)]
    outcome = Saga(steps).run({}, cancel=cancel)
    assert outcome.failed_step is None and outcome.status is Status.ROLLED_BACK
    head = str(outcome).splitlines()[0]
    assert head == "rolled_back: the run failed with RuntimeError('cancel function broke')"


def test_a_leaked_pivot_is_said_irreversible_and_a_leaked_step_to_have_no_undo_logged():
    """review76 F8: lesson 04's email, sent before a charge that failed, was printed "not
    undone (no undo logged for it)", as if an undo were missing; a pivot has none at all. Both
    are ``leaked``, the word the journal, ``recover`` and lesson 11's grid use."""
    from rollback_lessons.outcome import _step_row
    from rollback_lessons.worlds.examples import booking_saga, booking_state

    order = ["verify_card", "reserve_room", "send_email", "charge_card"]
    saga = booking_saga(order, allow_unsafe_order=True)
    lines = saga.run(booking_state(), inject={"charge_card": "fail"}).summary_lines()
    assert "  leaked        send_email  (irreversible: no undo)" in lines
    timed_out = booking_saga().run(
        booking_state(), inject={"reserve_room": "fail_after_effect"}, register="after"
    )
    assert "  leaked        reserve_room  (no undo logged for it)" in timed_out.summary_lines()
    assert "<td>leaked</td>" in _step_row(timed_out, "reserve_room")
