"""What ``WorkerGone`` says a relaunch does with a saga asked to cancel (attack59 L1): every
saga got one hedge, "undoes it (...; past its irreversible step, finishes it forward)", a
saga with no pivot and one past its pivot alike. Now said by the saga's own pivot."""

from __future__ import annotations

import types

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.runners import hosted
from rollback_lessons.runners.temporal.left import worker_gone


def _words(saga: Saga, calls: list[tuple[str, str, bool]]) -> str:
    runner = types.SimpleNamespace(env=None, address="127.0.0.1:1", task_queue="q", db_file=None)
    hosted.host("r-words", hosted.Hosted(saga=saga, state={}, faults={}, calls=calls))
    try:
        return worker_gone(runner, "r-words", sent=True)  # type: ignore[arg-type]
    finally:
        hosted.RUNS.pop("r-words", None)


def _step(name: str, kind: str | None = None) -> Step:
    undo = None if kind in ("pivot", "retriable") else (lambda s: None)
    return Step(name, lambda s: None, undo, **({"kind": kind} if kind else {}))


def test_a_saga_with_no_pivot_is_said_undone():
    said = _words(Saga([_step("a"), _step("b")]), [("action", "a", True)])
    assert "takes it up (handle_for) and undoes it (asked to cancel)." in said
    assert "forward" not in said


def test_a_saga_past_its_pivot_here_is_said_finished_forward():
    saga = Saga([_step("a"), _step("p", "pivot"), _step("c", "retriable")])
    said = _words(saga, [("action", "a", True), ("action", "p", True)])
    assert "finishes it forward (its irreversible step 'p' happened here" in said
    assert "undoes it" not in said and "compensated" not in said


@pytest.mark.parametrize("calls", [[("action", "a", True)], [("action", "p", False)]])
def test_a_pivot_saga_not_known_past_it_keeps_the_hedge_naming_its_pivot(calls):
    saga = Saga([_step("a"), _step("p", "pivot"), _step("c", "retriable")])
    said = _words(saga, calls)
    assert "undoes it (asked to cancel), unless its irreversible step 'p' started" in said


def test_a_saga_whose_pivot_was_cut_mid_call_is_said_left_for_a_person(monkeypatch):
    """attack61 M1: the pivot running here as the worker stopped: WorkerGone said the
    relaunch "finishes it forward"; it halts for a person (a pivot cut short)."""
    from rollback_lessons.runners.temporal import left

    monkeypatch.setitem(left.IN_FLIGHT, "r-words", {("action", "p", 1): None})
    saga = Saga([_step("a"), _step("p", "pivot"), _step("c", "retriable")])
    said = _words(saga, [("action", "a", True)])
    assert "leaves it for a person (its irreversible step 'p' was cut mid-call" in said
    assert "forward" not in said.split("takes it up")[1]
