"""One rule for "this run needs the graph machine" (``wire.needs_graph``, issue 27), and
every engine following it: over generated sagas (lists and graphs, each undo order, with and
without a timing, a cancel, steps at once), each engine's entry is stopped where it picks
its form (the graph form's entry, or the list form's), and what it picked is compared with
the rule and with the other engines. The engines whose list form is the saga machine in code
(in process, Temporal, DBOS) decide alike; so do those whose list is written down before it
runs (Step Functions' ASL, ``to_asl``, BPMN); the two differ only where ``WRITTEN_LIST``
says (a list undone ``forward``, or cancelled)."""

import asyncio
import threading
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.rules import GRAPH_UNDO_ORDERS
from rollback_lessons.runners.wire import MACHINE_LIST, WRITTEN_LIST, needs_graph
from rollback_lessons.schedule import GraphMachine


class Graph(Exception):
    """The run took the graph form."""


class List(Exception):
    """The run took the list form."""


def _act(name, state):
    state[name] = "done"


def _undo(name, state):
    state.pop(name, None)


@st.composite
def cases(draw):
    """A saga (a list of 1-4 steps, or one with a group of 2-3 branches) and the options
    that may route it: an undo order, a timing, a cancel, steps at once."""
    size = draw(st.integers(1, 4))
    names = [f"s{n}" for n in range(size)]
    steps = [Step(n, partial(_act, n), partial(_undo, n)) for n in names]
    if size >= 3 and draw(st.booleans()):
        cut = draw(st.integers(0, size - 2))
        width = draw(st.integers(2, min(3, size - cut)))
        items = [*steps[:cut], Parallel(*steps[cut : cut + width]), *steps[cut + width :]]
    else:
        items = steps
    options = {
        "undo_order": draw(st.sampled_from(GRAPH_UNDO_ORDERS)),
        "completion": draw(st.none() | st.permutations(names).map(tuple)),
        "cancel": draw(st.sampled_from([None, "event"])),
        "at_once": draw(st.booleans()),
    }
    if options["at_once"]:  # at once plays the real timing, not one of one's own
        options["completion"] = None
    return items, options


def saga_of(items):
    return Saga(list(items), name="route")


def chosen(run):
    """Which form ``run()`` picked: "graph", "list", or the error it refused with."""
    try:
        run()
    except Graph:
        return "graph"
    except List:
        return "list"
    except Exception as exc:  # a refusal before anything runs
        return type(exc).__name__
    raise AssertionError("the run went past where its form is chosen")


def stub_forms(mp, graph_at, graph_name, list_at, list_name):
    """Stop a runner where it builds one form or the other: raise ``Graph`` or ``List``."""

    def raiser(kind):
        def stopped(*args, **kwargs):
            raise kind

        return stopped

    mp.setattr(graph_at, graph_name, raiser(Graph))
    mp.setattr(list_at, list_name, raiser(List))


def in_process(mp, items, options):
    from rollback_lessons.saga import Saga as SagaClass

    prepare = SagaClass._prepare

    def stop(self, *args, **kwargs):
        run = prepare(self, *args, **kwargs)[0]
        raise Graph if isinstance(run.m, GraphMachine) else List

    mp.setattr(SagaClass, "_prepare", stop)
    cancel = threading.Event() if options["cancel"] else None
    saga = saga_of(items)
    if options["at_once"]:  # at once, in process, is ``await saga.arun``
        return chosen(lambda: asyncio.run(saga.arun({}, undo_order=options["undo_order"],
                                                    cancel=cancel)))  # fmt: skip
    return chosen(
        lambda: saga.run(
            {}, undo_order=options["undo_order"], cancel=cancel, completion=options["completion"]
        )
    )


def temporal(mp, items, options):
    """No server needed: the workflow runs the graph machine when its plan has ``after``
    (a cancel is the workflow's own, heard by either form; no ``at_once``: always)."""
    from rollback_lessons.runners import hosted
    from rollback_lessons.runners.temporal.runner import plan_for

    plan = plan_for(saga_of(items), undo_order=options["undo_order"],
                    completion=options["completion"])  # fmt: skip
    hosted.release(plan.run_id)
    return "graph" if plan.after is not None else "list"


def dbos(mp, items, options):
    """DBOS need not be launched: the runner is stopped where it calls its workflow."""
    from rollback_lessons.runners import hosted
    from rollback_lessons.runners.dbos import ids, workflow
    from rollback_lessons.runners.dbos import runner as module

    stub_forms(mp, module, "graph_workflow", module, "saga_workflow")
    mp.setattr(ids, "_holder", lambda run_id: None)  # (no DBOS launched: no id is held)
    completion = options["completion"]
    run_id = "route-dbos"
    runner = module.DBOSRunner.__new__(module.DBOSRunner)
    runner.path = Path("route.sqlite")  # (named only if the runner closed under a run)
    try:
        return chosen(lambda: runner.start_saga(
            saga_of(items), {}, wait=True, run_id=run_id, undo_order=options["undo_order"],
            completion=completion, at_once=options["at_once"],
            cancel=threading.Event() if options["cancel"] else None,
        ))  # fmt: skip
    finally:
        hosted.release(run_id)
        workflow.CANCELS.pop(run_id, None)


