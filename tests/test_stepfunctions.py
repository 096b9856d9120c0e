"""Sagas as AWS Step Functions state machines, executed by moto's ASL interpreter.

Each scenario runs in process and as a Step Functions execution with the same faults; the
two Outcomes are compared field by field (events too). The state machine's Catch and Retry
decide what runs; the worker in this process only does each task it is handed."""

import json
import math
import threading
from functools import partial

import pytest
from conftest import SOAK, a_part, lesson_worlds, same_outcome, single_faults
from heard import heard_as_in_process
from hypothesis import given, settings
from hypothesis import strategies as st
from outside_validators import asl_errors
from trips import BIG, _act, _step, _undo, big_error_saga, trip

from rollback_lessons import (
    Kind,
    Parallel,
    Retry,
    RetryPolicy,
    Saga,
    Status,
    Step,
    UndoPolicy,
    VirtualClock,
)
from rollback_lessons.errors import InvalidPipelineError
from rollback_lessons.runners.stepfunctions import (
    CALLBACK,
    StepFunctionsRunner,
    UnsupportedOnStepFunctions,
    plan_asl,
    to_asl,
)
from rollback_lessons.runners.wire import plan_of
from rollback_lessons.worlds import travel
from rollback_lessons.worlds.demo import xyz_saga, xyz_state

WORLDS = lesson_worlds()


@pytest.fixture(scope="module")
def runner():
    with StepFunctionsRunner.start() as runner:
        yield runner


def test_every_single_fault_of_the_lesson_sagas_ends_the_same_on_step_functions(runner):
    """Each single fault of five lesson sagas (57 runs of about a second each on moto): make
    test runs a third of them, a different third each run (conftest's a_part; each third
    holds every status below), make soak all of them."""
    cases = a_part(single_faults(), 3, name="step functions' single faults")
    checked = 0
    seen = set()
    for name, inject in cases:
        make_saga, make_state = WORLDS[name]
        local = make_saga().run(make_state(), inject=inject, clock=VirtualClock())
        remote = runner.run(make_saga(), make_state(), inject=inject)
        same_outcome(local, remote)
        seen.add(remote.status)
        checked += 1
    assert checked == len(cases) >= len(single_faults()) // (1 if SOAK else 3)
    assert {Status.COMMITTED, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE} <= seen


def test_the_pivot_saga_retries_forward_and_never_compensates_across_the_pivot(runner, tmp_path):
    """crashlab's charge -> email (pivot) -> ship (retriable): ship failing is retried by the
    state machine's Retry (real waits: 1 s, then 2 s), then halts for a person."""
    from rollback_lessons.worlds.crashlab import make_pivot_saga

    local = make_pivot_saga(tmp_path / "local.db", "p").run({}, inject={"ship": "fail"},
                                                             clock=VirtualClock())  # fmt: skip
    execution = runner.execute(
        make_pivot_saga(tmp_path / "sfn.db", "p"), {}, inject={"ship": "fail"}
    )
    same_outcome(local, execution.outcome)
    assert execution.outcome.status is Status.HALTED and execution.outcome.compensated == ()
    assert [c.attempt for c in execution.calls if c.step == "ship"] == [1, 2, 3]
    rows = execution.history_table().rows
    assert ("FailStateEntered", "Halted after the pivot", "") in rows
    assert not any(state.startswith("Undo") for _, state, _ in rows)


def test_undo_policies_are_retry_catch_and_a_person(runner):
    retry = Retry(RetryPolicy(max_attempts=2, initial_delay=0.1))
    for inject, policy in (
        ({"step3": "fail", "step1": "undo_fails_once"}, retry),
        ({"step3": "fail", "step1": "undo_fails"}, retry),
        ({"step3": "fail", "step2": "undo_fails"}, Retry(RetryPolicy(max_attempts=2), then="halt")),
    ):
        local = xyz_saga().run(xyz_state(), inject=inject, policy=policy, clock=VirtualClock())
        same_outcome(local, runner.run(xyz_saga(), xyz_state(), inject=inject, policy=policy))
    asl = to_asl(xyz_saga(), policy=retry)
    assert asl["States"]["Undo step1"]["Retry"][-1]["MaxAttempts"] == 1  # 2 attempts in all


def test_halt_asks_a_person_whose_answer_the_state_machine_follows(runner):
    inject = {"step3": "fail", "step2": "undo_fails_once"}
    retried = runner.execute(xyz_saga(), xyz_state(), inject=inject, policy="halt",
                             answers=["retry"])  # fmt: skip
    assert retried.outcome.status is Status.ROLLED_BACK
    assert retried.outcome.state_after == xyz_state()
    assert [c.answer for c in retried.calls if c.call == "ask"] == ["retry"]
    fixed = runner.execute(xyz_saga(), xyz_state(), inject={"step3": "fail", "step2": "undo_fails"},
                           policy="halt", answers=["fixed"])  # fmt: skip
    assert fixed.outcome.status is Status.ROLLED_BACK and fixed.outcome.compensated == (
        "step2",
        "step1",
    )
    [by_hand] = [e for e in fixed.outcome.events if e.kind == "undo_done" and e.step == "step2"]
    assert by_hand.details["by_hand"] is True
    left = runner.execute(xyz_saga(), xyz_state(), inject={"step3": "fail", "step2": "undo_fails"},
                          policy="halt")  # fmt: skip
    assert left.outcome.status is Status.HALTED and left.outcome.pending == ("step2", "step1")
    assert left.status == "FAILED"
    assert ("FailStateEntered", "Left for a person", "") in left.history_table().rows


