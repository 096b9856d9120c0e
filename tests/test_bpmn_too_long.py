"""A saga too long for SpiffWorkflow's parser (it recurses once per step: about 170 steps in
the list form at a shallow stack, fewer from a deeper caller) is refused before anything runs
as ``UnsupportedInBPMN``, the limit named and what takes it; it was "SpiffWorkflow failed in its
own code ... RecursionError", no limit named (attack94 F1). One that fits runs."""

from __future__ import annotations

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.errors import NestedTooDeep
from rollback_lessons.runners.bpmn import BpmnRunner, UnsupportedInBPMN
from rollback_lessons.runners.wire import DEEPEST_ON


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
    with BpmnRunner.start() as runner, pytest.raises(NestedTooDeep) as caught:
        runner.run(Saga([group], name="nested"), {})  # type: ignore[list-item]
    assert f"nest 299 deep, and BPMN takes at most {DEEPEST_ON['BPMN'][0]}" in str(caught.value)
    assert world == []


@pytest.fixture
def deep_stack():
    """A recursion limit that lets SpiffWorkflow parse 250 steps in a chain (a list in the
    graph form): the least costly saga whose rollback takes more than 249 undos."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(4000)
    yield
    sys.setrecursionlimit(old)


@pytest.mark.parametrize("policy", ["halt"])  # (its 251st undo halts: both searches)
def test_a_rollback_of_more_than_249_undos_runs_every_undo(deep_stack, policy):
    """attack96 F4: SpiffWorkflow's task search stops at a depth of 1,000, and each turn of the
    graph form's undo loop goes 4 deeper: the 250th undo was never found ready, the rollback
    stopped ("no task ready"), the rest not undone; a halt past that depth was taken for that
    failure too. Both end as ``saga.run`` ends now."""
    from rollback_lessons import Parallel

    def saga(undone: list[str]) -> Saga:
        def undo(i: int):
            def run(s: object) -> None:
                undone.append(f"s{i}")
                if policy == "halt" and i == 1:
                    raise RuntimeError("s1's undo fails")

            return run

        def fails(s: object) -> None:
            raise RuntimeError("last fails")

        steps = [Step(f"s{i}", lambda s: None, undo(i)) for i in range(252)]
        return Saga([Parallel(steps[0]), *steps[1:], Step("last", fails)], name="wide",
                    policy=policy)  # fmt: skip

    here: list[str] = []
    expected = saga(here).run({})
    there: list[str] = []
    with BpmnRunner.start() as runner:
        got = runner.run(saga(there), {})
    assert got.status == expected.status == ("halted" if policy == "halt" else "rolled_back")
    assert there == here and len(here) == 252 - (policy == "halt")
    assert got.pending == expected.pending


def test_a_rollback_of_more_than_249_undos_past_a_branch_that_failed_ends_as_saga_run(deep_stack):
    """attack98 F3: a group whose branch failed leaves its join waiting; SpiffWorkflow's join
    looks for that branch with its own search, cut at a depth of 1,000: past 249 undos it
    never saw it, every undo ran and then "no task ready", no outcome. Both as ``saga.run``."""
    from rollback_lessons import Parallel

    def saga(undone: list[str]) -> Saga:
        def fails(s: object) -> None:
            raise RuntimeError("x fails")

        chain = [Step(f"s{i}", lambda s: None, lambda s, i=i: undone.append(f"s{i}"))
                 for i in range(251)]  # fmt: skip
        return Saga([Parallel(chain, Step("x", fails))], name="branch")

    here: list[str] = []
    expected = saga(here).run({})
    there: list[str] = []
    with BpmnRunner.start() as runner:
        got = runner.run(saga(there), {})
    assert got.status == expected.status == "rolled_back"
    assert there == here and len(here) == 251


@pytest.mark.parametrize("engine", ["bpmn", "asl"])
def test_groups_nested_too_deep_for_a_plan_are_refused_in_one_line(engine):
    """attack99 F4: 400 levels of nested groups raised a bare RecursionError from the plan's
    shape (``wire.shape_of``), on every engine, before anything ran."""
    from rollback_lessons import Parallel
    from rollback_lessons.runners.stepfunctions import to_asl

    world: list[str] = []
    group: object = Step("s0", lambda s: world.append("s0"), lambda s: None)
    for i in range(1, 400):
        group = Parallel(group, Step(f"s{i}", lambda s: None, lambda s: None))
    saga = Saga([group], name="nested")  # type: ignore[list-item]
    if engine == "asl":
        with pytest.raises(NestedTooDeep, match="nest 399 deep, and Step Functions takes at most"):
            to_asl(saga)
    else:
        with BpmnRunner.start() as runner, pytest.raises(NestedTooDeep) as caught:
            runner.run(saga, {})
        assert f"nest 399 deep, and BPMN takes at most {DEEPEST_ON['BPMN'][0]}" in str(caught.value)
        assert "take it as it is" not in str(caught.value)
    assert world == []


def _nested(depth: int, world: list[str]) -> list:
    from rollback_lessons import Parallel

    group: object = Step("s0", lambda s: world.append("s0"), lambda s: None)
    for i in range(1, depth + 1):
        group = Parallel(group, Step(f"s{i}", lambda s: None, lambda s: None))
    return [group]


@pytest.mark.parametrize("engine", ["Step Functions", "DBOS", "BPMN", "Temporal", "saga"])
def test_each_engine_refuses_groups_nested_deeper_than_it_takes_in_one_line(engine, tmp_path):
    """attack100 F1-F4: past each engine's own depth (moto's parser from 35 levels, with a
    190 KB InvalidDefinition; DBOS's pickling, BPMN's export from 200; ``Saga()`` itself
    near 1,000) a bare RecursionError. Refused by name now, before anything runs."""
    from rollback_lessons.graph import DEEPEST
    from rollback_lessons.runners.bpmn import to_bpmn
    from rollback_lessons.runners.stepfunctions import to_asl
    from rollback_lessons.runners.wire import DEEPEST_ON, plan_of

    world: list[str] = []
    if engine == "saga":
        with pytest.raises(NestedTooDeep, match=f"a saga takes at most {DEEPEST}"):
            Saga(_nested(DEEPEST + 1, world))
        return
    most = DEEPEST_ON[engine][0]
    saga = Saga(_nested(most + 1, world), name="deep")
    said = f"nest {most + 1} deep, and {engine} takes at most {most}"
    with pytest.raises(NestedTooDeep, match=said):
        plan_of(saga, "r", graphs=True, engine=engine)
    if engine == "Step Functions":
        with pytest.raises(NestedTooDeep, match=said):
            to_asl(saga)
    if engine == "BPMN":
        with pytest.raises(NestedTooDeep, match=said):
            to_bpmn(saga)
    plan_of(Saga(_nested(most, world), name="fits"), "r", graphs=True, engine=engine)
    assert world == []


def test_bpmn_names_only_the_engines_that_take_a_saga_it_cannot():
    """attack100 F5: a saga too long for SpiffWorkflow was sent to Step Functions, which
    refuses its groups' nesting too."""
    from rollback_lessons.runners.bpmn.spiff import _others

    assert _others(Saga(_nested(40, []))) == "DBOS and Temporal take it as it is"
    flat = Saga([Step(f"s{i}", lambda s: None) for i in range(3)])
    assert _others(flat) == "Step Functions, DBOS and Temporal take it as it is"
    assert _others(Saga(_nested(200, []))) == "saga.run takes it"


def test_a_saga_within_its_depth_built_deep_in_a_callers_stack_is_refused_in_one_line():
    """attack102 F3: ``Saga()`` of 500 levels (within its limit) built 550 frames deep raised
    a bare RecursionError."""
    from rollback_lessons import Parallel
    from rollback_lessons.graph import DEEPEST

    items: list = [Step("x0", lambda s: None)]
    for d in range(DEEPEST):
        items = [Step(f"a{d}", lambda s: None), Parallel([Step(f"p{d}", lambda s: None)], items)]

    def deep(n: int) -> object:
        return deep(n - 1) if n else Saga(items, name="deep")

    with pytest.raises(NestedTooDeep, match="too deep to read at this call's depth"):
        deep(550)
