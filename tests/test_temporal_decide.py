"""A policy of one's own on Temporal decides in a local activity (``runners.temporal.deciding``),
its answer recorded in the history. attack293 F3: a ``decide`` that took 2 s (a lookup, a
sleep) ran in the workflow's code, failed the workflow task on the SDK's deadlock check
(TMPRL1101) and was tried again for ever: the run never ended, nor ``runner.run``. Now it
ends as in process, and a replay (reading the outcome is a Query) never asks ``decide`` again,
so a ``decide`` need not be deterministic."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

from rollback_lessons import Saga, Status, Step, UndoPolicy, VirtualClock


def _saga(world: list[str]) -> Saga:
    def undo(name: str):
        def run(state: dict) -> None:
            world.append(f"undo {name}")
            if name == "b":
                raise ConnectionError(f"undo {name} fails")

        return run

    return Saga([Step("a", lambda s: world.append("a"), undo("a")),
                 Step("b", lambda s: world.append("b"), undo("b")),
                 Step("c", lambda s: 1 / 0)], name="decides")  # fmt: skip


class Slow(UndoPolicy):
    """Looks something up for 2.5 s (past the SDK's 2 s deadlock check), then retries once."""

    def decide(self, attempt: int, error: BaseException) -> object:
        time.sleep(2.5)
        return 0.05 if attempt < 2 else "dead_letter"


class Counted(UndoPolicy):
    """Not deterministic: answers by a count of its calls (its answer recorded, replays read
    it), retrying twice."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []
        self.lock = threading.Lock()
        self.count = itertools.count(1)

    def decide(self, attempt: int, error: BaseException) -> object:
        with self.lock:
            self.calls.append((attempt, type(error).__name__, threading.current_thread().name))
            return 0.01 if next(self.count) < 3 else "dead_letter"


def test_a_slow_decide_ends_as_in_process(on_temporal) -> None:
    here: list[str] = []
    local = _saga(here).run({}, policy=Slow(), clock=VirtualClock())
    world: list[str] = []

    async def scenario(runner):
        return await asyncio.wait_for(runner.run(_saga(world), {}, policy=Slow()), 60)

    there = on_temporal(scenario)
    assert there.status is Status.ROLLBACK_INCOMPLETE == local.status
    assert world == here == ["a", "b", "undo b", "undo b", "undo a"]
    assert [(e.kind, e.step) for e in there.events] == [(e.kind, e.step) for e in local.events]
    assert [d.step for d in there.dead_letters] == ["b"] and there.compensated == ("a",)
    assert type(there.dead_letters[0].error) is ConnectionError  # (the very error: decided on it)


def test_a_decide_is_asked_once_per_failure_and_never_by_a_replay(on_temporal) -> None:
    policy = Counted()
    world: list[str] = []

    async def scenario(runner):
        handle = await runner.start_saga(_saga(world), {}, policy=policy)
        first = await asyncio.wait_for(handle.outcome(), 60)
        asked = len(policy.calls)
        again = await runner.handle_for(_saga(world), handle.run_id)
        return first, asked, await asyncio.wait_for(again.outcome(), 60)

    first, asked, second = on_temporal(scenario)
    assert world == ["a", "b", "undo b", "undo b", "undo b", "undo a"]
    assert first.status is Status.ROLLBACK_INCOMPLETE and first.dead_letters[0].attempts == 3
    stand_in = "RemoteError"  # (a run start_saga starts keeps no error: the README's stand-in)
    assert [(a, e) for a, e, _ in policy.calls] == [(1, stand_in), (2, stand_in), (3, stand_in)]
    assert asked == len(policy.calls) == 3  # a Query (a replay) asked it nothing more
    assert [(e.kind, e.step) for e in second.events] == [(e.kind, e.step) for e in first.events]


class Odd(UndoPolicy):
    """Answers what the machine cannot follow (halted for a person, a note saying what)."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def decide(self, attempt: int, error: BaseException) -> object:
        return self.answer


class Thing:
    def __repr__(self) -> str:
        return "Thing()"


class Seconds(float):  # (numpy.float64 is one too)
    pass


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("no str")


class Raises(UndoPolicy):
    def decide(self, attempt: int, error: BaseException) -> object:
        raise Unprintable()


@pytest.mark.parametrize(
    "answer", [None, -1, "retry", Thing(), 0.0, "y" * 3_000_000, Seconds(0.01), "raises"]
)
def test_any_answer_of_a_decide_ends_as_in_process(on_temporal, answer) -> None:
    """attack304 F1: a decide answering None failed every workflow task (IndexError reading
    the recorded answer), the run hung for ever, a cancel unheard; F2 a text over 2 MB, sent
    whole, the same; F4 one raising an error whose str raises: the workflow failed for good
    (in process the rollback was cut, "interrupted by ValueError"); F5 a float's subclass:
    in process a TypeError cut the rollback, on Temporal it retried. Each answer is read
    alike everywhere: a wait as a float, any other text or error in its short words."""
    here: list[str] = []
    retried = isinstance(answer, Seconds) or answer == 0.0
    policy = Raises() if answer == "raises" else Retried(answer) if retried else Odd(answer)
    local = _saga(here).run({}, policy=policy, clock=VirtualClock())
    world: list[str] = []

    async def scenario(runner):
        return await asyncio.wait_for(runner.run(_saga(world), {}, policy=policy), 60)

    there = on_temporal(scenario)
    assert (there.status, there.notes) == (local.status, local.notes)
    assert [(e.kind, e.step) for e in there.events] == [(e.kind, e.step) for e in local.events]
    assert world == here
    assert all(len(n) < 400 for n in there.notes)  # (an answer said in its short words)
    assert there.status == ("rollback_incomplete" if retried else "halted")


class Retried(UndoPolicy):
    """Retries twice, then a dead letter (a delay recorded as data: ``wait``'s type)."""

    def __init__(self, wait: float = 0.0) -> None:
        self.wait = wait

    def decide(self, attempt: int, error: BaseException) -> object:
        return self.wait if attempt < 3 else "dead_letter"


class SlowThenDead(UndoPolicy):
    def decide(self, attempt: int, error: BaseException) -> object:
        time.sleep(4)
        return "dead_letter"


def test_a_runner_closed_as_a_decide_runs_leaves_the_run_to_the_next(tmp_path) -> None:
    """attack304 F3: leaving ``async with TemporalRunner`` as a decide ran failed the saga's
    workflow for good (the abandoned local activity's error, unwrapped, raised in the
    workflow): nothing undone, a raw WorkflowFailureError for the runner that took it up, an
    ``AbandonedCalls`` naming "unknown". The decide is named abandoned, and the run left
    running: the next runner on the same db_file asks it again and ends the saga."""
    import warnings

    from rollback_lessons.runners.temporal import AbandonedCalls, TemporalRunner

    db, queue, world = str(tmp_path / "t.db"), "decide-close", []
    saga = _saga(world)

    async def scenario() -> Any:
        async with await TemporalRunner.start(db_file=db, task_queue=queue) as runner:
            handle = await runner.start_saga(saga, {}, policy=SlowThenDead(), step_timeout=20)
            while world.count("undo b") < 1:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # (its decide asked: 4 s)
        async with await TemporalRunner.start(db_file=db, task_queue=queue) as runner:
            again = await runner.handle_for(saga, handle.run_id)
            return await asyncio.wait_for(again.outcome(), 60)

    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        outcome = asyncio.run(scenario())
    abandoned = [str(w.message) for w in told if issubclass(w.category, AbandonedCalls)]
    assert (
        abandoned and "the undo policy's decide after attempt 1 of the undo of 'b'" in abandoned[0]
    )
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.compensated == ("a",)
    assert [d.step for d in outcome.dead_letters] == ["b"]


def test_a_decide_waiting_past_any_timer_waits_on_temporal(on_temporal) -> None:
    """attack304 F6: a decide answering 1e20 s (a finite wait: waited in process) failed
    every workflow task on Temporal (a timer past its end), a cancel never heard. The timer
    is started (capped at ``FOREVER``: thousands of years), no workflow task fails."""
    from temporalio.api.enums.v1 import EventType

    async def scenario(runner):
        handle = await runner.start_saga(_saga([]), {}, policy=Odd(1e20))
        history: list[Any] = []
        for _ in range(200):
            history = (
                await runner.client.get_workflow_handle(handle.run_id).fetch_history()
            ).events
            if any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history):
                break
            await asyncio.sleep(0.05)
        await runner.client.get_workflow_handle(handle.run_id).terminate("the test is over")
        return [e.event_type for e in history]

    kinds = on_temporal(scenario)
    assert EventType.EVENT_TYPE_TIMER_STARTED in kinds
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
