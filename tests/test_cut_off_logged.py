"""A Ctrl-C at the write that confirms a step's undo as the step returns (its done event's
journal write: the machine's log of that undo cut off), then a second Ctrl-C as the first is
handled, at each function start of the engine in turn (attack75 F1): ``Rollback`` (and
``saga.run``, at some of them) rolled back with nothing to undo, ``rolled_back`` in the
outcome and in the journal, the step's effect standing and ``recover`` finding nothing. The
machine logs that undo as the run fails (``undo_log.log_cut_off``): the step is undone, or,
the rollback cut, left pending for ``recover``; never said rolled back."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from conftest import dead_pid

import rollback_lessons
from rollback_lessons import Rollback, Saga, Status, Step
from rollback_lessons.durable import records
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()
WORLD: list[str] = []
PACKAGE = os.path.dirname(rollback_lessons.__file__)


@compensation("cut_off.undo", registry)
def undo(step: str, idempotency_key: str | None = None) -> None:
    WORLD.append(f"undo {step}")


def _drive(driver: str, journal: Journal) -> Any:
    def act(name: str) -> Any:
        return lambda *_: WORLD.append(f"do {name}")

    if driver == "run":
        steps = [Step(n, act(n), undo.bind(step=n)) for n in ("a", "b")]
        return Saga(steps, name="s").run({}, journal=journal, run_id="r")
    rb = Rollback(journal=journal, run_id="r")
    try:
        with rb:
            for name in ("a", "b"):
                rb.do(name, act(name), undo.bind(step=name))
    finally:
        sys.settrace(None)  # (the block is over: what follows is the test's reading)
        _drive.rb = rb  # type: ignore[attr-defined]
    return rb.outcome


def _trial(driver: str, gap: int, tmp: Any, at: str = "") -> tuple[bool, Any, str, dict[str, str]]:
    """The two Ctrl-Cs: the first at the entry of the write ``confirm`` makes for step a;
    the second at the ``gap``-th start of a function of the package after it (``at``: of
    that name only). Whether the second landed, the outcome (None: raised without one),
    the journal's status, its rows."""
    state = {"confirm": False, "first": False, "n": 0, "second": False}
    real_write, real_confirm = Journal.write, records.JournalRun.confirm

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            state["n"] += not at or frame.f_code.co_name == at
            if state["n"] == gap:
                state["second"] = True
                sys.settrace(None)
                raise KeyboardInterrupt("second")

    def confirm(self: Any, position: int) -> bool:
        state["confirm"] = True
        try:
            return real_confirm(self, position)  # type: ignore[no-any-return]
        finally:
            state["confirm"] = False

    def write(self: Journal, *args: Any, **kwargs: Any) -> Any:
        if state["confirm"] and not state["first"]:
            state["first"] = True
            sys.settrace(tracer)
            raise KeyboardInterrupt("first, at the confirm write's entry")
        return real_write(self, *args, **kwargs)

    WORLD.clear()
    _drive.rb = None  # type: ignore[attr-defined]
    journal = Journal(tmp / f"{driver}{gap}.db")
    mp = pytest.MonkeyPatch()
    mp.setattr(Journal, "write", write)
    mp.setattr(records.JournalRun, "confirm", confirm)
    try:
        outcome = _drive(driver, journal)
    except KeyboardInterrupt as exc:
        sys.settrace(None)
        outcome = getattr(exc, "outcome", None) or getattr(_drive.rb, "outcome", None)  # type: ignore[attr-defined]
    finally:
        sys.settrace(None)
        mp.undo()
    assert state["first"], "the first Ctrl-C never came"
    with journal:
        status = journal.saga("r").status
        rows = {u.step: u.state for u in journal.undos("r")}
    return state["second"], outcome, status, rows


@pytest.mark.parametrize("driver", ["rb", "run"])
def test_a_step_whose_undo_log_was_cut_off_is_never_said_rolled_back_standing(
    driver: str, tmp_path: Any
) -> None:
    landed = 0
    for gap in range(1, 400):
        second, outcome, status, rows = _trial(driver, gap, tmp_path)
        if not second:
            break  # (the run ended before the gap-th function start: every instant tried)
        landed += 1
        told = outcome and (outcome.status, outcome.notes)
        said = f"gap {gap}: {told} {status} {rows} {WORLD}"
        if "undo a" in WORLD:
            assert WORLD.count("undo a") == 1, said
            continue
        assert status not in ("rolled_back", "committed"), said  # (left to recover)
        assert rows.get("a") in ("pending", "intent"), said  # (undone, or reported leaked)
        if outcome is not None:
            assert outcome.status is Status.HALTED and "a" in outcome.pending, said
            assert any("not known to be undone: a" in note for note in outcome.notes), said
    assert landed > 20


@pytest.mark.parametrize("driver", ["rb", "run"])
def test_a_second_ctrl_c_as_the_cut_off_undo_is_logged_cuts_the_rollback_there(
    driver: str, tmp_path: Any
) -> None:
    """GAP 16: the second Ctrl-C at the entry of the machine's ``_log`` of a's undo, as the
    driver logged it late (``_guards.log_cut_off``), was swallowed: the rollback ran to its
    end. It cuts the rollback there now, as the README says a second Ctrl-C does: a left
    pending for ``recover`` (the machine's ``fail`` logged it), which undoes it once."""
    second, outcome, status, rows = _trial(driver, 1, tmp_path, at="_log")
    said = f"{outcome and (outcome.status, outcome.notes)} {status} {rows} {WORLD}"
    assert second and WORLD == ["do a"], said
    assert status == "rolling_back" and rows.get("a") == "pending", said
    if outcome is not None:  # (no undo called yet: never "during the undo of a")
        assert outcome.status is Status.HALTED and outcome.pending == ("a",), said
        assert outcome.notes == (
            "rollback interrupted by KeyboardInterrupt as the rollback began; not known to "
            "be undone: a (the journal keeps them for recover)",
        ), said
    with Journal(tmp_path / f"{driver}1.db") as journal:  # (its process gone: recover's)
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        (recovered,) = recover(journal, registry).recovered
    assert recovered.status is Status.ROLLED_BACK and WORLD == ["do a", "undo a"], said
