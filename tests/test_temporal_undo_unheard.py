"""An undo with no timeout of its own, still running at ``step_timeout``, is asked again
whoever tells its timeout first (s78): the server (its activity's start-to-close, an end
unknown: asked again once, the second attempt waiting for the call under way) or its
worker, whose own wait reached the same deadline. The worker's telling was a clean
failure: the undo dead-lettered at once, never asked again, though its call went on and
landed (a full run's flake of the slow-undo test). Here the worker always tells first:
its deadline is moved 3 s before the server's."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio import activity

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners.temporal import TemporalRunner, running
from rollback_lessons.runners.temporal import activities as acts

pytestmark = pytest.mark.usefixtures("no_run_left_behind")

STEP_TIMEOUT = 5.0
SOONER = 3.0  # (the worker's wait ends this long before the server's timeout)


def _saga(log: list[str], at_once: list[int]) -> Saga:
    def asked_again(mine: str) -> bool:  # another activity of this undo in this process
        calls = [item for each in list(running.RUNNING.values()) for item in list(each.items())]
        return any("undo of 'slow'" in what and not key.endswith(f"/{mine}") for key, what in calls)

    def slow_undo(state) -> None:
        at_once[0] += 1
        at_once[1] = max(at_once)
        mine, end = activity.info().activity_id, time.monotonic() + 30
        while not asked_again(mine) and time.monotonic() < end:
            time.sleep(0.02)
        log.append("undo slow")
        at_once[0] -= 1

    return Saga([Step("s1", lambda s: log.append("do s1"), lambda s: log.append("undo s1")),
                 Step("slow", lambda s: log.append("do slow"), slow_undo),
                 Step("s3", lambda s: 1 / 0)], name="unheard-undo")  # fmt: skip


def test_an_undo_its_worker_times_out_first_is_asked_again_as_after_the_servers(monkeypatch):
    real = acts._deadline
    monkeypatch.setattr(acts, "_deadline", lambda: real() - SOONER)
    log: list[str] = []
    at_once = [0, 0]  # now, most

    async def scenario():
        async with await TemporalRunner.start() as runner:
            return await runner.run(_saga(log, at_once), {}, step_timeout=STEP_TIMEOUT)

    outcome = asyncio.run(scenario())
    assert log == ["do s1", "do slow", "undo slow", "undo s1"], (log, outcome.dead_letters)
    assert at_once[1] == 1  # (the second attempt waited for the call under way)
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("slow", "s1")
    assert not outcome.dead_letters
