"""A retry's wait on Temporal is the one the policy asks (attack188 F1): the dev server's
timer queue fired no timer sooner than ``history.timerProcessorMaxTimeShift`` after it was
set (1 s by default), so a 0.1 s backoff waited 1.02 s while the events said 0.1, and a
cancel that ``saga.run`` heard after the retry had begun found it still waiting there. The
runner starts its server with that shift at 10 ms. Read from the server's own history
(TimerStarted, TimerFired): the floor made every gap about 1 s."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import Parallel, RetryPolicy, Saga, Status, Step, UndoPolicy, VirtualClock
from rollback_lessons.runners.temporal import TemporalRunner

pytestmark = pytest.mark.usefixtures("no_run_left_behind")

DELAY = 0.1
SOONER = 0.6  # (the default shift fired a timer of DELAY 0.99 s after TimerStarted, at best)


def _saga(world: list[str]) -> Saga:
    """``a`` fails once and is retried after DELAY (beside ``b``, in a group); ``c`` fails,
    and the undo of ``a`` fails once and is retried after DELAY."""

    def flaky(state) -> None:
        world.append("do a")
        if world.count("do a") < 2:
            raise ConnectionError("not yet")

    def undo_a(state) -> None:
        world.append("undo a")
        if world.count("undo a") < 2:
            raise ConnectionError("not yet")

    def refuse(state) -> None:
        raise ValueError("card declined")

    again = RetryPolicy(max_attempts=2, initial_delay=DELAY, retry_on=(ConnectionError,))
    a = Step("a", flaky, undo_a, retry=again)
    b = Step("b", lambda s: world.append("do b"), lambda s: world.append("undo b"))
    c = Step("c", refuse, lambda s: None)
    return Saga([Parallel(a, b), c], name="timers")


def test_a_retrys_wait_on_temporal_is_the_delay_the_policy_asks():
    policy = UndoPolicy(RetryPolicy(max_attempts=2, initial_delay=DELAY))
    local = _saga([]).run({}, policy=policy, clock=VirtualClock())

    async def scenario() -> tuple:
        world: list[str] = []
        async with await TemporalRunner.start() as runner:
            handle = await runner.start_saga(_saga(world), {}, policy=policy)
            outcome = await handle.outcome()
            timers: dict[str, list] = {}
            async for event in handle.workflow.fetch_history_events():
                if event.HasField("timer_started_event_attributes"):
                    started = event.timer_started_event_attributes
                    timers[started.timer_id] = [
                        started.start_to_fire_timeout.ToTimedelta().total_seconds(),
                        event.event_time.ToDatetime(),
                    ]
                elif event.HasField("timer_fired_event_attributes"):
                    fired = event.timer_fired_event_attributes
                    timers[fired.timer_id].append(event.event_time.ToDatetime())
        return outcome, world, timers

    remote, world, timers = asyncio.run(scenario())
    assert local.status is remote.status is Status.ROLLED_BACK, (local, remote)
    assert sorted(e.kind for e in remote.events) == sorted(e.kind for e in local.events)
    assert sorted(world) == sorted(["do a", "do a", "do b", "undo b", "undo a", "undo a"])
    delays = [e.details["delay"] for e in remote.events if "delay" in e.details]
    assert delays == [DELAY, DELAY], remote.events  # (the step's retry, the undo's)
    assert len(timers) == 2, timers  # (each wait a server timer, both fired)
    for asked, started, *fired in timers.values():
        assert asked == DELAY and len(fired) == 1, timers
        waited = (fired[0] - started).total_seconds()
        assert waited < SOONER, f"a timer of {asked} s fired after {waited:.2f} s"
