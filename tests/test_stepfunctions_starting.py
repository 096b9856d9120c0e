"""attack198 F1: sagas at once on one Step Functions runner (moto in this process). moto
answers a task by asking each running execution in turn whether the token is its own; one
another thread had just started, its worker not yet with its environment, raised moto's
``AttributeError`` before the answer reached its own execution: the run died, its first
step left in effect, no rollback (2 of 8 trials of 8 sagas). Here the other execution's
start is held for a moment, so the answer always meets it."""

import json
import threading

import pytest
from conftest import raising_in_a_thread
from moto.stepfunctions.parser.backend import execution_worker

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

PASS = json.dumps({"StartAt": "p", "States": {"p": {"Type": "Pass", "End": True}}})


@pytest.fixture
def slow_start(monkeypatch):
    """An execution named ``starting`` makes its environment 0.3 s after it is RUNNING."""
    made = execution_worker.ExecutionWorker._get_evaluation_environment
    held = threading.Event()

    def later(worker):
        if worker._evaluation_details.execution_details.name == "starting":
            held.set()
            threading.Event().wait(0.3)
        return made(worker)

    monkeypatch.setattr(execution_worker.ExecutionWorker, "_get_evaluation_environment", later)
    return held


@pytest.mark.parametrize("fails", [False, True])
def test_an_answer_as_another_execution_starts_reaches_its_own(slow_start, fails):
    did: list[str] = []
    with StepFunctionsRunner.start() as runner:
        other = runner.sfn.create_state_machine(  # (listed first: asked first by moto)
            name="other", definition=PASS, roleArn="arn:aws:iam::123456789012:role/x"
        )["stateMachineArn"]

        def a(state: dict) -> None:
            runner.sfn.start_execution(stateMachineArn=other, name="starting")
            assert slow_start.wait(5)  # (RUNNING, its environment not yet made)
            did.append("a")

        def b(state: dict) -> None:
            did.append("b")
            if fails:
                raise RuntimeError("b failed")

        saga = Saga([Step("a", a, lambda s: did.append("undo a")), Step("b", b)], name="s")
        outcome = runner.run(saga, {})
    assert outcome.status is (Status.ROLLED_BACK if fails else Status.COMMITTED), outcome
    assert did == (["a", "b", "undo a"] if fails else ["a", "b"])


def test_an_execution_starting_as_its_runner_closes_is_stopped_before_it_sends(monkeypatch):
    """attack198 F2 (1 of ~130): after close() returned, a lookup of
    sqs.us-east-1.amazonaws.com: an execution a run had just started could not be stopped
    (moto's stop raised the same AttributeError, and the close went on), and even stopped,
    went on to its first task once the mock had ended, sent through moto's own client to
    localhost:5000 (or AWS). The close stops it once it can, and a task moto's interpreter
    sends to a closed runner's queue once the mock has ended is refused in the process."""
    import socket
    import warnings

    from rollback_lessons.runners.closed import RunnerClosed

    made = execution_worker.ExecutionWorker._get_evaluation_environment
    held, looked_up = threading.Event(), []

    def later(worker):
        held.set()
        threading.Event().wait(0.5)
        return made(worker)

    def spied(host, *args, **kwargs):  # (moto in process makes no lookup: any is a request
        looked_up.append((host, *args[:1]))  # leaving it, to AWS or to localhost:5000)
        raise OSError("no network here")

    monkeypatch.setattr(execution_worker.ExecutionWorker, "_get_evaluation_environment", later)
    monkeypatch.setattr(socket, "getaddrinfo", spied)
    runner = StepFunctionsRunner.start()
    saga = Saga([Step("a", lambda s: None, lambda s: None)], name="closing")
    thread, raised = raising_in_a_thread(lambda: runner.run(saga, {}))
    assert held.wait(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (RunsLeft: the run, named)
        runner.close()
    thread.join(30)
    threading.Event().wait(1.5)  # (its environment made, it would go on to its first task)
    assert looked_up == []
    assert len(raised) == 1 and isinstance(raised[0], RunnerClosed), raised