def step_functions(mp, items, options):
    """No moto needed: the runner is stopped where it writes its state machine."""
    from rollback_lessons.runners.stepfunctions import runner as module

    stub_forms(mp, module, "graph_asl", module, "plan_asl")
    runner = module.StepFunctionsRunner.__new__(module.StepFunctionsRunner)
    return chosen(lambda: runner.execute(
        saga_of(items), {}, undo_order=options["undo_order"],
        completion=options["completion"],
        cancel=threading.Event() if options["cancel"] else None,
    ))  # fmt: skip


def to_asl(mp, items, options):
    """A definition only: no timing, no cancel."""
    from rollback_lessons.runners.stepfunctions import asl, asl_graph

    stub_forms(mp, asl_graph, "graph_asl", asl, "plan_asl")
    return chosen(lambda: asl.to_asl(saga_of(items), undo_order=options["undo_order"]))


def bpmn(mp, items, options):
    from rollback_lessons.runners.bpmn import spiff

    stub_forms(mp, spiff, "_run_graph", spiff, "to_bpmn_explicit")
    return chosen(lambda: spiff.run_explicit(
        saga_of(items), {}, undo_order=options["undo_order"],
        completion=options["completion"],
        cancel=threading.Event() if options["cancel"] else None,
    ))  # fmt: skip


def rule(items, form, undo_order, completion=None, cancel=None, at_once=False):
    """What ``needs_graph`` says, as "graph" or "list"."""
    return "graph" if needs_graph(
        saga_of(items), undo_order=undo_order, completion=completion, cancel=cancel,
        at_once=at_once, form=form,
    ) else "list"  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(cases())
def test_every_engine_decides_as_the_one_rule_and_alike(case):
    items, options = case
    order, cancel, at_once = options["undo_order"], options["cancel"], options["at_once"]
    timing = options["completion"]
    with pytest.MonkeyPatch.context() as mp:
        seen = {
            "in process": in_process(mp, items, options),
            "temporal": temporal(mp, items, options),
            "dbos": dbos(mp, items, options),
            "step functions": step_functions(mp, items, options),
            "to_asl": to_asl(mp, items, options),
            "bpmn": bpmn(mp, items, options),
        }
    machine = rule(items, MACHINE_LIST, order, timing, cancel, at_once)
    assert seen["in process"] == seen["dbos"] == machine
    assert seen["temporal"] == rule(items, MACHINE_LIST, order, timing)  # (no at_once there)
    written = rule(items, WRITTEN_LIST, order, timing, cancel)
    assert seen["step functions"] == written
    assert seen["to_asl"] == rule(items, WRITTEN_LIST, order)
    if timing is not None:  # BPMN's form plays no timing: refused before anything runs
        assert seen["bpmn"] == "UnsupportedInBPMN"
    else:
        assert seen["bpmn"] == written
    # alike: the machine's list forms agree; a written list form differs only where
    # WRITTEN_LIST says (a list undone forward, or cancelled), and then runs the graph form
    if not at_once:
        assert seen["temporal"] == machine
    if written != machine and not at_once:
        assert written == "graph" and saga_of(items).after is None
        assert order == "forward" or cancel is not None


def test_the_rule_itself():
    """The rule, spelled out: a graph always; a list by its options and its engine's form."""
    chain = saga_of([Step("a", partial(_act, "a"), partial(_undo, "a"))])
    graph = saga_of([Parallel(Step("a", partial(_act, "a")), Step("b", partial(_act, "b")))])
    for form in (MACHINE_LIST, WRITTEN_LIST):
        assert needs_graph(graph, form=form)
        assert not needs_graph(chain, form=form)
        for order in ("reverse_start", "by_dependency"):
            assert needs_graph(chain, undo_order=order, form=form)
        assert needs_graph(chain, completion=("a",), form=form)
        assert needs_graph(chain, at_once=True, form=form)
    assert not needs_graph(chain, undo_order="forward", cancel=object())
    assert needs_graph(chain, undo_order="forward", form=WRITTEN_LIST)
    assert needs_graph(chain, cancel=object(), form=WRITTEN_LIST)


def test_a_list_undone_forward_runs_on_step_functions_as_in_process():
    """Refused before the one rule (the written list chains its undos newest first); now
    the graph form runs it, and it ends as ``saga.run`` ends it."""
    from conftest import same_outcome
    from trips import _step

    from rollback_lessons.clock import VirtualClock
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    with StepFunctionsRunner.start() as runner:
        for inject in ({}, {"z": "fail"}, {"z": "fail", "x": "undo_fails"}):
            saga = Saga([_step("x"), _step("y"), _step("z")])
            local = saga.run({}, inject=inject, undo_order="forward", clock=VirtualClock())
            same_outcome(local, runner.run(saga, {}, inject=inject, undo_order="forward"))
