"""A cancel function is asked where ``saga.run`` asks it, on Step Functions and in BPMN too
(attack14 F3: they asked it before each step started and again once its task came, so a
function answering True once, a request consumed when read, or raising at its k-th call gave
another Outcome in 9 of 18 runs). The rule is one (``_graph_drive.ASKED_AT``): before the
first step starts, as each step returns, after each wait to retry a step.

The property: over generated sagas (lists and parallel groups, a step retried once, a step
failing), for any k, a function that answers True only at its k-th call, or raises there,
gives saga.run's Outcome on each engine, and is asked as many times (DBOS's error, carried
as data, is compared by its type's name and message).
"""

import pytest
from conftest import examples, same_outcome
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import RetryPolicy, Saga, Step, VirtualClock
from rollback_lessons.graph import Parallel
from rollback_lessons.runners.bpmn import BpmnRunner
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def engines(dbos_runner):
    sfn = StepFunctionsRunner.start()
    try:
        yield {"stepfunctions": sfn, "bpmn": BpmnRunner.start(), "dbos": dbos_runner}
    finally:
        sfn.close()


FIELDS = ("status", "completed", "compensated", "pending", "leaked")


def same(local, remote, engine: str) -> None:
    """``same_outcome``, but DBOS's error (carried as data, a ``RemoteError``) is compared
    by its message."""
    if engine != "dbos" or local.error is None:
        return same_outcome(local, remote, events=False)
    assert str(local.error) in str(remote.error), (local.error, remote.error)
    fields = (*FIELDS, "failed_step")
    assert [getattr(remote, f) for f in fields] == [getattr(local, f) for f in fields]
    return None


def token(k: int, how: str):
    """A cancel function: True (``how="once"``: only) at its k-th call, or raising there."""
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        if len(calls) == k and how == "raises":
            raise RuntimeError(f"the cancel store is down (call {k})")
        return len(calls) == k

    return cancel, calls


def add(k):
    return lambda s: s.__setitem__(k, 1)


def rm(k):
    return lambda s: s.pop(k, None)


def fails_once(k):
    """An action whose first call fails before its effect, and the next one succeeds."""
    tries: list[int] = []

    def act(s):
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError(f"{k}: busy, try again")
        s[k] = 1

    return act


def build(n: int, parallel: bool, retried: int | None) -> Saga:
    retry = RetryPolicy(max_attempts=2, initial_delay=0.01)
    steps = [
        Step(f"s{i}", add(f"s{i}"), rm(f"s{i}"))
        if i != retried
        else Step(f"s{i}", fails_once(f"s{i}"), rm(f"s{i}"), retry=retry)
        for i in range(n)
    ]
    if parallel and n >= 3:
        return Saga([steps[0], Parallel(steps[1], steps[2]), *steps[3:]], name="asked")
    return Saga(steps, name="asked")


CASES = st.tuples(
    st.integers(1, 4),  # steps
    st.booleans(),  # a parallel group
    st.one_of(st.none(), st.integers(0, 3)),  # the step retried once (its first try fails)
    st.booleans(),  # the last step fails for good
    st.integers(1, 7),  # k
    st.sampled_from(["once", "raises"]),
)


# 6 draws in make test (each on every engine: 0.6 CPU s a draw), 60 in make soak
@settings(max_examples=examples(6))
@given(case=CASES)
def test_a_cancel_function_is_asked_where_saga_run_asks_it_on_every_engine(engines, case):
    n, parallel, retried, fails, k, how = case
    retried = retried if retried is not None and retried < n else None
    inject = {f"s{n - 1}": "fail"} if fails else {}
    here_cancel, here_calls = token(k, how)
    local = build(n, parallel, retried).run({}, inject=inject, cancel=here_cancel,
                                           clock=VirtualClock())  # fmt: skip
    for name, runner in engines.items():
        cancel, calls = token(k, how)
        remote = runner.run(build(n, parallel, retried), {}, inject=inject, cancel=cancel)
        same(local, remote, name)
        assert len(calls) == len(here_calls), (name, case)


@pytest.mark.parametrize("how", ["once", "raises"])
def test_attack14s_four_steps_for_every_k(engines, how):
    """attack14's oneshot_cancel.py and raising_cancel.py: four steps, k = 1..6."""
    for k in range(1, 7):
        here_cancel, here_calls = token(k, how)
        local = build(4, False, None).run({}, cancel=here_cancel, clock=VirtualClock())
        for name, runner in engines.items():
            cancel, calls = token(k, how)
            remote = runner.run(build(4, False, None), {}, cancel=cancel)
            same(local, remote, name)
            assert len(calls) == len(here_calls), (name, k)


def test_a_cancel_heard_in_a_retry_wait_gives_a_list_and_a_graph_the_same_error():
    """A cancel heard as a step waits to retry: the step fails by the cancel, ``Cancelled``,
    on a list and on the graph machine (which Step Functions and BPMN run a list on); the
    graph kept the step's last error (``ConnectionError``) before s39's fix."""
    listed = build(3, False, 0).run({}, cancel=token(2, "once")[0], clock=VirtualClock())
    graph = build(3, True, 0).run({}, cancel=token(2, "once")[0], clock=VirtualClock())
    assert (listed.status, graph.status) == ("cancelled", "cancelled")
    assert repr(graph.error) == repr(listed.error)


