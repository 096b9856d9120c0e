"""A task Step Functions itself fails (its sendMessage failing inside the service) or times
out (its TimeoutSeconds passing while the worker runs it): the runner never waits for ever,
never raises a bare HistoryDiverged; it stops with one typed error whose note says what is
left in effect (attack78 F2, F3). And the runner's own state machine times no task out: "there
is no timeout by default"."""

import json
import time

import pytest
from moto.sqs.models import SQSBackend

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.runners.stepfunctions import EngineFailedTask, StepFunctionsRunner, to_asl
from rollback_lessons.runners.stepfunctions import runner as runner_module
from rollback_lessons.runners.stepfunctions.asl_graph import graph_asl
from rollback_lessons.runners.stepfunctions.engine import answer_late

FAILED = "failed the task of the action of step 'boom'"
TIMED_OUT = "timed out the task of the action of step 'slow'"
GUARD = 60.0
"""The run's own timeout, so that a run that would wait for ever fails the test instead."""


@pytest.fixture(scope="module")
def runner():
    with StepFunctionsRunner.start() as runner:
        yield runner


def _saga(names, log, slow=None, name="eng"):
    def step(n):
        def act(state):
            if n == "slow":
                slow()
            log.append(f"do {n}")

        return Step(n, act, lambda state, n=n: log.append(f"undo {n}"))

    return Saga([Parallel(*map(step, n)) if isinstance(n, tuple) else step(n) for n in names],
                name=name)  # fmt: skip


@pytest.fixture
def send_fails(monkeypatch):
    """The engine's own sendMessage of step ``boom``'s action fails, as an SQS error inside
    the service would: Step Functions records the task failed (``States.Runtime``)."""
    real = SQSBackend.send_message

    def send_message(self, queue_name, message_body, *args, **kwargs):
        body = json.loads(message_body)
        if body.get("call") == "action" and "boom" in body.get("step", ""):
            raise RuntimeError("engine-side SQS failure")
        return real(self, queue_name, message_body, *args, **kwargs)

    monkeypatch.setattr(SQSBackend, "send_message", send_message)


def _timed_out(runner):
    """Wait until Step Functions timed a task out (its history says so): the slow step's
    action returns only then, as a step slower than its task's TimeoutSeconds would."""

    def wait():
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            for machine in runner.sfn.list_state_machines()["stateMachines"]:
                runs = runner.sfn.list_executions(stateMachineArn=machine["stateMachineArn"])
                for run in runs["executions"]:
                    if run["status"] != "RUNNING":
                        continue
                    events = runner._history(run["executionArn"])
                    if any(e["type"] == "TaskTimedOut" for e in events):
                        return
            time.sleep(0.05)

    return wait


def _one_second(asl, state="Do slow"):
    """``state``'s TimeoutSeconds set to 1 (standing for any: the step is slower)."""
    for name, body in asl["States"].items():
        if name == state:
            body["TimeoutSeconds"] = 1
        for branch in body.get("Branches", []):
            _one_second(branch, state)
    return asl


def test_a_task_the_engine_fails_in_the_list_form_is_told_with_what_is_in_effect(
    runner, send_fails
):
    log = []
    with pytest.raises(EngineFailedTask, match=FAILED) as e:
        runner.run(_saga(["a", "boom", "c"], log), {}, timeout=GUARD)
    assert log == ["do a", "undo a"]  # the state machine's Catch undid a
    assert e.value.__notes__[-1].endswith("nothing done is left in effect")


def test_a_task_the_engine_times_out_in_the_list_form_names_the_step_left_in_effect(runner):
    log = []
    saga = _saga(["a", "slow", "c"], log, slow=_timed_out(runner))
    asl = _one_second(to_asl(saga))
    with pytest.raises(EngineFailedTask, match=TIMED_OUT) as e:
        runner.run(saga, {}, asl=asl, timeout=GUARD)
    assert log == ["do a", "do slow", "undo a"]  # the Catch undid a; slow's effect stands
    assert e.value.__notes__[-1].endswith("done, not undone: slow")


