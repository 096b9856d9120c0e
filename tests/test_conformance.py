"""Conformance as a property: every engine drives the one saga machine, so a saga ends the same
wherever it runs. Hypothesis draws sagas (kinds of step, when each undo is logged, retry
policies, up to two faults, half the pivots failing before or after their effect, undo
policies including one of a user's own) and each must end as in process (status, undos in
order, dead letters, pending, leaked, the world, every event) on Step Functions (moto, in
this process), as BPMN on SpiffWorkflow where that form can express it, and on DBOS; on
Temporal, a fixed sample of 20 draws. Graphs (parallel groups, undo orders, timings, a
cancel) are drawn too, for Step Functions, DBOS and BPMN (no timing there). Where an engine
cannot express a saga (a policy that decides in Python, written into a state machine), it
must refuse it before anything runs: the world stays untouched."""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from functools import partial

import pytest
from conftest import examples, same_outcome
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rollback_lessons import (
    Kind,
    Parallel,
    Retry,
    RetryPolicy,
    Saga,
    Step,
    UndoPolicy,
    VirtualClock,
)
from rollback_lessons.errors import InvalidNameError, InvalidPipelineError
from rollback_lessons.explore import combinations, inject_of
from rollback_lessons.policies import decides_in_code
from rollback_lessons.runners.bpmn import BpmnRunner, to_bpmn, to_bpmn_explicit
from rollback_lessons.runners.names import execution_name
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
ZEEBE = "{http://camunda.org/schema/zeebe/1.0}"
QUICK = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)
"""Retries in the drawn sagas wait little (Step Functions still waits its whole second)."""


class RetryThenHalt(UndoPolicy):
    """A policy of one's own: one more attempt, then a person."""

    def decide(self, attempt, error):
        return 0.01 if attempt < 2 else "halt"


POLICIES = {
    "continue": "continue",
    "retry": Retry(QUICK),
    "halt": "halt",
    "retry, then halt": Retry(QUICK, then="halt"),
    "a user's own": RetryThenHalt(),
}


def act(name, state):
    state[name] = "done"


def undo(name, state):
    if state.get(name) == "done":  # logged first, its step may never have happened
        state[name] = "undone"


@dataclass(frozen=True)
class Drawn:
    steps: tuple[Step, ...]
    policy: str
    faults: tuple

    def saga(self) -> Saga:
        return Saga(self.steps, name="drawn", policy=POLICIES[self.policy])

    @property
    def inject(self):
        return inject_of(self.faults)

    def __repr__(self):
        shape = [(s.name, str(s.kind), s.register if s.undo else "-", bool(s.retry))
                 for s in self.steps]  # fmt: skip
        return f"Drawn({shape}, policy={self.policy!r}, faults={list(self.faults)})"


@st.composite
def drawn_sagas(draw):
    steps = []
    for i in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 4)) == 0:
            steps.append(Step(f"g{i}", partial(act, f"g{i}"), kind=Kind.GATE))
            continue
        name = f"s{i}"
        steps.append(
            Step(
                name,
                partial(act, name),
                partial(undo, name) if draw(st.integers(0, 5)) else None,
                register=draw(st.sampled_from(["before", "after"])),
                retry=QUICK if draw(st.integers(0, 4)) == 0 else None,
            )
        )
    if draw(st.integers(0, 3)) == 0:  # a pivot, and perhaps a step retried forward after it
        steps.append(Step("email", partial(act, "email"), kind=Kind.PIVOT))
        if draw(st.booleans()):
            steps.append(Step("notify", partial(act, "notify"), kind=Kind.RETRIABLE, retry=QUICK))
    policy = draw(st.sampled_from(sorted(POLICIES)))
    # one or two faults (at most one action and one undo fault per step), rarely none
    every = combinations(Saga(steps), max_faults=2)[1:] or [()]
    if any(s.kind == Kind.PIVOT for s in steps) and draw(st.booleans()):
        # the pivot rule: the pivot fails, before its effect (compensated across) or after
        # it (a person decides), perhaps with an undo fault besides
        fault = draw(st.sampled_from(["fail", "fail_after_effect"]))
        every = [f for f in every if ("email", fault) in f]
    faults = draw(st.sampled_from(every))
    return Drawn(tuple(steps), policy, () if draw(st.integers(0, 7)) == 0 else faults)


