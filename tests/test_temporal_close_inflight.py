"""attack168 F1, F2: a runner on a ``db_file`` closed while a call of its saga runs on its
thread past a timeout (the server no longer waits for it), then a runner started again on
the file in the same process takes the saga up. The table of those calls was dropped as the
first runner let the run go: the second undid b before b's action in doubt landed (its
effect left standing, ``rolled_back``), or called b's undo a second time beside its first
call, past its ``undo_timeout``. And the close named neither call."""

from __future__ import annotations

import asyncio
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from rollback_lessons import Retry, RetryPolicy, Saga, Status, Step
from rollback_lessons.runners import free_port
from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.runners.temporal import runner as runner_module

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def run_async(coroutine_function):
    """asyncio.run in a thread of its own: the test session may have a loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function())).result()


def _call(log: list[tuple[str, str]], name: str, seconds: float = 0.0):
    def call(state) -> None:
        log.append((name, "begins"))
        time.sleep(seconds)
        log.append((name, "ends"))

    return call


@pytest.mark.parametrize("late", ["action", "undo"])
def test_a_call_left_running_at_close_is_waited_for_by_the_runner_that_takes_the_run_up(
    tmp_path, late
):
    log: list[tuple[str, str]] = []
    a = Step("a", _call(log, "do a"), _call(log, "undo a"))
    if late == "action":  # b's action outlives step_timeout (in doubt), its undo logged first
        b = Step("b", _call(log, "do b", 3), _call(log, "undo b"), register="before")
        steps, options = [a, b], {"step_timeout": 1.0}
    else:  # b's undo outlives its undo_timeout, and the policy would try it again
        b = Step("b", _call(log, "do b"), _call(log, "undo b", 3), undo_timeout=0.5)
        steps, options = [a, b, Step("c", lambda s: 1 / 0)], {}
    saga = Saga(steps, name="close-inflight")
    policy = Retry(RetryPolicy(max_attempts=3, initial_delay=1.5, multiplier=1.0))
    where = {"db_file": tmp_path / "t.db", "port": free_port(), "task_queue": "inflight"}
    begun = "do b" if late == "action" else "undo b"

    async def main():
        runner = await TemporalRunner.start(**where)
        handle = await runner.start_saga(saga, {}, policy=policy, **options)
        while (begun, "begins") not in log:
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.5 if late == "action" else 0.8)  # (past its timeout)
        with pytest.warns(runner_module.AbandonedCalls, match=f"the {late} of 'b'.*past its "
                          "timeout"):  # fmt: skip
            await runner.close()
        named = runner.abandoned
        with warnings.catch_warnings(record=True) as said_again:
            warnings.simplefilter("always")
            await runner.close()  # (attack199 F1: it warned again, "2 calls", the same twice)
        assert len(named) == 1 and runner.abandoned == named, runner.abandoned
        assert not [w for w in said_again if w.category is runner_module.AbandonedCalls]
        async with await TemporalRunner.start(**where) as again:
            return await asyncio.wait_for(
                (await again.handle_for(saga, handle.run_id)).outcome(), 60
            )

    outcome = run_async(lambda: asyncio.wait_for(main(), 120))
    ended = log.index((begun, "ends"))
    assert log.index(("undo a", "begins")) > ended  # (the undo order holds)
    if late == "action":  # b's undo only once its action in doubt ended
        assert log.index(("undo b", "begins")) > ended
        assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("b", "a")
    else:  # never called again beside its first call: as in process, not known undone
        assert log.count(("undo b", "begins")) == 1
        assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.compensated == ("a",)
        assert "not called again" in str(outcome.dead_letters[0].error)
