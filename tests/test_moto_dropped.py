"""s57 fixops 2 (attack61): a ``StepFunctionsRunner`` with its own ``moto_server``, dropped
unclosed, or closed twice, or whose ``Outcome`` is kept. M3: a Ctrl-C inside the finalizer
that stops a dropped runner's server was raised there, dropped by Python ("Exception
ignored"), and cut the stop: the server ran until the process ended, the Ctrl-C lost. L2: a
Ctrl-C at close()'s first instant: a second close() finishes the job."""

import gc
import linecache
import os
import signal
import sys
import traceback
import weakref

import pytest
from test_moto_ctrl_c import MARK, STANDIN, _left, _servers

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners import moto_server
from rollback_lessons.runners.closed import RunnerClosed
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="/proc (Linux)")


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setattr(moto_server, "COMMAND", ("-I", "-S", "-c", STANDIN))


@pytest.fixture
def ctrl_c():
    """SIGINT heard as Python hears a terminal's Ctrl-C (this run may have it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _signal_in_stop(sent: list[int]):
    """A trace function sending this process a real SIGINT as the server's stop begins, its
    server not yet signalled (``process = self._process``)."""

    def tracer(frame, event, arg):
        code = frame.f_code
        if event == "call" and not code.co_filename.endswith("runners/moto_server.py"):
            return None
        line = linecache.getline(code.co_filename, frame.f_lineno).strip()
        if not sent and event == "line" and line == "process = self._process":
            sent.append(frame.f_lineno)
            sys.settrace(None)
            os.kill(os.getpid(), signal.SIGINT)
        return tracer

    return tracer


def _dropped_as_it_returns(tracer) -> None:
    runner = StepFunctionsRunner.start("moto_server")
    assert runner is not None and _servers(MARK)
    sys.settrace(tracer)  # (its finalizer runs as this returns, this frame ending)


@pytest.mark.parametrize("how", ["del", "return"])
def test_a_ctrl_c_in_a_dropped_runners_finalizer_stops_its_server_and_is_raised_after(
    standin, ctrl_c, how
):
    sent: list[int] = []
    went_on = False
    with pytest.raises(KeyboardInterrupt):
        try:
            if how == "del":
                runner = StepFunctionsRunner.start("moto_server")
                assert _servers(MARK)
                sys.settrace(_signal_in_stop(sent))
                del runner  # (its finalizer runs here: the SIGINT comes as it stops the server)
            else:
                _dropped_as_it_returns(_signal_in_stop(sent))
            gc.collect()
            went_on = True
        finally:
            sys.settrace(None)
    assert sent and not went_on  # (raised as the program went on, not dropped)
    assert not _left(MARK, 0), "the server was left running"
    assert sys.getprofile() is None


def test_a_ctrl_c_at_closes_first_instant_is_finished_by_a_second_close(standin):
    runner = StepFunctionsRunner.start("moto_server")

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "close":
            sys.settrace(None)
            raise KeyboardInterrupt("Ctrl-C as close() is called")
        return None

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.close()
    finally:
        sys.settrace(None)
    assert _servers(MARK) and not runner._closed  # (nothing of it done)
    runner.close()
    assert not _left(MARK, 0) and runner._closed
    with pytest.raises(RunnerClosed):
        runner.machine({})


def _fails(state):
    raise ZeroDivisionError("the step's own error")


@pytest.mark.parametrize("where", ["moto", "moto_server"])
def test_a_kept_outcome_keeps_no_runner_nor_its_server(where):
    """L1: the Outcome's error (the very exception the step raised) kept, through its
    traceback's frames' callers, the worker's and the runner's frames: the runner, and with
    it its own moto_server (its finalizer never ran), as long as the Outcome was kept."""
    before = _servers("moto.server")
    runner = StepFunctionsRunner.start(where)
    outcome = runner.run(Saga([Step("a", lambda s: None, lambda s: None), Step("b", _fails)]))
    assert outcome.status is Status.ROLLED_BACK and isinstance(outcome.error, ZeroDivisionError)
    if where == "moto":
        runner.close()  # (moto's mock in this process: ended, not left to the collector)
    gone = weakref.ref(runner)
    del runner
    gc.collect()
    assert gone() is None, "the kept Outcome keeps the runner"
    assert not _left("moto.server", 10) - before, "the runner's moto_server still runs"
    said = "".join(traceback.format_exception(outcome.error))
    assert "in _fails" in said and "the step's own error" in said  # (where it failed, still)


LEFT_OPEN = """
from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner
def refuse(state):
    raise ValueError("no seats")
