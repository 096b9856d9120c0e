"""Step Functions' and BPMN's ``close()`` while a saga runs on them in another thread names
that saga and what becomes of it (``RunsLeft``): it returned at once and said nothing (attack94
F2; on Step Functions the run was told only by its own thread, once its action returned; on
BPMN it went on, unsaid, to its end)."""

from __future__ import annotations

import threading
import warnings

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.runners.bpmn import BpmnRunner, RunsLeft
from rollback_lessons.runners.closed import GOES_ON, STOPS
from rollback_lessons.runners.stepfunctions import RunnerClosed, StepFunctionsRunner


@pytest.mark.parametrize(("make", "what"), [(StepFunctionsRunner.start, STOPS),
                                            (BpmnRunner.start, GOES_ON)])  # fmt: skip
def test_close_names_the_sagas_still_running(make, what):
    began, go = threading.Event(), threading.Event()
    world: list[str] = []

    def slow(state) -> None:
        began.set()
        go.wait(10)
        world.append("b")

    saga = Saga([Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
                 Step("b", slow, lambda s: world.append("undo b"))], name="closing")  # fmt: skip
    runner = make()
    ended: list[object] = []

    def run() -> None:
        try:
            ended.append(runner.run(saga, {}).status)
        except RunnerClosed as exc:
            ended.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert began.wait(30)
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        runner.close()
        runner.close()  # (again: nothing more said)
    go.set()
    thread.join(30)
    said = [str(w.message) for w in told if issubclass(w.category, RunsLeft)]
    kind = type(runner).__name__
    assert said == [f"{kind} closed while 1 saga still ran on it ('closing'): {what}"]
    assert ended and world[:2] == ["a", "b"]
    if isinstance(ended[0], RunnerClosed):  # (Step Functions: not "it may still run", F2)
        assert "closed while saga 'closing' ran on it" in str(ended[0])  # (attack99 F1)
        notes = " | ".join(getattr(ended[0], "__notes__", []))
        assert "went with the runner's own moto (it is gone: nothing runs it)" in notes, notes


def test_step_functions_closed_as_a_saga_waits_to_retry_says_so_and_moto_stays_quiet(
    caplog, monkeypatch
):
    """attack96 F7: the saga's RunnerClosed said "receive() refused, nothing was done" beside
    notes naming the steps it did; then moto's execution, its mock gone, logged a screenful
    per state on stderr; attack97 F2: that execution, not stopped, woke from its wait and
    sent its next task to http://localhost:5000 (moto's default endpoint): it is stopped as
    the runner closes, so the note "nothing runs it" is true."""
    import botocore.client

    from rollback_lessons import RetryPolicy

    sent: list[str] = []
    call = botocore.client.BaseClient._make_api_call

    def spy(client, operation, params):  # (any request after the close, from moto's threads;
        ours = closed.is_set() and threading.current_thread() in (threading.main_thread(), thread)
        if closed.is_set() and not ours:  # not the run's own answer of b's failure, ci161)
            sent.append(operation)
        return call(client, operation, params)

    closed = threading.Event()
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)

    world: list[str] = []
    tries: list[int] = []
    waiting = threading.Event()

    def flaky(state) -> None:
        tries.append(1)
        if len(tries) == 1:
            waiting.set()
            raise ConnectionError("b refused once")

    saga = Saga([Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
                 Step("b", flaky, retry=RetryPolicy(max_attempts=3, initial_delay=1.0)),
                 Step("c", lambda s: world.append("c"))], name="waits")  # fmt: skip
    runner = StepFunctionsRunner.start()
    ended: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(saga, {})
        except RunnerClosed as exc:
            ended.append(exc)

    thread = threading.Thread(target=run)
    with caplog.at_level("DEBUG"):
        thread.start()
        assert waiting.wait(30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RunsLeft)
            closed.set()
            runner.close()
        thread.join(30)
        threading.Event().wait(2.5)  # (moto's execution goes on: its retry, then the task)
    assert len(ended) == 1 and world == ["a"] and len(tries) == 1
    said = str(ended[0])
    assert "was closed while saga 'waits' ran on it: the saga stopped there" in said, said
    assert "nothing was done" not in said
    assert "done, not undone: a" in " | ".join(getattr(ended[0], "__notes__", []))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("moto")] == []
    assert sent == []