def _booking(fault: str, undo_fault: str = "undo_fails_once", policy: str = "retry") -> Drawn:
    """The pivot rule, always in the sample: a charge logged before it, the email (the
    pivot) failing before or after its effect, a step retried forward after it."""
    steps = (
        Step("s0", partial(act, "s0"), partial(undo, "s0"), register="before"),
        Step("email", partial(act, "email"), kind=Kind.PIVOT),
        Step("notify", partial(act, "notify"), kind=Kind.RETRIABLE, retry=QUICK),
    )
    return Drawn(steps, policy, (("email", fault), ("s0", undo_fault)))


PIVOT_EXAMPLES = [_booking("fail_after_effect"), _booking("fail"),
                  _booking("fail_after_effect", "undo_fails", "continue")]  # fmt: skip


@pytest.fixture(scope="module")
def step_functions():
    with StepFunctionsRunner.start() as runner:
        yield runner


def _refused(run, drawn):
    """An engine that cannot express the saga refuses it before anything runs."""
    state = {}
    with pytest.raises(InvalidPipelineError):
        run(drawn.saga(), state, inject=drawn.inject)
    assert state == {}


PROPERTY = settings(
    deadline=None,
    derandomize=True,  # the same draws every run: a fixed, reviewable sample
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(PROPERTY, max_examples=examples(12))  # make soak: 120
@given(drawn=drawn_sagas())
@example(drawn=PIVOT_EXAMPLES[0])
@example(drawn=PIVOT_EXAMPLES[1])
@example(drawn=PIVOT_EXAMPLES[2])
def test_a_drawn_saga_ends_the_same_on_every_engine(drawn, step_functions, dbos_runner):
    local = drawn.saga().run({}, inject=drawn.inject, clock=VirtualClock())
    own = decides_in_code(drawn.saga().policy)
    if own:
        _refused(step_functions.run, drawn)
    else:
        same_outcome(local, step_functions.run(drawn.saga(), {}, inject=drawn.inject))
    expressible = drawn.policy == "continue" and not any(s.retry for s in drawn.steps)
    if expressible:
        same_outcome(local, BpmnRunner.start().run(drawn.saga(), {}, inject=drawn.inject))
    else:
        _refused(BpmnRunner.start().run, drawn)
    same_outcome(local, dbos_runner.run(drawn.saga(), {}, inject=drawn.inject))


@pytest.mark.usefixtures("no_run_left_behind")
@settings(PROPERTY, max_examples=20)
@given(drawn=drawn_sagas())
@example(drawn=PIVOT_EXAMPLES[0])
@example(drawn=PIVOT_EXAMPLES[1])
def test_a_fixed_sample_of_drawn_sagas_ends_the_same_on_temporal(drawn, on_temporal):
    local = drawn.saga().run({}, inject=drawn.inject, clock=VirtualClock())
    remote = on_temporal(lambda runner: runner.run(drawn.saga(), {}, inject=drawn.inject))
    same_outcome(local, remote)


# -- graphs: parallel groups, undo orders, timings, a cancel ---------------------------------


@dataclass(frozen=True)
class DrawnGraph:
    """A saga with a parallel group (a branch may be a sequence, or hold a group of its
    own), an undo order, a timing (None: one step at a time, as ``saga.run``), faults and
    perhaps a cancel heard when a drawn step returns."""

    shape: tuple
    policy: str
    undo_order: str
    completion: tuple | None
    faults: tuple
    cancel_at: str | None

    def saga(self, cancel=None) -> Saga:
        def build(item):
            if isinstance(item, str):
                if item == self.cancel_at and cancel is not None:
                    return Step(item, lambda s, n=item: (act(n, s), cancel.set()),
                                partial(undo, item))  # fmt: skip
                return Step(item, partial(act, item), partial(undo, item))
            return Parallel(*[[build(i) for i in branch] for branch in item])

        return Saga([build(i) for i in self.shape], name="graph", policy=POLICIES[self.policy])

    @property
    def inject(self):
        return inject_of(self.faults)

    def options(self, cancel=None):
        found = {"inject": inject_of(self.faults), "undo_order": self.undo_order}
        if self.completion is not None:
            found["completion"] = self.completion
        if cancel is not None:
            found["cancel"] = cancel
        return found


@st.composite
def drawn_graphs(draw):
    names = iter(f"s{i}" for i in range(20))
    shape: list = []
    if draw(st.booleans()):
        shape.append(next(names))
    branches = []
    for _ in range(draw(st.integers(2, 3))):
        branch: list = [next(names) for _ in range(draw(st.integers(1, 2)))]
        if draw(st.integers(0, 5)) == 0:  # a group inside a branch
            branch.append(((next(names),), (next(names),)))
        branches.append(tuple(branch))
    shape.append(tuple(branches))
    if draw(st.booleans()):
        shape.append(next(names))
    probe = DrawnGraph(tuple(shape), "continue", "reverse", None, (), None).saga()
    every = combinations(probe, max_faults=2)[1:]
    steps = list(probe.names)
    completion = draw(st.one_of(st.none(), st.permutations(steps).map(tuple)))
    policy = draw(st.sampled_from(["continue", "halt", "retry"]))
    return DrawnGraph(
        shape=tuple(shape),
        policy=policy,
        undo_order=draw(st.sampled_from(["reverse", "reverse_start", "by_dependency", "forward"])),
        completion=completion,
        faults=() if draw(st.integers(0, 7)) == 0 else draw(st.sampled_from(every)),
        cancel_at=draw(st.sampled_from(steps)) if draw(st.booleans()) else None,
    )


@settings(PROPERTY, max_examples=examples(6))  # make soak: 60
@given(drawn=drawn_graphs())
def test_a_drawn_graph_ends_the_same_on_step_functions(drawn, step_functions):
    """Groups as Parallel states, the undos ordered at run time by the saga machine:
    every undo order, timing, fault and cancel ends as ``saga.run`` ends it."""
    import threading

    here, there = threading.Event(), threading.Event()
    local = drawn.saga(here).run({}, clock=VirtualClock(), **drawn.options(here))
    remote = step_functions.run(drawn.saga(there), {}, **drawn.options(there))
    same_outcome(local, remote)


CANCEL_MID_GROUP = DrawnGraph(
    ("s0", (("s1",), ("s2", "s3")), "s4"), "continue", "reverse", ("s2", "s1", "s3"), (), "s1"
)
"""A cancel as s1 returns, s3 (begun once s2 ended) still running: it finishes, then all four
are undone (``cancelled``): always in Temporal's sample."""


@pytest.mark.usefixtures("no_run_left_behind")
@settings(PROPERTY, max_examples=10)
@given(drawn=drawn_graphs())
@example(drawn=CANCEL_MID_GROUP)
def test_a_fixed_sample_of_drawn_graphs_ends_the_same_on_temporal(drawn, on_temporal):
    """The groups' branches as concurrent activities, the graph machine in the workflow:
    each draw's timing played (``completion``; one step at a time in definition order where
    the draw has none, since a free run's order is the server's) ends as ``saga.run`` ends
    it, event by event. A drawn cancel is the workflow's own (``handle.cancel()``), asked as
    the drawn step's action returns and heard by the workflow before that step's end: as
    ``saga.run(..., cancel=...)`` hears it when the step returns. (Not on a step whose
    action fails: in process a failing step's end is no place where a cancel is heard.)"""
    import threading

    faulty = {step for step, fault in drawn.faults if str(fault) in ("fail", "fail_after_effect")}
    cancel_at = drawn.cancel_at if drawn.cancel_at not in faulty else None
    drawn = replace(drawn, cancel_at=cancel_at, completion=drawn.completion or probe_names(drawn))
    here, there = threading.Event(), CancelOnTemporal()
    local = drawn.saga(here).run({}, clock=VirtualClock(), **drawn.options(
        here if cancel_at else None))  # fmt: skip

    async def scenario(runner):
        import asyncio

        there.loop = asyncio.get_running_loop()
        there.handle = await runner.start_saga(drawn.saga(there), {}, **drawn.options())
        there.started.set()
        return await there.handle.outcome()

    same_outcome(local, on_temporal(scenario))


class CancelOnTemporal:
    """A drawn step's ``set()`` on Temporal: cancel its workflow (``handle.cancel()``) and
    wait until the workflow has heard it (from the activity's thread, on the runner's loop)."""

    def __init__(self) -> None:
        import threading

        self.started, self.loop, self.handle = threading.Event(), None, None

    def set(self) -> None:
        import asyncio

        from test_temporal_graph import cancel_heard

        assert self.started.wait(60), "the workflow was never started"
        asyncio.run_coroutine_threadsafe(cancel_heard(self.handle), self.loop).result(120)


def probe_names(drawn: DrawnGraph) -> tuple:
    return tuple(drawn.saga().names)


@settings(PROPERTY, max_examples=examples(10))  # make soak: 100
@given(drawn=drawn_graphs())
def test_a_drawn_graph_ends_the_same_on_dbos(drawn, dbos_runner):
    """The graph machine driven in a DBOS workflow: every undo order, timing, fault, policy
    and cancel ends as ``saga.run`` ends it."""
    import threading

    here, there = threading.Event(), threading.Event()
    local = drawn.saga(here).run({}, clock=VirtualClock(), **drawn.options(here))
    same_outcome(local, dbos_runner.run(drawn.saga(there), {}, **drawn.options(there)))


def _graph_example(policy: str, faults: tuple, order: str = "reverse") -> DrawnGraph:
    """s0, then s1 and s2-then-s3 at once, then s4: a fixed draw, always in the sample."""
    shape = ("s0", (("s1",), ("s2", "s3")), "s4")
    return DrawnGraph(shape, policy, order, None, faults, None)


@settings(PROPERTY, max_examples=examples(15))  # make soak: 150
@given(drawn=drawn_graphs())
@example(drawn=_graph_example("halt", (("s4", "fail"), ("s2", "undo_fails"))))
@example(
    drawn=_graph_example("retry", (("s4", "fail"), ("s3", "undo_fails_once")), "by_dependency")
)
@example(drawn=_graph_example("retry", (("s3", "fail"), ("s1", "undo_fails")), "reverse_start"))
def test_a_drawn_graph_ends_the_same_as_bpmn_on_spiffworkflow(drawn):
    """The explicit BPMN form (parallel gateways, the undos asked of the saga machine) on
    SpiffWorkflow ends as ``saga.run`` ends, one step at a time, in every undo order and
    under each drawn policy (*continue*; *retry*: the undo jobs' retries; *halt*: an
    incident, the rest pending for a person); a policy that decides in Python, which no
    model can carry, is refused before anything runs; a drawn cancel, heard as its step
    returns, ends as it does in process. (A timing of one's own is not the form's: it runs
    one step at a time.)"""
    import threading

    here, there = threading.Event(), threading.Event()
    asked = drawn.cancel_at is not None
    options = {"inject": drawn.inject, "undo_order": drawn.undo_order}
    local = drawn.saga(here).run({}, clock=VirtualClock(), cancel=here if asked else None,
                                 **options)  # fmt: skip
    remote = BpmnRunner.start().run(drawn.saga(there), {}, cancel=there if asked else None,
                                    **options)  # fmt: skip
    same_outcome(local, remote)
    run = partial(BpmnRunner.start().run, undo_order=drawn.undo_order, policy=RetryThenHalt())
    _refused(run, drawn)


# -- names: whatever a step is called, every engine carries it ----------------------------------

AWKWARD = ["x", "undo-x", "Do x", "x (task)", "#1 x", "1", 'say "hi"', "back\\slash",
           "tab\there", "line\nbreak", "  spaced  ", "café", "日本", "x" * 100, "é" * 90,
           "Committed", "Ask a person about x", "=ok", "list contains(logged, x)"]  # fmt: skip


def carried(name: str) -> bool:
    try:
        Step(name, act)
    except InvalidPipelineError:
        return False
    return True


step_names = st.one_of(st.sampled_from(AWKWARD), st.text(min_size=1, max_size=120).filter(carried))


@st.composite
def named_sagas(draw):
    names = draw(st.lists(step_names, min_size=1, max_size=4, unique=True))
    steps = [Step(n, partial(act, n), partial(undo, n)) for n in names]
    name = draw(step_names)
    saga = Saga(steps, name=name)
    faults = draw(st.sampled_from(combinations(saga, max_faults=2)))
    return saga, inject_of(faults)


@settings(PROPERTY, max_examples=examples(15))  # make soak: 150
@given(drawn=named_sagas())
def test_any_step_names_end_the_same_on_every_engine(drawn, step_functions, dbos_runner):
    """Unicode, quotes, backslashes, tabs, line breaks, long names, names that look like
    the state machines' own: Step Functions, BPMN and DBOS run them as in process; every
    state name is within ASL's 80 characters, and every BPMN job type is its own. (On
    Temporal: a fixed sample, in test_temporal_edges.)"""
    saga, inject = drawn
    local = saga.run({}, inject=inject, clock=VirtualClock())
    same_outcome(local, dbos_runner.run(saga, {}, inject=inject))
    execution = step_functions.execute(saga, {}, inject=inject)
    same_outcome(local, execution.outcome)
    states = [e["stateEnteredEventDetails"]["name"] for e in execution.history
              if "stateEnteredEventDetails" in e]  # fmt: skip
    assert all(0 < len(s) <= 80 for s in states + list(execution.asl["States"]))
    same_outcome(local, BpmnRunner.start().run(saga, {}, inject=inject))
    for xml in (to_bpmn(saga), to_bpmn_explicit(saga)):
        jobs = {(job.get("type"), task.get("name")) for task in ET.fromstring(xml).iter()
                if (job := task.find(f"{BPMN}extensionElements/{ZEEBE}taskDefinition"))
                is not None}  # fmt: skip
        # one job type per task ("Do x", "Undo x"), one task per job type
        assert len({t for t, _ in jobs}) == len({n for _, n in jobs}) == len(jobs)


def test_a_name_no_engine_can_carry_is_refused_when_the_saga_is_made():
    for bad in (
        "nul\x00",
        "bell\x07",
        "\ud800",
        "del\x7f",
        "c1\x80",
        "csi\x9b[2J",
    ):  # (C1: attack41)
        with pytest.raises(InvalidNameError, match=r"U\+"):
            Step(bad, act)
        with pytest.raises(InvalidNameError, match="the saga's name"):
            Saga([Step("a", act)], name=bad)


@settings(PROPERTY, max_examples=200)
@given(saga_name=st.text(min_size=1), suffix=st.from_regex(r"[0-9a-f]{12}", fullmatch=True))
def test_execution_names_are_valid_for_aws(saga_name, suffix):
    made = execution_name(saga_name, suffix)
    assert re.fullmatch(r"[A-Za-z0-9_.\-]{1,80}", made) and made.endswith("-" + suffix)


# -- an undo attempt's timeout: measured by every engine's worker, as in process ---------------


def test_an_undo_past_its_timeout_failed_on_every_engine(step_functions, dbos_runner):
    """A step's own undo timeout, and a policy's: the late undo is a failed attempt (then a
    dead letter, or retried) wherever the saga runs."""
    import time

    def make(policy):
        return Saga([Step("a", partial(act, "a"), lambda s: time.sleep(1.0), undo_timeout=0.3),
                     Step("b", partial(act, "b"), partial(undo, "b")),
                     Step("c", lambda s: 1 / 0)], policy=policy)  # fmt: skip

    timed = Retry(RetryPolicy(max_attempts=2, initial_delay=0.01, timeout=0.3))
    for policy in ("continue", timed):
        local = make(policy).run({}, clock=VirtualClock())
        assert [d.step for d in local.dead_letters] == ["a"]
        same_outcome(local, step_functions.run(make(policy), {}))
        same_outcome(local, dbos_runner.run(make(policy), {}))
        if policy == "continue":
            same_outcome(local, BpmnRunner.start().run(make(policy), {}))


@pytest.mark.parametrize("fault", ["undo_fails", "undo_fails_once"])
@pytest.mark.parametrize("engine", ["sfn", "bpmn", "dbos", "temporal"])
def test_an_undo_fault_on_a_step_with_no_undo_is_refused_by_every_engine(request, engine, fault):
    """attack113 F1: refused in process ("the fault could never happen"); ignored by the
    four engines, which ran every step and committed."""
    called: list[str] = []
    saga = Saga([Step("a", lambda s: called.append("a")),
                 Parallel(Step("b", lambda s: called.append("b"), lambda s: None),
                          Step("c", lambda s: called.append("c")))])  # fmt: skip
    with pytest.raises(InvalidPipelineError, match="could never happen"):
        saga.run({}, inject={"a": fault})
    with pytest.raises(InvalidPipelineError, match=r"'c' the fault .* could never happen"):
        if engine == "temporal":
            request.getfixturevalue("on_temporal")(
                lambda runner: runner.run(saga, {}, inject={"c": fault}))  # fmt: skip
        else:
            request.getfixturevalue(f"{engine}_runner").run(saga, {}, inject={"c": fault})
    assert called == []  # (refused before anything ran)


@pytest.mark.parametrize("engine", ["sfn", "bpmn", "dbos"])
def test_a_state_that_cannot_be_copied_is_noted_on_every_engine(request, engine):
    """attack113 F4: the engines showed the stand-in ('<uncopyable lock>') with no word."""
    import threading

    saga = Saga([Step("a", lambda s: s.__setitem__("n", 1), lambda s: s.pop("n"))], name="c")
    local = saga.run({"lock": threading.Lock(), "x": [1]})
    remote = request.getfixturevalue(f"{engine}_runner").run(
        saga, {"lock": threading.Lock(), "x": [1]}
    )
    assert local.notes and "could not be copied" in local.notes[0]
    assert (remote.notes, remote.state_before) == (local.notes, local.state_before)