runner = StepFunctionsRunner.start()
last = Step("b", refuse, lambda s: None)
saga = Saga([Step("a", lambda s: None, lambda s: None), Parallel(Step("c", lambda s: None), last)
             if {group} else last])
print(runner.run(saga, {{}}).status.value)
"""


@pytest.mark.parametrize("group", [False, True])
def test_a_moto_runner_left_open_at_exit_ends_with_its_program_saying_nothing(group):
    """attack193 F1: moto's mock in this process, left open, was ended by the collector as
    Python shut down: "Exception ignored in: <generator object _moto_in_process>" and moto's
    ImportError, after a run that was right (9 of 9). The runner's finalizer ends it at
    exit, as ``close`` does."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", LEFT_OPEN.format(group=group)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "rolled_back\n", "")


def test_a_client_taken_before_the_close_sends_nothing_once_the_mock_ended():
    """attack196 F2: a run another thread served had taken the runner's client before the
    close; its request, sent once moto's mock had ended, went to AWS itself (2 of 18). The
    closed runner's clients refuse every request but the close's own: ``RunnerClosed``."""
    import threading

    runner = StepFunctionsRunner.start()
    client = runner.sfn
    runner.close()
    raised: list[BaseException] = []

    def request() -> None:
        try:
            client.list_state_machines()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=request)
    thread.start()
    thread.join(60)
    assert [type(exc) for exc in raised] == [RunnerClosed], raised
    assert "list_state_machines" in str(raised[0]) or "ListStateMachines" in str(raised[0])


def test_a_state_machine_made_as_the_runner_closes_never_breaks_the_close(monkeypatch):
    """attack196 F1: ``close`` walked the runner's state machines as a run's thread added
    one: "dictionary changed size during iteration" (4 of 10), the executions left not
    stopped, the queue not deleted. It walks a snapshot."""
    from rollback_lessons.runners.stepfunctions import moto_start

    machines = {"a": "arn-a", "b": "arn-b"}

    class Sfn:
        def list_executions(self, stateMachineArn, statusFilter):
            machines[f"new-{stateMachineArn}"] = "made meanwhile"
            return {"executions": []}

    class Events:
        def register(self, *args):
            pass

    class Sqs:
        meta = type("Meta", (), {"events": Events()})()

        def delete_queue(self, QueueUrl):
            self.deleted = QueueUrl

    sfn, sqs = Sfn(), Sqs()
    sfn.meta = Sqs.meta  # type: ignore[attr-defined]
    moto_start.let_go([sfn, sqs], "moto", "q", machines, None)
    assert sqs.deleted == "q"


def test_an_error_a_run_meets_inside_moto_as_its_runner_closes_is_runner_closed():
    """attack196: a run's request, sent as the close stopped its execution, met moto's own
    error ('NoneType' object has no attribute 'callback_pool_manager'): the run ended with
    it, not with ``RunnerClosed`` as when the closed client refused it (1 of 10). The same
    ``RunnerClosed`` now, its notes kept; AWS's answers, a Ctrl-C, an open runner: as
    they are."""
    import threading
    from types import SimpleNamespace

    from rollback_lessons.runners.closed import closed_under

    def runner(closed: bool, where: str = "moto") -> SimpleNamespace:
        return SimpleNamespace(_closed=closed, where=where,
                               _mine={threading.get_ident(): ["trip"]})  # fmt: skip

    met = AttributeError("'NoneType' object has no attribute 'callback_pool_manager'")
    met.add_note("Step Functions: the execution went with the runner's own moto")
    closed = closed_under(runner(True), met, "on moto")
    assert isinstance(closed, RunnerClosed) and "saga 'trip'" in str(closed)
    assert closed.__notes__ == met.__notes__
    assert closed_under(runner(True, "aws"), met, "on aws") is None
    assert closed_under(runner(False), met, "on moto") is None
    assert closed_under(runner(True), KeyboardInterrupt(), "on moto") is None
    assert closed_under(runner(True), RunnerClosed("gone"), "on moto") is None
