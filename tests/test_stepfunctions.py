"""Sagas as AWS Step Functions state machines, executed by moto's ASL interpreter.

Each scenario runs in process and as a Step Functions execution with the same faults; the
two Outcomes are compared field by field (events too). The state machine's Catch and Retry
decide what runs; the worker in this process only does each task it is handed."""

import json

import pytest
from conftest import lesson_worlds, same_outcome, single_faults
from outside_validators import asl_errors

from rollback_lessons import Retry, RetryPolicy, Saga, Status, Step, VirtualClock
from rollback_lessons.errors import InvalidPipelineError
from rollback_lessons.runners.stepfunctions import (
    CALLBACK,
    StepFunctionsRunner,
    UnsupportedOnStepFunctions,
    plan_asl,
    to_asl,
)
from rollback_lessons.runners.wire import plan_of
from rollback_lessons.worlds.demo import xyz_saga, xyz_state

WORLDS = lesson_worlds()


@pytest.fixture(scope="module")
def runner():
    with StepFunctionsRunner.start() as runner:
        yield runner


def test_every_single_fault_of_the_lesson_sagas_ends_the_same_on_step_functions(runner):
    checked = 0
    seen = set()
    for name, inject in single_faults():
        make_saga, make_state = WORLDS[name]
        local = make_saga().run(make_state(), inject=inject, clock=VirtualClock())
        remote = runner.run(make_saga(), make_state(), inject=inject)
        same_outcome(local, remote)
        seen.add(remote.status)
        checked += 1
    assert checked > 40
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


def test_asl_validator_sees_what_aws_would_refuse():
    """The check can fail: a state name over 80 characters, a Next that lands nowhere."""
    asl = to_asl(xyz_saga())
    long = dict(asl, States={**asl["States"], "x" * 81: {"Type": "Succeed"}})
    lost = json.loads(json.dumps(asl))
    lost["States"]["Do step1"]["Next"] = "Nowhere"
    found = asl_errors({"long": long, "lost": lost, "fine": asl})
    assert set(found) == {"long", "lost"}