def _reachable(asl):
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = asl["States"][name]
        nexts = [state.get("Next"), state.get("Default")]
        nexts += [c["Next"] for c in state.get("Catch", []) + state.get("Choices", [])]
        todo += [n for n in nexts if n]
    return seen


@pytest.mark.parametrize("policy", ["continue", "retry", "halt"])
@pytest.mark.parametrize("world", sorted(WORLDS))
def test_the_state_machine_is_valid_asl_without_lambda(runner, world, policy):
    make_saga, _ = WORLDS[world]
    saga = make_saga()
    asl = to_asl(saga, policy=policy)
    text = json.dumps(asl)
    assert "lambda" not in text.lower()
    assert _reachable(asl) == set(asl["States"])  # every state is reachable, every edge lands
    tasks = [s for s in asl["States"].values() if s["Type"] == "Task"]
    assert {t["Resource"] for t in tasks} == {CALLBACK}
    compensable = [s.name for s in saga.steps if s.undo is not None]
    undos = [n for n in asl["States"] if n.startswith("Undo ")]
    # newest first; an undo logged after the last step is never needed, so not there
    assert undos == [f"Undo {n}" for n in reversed(compensable) if f"Undo {n}" in undos]
    logged_first = [s.name for s in saga.steps if s.undo is not None and s.register == "before"]
    assert {f"Undo {n}" for n in logged_first} <= set(undos)
    assert len(undos) >= len(compensable) - 1
    arn = runner.machine(asl)  # moto parses and accepts it
    assert json.loads(runner.sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == asl


def test_bad_input_is_refused_before_an_execution_starts(runner):
    before = len(
        runner.sfn.list_executions(stateMachineArn=runner.machine(to_asl(xyz_saga())))["executions"]
    )
    with pytest.raises(InvalidPipelineError):
        runner.execute(xyz_saga(), xyz_state(), answers=["maybe"])
    with pytest.raises(TypeError, match="answers must be a list"):  # (attack224 F1)
        runner.execute(xyz_saga(), xyz_state(), answers="retry")
    with pytest.raises(InvalidPipelineError):
        runner.execute(xyz_saga(), xyz_state(), inject={"nope": "fail"})
    with pytest.raises(UnsupportedOnStepFunctions):
        plan_asl(plan_of(xyz_saga(), "x", undo_order="forward"))
    with pytest.raises(InvalidPipelineError):
        StepFunctionsRunner.start("azure")
    after = len(
        runner.sfn.list_executions(stateMachineArn=runner.machine(to_asl(xyz_saga())))["executions"]
    )
    assert after == before


def _retries_written(asl):
    """Every retrier with backoff in a state machine (nested in Parallel states too)."""
    found = []
    for state in asl["States"].values():
        found += [r for r in state.get("Retry", ()) if "IntervalSeconds" in r]
        for branch in state.get("Branches", ()):
            found += _retries_written(branch)
    return found


def _each_form(retry):
    """A step's retry and the undo policy's, in the list form and in the graph form."""
    ok = partial(_act, "x")
    return [
        Saga([Step("a", ok, lambda s: None, retry=retry), Step("b", ok)]),
        Saga([Step("a", ok, lambda s: None), Step("b", ok)], policy=Retry(retry)),
        Saga([Parallel([Step("a", ok, lambda s: None, retry=retry)], [Step("b", ok)])]),
    ]


WAIT_LIMIT = "over AWS Step Functions' maximum MaxDelaySeconds of 31622400 (366 days)"
ATTEMPTS_LIMIT = "over AWS Step Functions' maximum of 99999999"


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        (dict(initial_delay=1e9, max_delay=1e9),
         f"wait up to 1000000000 s (initial_delay=1e+09, max_delay=1e+09), {WAIT_LIMIT}"),
        (dict(initial_delay=1e8, max_delay=1e8),
         f"wait up to 100000000 s (initial_delay=1e+08, max_delay=1e+08), {WAIT_LIMIT}"),
        (dict(max_delay=1e8, multiplier=1e3, max_attempts=5),
         f"wait up to 100000000 s (initial_delay=0.1, max_delay=1e+08), {WAIT_LIMIT}"),
        (dict(max_attempts=10**8 + 1), f"MaxAttempts would be 100000000, {ATTEMPTS_LIMIT}"),
        (dict(max_attempts=10**9), f"MaxAttempts would be 999999999, {ATTEMPTS_LIMIT}"),
    ],
)  # fmt: skip
def test_retry_fields_over_aws_maxima_are_refused_when_written_in_one_line(fields, said):
    """attack29's F8: ``IntervalSeconds: 1000000000``, ``MaxDelaySeconds: 100000000`` were
    written (asl-validator passes them; CreateStateMachine on AWS refuses them)."""
    for saga in _each_form(RetryPolicy(**fields)):
        with pytest.raises(UnsupportedOnStepFunctions) as refused:
            to_asl(saga)
        assert str(refused.value).endswith(said) and "\n" not in str(refused.value)


def test_a_max_delay_no_wait_reaches_is_written_as_the_aws_maximum_the_waits_the_same():
    """Clamped, not refused, where the policy never waits that long: three attempts of 0.1
    then 0.2 s with ``max_delay=1e8``; a first wait longer than ``max_delay`` is capped by it,
    as in process."""
    for saga in _each_form(RetryPolicy(max_delay=1e8)):
        [written] = _retries_written(to_asl(saga))
        assert (written["IntervalSeconds"], written["MaxDelaySeconds"]) == (1, 31_622_400)
    for saga in _each_form(RetryPolicy(initial_delay=1e9, max_delay=10)):
        [written] = _retries_written(to_asl(saga))
        assert (written["IntervalSeconds"], written["MaxDelaySeconds"]) == (10, 10)


