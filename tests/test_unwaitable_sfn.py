"""Step Functions inside async code (a notebook cell): a call handing back the running
loop's ``run_in_executor`` Future cannot be waited for; its work goes on. The state
machine's own Retry ran it again, three at once, and the list form ended in a bare
HistoryDiverged (attack98 F6); the graph form hung on an undo its Retry handed out again.
Both forms end as ``saga.run`` does, each call made once: the list form answers such a call
``WorkRunsOn``, never retried, a pivot's person, an undo's policy ending at once."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from conftest import same_outcome

from rollback_lessons import RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.runners.stepfunctions import to_asl
from rollback_lessons.runners.stepfunctions.asl import RUNS_ON

RETRY = RetryPolicy(max_attempts=3, initial_delay=1.0, multiplier=1.0, max_delay=1.0)


def _saga(shape: str, loop: Any, calls: list[str]) -> tuple[Saga, dict[str, Any]]:
    lock = threading.Lock()

    def work(tag: str) -> None:
        with lock:
            calls.append(f"{tag} begins")
        time.sleep(0.05)

    def runs_on(tag: str) -> Any:
        return lambda s: loop.run_in_executor(None, work, tag)

    a = Step("a", lambda s: calls.append("do a"), lambda s: calls.append("undo a"))
    b = Step("b", lambda s: None, runs_on("refund"))
    fails = Step("f", lambda s: 1 / 0)
    shapes: dict[str, tuple[list[Step], dict[str, Any]]] = {
        "action retried": ([a, Step("b", runs_on("charge"), lambda s: None, retry=RETRY)], {}),
        "pivot": ([a, Step("p", runs_on("email"), kind="pivot")], {}),
        "undo retried": ([a, b, fails], {"policy": UndoPolicy(RETRY)}),
        "undo retried, then halt": ([a, b, fails], {"policy": UndoPolicy(RETRY, then="halt")}),
        "undo halts": ([a, b, fails], {"policy": UndoPolicy(then="halt")}),
    }
    steps, options = shapes[shape]
    return Saga(steps, name="s"), options


def _run(where: str, shape: str, runner: Any) -> tuple[Any, list[str]]:
    calls: list[str] = []

    async def main() -> Any:
        saga, options = _saga(shape, asyncio.get_running_loop(), calls)
        if where == "saga.run":
            return saga.run({}, **options)
        if where == "graph form":
            options["cancel"] = lambda: False  # (a cancel: the graph form)
        return runner.run(saga, {}, timeout=60, answers=["retry", "retry"], **options)

    outcome = asyncio.run(main())
    return outcome, sorted(calls)


@pytest.mark.parametrize(
    "shape", ["action retried", "pivot", "undo retried", "undo retried, then halt", "undo halts"]
)
def test_work_that_runs_on_ends_on_step_functions_as_in_process(shape, sfn_runner):
    local, made = _run("saga.run", shape, None)
    assert all(made.count(c) == 1 for c in made), made  # (each call once)
    assert local.leaked or local.dead_letters or local.pending, local
    for where in ("list form", "graph form"):
        remote, calls = _run(where, shape, sfn_runner)
        assert calls == made, where
        same_outcome(local, remote, events=False)
        assert remote.notes == local.notes


def test_a_halt_policy_is_never_a_dead_letter_for_an_undo_whose_work_runs_on():
    """Its retries cannot happen: the policy ends as it says once they are over (a halt:
    the undos left pending for a person), not as a dead letter going on with the others."""
    outcome, calls = _run("saga.run", "undo retried, then halt", None)
    assert outcome.status == "halted" and outcome.pending == ("b", "a"), outcome
    assert not outcome.dead_letters and "undo a" not in calls


def test_the_list_form_never_retries_it_and_takes_it_as_after_the_effect():
    loop = asyncio.new_event_loop()
    try:
        saga, _ = _saga("action retried", loop, [])
        asl = to_asl(saga)["States"]
        pivot, _ = _saga("pivot", loop, [])
        late = to_asl(pivot)["States"]
        halting, _ = _saga("undo retried, then halt", loop, [])
        undo = to_asl(halting, policy=UndoPolicy(RETRY, then="halt"))["States"]
    finally:
        loop.close()
    [charge] = [v for k, v in asl.items() if k.startswith("Do b")]
    assert charge["Retry"][0] == {"ErrorEquals": [RUNS_ON], "MaxAttempts": 0}
    [email] = [v for k, v in late.items() if k.startswith("Do p")]
    assert RUNS_ON in email["Catch"][0]["ErrorEquals"]
    assert email["Catch"][0]["Next"] == "Halted at the pivot"
    [refund] = [v for k, v in undo.items() if k.startswith("Undo b")]
    assert refund["Retry"][0]["ErrorEquals"] == [RUNS_ON]
    assert refund["Catch"][0] == {"ErrorEquals": [RUNS_ON], "ResultPath": "$.failure",
                                  "Next": "Left for a person"}  # fmt: skip


def test_the_machine_ends_a_retry_that_cannot_happen_as_its_policy_ends():
    """The rule, once (``Machine.undo_failed``'s ``limit``): a retry then a halt halts
    (pending at once, nobody asked); a retry then a dead letter is a dead letter."""
    from rollback_lessons.machine import Machine
    from rollback_lessons.operations import Finished, RunUndo, StepSpec

    plan = [StepSpec("a", has_undo=True), StepSpec("b", has_undo=True), StepSpec("c")]
    for then, status in [("halt", "halted"), ("dead_letter", "rollback_incomplete")]:
        m = Machine(UndoPolicy(RETRY, then=then), plan=plan)
        m.start()
        m.step_ok()
        m.step_ok()
        op = m.step_failed(ValueError("c"))
        assert isinstance(op, RunUndo) and op.step == "b"
        op = m.undo_failed(ValueError("x"), "no room")
        if then == "dead_letter":
            assert isinstance(op, RunUndo) and op.step == "a"
            op = m.undo_ok()
        assert isinstance(op, Finished) and m.status() == status
        assert m.notes == ["the undo of b: no room"]


@pytest.mark.parametrize(
    "shape", ["action retried", "pivot", "undo retried", "undo retried, then halt", "undo halts"]
)
def test_bpmn_run_explicit_ends_as_in_process_though_its_errors_are_not_kept_live(shape):
    """attack100 F16, F18: ``run_explicit`` (not inside a runner's ``run``, so its errors
    cross as data, stand-ins): three refunds at once, and an action whose work ran on said
    rolled back, not leaked. The record carries it (``errors.GOES_ON``, ``STOOD_IN``)."""
    from rollback_lessons.runners.bpmn import run_explicit

    local, made = _run("saga.run", shape, None)
    calls: list[str] = []

    async def main() -> Any:
        saga, options = _saga(shape, asyncio.get_running_loop(), calls)
        return run_explicit(saga, {}, cancel=lambda: False, answers=["retry"], **options)

    remote = asyncio.run(main())
    assert sorted(calls) == made
    same_outcome(local, remote, events=False)
    assert remote.notes == local.notes
