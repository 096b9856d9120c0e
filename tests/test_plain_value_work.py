"""A call that returns a plain value holding work that had begun (a list or dict of
Futures, a thread alive, ``ThreadPool.imap``, ``pool.map``'s or ``as_completed``'s
generator): the run does not wait for what a value holds, so the step is in doubt, its work
going on: never taken as done with its undo run before the work lands (attack105 F1: the
refund ran first, ``rolled_back``), nor as a refusal retried (F2: three charges), nor an
undo called again (three refunds). A value holding only ended work is a result."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from multiprocessing.pool import ThreadPool
from typing import Any

import pytest

from rollback_lessons import RetryPolicy, Rollback, Saga, Status, Step, UndoPolicy
from rollback_lessons.errors import MayHaveRun

RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01)
SHAPES = ["list", "dict", "thread", "imap", "executor_map", "as_completed", "genexpr"]


def _handing_back(shape: str, world: list[str], what: str) -> Any:
    pool = ThreadPoolExecutor(2)

    def work(*_: object) -> None:
        time.sleep(0.2)
        world.append(f"{what} landed")

    def call(*_: object) -> Any:
        world.append(f"{what} called")
        if shape == "list":
            return [pool.submit(work)]
        if shape == "dict":
            return {"visa": pool.submit(work)}
        if shape == "thread":
            thread = threading.Thread(target=work)
            thread.start()
            return thread
        if shape == "imap":
            return ThreadPool(1).imap(work, ["visa"])
        if shape == "executor_map":
            return pool.map(work, ["visa"])
        if shape == "as_completed":
            return as_completed([pool.submit(work)])
        return (f.result() for f in [pool.submit(work)])

    return call


def _run(driver: str, steps: list[Step], policy: Any = "continue") -> Any:
    if driver == "arun":
        return asyncio.run(Saga(steps, policy=policy).arun({}))
    if driver == "saga.run":
        return Saga(steps, policy=policy).run({})
    rb = Rollback()
    with pytest.raises(MayHaveRun), rb:
        for step in steps:
            rb.do(step.name, lambda f=step.action: f({}), lambda f=step.undo: f({}),
                  retry=step.retry)  # fmt: skip
    return rb.outcome


@pytest.mark.parametrize("driver", ["saga.run", "arun", "Rollback"])
@pytest.mark.parametrize("shape", SHAPES)
def test_an_action_handing_back_a_value_holding_begun_work_is_in_doubt_once(shape, driver):
    world: list[str] = []
    charge = _handing_back(shape, world, "charge")
    steps = [
        Step("charge", charge, lambda s: world.append("refund"), retry=RETRY),
        Step("email", lambda s: 1 / 0, lambda s: None),
    ]
    outcome = _run(driver, steps)
    time.sleep(0.4)  # (the work lands)
    assert world.count("charge called") == 1 and world.count("charge landed") == 1, world
    assert "refund" not in world, world  # (never undone before, or beside, its work)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("charge",)
    assert isinstance(outcome.error, MayHaveRun), outcome.error
    assert "holding work that had begun" in str(outcome.error)


@pytest.mark.parametrize("shape", SHAPES)
def test_an_undo_handing_back_a_value_holding_begun_work_is_not_called_again(shape):
    world: list[str] = []
    refund = _handing_back(shape, world, "refund")
    steps = [Step("charge", lambda s: None, refund), Step("email", lambda s: 1 / 0)]
    outcome = _run("saga.run", steps, policy=UndoPolicy(RETRY))
    time.sleep(0.4)
    assert world == ["refund called", "refund landed"], world
    [dead] = outcome.dead_letters
    assert (dead.step, dead.attempts, type(dead.error)) == ("charge", 1, MayHaveRun)


def test_a_value_holding_only_ended_work_is_a_result():
    """No false doubt: done Futures, a thread that ended, a daemon thread, an imap read to
    its end, an exhausted generator."""
    pool = ThreadPoolExecutor(1)
    done = pool.submit(lambda: 7)
    done.result()
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    daemon = threading.Thread(target=time.sleep, args=(0.3,), daemon=True)
    daemon.start()
    mapped = ThreadPool(1).imap(abs, [-1])
    assert list(mapped) == [1]
    value = {"futures": [done], "thread": ended, "daemon": daemon, "imap": mapped}
    outcome = Saga([Step("a", lambda s: value, lambda s: None)]).run({})
    assert outcome.status is Status.COMMITTED, outcome