@settings(deadline=None, derandomize=True, database=None, max_examples=60)
@given(
    initial=st.floats(0, 2e9), cap=st.floats(0, 2e9), multiplier=st.floats(1, 1e4),
    attempts=st.one_of(st.integers(1, 40), st.integers(1, 2 * 10**8)),
)  # fmt: skip
def test_every_retry_written_is_within_aws_maxima_or_refused(initial, cap, multiplier, attempts):
    """Whatever the policy: written within AWS's maxima, its waits those of the policy's
    own ``MaxDelaySeconds`` (a clamp never binds), or refused naming the limit."""
    policy = RetryPolicy(attempts, initial, multiplier, cap)
    try:
        asl = to_asl(_each_form(policy)[0])
    except UnsupportedOnStepFunctions as refused:
        assert "over AWS Step Functions' maximum" in str(refused)
        return
    for r in _retries_written(asl):
        assert 1 <= r["IntervalSeconds"] <= r["MaxDelaySeconds"] <= 31_622_400
        assert 0 <= r["MaxAttempts"] <= 99_999_999
        for k in range(min(r["MaxAttempts"], 60)):
            wait = min(r["IntervalSeconds"] * r["BackoffRate"] ** k, 10.0**12)
            assert min(wait, r["MaxDelaySeconds"]) == min(wait, max(1, math.ceil(cap)))


@pytest.mark.parametrize("timeout", [0, -1, 10**8, 1.5, "300", True])
def test_a_task_timeout_aws_would_refuse_is_refused_when_written(timeout):
    for saga in _each_form(RetryPolicy()):
        with pytest.raises(InvalidPipelineError, match="from 1 to 99999999"):
            to_asl(saga, timeout=timeout)
    assert to_asl(xyz_saga(), timeout=99_999_999)


def _same_named_errors():
    """Two exception classes of one ``type_name`` (made by a factory, as botocore's
    errorfactory makes one per client)."""

    def factory():
        class Err(Exception):
            pass

        return Err

    return factory(), factory()


LONG_NAMED = type("L" + "o" * 300 + "ngError", (Exception,), {})  # over 256 with its module


@pytest.mark.parametrize("case", ["same name", "long name"])
@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_retry_types_step_functions_cannot_tell_apart_are_refused_before_anything_runs(
    runner, case, graph
):
    """attack25 F4, F5: ``retry_on`` names a class another class shares the name of (SF
    retried the other, ``saga.run`` does not), or a name over 256 characters (the worker
    sends 256: the list form diverged after the work, the graph's hung). Refused in one
    typed line before anything runs."""
    if case == "same name":
        named, raised = _same_named_errors()
        said = "another class here has that name"
    else:
        named = raised = LONG_NAMED
        said = "carries error names of 256 at most"
    world = []

    def b(state):
        world.append("do b")
        raise raised("b fails")

    retry = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=(named,))
    saga = Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                 Step("b", b, retry=retry)], name="errs")  # fmt: skip
    options = {"undo_order": "reverse_start"} if graph else {}
    with pytest.raises(UnsupportedOnStepFunctions, match=said) as refused:
        runner.run(saga, {}, timeout=30, **options)
    assert "\n" not in str(refused.value)
    assert world == []


_MADE = iter(range(10**6))


def _error_class(base=Exception, name="Err"):
    """A class made now, of a name made for this case (``type_name`` includes it), so that
    no class of another case shares it."""
    return type(
        name, (base,), {"__module__": __name__, "__qualname__": f"case{next(_MADE)}.{name}"}
    )


@pytest.mark.parametrize("case", ["same name", "subclass", "no-retry subclass", "undo subclass"])
@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_an_error_class_made_while_the_saga_runs_is_retried_as_in_process(runner, case, graph):
    """Issue 25: ``check_retry_types`` sees only the classes that exist when the machine is
    written. A class made in the step (botocore's errorfactory makes one per client) of the
    retry rule's name was retried on Step Functions (by name), not in process; a subclass
    made then was retried in process, not there: the list form said HistoryDiverged, the
    graph form waited for a retry that never came; a subclass of a ``no_retry_on`` type
    made then was retried there, not in process; so was an undo's, under a Retry undo
    policy. The worker matches the error to the rule with the real classes: the same
    attempts, the same Outcome."""
    named = _error_class()
    world = []

    def fails(what, state):
        world.append(what)
        if case == "same name":
            same = {"__module__": named.__module__, "__qualname__": named.__qualname__}
            raise type(named.__name__, (Exception,), same)("fails")  # not a subclass
        raise _error_class(named, "Sub")("fails")

    retry = RetryPolicy(max_attempts=2, initial_delay=0.01, retry_on=(named,))
    if case == "no-retry subclass":
        retry = RetryPolicy(max_attempts=2, initial_delay=0.01, no_retry_on=(named,))
    undo, policy = lambda s: world.append("undo a"), None
    if case == "undo subclass":
        undo, policy = partial(fails, "undo a"), Retry(retry)
    saga = Saga([Step("a", lambda s: world.append("do a"), undo),
                 Step("b", partial(fails, "do b"), retry=retry)], name="made late")  # fmt: skip
    options = {"undo_order": "reverse_start"} if graph else {}
    remote = runner.run(saga, {}, timeout=60, policy=policy, **options)
    there, world[:] = list(world), []
    local = saga.run({}, clock=VirtualClock(), policy=policy, **options)
    tries = 2 if case in ("subclass", "undo subclass") else 1
    undos = 2 if case == "undo subclass" else 1
    assert world == there == ["do a", *["do b"] * tries, *["undo a"] * undos]
    same_outcome(local, remote)


