"""The DBOS runner called inside one of its own runs' steps (attack278 F1, F2): a step that
stops its own run (a person's "stop" wired into the step), a step that runs another saga
on the same runner. DBOS counts its calls made there as the workflow's own steps: the
stop's ``DBOS.send`` was refused ("no longer owned by this execution", a BaseException out
of ``outcome()``), the nested start failed DBOS's bare ``assert``. Each call now runs as one
from any other thread does: the outcomes are those the same call from outside gives."""

from __future__ import annotations

import pytest

from rollback_lessons import Parallel, Saga, Status, Step


def _saga(stopper: str, box: dict) -> Saga:
    def act(name):
        def action(state):
            state.setdefault("log", []).append(f"do {name}")
            if name == stopper:
                box["handle"].stop()  # (returns: the run stops at its next step)

        return action

    def undo(name):
        return lambda state: state["log"].append(f"undo {name}")

    return Saga([Step(n, act(n), undo(n)) for n in "abc"], name="stops-itself")


@pytest.mark.parametrize("stopper", ["b", "c"])
def test_a_step_that_stops_its_own_run_ends_it_as_a_stop_from_outside_does(dbos_runner, stopper):
    box: dict = {}
    state: dict = {}
    box["handle"] = handle = dbos_runner.start_saga(_saga(stopper, box), state)
    outcome = handle.outcome()
    if stopper == "c":  # (the last step: it ran to its end, the stop stopped nothing)
        assert outcome.status is Status.COMMITTED, outcome
        assert any("came as the last step ran" in note for note in outcome.notes), outcome
    else:  # (the step done, the next never begun, nothing undone)
        assert outcome.status is Status.HALTED, outcome
        assert outcome.completed == ("a", "b") and outcome.pending == ("b", "a"), outcome
        assert state["log"] == ["do a", "do b"]


@pytest.mark.parametrize("shape", ["list", "graph"])
def test_a_step_that_runs_another_saga_on_the_same_runner_runs_it(dbos_runner, shape):
    inner = Saga([Step("x", lambda s: s.update(x=1), lambda s: s.pop("x"))], name="inner")
    ran: list = []

    def nested(state):
        ran.append(dbos_runner.run(inner, {}))

    b, c = Step("b", nested, lambda s: None), Step("c", lambda s: None, lambda s: None)
    middle = [Parallel(b, c)] if shape == "graph" else [b, c]
    outer = Saga([Step("a", lambda s: None, lambda s: None), *middle], name="outer")
    outcome = dbos_runner.run(outer, {})
    assert outcome.status is Status.COMMITTED, outcome
    [inside] = ran
    assert inside.status is Status.COMMITTED and inside.state_after == {"x": 1}, inside
