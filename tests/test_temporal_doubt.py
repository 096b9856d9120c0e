"""A step's action in doubt (still running past ``step_timeout``) after a step with an undo.
attack69 F3: the earlier undo waits for that call, which never ends; its activity timed out
and was asked again, as an end unknown, without limit: the run never ended, and
``runner.run`` never returned. Now an end unheard a second time counts as a failed attempt,
which the policy retries or dead-letters (README). F4: closing a server that keeps nothing
then named the call still running nowhere in ``SagasLost``."""

import asyncio
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from rollback_lessons import RetryPolicy, Saga, Status, Step, UndoPolicy
from rollback_lessons.runners.temporal import RunnerClosed, SagasLost, TemporalRunner

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def _saga(world: list[str], release: threading.Event, name: str) -> Saga:
    """a (undone by its undo), then b, whose action runs until ``release`` is set."""

    def b(state):
        world.append("do b")
        release.wait(120)

    return Saga(
        [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
         Step("b", b, lambda s: world.append("undo b"))],
        name=name,
    )  # fmt: skip


def test_an_undo_waiting_on_a_call_in_doubt_is_asked_again_once_then_counted_failed(
    on_temporal,
):
    world: list[str] = []
    release = threading.Event()

    async def scenario(runner):
        handle = await runner.start_saga(_saga(world, release, "doubt-undo"), {}, step_timeout=1)
        try:  # (the bound only turns a hang into a failure: it ends within seconds)
            return await asyncio.wait_for(handle.outcome(), 90), await handle.history()
        finally:
            release.set()

    outcome, history = on_temporal(scenario)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE, (outcome.status, outcome.notes)
    assert outcome.leaked == ("b",)  # in doubt, its undo logged after it
    assert [d.step for d in outcome.dead_letters] == ["a"]  # (it waited for b: never called)
    assert world == ["do a", "do b"]
    asks = [row for row in history.rows if row[-3:] == ("activity scheduled", "undo", "a")]
    assert 1 <= len(asks) <= 2, history  # (asked again once if the server timed it out)


def run_async(coroutine_function):
    """asyncio.run in a thread of its own: the test session may have a loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function())).result()


def test_close_names_a_call_still_running_in_doubt_among_what_may_be_in_effect():
    """F4: at close, b's action still runs here (timed out in doubt, its effect may land):
    ``SagasLost`` names it among "running or timed out" and "still in effect, or perhaps"."""
    world: list[str] = []
    release = threading.Event()
    slow = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=60))  # (a's undo: still asked)

    async def main():
        runner = await TemporalRunner.start()
        saga = _saga(world, release, "doubt-lost")
        handle = await runner.start_saga(saga, {}, step_timeout=1, policy=slow)
        try:
            while not any(
                row[-3:] == ("activity failed", "action", "b")
                for row in (await handle.history()).rows
            ):  # b timed out in doubt (its call goes on)
                await asyncio.sleep(0.05)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await runner.close()
        finally:
            release.set()
        with pytest.raises(RunnerClosed):  # (what it says: test_temporal_close_lost)
            await handle.outcome()
        return handle.run_id, caught

    run_id, caught = run_async(lambda: asyncio.wait_for(main(), 90))
    lost = [str(w.message) for w in caught if issubclass(w.category, SagasLost)]
    assert len(lost) == 1, [str(w.message) for w in caught]
    assert f"saga {run_id}: done: a; undone: none; running or timed out (their effect may " \
        "land): b;" in lost[0], lost[0]  # fmt: skip
    assert lost[0].endswith("so still in effect, or perhaps, undone by nobody: a, b"), lost[0]


def test_an_undo_the_server_timed_out_after_step_timeout_is_dead_lettered_saying_so(on_temporal):
    """attack87's F1: an undo with no timeout of its own, blocking past ``step_timeout``,
    timed out by the server, was dead-lettered as the SDK's bare "activity StartToClose
    timeout": no value, nothing saying its call went on. The dead letter names the timeout
    (its value and ``step_timeout``) and says the call may still complete, as an undo's own
    timeout's does."""
    world: list[str] = []
    release = threading.Event()

    def refund(state):
        world.append("undo a")
        release.wait(30)

    def fail(state):
        raise RuntimeError("c failed")

    saga = Saga([Step("a", lambda s: world.append("do a"), refund), Step("c", fail)],
                name="server-timed-undo")  # fmt: skip
    once = UndoPolicy(RetryPolicy(max_attempts=1), then="dead_letter")

    async def scenario(runner):
        try:
            return await asyncio.wait_for(runner.run(saga, {}, policy=once, step_timeout=1), 60)
        finally:
            release.set()

    outcome = on_temporal(scenario)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE, (outcome.status, outcome.notes)
    assert [d.step for d in outcome.dead_letters] == ["a"]
    told = str(outcome.dead_letters[0])
    assert "TimeoutError" in told and "StartToClose" not in told, told
    assert "did not end within step_timeout (1 s)" in told, told
    assert "may still complete (or has)" in told, told
    assert world[:2] == ["do a", "undo a"]


def test_a_cancel_as_a_step_runs_past_step_timeout_leaves_the_timeout_the_runs_failure(
    on_temporal,
):
    """attack199 F2 (9 of 9): a cancel asked while b ran, then b past its step_timeout: the
    run said ``cancelled`` (its error the timeout), ``rolled_back`` had the cancel come just
    after. The step's own failure wins over a cancel asked meanwhile, as in process (a step
    that fails as a cancel is set: ``rolled_back``)."""
    import threading
    import time

    world: list[str] = []
    began = threading.Event()

    def slow(state) -> None:
        began.set()
        time.sleep(1.5)
        world.append("do b")

    def saga(b) -> Saga:
        return Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                     Step("b", b, lambda s: world.append("undo b"), register="before")],
                    name="cancel-timeout")  # fmt: skip

    async def scenario(runner):
        handle = await runner.start_saga(saga(slow), {}, step_timeout=1)
        while not began.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.4)
        await handle.cancel()
        return await asyncio.wait_for(handle.outcome(), 60)

    outcome = on_temporal(scenario)
    assert repr(outcome.error).startswith("StepTimedOut("), outcome.error
    cancel = threading.Event()

    def fails(state) -> None:
        cancel.set()
        raise TimeoutError("b timed out")

    in_process = saga(fails).run({}, cancel=cancel)
    assert outcome.status is in_process.status is Status.ROLLED_BACK, outcome
    assert outcome.compensated == ("b", "a") and world[-2:] == ["undo b", "undo a"], world
