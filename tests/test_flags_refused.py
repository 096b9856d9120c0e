"""attack308 F3: the on/off options took any value by its truth: ``stop_execution="false"``
(read from a config) stopped a Step Functions execution, nothing undone; DBOS's
``at_once="no"`` ran the branches at once. Every on/off option of the package is now refused,
one clear TypeError naming it, before anything runs, unless it is True or False."""

from __future__ import annotations

import asyncio
import re

import pytest

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.explore import explore

NOT_FLAGS = ["false", "no", "", 0, 1, None, 2.0, [True]]


def _said(name: str, value: object) -> str:
    return f"^{re.escape(f'{name} must be True or False, got {value!r}')}$"


def _saga(calls: list[str]) -> Saga:
    def step(name: str) -> Step:
        return Step(name, lambda s: calls.append(name), lambda s: calls.append(f"undo {name}"))

    return Saga([step("a"), Parallel(step("b"), step("c"))])


@pytest.mark.parametrize("value", NOT_FLAGS)
def test_step_functions_stop_execution_must_be_a_bool(sfn_runner, value) -> None:
    calls: list[str] = []
    with pytest.raises(TypeError, match=_said("stop_execution", value)):
        sfn_runner.run(_saga(calls), {}, cancel=lambda: False, stop_execution=value)
    assert calls == []


@pytest.mark.parametrize("option", ["at_once", "wait"])
@pytest.mark.parametrize("value", NOT_FLAGS)
def test_dbos_on_off_options_must_be_bools(dbos_runner, option, value) -> None:
    calls: list[str] = []
    with pytest.raises(TypeError, match=_said(option, value)):
        dbos_runner.start_saga(_saga(calls), {}, **{option: value})
    assert calls == []


@pytest.mark.parametrize("value", NOT_FLAGS)
def test_the_other_on_off_options_must_be_bools(tmp_path, value) -> None:
    from rollback_lessons.runners.temporal import TemporalRunner

    with pytest.raises(TypeError, match=_said("ui", value)):
        asyncio.run(TemporalRunner.start(ui=value))
    at = tmp_path / "j.db"
    for name in ("create", "readonly"):
        with pytest.raises(TypeError, match=_said(f"Journal's {name}", value)):
            Journal(at, **{name: value})
    assert not at.exists()
    with Journal(at) as journal, pytest.raises(TypeError, match=_said("force", value)):
        recover(journal, force=value)
    with pytest.raises(TypeError, match=_said("orders", value)):
        explore(_saga([]), orders=value)