def test_a_moto_server_on_loopback_runs_the_same_saga():
    with StepFunctionsRunner.start("moto_server") as server:
        assert server.sfn.meta.endpoint_url.startswith("http://127.0.0.1:")
        inject = {"step3": "fail", "step1": "undo_fails"}
        local = xyz_saga().run(xyz_state(), inject=inject, clock=VirtualClock())
        same_outcome(local, server.run(xyz_saga(), xyz_state(), inject=inject))
        url = server.sfn.meta.endpoint_url
    import urllib.request

    with pytest.raises(OSError):  # stopped with the runner
        urllib.request.urlopen(url + "/moto-api/", timeout=2)


# -- the users' own tools: asl-validator ----------------------------------------------------


def test_asl_validator_finds_nothing_in_any_state_machine_the_package_writes():
    machines = {}
    for world, (make_saga, _) in sorted(WORLDS.items()):
        for policy in ("continue", "retry", "halt"):
            machines[f"{world}, {policy}"] = to_asl(make_saga(), policy=policy)
    awkward = ["x" * 100, 'a "quoted" name', "back\\slash", "tab\there", "café crème",
               "ends with (task)", "undo-x", "x", " spaced ", "line\nbreak", "#1 x"]  # fmt: skip
    saga = Saga([Step(n, lambda s: None, lambda s: None) for n in awkward], name="awkward names")
    for policy in ("continue", "retry", "halt"):
        machines[f"awkward names, {policy}"] = to_asl(saga, policy=policy)
    assert asl_errors(machines) == {}
    assert len(machines) >= 18


def _odd_policy_saga(world: list[str], case: str) -> Saga:
    """A saga whose undo of a fails, then c fails: ``case`` an option moto refused to parse
    (attack113 F2, F3: a raw botocore InvalidDefinition, nothing run)."""

    def undo(state: object) -> None:
        world.append("undo a")
        raise RuntimeError("refund down")

    timeout = {"tiny undo_timeout": 1e-05, "huge undo_timeout": 1e16}.get(case)
    step_retry = RetryPolicy(retry_on=()) if case == "step retry_on=()" else None
    policy = {"undo retry_on=()": UndoPolicy(RetryPolicy(retry_on=())),
              "halt retry_on=()": UndoPolicy(RetryPolicy(retry_on=()), then="halt"),
              "tiny policy timeout": UndoPolicy(RetryPolicy(timeout=1e-05, max_attempts=1)),
              }.get(case, "continue")  # fmt: skip
    return Saga([Step("a", lambda s: world.append("a"), undo, undo_timeout=timeout),
                 Step("b", lambda s: world.append("b"), retry=step_retry),
                 Step("c", lambda s: 1 / 0)], name="odd", policy=policy)  # fmt: skip


ODD = ["undo retry_on=()", "halt retry_on=()", "step retry_on=()", "tiny undo_timeout",
       "huge undo_timeout", "tiny policy timeout"]  # fmt: skip


@pytest.mark.parametrize("case", ODD)
def test_a_policy_retrying_nothing_or_a_tiny_timeout_runs_as_in_process(runner, case):
    local_world: list[str] = []
    local = _odd_policy_saga(local_world, case).run({})
    world: list[str] = []
    remote = runner.run(_odd_policy_saga(world, case), {})
    assert (remote.status, remote.dead_letters and [d.step for d in remote.dead_letters],
            world) == (local.status, local.dead_letters and [d.step for d in local.dead_letters],
                       local_world)  # fmt: skip
    text = json.dumps(to_asl(_odd_policy_saga([], case)))
    assert '"ErrorEquals": []' not in text and "e-05" not in text
    assert asl_errors({case: to_asl(_odd_policy_saga([], case))}) == {}


def test_asl_validator_sees_what_aws_would_refuse():
    """The check can fail: a state name over 80 characters, a Next that lands nowhere."""
    asl = to_asl(xyz_saga())
    long = dict(asl, States={**asl["States"], "x" * 81: {"Type": "Succeed"}})
    lost = json.loads(json.dumps(asl))
    lost["States"]["Do step1"]["Next"] = "Nowhere"
    found = asl_errors({"long": long, "lost": lost, "fine": asl})
    assert set(found) == {"long", "lost"}


# -- parallel groups: a Parallel state, the undos ordered by the saga machine at run time ----


def test_a_group_is_a_parallel_state_whose_branches_each_catch_their_own_failure():
    asl = to_asl(trip())
    group = asl["States"]["Group 1"]
    assert group["Type"] == "Parallel" and len(group["Branches"]) == 3
    for branch in group["Branches"]:
        tasks = [s for s in branch["States"].values() if s["Type"] == "Task"]
        assert tasks and all(t["Catch"][0]["Next"].endswith("stopped") for t in tasks)
    # the undo order is nowhere in the state machine: every undo goes back to What next
    undos = {n: s for n, s in asl["States"].items() if n.startswith("Undo ")}
    assert set(undos) == {f"Undo {n}" for n in trip().names}
    assert {s["Next"] for s in undos.values()} == {"What next"}
    nested = Saga([Parallel([_step("x"), Parallel(_step("y"), _step("z"))], _step("w"))])
    retry = Retry(RetryPolicy(max_attempts=3))
    machines = {"trip": asl, "trip, halt": to_asl(trip(), policy="halt"),
                "trip, retry": to_asl(trip(), policy=retry),
                "by dependency": to_asl(trip(), undo_order="by_dependency"),
                "booking": to_asl(travel.booking(declared=True)),
                "nested": to_asl(nested)}  # fmt: skip
    assert asl_errors(machines) == {}


