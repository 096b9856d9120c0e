"""BPMN takes ``saga.run``'s ``register`` override, as Step Functions, DBOS and Temporal do
(attack278 F3: ``BpmnRunner.run(..., register="before")`` was Python's own TypeError; an
engine swapped for another failed on its signature): the same Outcome as ``saga.run``, and
a wrong value refused as ``saga.run`` refuses it, before anything runs."""

from __future__ import annotations

import pytest

from rollback_lessons import InvalidPipelineError, Parallel, Saga, Step
from rollback_lessons.runners.bpmn.spiff import run_explicit


def _saga(shape: str) -> Saga:
    def act(name):
        return lambda state: state.setdefault("log", []).append(f"do {name}")

    def undo(name):
        return lambda state: state["log"].append(f"undo {name}")

    a, b, c = (Step(n, act(n), undo(n)) for n in "abc")
    return Saga([a, Parallel(b, c)] if shape == "graph" else [a, b, c], name=f"reg-{shape}")


def _told(outcome) -> tuple:
    return outcome.status, outcome.compensated, outcome.pending, outcome.state_after["log"]


@pytest.mark.parametrize("shape", ["list", "graph"])
@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("fault", ["fail_after_effect", "fail"])
def test_bpmn_takes_register_as_saga_run_does(bpmn_runner, shape, register, fault):
    inject = {"c": fault}
    expected = _saga(shape).run({}, inject=inject, register=register)
    assert _told(bpmn_runner.run(_saga(shape), {}, inject=inject, register=register)) == _told(
        expected
    )
    assert _told(run_explicit(_saga(shape), {}, inject=inject, register=register)) == _told(
        expected
    )


def test_a_wrong_register_is_refused_as_saga_run_refuses_it(bpmn_runner):
    state: dict = {}
    with pytest.raises(InvalidPipelineError, match="register must be 'before' or 'after'"):
        bpmn_runner.run(_saga("list"), state, register="during")
    assert state == {}  # (nothing ran)
