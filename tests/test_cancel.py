"""Cancellation in process (issue 27): a run its caller stops (a cancel token in ``saga.run``,
a cancelled task in ``await saga.arun``) starts nothing more, undoes what was done, shielded
in async, and says ``cancelled``."""

import asyncio
import threading
import time

import pytest

from rollback_lessons import Cancelled, Parallel, Retry, RetryPolicy, Saga, Status, Step
from rollback_lessons.machine import status_of


def chain(log, stop=None, token=None, names="abcd"):
    """Steps setting their key; ``stop`` sets ``token`` from inside that step's action."""

    def step(name):
        def action(state):
            state[name] = True
            if name == stop:
                token.set()

        return Step(name, action, lambda s: (log.append(name), s.pop(name)))

    return Saga([step(n) for n in names])


def test_the_status_rule_says_cancelled_only_for_a_complete_rollback():
    assert (
        status_of(failed=True, halted=False, dead_letters=False, leaked=False, cancelled=True)
        is Status.CANCELLED
    )
    assert (
        status_of(failed=True, halted=False, dead_letters=True, leaked=False, cancelled=True)
        is Status.ROLLBACK_INCOMPLETE
    )
    assert (
        status_of(failed=True, halted=True, dead_letters=False, leaked=False, cancelled=True)
        is Status.HALTED
    )
    assert (
        status_of(failed=True, halted=False, dead_letters=False, leaked=False) is Status.ROLLED_BACK
    )


@pytest.mark.parametrize("graph", [False, True])
def test_a_token_set_during_a_step_stops_the_run_after_it(graph):
    log, token = [], threading.Event()
    saga = chain(log, stop="b", token=token)
    if graph:
        a, b, c, d = saga.steps
        saga = Saga([a, Parallel(b, c), d])
    outcome = saga.run({}, cancel=token)
    assert outcome.status is Status.CANCELLED and isinstance(outcome.error, Cancelled)
    assert outcome.completed == ("a", "b") and outcome.failed_step is None
    assert log == ["b", "a"] and outcome.state_after == {}


@pytest.mark.parametrize("graph", [False, True])
def test_a_token_set_before_the_run_runs_nothing(graph):
    log, token = [], threading.Event()
    token.set()
    saga = chain(log)
    if graph:
        saga = Saga([Parallel(*saga.steps)])
    outcome = saga.run({"x": 1}, cancel=lambda: token.is_set())
    assert outcome.status is Status.CANCELLED and outcome.completed == () and log == []
    assert outcome.state_after == {"x": 1}


@pytest.mark.parametrize("graph", [False, True])
def test_a_step_waiting_to_retry_is_not_tried_again(graph, clock):
    log, token, calls = [], threading.Event(), []

    def flaky(state):
        calls.append(1)
        token.set()
        raise ConnectionError("down")

    retry = RetryPolicy(max_attempts=5, initial_delay=1)
    steps = [*chain(log, names="a").steps, Step("b", flaky, lambda s: None, retry=retry)]
    saga = Saga([steps[0], Parallel(steps[1])] if graph else steps)
    outcome = saga.run({}, cancel=token, clock=clock)
    assert calls == [1] and outcome.failed_step == "b"
    assert outcome.status is Status.CANCELLED and log == ["a"]


def test_a_cancelled_run_whose_undo_fails_says_so():
    log, token = [], threading.Event()
    outcome = chain(log, stop="c", token=token).run({}, cancel=token, inject={"a": "undo_fails"})
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and isinstance(outcome.error, Cancelled)
    assert log == ["c", "b"] and [d.step for d in outcome.dead_letters] == ["a"]


def test_a_cancel_during_the_rollback_changes_nothing():
    log, token = [], threading.Event()

    def boom(state):
        raise ValueError("boom")

    saga = Saga([*chain(log, names="ab").steps, Step("boom", boom)])
    outcome = saga.run({}, cancel=lambda: bool(log) or token.is_set())
    assert outcome.status is Status.ROLLED_BACK and log == ["b", "a"]


class Gates:
    """room and flight finish at once; car waits for ``release``; the first undo says so."""

    def __init__(self):
        self.release, self.undoing = asyncio.Event(), asyncio.Event()
        self.started, self.log = set(), []


def gated_graph(g, token=None):
    """room | car | flight at once, then charge."""

    def step(name):
        async def act(state):
            g.started.add(name)
            if name == "car":
                await g.release.wait()
            state[name] = True
            if name == "flight" and token is not None:
                token.set()

        async def undo(state):
            g.undoing.set()
            await asyncio.sleep(0.01)  # a cancel landing here must not cut the undo short
            g.log.append(name)
            state.pop(name)

        return Step(name, lambda s: act(s), lambda s: undo(s))

    return Saga([Parallel(step("room"), step("car"), step("flight")), step("charge")])


def test_a_cancelled_task_undoes_everything_shielded_and_says_cancelled():
    g, state = Gates(), {}

    async def main():
        task = asyncio.create_task(gated_graph(g).arun(state))
        while set(state) != {"room", "flight"}:
            await asyncio.sleep(0)
        task.cancel()  # car still running: it finishes its attempt, nothing more starts
        await asyncio.sleep(0)
        g.release.set()
        await g.undoing.wait()
        task.cancel()  # a second cancel, during the undos: they go on
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        return info.value.outcome

    outcome = asyncio.run(main())
    assert outcome.status is Status.CANCELLED
    assert isinstance(outcome.error, asyncio.CancelledError)
    assert g.started == {"room", "car", "flight"}  # charge never started
    assert outcome.completed == ("room", "flight", "car")
    assert g.log == ["car", "flight", "room"] and state == {}


def test_a_cancel_token_in_arun_returns_the_outcome():
    g, token = Gates(), threading.Event()

    async def main():
        run = asyncio.create_task(gated_graph(g, token).arun({}, cancel=token))
        while not token.is_set():
            await asyncio.sleep(0)
        g.release.set()
        return await run

    outcome = asyncio.run(main())
    assert outcome.status is Status.CANCELLED and isinstance(outcome.error, Cancelled)
    assert outcome.completed == ("room", "flight", "car")
    assert g.log == ["car", "flight", "room"]


@pytest.mark.parametrize("graph", [False, True])
def test_an_event_cancel_ends_saga_runs_wait_to_retry_the_undos_backoff_kept(graph):
    """attack295 F1: ``saga.run`` sat out a step's whole backoff (here 11 days) before
    hearing its Event cancel; ``arun`` ends it at once. Now the wait ends as it is set; a
    wait in the rollback (the cancel long set) is waited whole: the undo's second attempt
    comes its backoff (0.3 s) after the first."""
    token, tried = threading.Event(), []

    def flaky(state):
        threading.Timer(0.1, token.set).start()
        raise ConnectionError("down")

    def refund(state):
        tried.append(time.monotonic())
        if len(tried) == 1:
            raise ConnectionError("gateway down")

    retry = RetryPolicy(max_attempts=2, initial_delay=1e6, max_delay=1e6)
    steps = [Step("a", lambda s: None, refund), Step("b", flaky, lambda s: None, retry=retry)]
    saga = Saga([steps[0], Parallel(steps[1])] if graph else steps)
    policy = Retry(RetryPolicy(max_attempts=2, initial_delay=0.3))
    told = []
    runs = threading.Thread(
        target=lambda: told.append(saga.run({}, cancel=token, policy=policy)), daemon=True
    )
    runs.start()
    runs.join(20)  # (unfixed: 11 days)
    assert not runs.is_alive() and told[0].status is Status.CANCELLED, told
    assert len(tried) == 2 and tried[1] - tried[0] >= 0.3, tried