@pytest.mark.parametrize("order", ["reverse", "reverse_start", "by_dependency", "forward"])
def test_each_undo_order_on_step_functions_is_the_one_in_process(runner, order):
    """Lesson 12's booking, the charge failing, the car finishing after the room: each
    undo order undoes as in process (only reverse completion leaves nothing behind)."""
    options = {"inject": {"charge": "fail"}, "undo_order": order, "completion": travel.TIMING}
    local = travel.booking().run(travel.state(), clock=VirtualClock(), **options)
    execution = runner.execute(travel.booking(), travel.state(), **options)
    same_outcome(local, execution.outcome)
    assert execution.status == "FAILED"
    assert any(e["type"] == "ParallelStateEntered" for e in execution.history)


@pytest.mark.parametrize("completion", [None, (), ("flight", "gps", "room")])
@pytest.mark.parametrize("inject", [{}, {"car": "fail"}, {"flight": "fail_after_effect"},
                                    {"charge": "fail", "room": "undo_fails"}])  # fmt: skip
def test_a_failing_branch_leaves_the_others_to_finish_then_all_is_undone(
    runner, inject, completion
):
    """One step at a time (saga.run), or every ready step at once in a chosen timing: a
    failing branch stops nothing running, nothing more starts (its task is answered
    SagaStopping), every finished step of every branch is undone, as in process."""
    options = {"inject": inject} if completion is None else {"inject": inject,
                                                             "completion": completion}  # fmt: skip
    local = trip().run({}, clock=VirtualClock(), **options)
    execution = runner.execute(trip(), {}, **options)
    same_outcome(local, execution.outcome)
    refused = [e for e in execution.history if e["type"] == "TaskFailed"
               and e["taskFailedEventDetails"]["error"] == "SagaStopping"]  # fmt: skip
    started = {c.step for c in execution.calls if c.call == "action"}
    assert started == {*local.completed, *([local.failed_step] if local.failed_step else [])}
    if "car" in inject:  # its branch ends there: gps is never handed out
        assert "gps" not in started
        # one at a time, the flight's task was handed out with the room's: refused
        assert bool(refused) == (completion is None)
        assert ("flight" in started) == (completion is not None)


def test_undo_policies_and_a_person_on_a_graph(runner):
    retry = Retry(RetryPolicy(max_attempts=2, initial_delay=0.01))
    for inject, policy in (({"charge": "fail", "car": "undo_fails_once"}, retry),
                           ({"charge": "fail", "car": "undo_fails"}, "halt")):  # fmt: skip
        local = trip().run({}, inject=inject, policy=policy, clock=VirtualClock())
        same_outcome(local, runner.run(trip(), {}, inject=inject, policy=policy))
    fixed = runner.execute(trip(), {}, inject={"charge": "fail", "car": "undo_fails"},
                           policy="halt", answers=["fixed"])  # fmt: skip
    assert fixed.outcome.status is Status.ROLLED_BACK and "car" in fixed.outcome.compensated
    assert [c.answer for c in fixed.calls if c.call == "ask"] == ["fixed"]


def test_the_pivot_after_a_group_is_never_compensated_across(runner):
    def saga():
        email = Step("email", partial(_act, "email"), kind=Kind.PIVOT)
        return Saga([*trip().definition, email], name="trip")

    for inject in ({"email": "fail_after_effect"}, {"email": "fail"}):
        local = saga().run({}, inject=inject, clock=VirtualClock())
        execution = runner.execute(saga(), {}, inject=inject)
        same_outcome(local, execution.outcome)
    assert execution.outcome.status is Status.ROLLED_BACK  # refused before its effect


# -- cancellation: the runner's cancel compensates; StopExecution does not -----------------


@pytest.mark.parametrize("completion", [None, ("flight", "room", "car")])
def test_the_runners_cancel_compensates_everything_done_and_says_cancelled(runner, completion):
    """The cancel comes when the car's booking returns: the next task is answered
    SagaStopping (its branch ends), the rest of the group finishes, everything done is
    undone, as ``saga.run(..., cancel=...)`` does."""
    options = {} if completion is None else {"completion": completion}
    local_cancel, cancel = threading.Event(), threading.Event()
    local = trip(cancel_at=("car", local_cancel)).run({}, cancel=local_cancel,
                                                      clock=VirtualClock(), **options)  # fmt: skip
    state = {}
    execution = runner.execute(trip(cancel_at=("car", cancel)), state, cancel=cancel, **options)
    same_outcome(local, execution.outcome)
    assert execution.outcome.status is Status.CANCELLED and "car" in execution.outcome.compensated
    assert set(state.values()) == {"undone"} and "charge" not in state
    rows = execution.history_table().rows
    assert ("FailStateEntered", "Cancelled", "") in rows


def test_a_cancelled_list_saga_is_compensated_as_in_process(runner):
    cancel, local_cancel = threading.Event(), threading.Event()

    def saga(event):
        return Saga([_step("x"), Step("y", lambda s: (_act("y", s), event.set()),
                                      partial(_undo, "y")), _step("z")])  # fmt: skip

    local = saga(local_cancel).run({}, cancel=local_cancel, clock=VirtualClock())
    execution = runner.execute(saga(cancel), {}, cancel=cancel)
    same_outcome(local, execution.outcome)
    assert execution.outcome.status is Status.CANCELLED


