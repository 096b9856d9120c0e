"""BPMN: an Exception raised in SpiffWorkflow's own code mid-run (a bug of the engine's) is
told to the saga machine as a Ctrl-C there is: one line, ``BpmnEngineError``, the engine's
error its cause, its notes saying what is left (attack78 F4)."""

from __future__ import annotations

import pytest
from conftest import world_saga

from rollback_lessons.runners.bpmn import BpmnEngineError, BpmnRunner


def _failing_at(monkeypatch: pytest.MonkeyPatch, world: list[str], after: str) -> None:
    """SpiffWorkflow's script engine fails at its first condition or script once ``after``
    is in the world, as a bug of its own would."""
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

    for name in ("evaluate", "execute"):
        real = getattr(PythonScriptEngine, name)

        def broken(self, task, text, context=None, real=real, name=name):  # type: ignore[no-untyped-def]
            if after in world:
                raise RuntimeError(f"engine bug in {name}")
            return real(self, task, text, context)

        monkeypatch.setattr(PythonScriptEngine, name, broken)


def _raised(run) -> BaseException:  # type: ignore[no-untyped-def]
    with BpmnRunner.start() as runner, pytest.raises(BaseException) as got:
        run(runner)
    return got.value


def test_list_form_going_forward_undoes_what_was_done_and_says_so(monkeypatch):
    world: list[str] = []
    _failing_at(monkeypatch, world, "do b")
    got = _raised(lambda r: r.run(world_saga(world), {}))
    assert type(got) is BpmnEngineError
    assert str(got) == (
        "BPMN: SpiffWorkflow failed in its own code, the run stopped there: "
        "RuntimeError('engine bug in evaluate')"
    )
    assert type(got.__cause__) is RuntimeError
    assert world == ["do a", "do b", "undo b", "undo a"]
    assert got.__notes__ == ["rollback: c was not run: the BPMN engine failed as it started"]


def test_list_form_in_the_engines_rollback_ends_it_halted_with_what_is_left(monkeypatch):
    world: list[str] = []
    _failing_at(monkeypatch, world, "undo b")
    got = _raised(lambda r: r.run(world_saga(world), {}, inject={"c": "fail"}))
    assert type(got) is BpmnEngineError and type(got.__cause__) is RuntimeError
    assert world == ["do a", "do b", "undo b"]
    assert got.__notes__ == [
        "rollback: rollback interrupted by RuntimeError('engine bug in evaluate') in the BPMN "
        "engine's own code, before the undo of a; not known to be undone: a"
    ]


def test_graph_form_stops_where_it_is_and_names_what_is_not_undone(monkeypatch):
    world: list[str] = []
    _failing_at(monkeypatch, world, "do c")
    got = _raised(lambda r: r.run(world_saga(world, graph=True), {}))
    assert type(got) is BpmnEngineError and type(got.__cause__) is RuntimeError
    assert str(got).startswith("BPMN: SpiffWorkflow failed in its own code, the run stopped")
    assert world == ["do a", "do b", "do c"]
    assert len(got.__notes__) == 1
    assert got.__notes__[0].startswith("rollback: rollback interrupted by RuntimeError(")
    assert got.__notes__[0].endswith("going forward; not known to be undone: c, b, a")


@pytest.mark.parametrize("graph", [False, True])
def test_a_bug_as_the_engine_builds_the_workflow_is_one_line_and_nothing_ran(monkeypatch, graph):
    """SpiffWorkflow readies its start event inside ``BpmnWorkflow(...)``: a failure there
    was a bare RuntimeError from inside the engine (attack83 F1)."""
    import SpiffWorkflow.specs.base as base

    real = base.TaskSpec._on_ready

    def broken(self, my_task):  # type: ignore[no-untyped-def]
        if self.name == "Start":
            raise RuntimeError("engine bug as it readies Start")
        return real(self, my_task)

    monkeypatch.setattr(base.TaskSpec, "_on_ready", broken)
    world: list[str] = []
    got = _raised(lambda r: r.run(world_saga(world, graph), {}))
    assert type(got) is BpmnEngineError and "\n" not in str(got)
    assert "RuntimeError('engine bug as it readies Start')" in str(got)
    assert type(got.__cause__) is RuntimeError and world == []
    assert got.__notes__ == [
        "saga 'eng': it stopped as it built the workflow, before any step: nothing ran"
    ]