@pytest.mark.parametrize("parallel", [False, True])
def test_a_cancel_function_raising_in_a_retry_wait_fails_the_waiting_step_on_a_list_and_a_graph(
    parallel,
):
    """The cancel function raises as s0's wait to retry ends: the waiting step fails for good
    with its error, on a list and on the graph machine alike (``GraphMachine.broken(asked=True)``:
    before, the graph failed the run with no step named, s0 failing with its own last error,
    a ``ConnectionError``, and a note that it "also failed"). Events and all."""
    saga = build(3, parallel, 0)
    listed = build(3, False, 0).run({}, cancel=token(2, "raises")[0], clock=VirtualClock())
    order = {} if parallel else {"undo_order": "reverse_start"}  # (a list on the graph machine)
    graph = saga.run({}, cancel=token(2, "raises")[0], clock=VirtualClock(), **order)
    assert (listed.status, listed.failed_step) == ("rolled_back", "s0")
    same_outcome(listed, graph, events=False)
    assert graph.notes == listed.notes == ()
    told = lambda o: [(e.kind, e.step, {**e.details, "order": 0}) for e in o.events]  # noqa: E731
    assert told(graph) == told(listed)  # (the undo order aside: reverse_start on the graph)


@pytest.mark.parametrize("parallel", [False, True])
def test_every_engine_fails_the_waiting_step_with_the_cancel_functions_error(engines, parallel):
    """The case above on Step Functions, BPMN (a list runs on their graph machine when a
    cancel is given) and DBOS (a parallel saga on its graph): saga.run's Outcome, the
    waiting step named."""
    local = build(3, parallel, 0).run({}, cancel=token(2, "raises")[0], clock=VirtualClock())
    assert local.failed_step == "s0"
    for name, runner in engines.items():
        remote = runner.run(build(3, parallel, 0), {}, cancel=token(2, "raises")[0])
        same(local, remote, name)
        assert remote.failed_step == "s0", name


def _raised(run) -> BaseException | None:
    try:
        run()
    except BaseException as exc:  # (what it raised, and its notes, are the story)
        return exc
    return None


@pytest.mark.parametrize("pivot", [False, True], ids=["list", "pivot"])
def test_a_ctrl_c_in_the_cancel_function_is_told_as_saga_run_tells_it_on_every_engine(
    engines, pivot
):
    """attack37 F3-F5: a Ctrl-C the cancel function raises at its k-th call: DBOS raised it
    bare (nothing undone, the run PENDING, a relaunch committed it); Step Functions stopped
    the execution, the step that had returned named nowhere; BPMN told that step cut short.
    Now each as ``saga.run``: the step that returned is done (undone, or past the pivot the
    run halts), and the Ctrl-C is raised with the same notes, the world the same."""
    from rollback_lessons.rules import Kind

    def saga() -> Saga:
        steps = [Step(f"s{i}", add(f"s{i}"), rm(f"s{i}")) for i in range(3)]
        if pivot:
            steps[1] = Step("s1", add("s1"), None, kind=Kind.PIVOT)
            steps[2] = Step("s2", add("s2"), None, kind=Kind.RETRIABLE)
        return Saga(steps, name="asked")

    def ctrl_c_at(k: int):
        calls: list[int] = []

        def cancel() -> bool:
            calls.append(1)
            if len(calls) == k:
                raise KeyboardInterrupt(f"call {k}")
            return False

        return cancel

    for k in range(1, 5):
        here: dict = {}
        expected = _raised(lambda: saga().run(here, cancel=ctrl_c_at(k), clock=VirtualClock()))  # noqa: B023
        for name, runner in engines.items():
            there: dict = {}
            got = _raised(lambda: runner.run(saga(), there, cancel=ctrl_c_at(k)))  # noqa: B023
            assert type(got) is type(expected), (name, k, got)
            said = (getattr(got, "__notes__", []), getattr(expected, "__notes__", []))
            assert said[0] == said[1] and there == here, (name, k, said, there, here)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_completion_asks_the_cancel_where_saga_run_does_on_every_engine(engines, k):
    """attack56 F3: with ``completion=`` Step Functions asked the cancel before each step
    started as well (9 asks where saga.run and DBOS ask 5): heard sooner, fewer steps ran,
    another Outcome. Asked where saga.run asks it: the same Outcome, as often."""
    order = ["s2", "s0", "s1", "s3"]
    here_cancel, here_calls = token(k, "once")
    local = build(4, True, None).run({}, cancel=here_cancel, completion=order)
    for name in ("stepfunctions", "dbos"):
        cancel, calls = token(k, "once")
        remote = engines[name].run(build(4, True, None), {}, cancel=cancel, completion=order)
        same(local, remote, name)
        assert len(calls) == len(here_calls), (name, k)