MOTO_STOPPED = ("ABORTED", "FAILED", "RUNNING")
"""AWS ends a stopped execution ABORTED; moto (5.2.5) ends one stopped while a callback task
waits FAILED (``States.Runtime``, an error of its own interpreter's), one stopped between
two states never (its thread raises: RUNNING), and cannot always list its history (the
runner then keeps none). Whatever it says, no task of it is answered any more."""


def test_stop_execution_compensates_nothing(runner):
    """Step Functions' own StopExecution, while the receipt's task waits: the execution
    stops, the charge and the steps before it stay, and the outcome says so: nothing
    undone, every undo pending. The runner's own cancel at the same moment undoes them."""
    cancel = threading.Event()

    def saga(steps=("a", "b", "charge", "receipt")):
        made = [_step(n) for n in steps]
        made[2] = Step("charge", lambda s: (_act("charge", s), cancel.set()),
                       partial(_undo, "charge"))  # fmt: skip
        return Saga(made, name="order")

    state = {}
    execution = runner.execute(saga(), state, cancel=cancel, stop_execution=True)
    assert execution.status in MOTO_STOPPED
    assert state == dict.fromkeys(["a", "b", "charge"], "done")
    outcome = execution.outcome
    assert outcome.status is Status.HALTED and outcome.compensated == ()
    assert outcome.pending == ("charge", "b", "a") and "StopExecution" in outcome.notes[0]
    rows = execution.history_table().rows  # (moto 5.2.5 cannot always list it: then none)
    assert not any(state.startswith(("Undo", "What next")) for _, state, _ in rows)
    cancel.clear()
    state = {}
    assert runner.run(saga(), state, cancel=cancel).status is Status.CANCELLED
    assert set(state.values()) == {"undone"}


def test_stop_execution_after_a_group_leaves_every_branch_done(runner):
    """The same after a Parallel state: nothing of any branch is undone. (moto 5.2.5 cannot
    list such an execution's history: the runner keeps an empty one.)"""
    cancel = threading.Event()
    saga = trip(cancel_at=("charge", cancel))
    saga = Saga([*saga.definition, _step("receipt")], name="trip")
    state = {}
    execution = runner.execute(saga, state, cancel=cancel, stop_execution=True)
    assert execution.status in MOTO_STOPPED
    assert state == dict.fromkeys(["a", "room", "car", "gps", "flight", "charge"], "done")
    assert execution.outcome.status is Status.HALTED and execution.outcome.compensated == ()
    assert set(execution.outcome.pending) == set(state)


def test_the_history_holds_the_tasks_the_worker_did_and_the_undos_in_the_machines_order(runner):
    """What the runner checks after each graph execution (else HistoryDiverged): the
    history's answered tasks are the worker's, its undos in the machine's order; a history
    in which two undos changed places is seen."""
    from rollback_lessons.runners.stepfunctions.history import answered

    options = {"inject": {"charge": "fail"}, "completion": travel.TIMING}
    execution = runner.execute(travel.booking(), travel.state(), **options)
    plan = plan_of(travel.booking(), "x", graphs=True)
    seen = answered(execution.history, plan)
    assert sorted(seen) == sorted((c.call, c.step) for c in execution.calls)
    undos = [i for i, (call, _) in enumerate(seen) if call == "undo"]
    assert [seen[i][1] for i in undos] == list(execution.outcome.compensated)
    # an engine that undid the room before the car: its history names them the other way
    other = {"Undo car": "Undo room", "Undo room": "Undo car"}
    swapped = json.loads(json.dumps(execution.history, default=str))
    for event in swapped:
        details = event.get("stateEnteredEventDetails", {})
        details["name"] = other.get(details.get("name"), details.get("name"))
    assert [s for c, s in answered(swapped, plan) if c == "undo"] == ["flight", "room", "car"]


def test_stop_execution_as_the_last_step_runs_stops_nothing_and_says_so(runner):
    """attack153 F1: the cancel set as the last step ran: with StopExecution, heard before a
    step starts, nothing asked it again: committed, no note (the caller who asked to stop
    got a plain commit). Asked as the last step returns now: committed (the stop stopped
    nothing: every step done), noted as DBOS's stop at that instant is."""
    cancel = threading.Event()
    steps = [_step("a"), Step("b", lambda s: (_act("b", s), cancel.set()), partial(_undo, "b"))]
    state = {}
    outcome = runner.run(Saga(steps, name="ab"), state, cancel=cancel, stop_execution=True)
    assert outcome.status is Status.COMMITTED and state == {"a": "done", "b": "done"}
    assert outcome.notes == (
        "StopExecution came as the last step ran: it ran to its end, the stop stopped nothing",
    )


def test_a_cancel_once_the_email_went_is_declined_and_stop_execution_halts(runner):
    """Past the pivot the runner's cancel is declined, as in process (the run goes on);
    StopExecution stops it anyway: halted, a person decides, nothing undone."""
    cancel, local_cancel = threading.Event(), threading.Event()

    def saga(event):
        email = Step("email", lambda s: (_act("email", s), event.set()), kind=Kind.PIVOT)
        return Saga([_step("a"), email, Step("ship", partial(_act, "ship"), kind=Kind.RETRIABLE)])

    local = saga(local_cancel).run({}, cancel=local_cancel, clock=VirtualClock())
    same_outcome(local, runner.run(saga(cancel), {}, cancel=cancel))
    assert local.status is Status.COMMITTED and local.notes
    cancel.clear()
    state = {}
    stopped = runner.execute(saga(cancel), state, cancel=cancel, stop_execution=True)
    assert stopped.outcome.status is Status.HALTED and stopped.outcome.pending == ("a",)
    assert state == {"a": "done", "email": "done"}
    from rollback_lessons.stopping import PAST_PIVOT, STOPPED_PAST  # (attack99 F9: the note

    assert STOPPED_PAST in stopped.outcome.notes  # said "the run goes on" of a stopped one)
    assert PAST_PIVOT not in stopped.outcome.notes