@pytest.mark.parametrize("graph", [False, True])
def test_a_bug_as_the_engine_says_whether_it_completed_is_one_line_with_what_is_left(
    monkeypatch, graph
):
    """attack85 F5: ``Workflow.is_completed``, asked once the workflow ran, was outside the
    guard: a bare RuntimeError, the steps done (list form) named nowhere. (The graph form
    asks by a search of its own, to any depth: attack96 F4.)"""
    from SpiffWorkflow.bpmn.util.subworkflow import BpmnBaseWorkflow
    from SpiffWorkflow.util.task import TaskState

    search = BpmnBaseWorkflow.get_tasks_iterator

    def broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not graph or kwargs.get("state") == TaskState.NOT_FINISHED_MASK:
            raise RuntimeError("engine bug in is_completed")
        return search(self, *args, **kwargs)

    monkeypatch.setattr(BpmnBaseWorkflow, "is_completed" if not graph else "get_tasks_iterator",
                        broken)  # fmt: skip
    world: list[str] = []
    got = _raised(lambda r: r.run(world_saga(world, graph), {}))
    assert type(got) is BpmnEngineError and "\n" not in str(got)
    assert "RuntimeError('engine bug in is_completed')" in str(got)
    every = ["do a", "do b", "do c"] + (["do d"] if graph else [])
    assert sorted(world) == every  # every step done, none undone: the saga committed
    assert got.__notes__ == [
        "rollback: the RuntimeError('engine bug in is_completed') came once the saga had "
        "committed: there is nothing to undo"
    ]


def _iteration_ends_at(monkeypatch: pytest.MonkeyPatch, world: list[str], after: str) -> None:
    """SpiffWorkflow's task iterator raises ``StopIteration`` inside its own ``_next`` once
    ``after`` is in the world (a ``next()`` on an empty iterator there, as a bug of its own
    would): its iteration ends early, silently, and the workflow stops, not completed."""
    from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator

    real = BpmnTaskIterator._next

    def broken(self):  # type: ignore[no-untyped-def]
        if after in world:
            raise StopIteration()
        return real(self)

    monkeypatch.setattr(BpmnTaskIterator, "_next", broken)


@pytest.mark.parametrize("graph", [False, True])
def test_a_workflow_the_engine_stops_without_completing_is_one_line_with_what_is_left(
    monkeypatch, graph
):
    """attack87's F4: a ``StopIteration`` inside SpiffWorkflow ended its run early, not
    completed, and the runner raised its own bare ``RuntimeError("the BPMN workflow did not
    complete")``: no ``BpmnEngineError``, no notes, a done and named nowhere. It is now
    told to the saga machine as any failure in the engine's code: going forward in the list
    form what was done is undone, in the graph form what is left is named."""
    world: list[str] = []
    _iteration_ends_at(monkeypatch, world, "do b")
    got = _raised(lambda r: r.run(world_saga(world, graph=graph), {}))
    assert type(got) is BpmnEngineError, repr(got)
    assert str(got) == (
        "BPMN: SpiffWorkflow failed in its own code, the run stopped there: "
        "NotCompleted('the workflow stopped with no task ready, not completed')"
    )
    assert isinstance(got.__cause__, RuntimeError)
    if graph:
        assert world == ["do a", "do b"]
        assert len(got.__notes__) == 1
        assert got.__notes__[0].endswith("going forward; not known to be undone: b, a")
    else:
        assert world == ["do a", "do b", "undo b", "undo a"]
        assert got.__notes__ == ["rollback: c was not run: the BPMN engine failed as it started"]
