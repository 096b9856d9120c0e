"""attack203: the BPMN runner (SpiffWorkflow, in process) against saga.run. F1: a Ctrl-C as a
step waited to retry (the graph form) stopped the run with nothing undone, its note saying it
came "in the BPMN engine's own code". F2: ``run_explicit`` matched a policy's exception
types by name (retrying a step saga.run tried once) and told errors as stand-ins."""

import signal

import pytest

from rollback_lessons import Parallel, RetryPolicy, Saga, Step
from rollback_lessons.runners.bpmn import BpmnRunner, run_explicit

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="POSIX timers")


def _waits_to_retry(log: list, register: str) -> Saga:
    def act(name):
        def action(s):
            log.append(("do", name))
            if name == "c":
                raise ValueError("c refused")  # (tried again after 1 s)

        return action

    def undo(name):
        return lambda s: log.append(("undo", name))

    steps = [Step(n, act(n), undo(n), register=register if n == "c" else "after",
                  retry=RetryPolicy(max_attempts=3, initial_delay=1.0) if n == "c" else None)
             for n in "abc"]  # fmt: skip
    return Saga([Parallel(steps[0], steps[1]), steps[2]], name="waits")


@pytest.fixture
def ctrl_c_soon():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    yield lambda: signal.setitimer(signal.ITIMER_REAL, 0.3)  # (in c's 1 s wait to retry)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("register", ["after", "before"])
def test_a_ctrl_c_as_a_step_waits_to_retry_undoes_what_was_done_as_saga_run(ctrl_c_soon, register):
    told = {}
    for engine, run in (("saga.run", lambda s: s.run({})), ("bpmn", lambda s: run_explicit(s, {}))):
        log: list = []
        ctrl_c_soon()
        with pytest.raises(KeyboardInterrupt) as cut:
            run(_waits_to_retry(log, register))
        told[engine] = (log, getattr(cut.value, "__notes__", None))
    assert told["bpmn"] == told["saga.run"]
    undone = [step for kind, step in told["bpmn"][0] if kind == "undo"]
    assert undone == (["c", "b", "a"] if register == "before" else ["b", "a"])


def test_run_explicit_keeps_errors_as_raised_as_the_runner_does():
    def made():
        class Flaky(Exception):
            pass

        return Flaky

    rule, other = made(), made()  # (two classes of one name, as botocore's factory makes)

    def saga(tried: list) -> Saga:
        def c(s):
            tried.append("c")
            raise other("not the rule's class")

        def refund(s):
            raise KeyError("k")

        retry = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=(rule,))
        return Saga([Parallel(Step("a", lambda s: None, lambda s: None),
                              Step("b", lambda s: None, refund)),
                     Step("c", c, lambda s: None, retry=retry)], name="kept")  # fmt: skip

    with BpmnRunner.start() as runner:
        runs = (lambda s: s.run({}), lambda s: runner.run(s, {}), lambda s: run_explicit(s, {}))
        for run in runs:
            tried: list = []
            outcome = run(saga(tried))
            assert tried == ["c"] and type(outcome.error) is other, (tried, outcome.error)
            assert [type(d.error) for d in outcome.dead_letters] == [KeyError]