@pytest.mark.parametrize("waited", ["hold", "room"])
def test_a_cancel_set_while_a_steps_task_waits_is_heard_as_that_step_returns(
    runner, monkeypatch, waited
):
    """The cancel comes just as ``waited``'s task arrives (before it is launched). It is
    asked where ``saga.run`` asks it (attack14 F3: asking it once more here, and before each
    step, gave a one-shot or raising cancel function another Outcome): heard as ``waited``
    returns, as in process with the cancel set while that step runs; what was done is
    undone, the next step's task is answered SagaStopping, never left unanswered."""

    def saga(event):
        steps = [_step(n) for n in ("hold", "room", "car")]
        at = ("hold", "room").index(waited)  # in process: set while ``waited`` runs
        steps[at] = Step(waited, lambda s: (_act(waited, s), event.set()),
                         partial(_undo, waited))  # fmt: skip
        return Saga(steps, name="trip")

    local_cancel = threading.Event()
    local = saga(local_cancel).run({}, cancel=local_cancel, clock=VirtualClock())
    cancel, receive = threading.Event(), runner.sqs.receive_message

    def received(**options):  # the cancel comes with the waited step's task message
        got = receive(**options)
        for message in got.get("Messages", []):
            body = json.loads(message["Body"])
            if (body.get("call"), body.get("step")) == ("action", waited):
                cancel.set()
        return got

    monkeypatch.setattr(runner.sqs, "receive_message", received)
    state = {}
    execution = runner.execute(saga(threading.Event()), state, cancel=cancel, timeout=10)
    assert cancel.is_set()
    same_outcome(local, execution.outcome)
    assert execution.outcome.status is Status.CANCELLED
    done = ("hold",) if waited == "hold" else ("hold", "room")
    assert state == dict.fromkeys(done, "undone")
    assert execution.status == "FAILED"  # its Cancelled state, not a timeout


def test_stop_execution_before_the_execution_entered_a_state_stops_it_nothing_done(runner):
    """StopExecution asked before the first step: moto (5.2.5) cannot stop an execution not
    yet in a state, so the runner stops it once its first task came; nothing ran, nothing is
    undone, the outcome says cancelled (nothing was done) and names StopExecution."""
    cancel = threading.Event()
    cancel.set()
    state = {}
    execution = runner.execute(Saga([_step("a"), _step("b")]), state, cancel=cancel,
                               stop_execution=True)  # fmt: skip
    assert execution.status in MOTO_STOPPED and state == {}
    outcome = execution.outcome
    assert outcome.status is Status.CANCELLED and outcome.completed == ()
    assert "StopExecution" in repr(outcome.error)  # (not a rollback cut short: none began,
    assert outcome.notes == (  # attack153 F2)
        "StopExecution stopped the execution before any step began: nothing was done",
    )


@pytest.mark.parametrize("stop_execution", [False, True])
@pytest.mark.parametrize("raises_after", ["a", "b", "c"])
def test_a_cancel_function_that_raises_fails_the_run_as_in_process(
    runner, raises_after, stop_execution
):
    """A cancel function that raises (its source is down) once ``raises_after`` returned:
    the run fails with its error and what was done is undone, as ``saga.run`` does (with
    StopExecution too: nothing was asked to stop, an error happened; after the last step,
    c, StopExecution's cancel was never asked again: committed, attack153 F1)."""

    def make():
        flags = {"up": True}

        def step(name):
            def act(state):
                _act(name, state)
                flags["up"] = flags["up"] and name != raises_after

            return Step(name, act, partial(_undo, name))

        def cancel():
            if not flags["up"]:
                raise RuntimeError("cancel source down")
            return False

        return Saga([step(n) for n in "abc"], name="abc"), cancel

    saga, cancel = make()
    local_state = {}
    local = saga.run(local_state, cancel=cancel, clock=VirtualClock())
    saga, cancel = make()
    state = {}
    outcome = runner.run(saga, state, cancel=cancel, stop_execution=stop_execution)
    same_outcome(local, outcome)
    assert outcome.status is Status.ROLLED_BACK and repr(outcome.error) == repr(
        RuntimeError("cancel source down"))  # fmt: skip
    assert state == local_state and set(state.values()) == {"undone"}