def test_a_task_the_engine_fails_in_the_graph_form_never_hangs_the_run(runner, send_fails):
    log = []
    saga = _saga(["a", ("b", "boom"), "d"], log)
    with pytest.raises(EngineFailedTask, match=FAILED) as e:
        runner.run(saga, {}, timeout=GUARD)  # (a TimedOut after GUARD: it waited for ever)
    assert log == ["do a", "do b"]  # stopped there: nothing more runs, nothing undone
    assert e.value.__notes__[-1].endswith("done, not undone: a, b")


def test_a_task_the_engine_times_out_in_the_graph_form_never_hangs_the_run(runner, monkeypatch):
    log = []
    saga = _saga(["a", ("slow", "b"), "c"], log, slow=_timed_out(runner), name="eng2")
    monkeypatch.setattr(runner_module, "graph_asl", lambda plan: _one_second(graph_asl(plan)))
    with pytest.raises(EngineFailedTask, match=TIMED_OUT) as e:
        runner.run(saga, {}, timeout=GUARD)
    assert log[:2] == ["do a", "do slow"] and "do c" not in log
    assert "done, not undone: a, slow" in e.value.__notes__[-1]


def test_the_runners_state_machines_time_no_task_out_unless_told():
    """No timeout by default: no task has TimeoutSeconds (Step Functions then waits as long
    as the execution lasts); ``to_asl(timeout=...)`` still writes it on every task."""
    steps = [Step(n, lambda s: None, lambda s: None) for n in "ab"]
    for saga in (Saga(steps), Saga([steps[0], Parallel(steps[1], Step("c", lambda s: None))])):
        assert "TimeoutSeconds" not in json.dumps(to_asl(saga))
        timed = json.dumps(to_asl(saga, timeout=7))
        assert timed.count('"TimeoutSeconds": 7') == timed.count('"Type": "Task"') > 0


def test_a_late_answer_to_a_task_the_engine_gave_up_on_is_let_go_and_others_raised():
    from botocore.exceptions import ClientError

    def refusing(code):
        def send(**request):
            raise ClientError({"Error": {"Code": code, "Message": "no"}}, "SendTaskSuccess")

        return send

    for code in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
        answer_late(refusing(code), taskToken="t")
    with pytest.raises(ClientError):
        answer_late(refusing("AccessDenied"), taskToken="t")


def test_moto_branch_threads_dying_on_a_stopped_execution_are_kept_off_stderr(monkeypatch):
    """attack87's F7: once the runner stopped an execution, a moto branch thread mid-state
    died with ``RuntimeError(... ProgramStopped ...)`` and a traceback on stderr, after the
    runner's one-line error. That one error of those threads is dropped (the hook installed
    as the runner stops an execution); any other thread exception goes on as before."""
    import threading

    from rollback_lessons.runners.stepfunctions import stop

    heard: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: heard.append(args.thread.name))

    class Over:  # (an execution already over: the stop asks nothing more)
        def describe_execution(self, executionArn):
            return {"status": "SUCCEEDED"}

    assert stop.stop_execution(Over(), "arn", "Stopped", "why") == "was over"
    stopped = RuntimeError(
        "Could not set NextState value when in state "
        "'<class 'moto.stepfunctions.parser.asl.component.program.states.ProgramStopped'>'"
    )
    for name, exc in [("BranchWorker_$(Program| {'start_at_name': 'Do b'})", stopped),
                      ("BranchWorker_other", RuntimeError("another failure")),
                      ("a thread of the caller's", stopped)]:  # fmt: skip

        def die(exc=exc):  # type: ignore[no-untyped-def]
            raise exc

        thread = threading.Thread(target=die, name=name)
        thread.start()
        thread.join()
    assert heard == ["BranchWorker_other", "a thread of the caller's"]
