"""A saga too long for SpiffWorkflow's parser (it recurses once per step: about 170 steps in
the list form at a shallow stack, fewer from a deeper caller) is refused before anything runs
as ``UnsupportedInBPMN``, the limit named and what takes it; it was "SpiffWorkflow failed in its
own code ... RecursionError", no limit named (attack94 F1). One that fits runs."""

from __future__ import annotations

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.runners.bpmn import BpmnRunner, UnsupportedInBPMN


def _saga(n: int, world: list[str]) -> Saga:
    steps = [Step(f"s{i}", lambda s, i=i: world.append(f"s{i}"), lambda s: None) for i in range(n)]
    return Saga(steps, name="long")


def test_a_list_saga_too_long_for_spiffworkflow_is_refused_before_it_starts():
    world: list[str] = []
    with BpmnRunner.start() as runner, pytest.raises(UnsupportedInBPMN) as caught:
        runner.run(_saga(400, world), {})
    said = str(caught.value)
    assert "(400 steps) is too long for SpiffWorkflow" in said and "recursion limit" in said
    assert "nothing ran" in said and "graph form" in said
    assert world == []


def test_a_saga_that_fits_runs():
    world: list[str] = []
    with BpmnRunner.start() as runner:
        assert runner.run(_saga(40, world), {}).status == "committed"
    assert len(world) == 40


def test_groups_nested_too_deep_are_refused_the_same_way():
    """attack96 F5: Parallel groups 300 levels deep raised Python's raw RecursionError."""
    from rollback_lessons import Parallel

    world: list[str] = []
    group: object = Step("s0", lambda s: world.append("s0"), lambda s: None)
    for i in range(1, 300):
        group = Parallel(group, Step(f"s{i}", lambda s: None, lambda s: None))
    with BpmnRunner.start() as runner, pytest.raises(UnsupportedInBPMN) as caught:
        runner.run(Saga([group], name="nested"), {})  # type: ignore[list-item]
    assert "is too long for SpiffWorkflow" in str(caught.value) and world == []