def test_lesson_12s_stop_on_step_functions_leaves_the_bookings_and_the_runners_cancel_does_not(
    runner,
):
    """Lesson 12's claim: stopped once the flight is booked (before the charge),
    StopExecution undoes nothing (halted, every booking pending and still held); the
    runner's cancel compensates every booking (cancelled, nothing held, nothing charged)."""
    stopped, world = travel.stopped_on_step_functions(runner, stop_execution=True)
    assert stopped.status is Status.HALTED and stopped.compensated == ()
    assert set(stopped.pending) == {"room", "car", "flight"}
    assert travel.held(world) == ["room", "car", "flight"] and world["charged"] == 0
    cancelled, world = travel.stopped_on_step_functions(runner, stop_execution=False)
    assert cancelled.status is Status.CANCELLED
    assert set(cancelled.compensated) == {"room", "car", "flight"}
    assert travel.held(world) == [] and world == travel.state()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_awaitable_or_a_generator_returned_fails_as_in_process_never_done(runner):
    async def later(state):
        state["car"] = "booked"

    def saga():
        return Saga([Step("room", lambda s: s.update(room="booked"),
                          lambda s: (s.pop("room", None) for _ in range(1))),
                     Step("car", lambda s: later(s), lambda s: s.pop("car", None))])  # fmt: skip

    state = {}
    remote = runner.run(saga(), state)
    here = saga().run({})
    assert (remote.status, remote.failed_step, [str(d) for d in remote.dead_letters]) == (
        here.status, here.failed_step, [str(d) for d in here.dead_letters],
    )  # fmt: skip
    assert remote.status is Status.ROLLBACK_INCOMPLETE and state == {"room": "booked"}


@pytest.mark.parametrize("undo_order", ["reverse", "reverse_start"])  # the list form, the graph's
def test_on_event_and_the_logger_hear_every_event_as_in_process_on_step_functions(
    runner, undo_order
):
    """Each event once, in the outcome's order, the same fields as ``saga.run`` tells them;
    an error whose repr raises said alike (attack25's F6: they heard nothing; F8)."""
    heard_as_in_process(
        lambda saga: runner.run(saga, {}, undo_order=undo_order, timeout=60),
        undo_order=undo_order,
    )


@pytest.mark.parametrize("ki_at", [2, 4, 12])  # at a's undo_registered, b's start, an undo's
def test_a_ctrl_c_in_on_event_is_taken_as_saga_run_takes_it_on_the_graph_form_too(runner, ki_at):
    """The graph form tells each event live: a Ctrl-C in the callback fails the run there
    going forward (the execution, past a's task already, is answered SagaStopping: what
    was done is undone), cuts the rollback short in it, then is raised with saga.run's notes."""
    graph = "reverse_start"
    heard_as_in_process(
        lambda saga: runner.run(saga, {}, undo_order=graph, timeout=60), ki_at, undo_order=graph
    )


@pytest.mark.parametrize("options", [{}, {"undo_order": "reverse_start"}], ids=["list", "graph"])
def test_an_error_over_the_cause_limit_is_sent_as_json_cut_with_a_note(
    runner, options, monkeypatch
):
    """harden43's leftover: a task failure's cause (the error's record as JSON) was cut at
    32,768 characters mid-JSON: unreadable. It is cut in its texts, with the note every
    engine writes, and reads back; the run ends as in process (the machine has the error)."""
    from rollback_lessons.runners.error_record import ErrorRecord
    from rollback_lessons.runners.stepfunctions.matched import CAUSE_LIMIT

    local = big_error_saga().run({}, clock=VirtualClock(), **options)
    assert local.status is Status.ROLLBACK_INCOMPLETE
    sent, send = [], runner.sfn.send_task_failure  # (moto keeps no cause in its history)
    monkeypatch.setattr(runner.sfn, "send_task_failure",
                        lambda **told: (sent.append(told), send(**told))[1])  # fmt: skip
    same_outcome(local, runner.execute(big_error_saga(), {}, **options).outcome)
    causes = [told["cause"] for told in sent]
    assert len(causes) == 2  # b's, and a's undo's
    for cause, letter in zip(causes, "su", strict=True):
        told = ErrorRecord(**json.loads(cause))
        assert len(cause) <= CAUSE_LIMIT and told.message.startswith(letter * 1000)
        note = f"characters, Step Functions carries {CAUSE_LIMIT}]"
        assert told.message.endswith(f"[... cut: {BIG} {note}")  # the text's own length
        assert told.describe().startswith(f"RuntimeError('{letter}")
        assert told.describe().endswith(f"[... cut: {BIG + 16} {note}")  # (its repr's)


@pytest.mark.parametrize("stop_execution", [False, True])
def test_a_cancel_set_while_a_step_waits_to_retry_is_heard_before_its_next_attempt(
    runner, stop_execution
):
    """attack97 F3: the token was asked as the attempt failed, before moto's Retry waited, and
    not after: a cancel set during the wait was missed, the step tried again (done, then
    undone; with ``stop_execution``, every attempt made, then rolled back). Asked after the
    wait, as in process: the step is not tried again."""
    tries: list[int] = []

    def saga(cancel: threading.Event) -> Saga:
        def flaky(state) -> None:
            tries.append(1)
            if len(tries) == 1:
                threading.Timer(0.3, cancel.set).start()  # (during its 1 s wait)
                raise ConnectionError("c refused once")

        retry = RetryPolicy(max_attempts=3, initial_delay=1.0)
        return Saga([_step("a"), Step("c", flaky, partial(_undo, "c"), retry=retry)],
                    name="retried")  # fmt: skip

    here = threading.Event()
    local = saga(here).run({}, cancel=here)
    assert local.status is Status.CANCELLED and tries == [1]
    tries.clear()
    cancel, state = threading.Event(), {}
    execution = runner.execute(saga(cancel), state, cancel=cancel, timeout=20,
                               stop_execution=stop_execution)  # fmt: skip
    assert tries == [1]  # (not tried again after the cancel)
    if stop_execution:  # (Step Functions' own stop: nothing undone, as documented)
        assert execution.outcome.status is Status.HALTED and state == {"a": "done"}
    else:
        same_outcome(local, execution.outcome)
        assert state == {"a": "undone"}
