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


@pytest.mark.parametrize("answer", [None, -1, "retry", Thing(), 0.0])
def test_any_answer_of_a_decide_ends_as_in_process(on_temporal, answer) -> None:
    """attack304 F1: a decide answering None failed every workflow task (IndexError reading
    the recorded answer), the run hung for ever, a cancel unheard."""
    here: list[str] = []
    policy = Odd(answer) if answer != 0.0 else Retried()
    local = _saga(here).run({}, policy=policy, clock=VirtualClock())
    world: list[str] = []

    async def scenario(runner):
        return await asyncio.wait_for(runner.run(_saga(world), {}, policy=policy), 60)

    there = on_temporal(scenario)
    assert (there.status, there.notes) == (local.status, local.notes)
    assert [(e.kind, e.step) for e in there.events] == [(e.kind, e.step) for e in local.events]
    assert world == here


class Retried(UndoPolicy):
    """Retries at once, twice, then a dead letter (a delay of 0.0 recorded as data)."""

    def decide(self, attempt: int, error: BaseException) -> object:
        return 0.0 if attempt < 3 else "dead_letter"
