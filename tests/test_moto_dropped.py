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

import pytest
from test_moto_ctrl_c import MARK, STANDIN, _left, _servers

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


def test_a_ctrl_c_in_a_dropped_runners_finalizer_stops_its_server_and_is_raised_after(
    standin, ctrl_c
):
    runner = StepFunctionsRunner.start("moto_server")
    assert _servers(MARK)
    sent: list[int] = []
    went_on = False
    sys.settrace(_signal_in_stop(sent))
    with pytest.raises(KeyboardInterrupt):
        try:
            del runner  # (its finalizer runs here: the SIGINT comes as it stops the server)
            gc.collect()
            went_on = True
        finally:
            sys.settrace(None)
    assert sent and not went_on  # (raised as the program went on, not dropped)
    assert not _left(MARK, 0), "the server was left running"


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
