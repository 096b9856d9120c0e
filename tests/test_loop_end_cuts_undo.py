"""attack302 F7: a saga left rolling back as ``asyncio.run`` ends (main returned; no Ctrl-C)
had the undo running cut by the loop's end, and every undo after it left pending, never tried,
as if a person had asked to stop (37 of 101 undone). The cut undo may have happened, so with
no journal it is not called again; the rollback goes on as the policy says after an undo that
failed so (a dead letter, or a halt for a person), as after an undo's timeout."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Saga, Step

WORLD: list[str] = []


async def _slow_undo(name: str, began: asyncio.Event) -> None:
    WORLD.append(f"undo {name} begins")
    began.set()
    await asyncio.sleep(5)  # (cut here by asyncio.run's end)
    WORLD.append(f"undo {name} ends")


def _main(kind: str, policy: str, box: list[Any]) -> Any:
    async def main() -> None:
        began = asyncio.Event()

        def undo_b(*_: object) -> Any:
            return _slow_undo("b", began)

        def undo_a(*_: object) -> None:  # a plain def: nothing cut it
            WORLD.append("undo a")

        async def arun() -> None:
            steps = [Step("a", lambda s: None, undo_a), Step("b", lambda s: None, undo_b),
                     Step("c", lambda s: 1 / 0)]  # fmt: skip
            box.append(await Saga(steps, policy=policy).arun({}))

        async def block() -> None:
            async with AsyncRollback(policy=policy) as rb:
                box.append(rb)
                await rb.do("a", lambda: None, undo_a)
                await rb.do("b", lambda: None, undo_b)
                raise RuntimeError("block failed")

        task = asyncio.create_task(arun() if kind == "arun" else block())
        task.add_done_callback(box.append)
        await began.wait()  # main returns as b's undo runs: asyncio.run ends the loop

    return main


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback"])
@pytest.mark.parametrize("policy", ["continue", "halt"])
def test_the_loop_end_cutting_an_undo_leaves_the_rest_to_the_policy(
    kind: str, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    WORLD.clear()
    box: list[Any] = []
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(_main(kind, policy, box)())
    task = box[-1]
    ended = task.exception()
    assert type(ended).__name__ == "LoopEnded"  # logged by asyncio, with the outcome's notes
    assert "LoopEnded" in caplog.text and "the undo of b: it may have happened" in caplog.text
    outcome = box[0].outcome if kind == "AsyncRollback" else ended.outcome
    assert "undo b ends" not in WORLD  # (cut) and never called again
    assert WORLD.count("undo b begins") == 1
    if policy == "continue":
        assert outcome.status == "rollback_incomplete" and outcome.compensated == ("a",)
        assert [d.step for d in outcome.dead_letters] == ["b"] and outcome.pending == ()
        assert WORLD == ["undo b begins", "undo a"]
    else:
        assert outcome.status == "halted" and outcome.pending == ("b", "a")
        assert WORLD == ["undo b begins"]


@pytest.mark.parametrize("then", ["dead_letter", "halt"])
def test_the_loop_end_in_an_undos_wait_to_retry_is_logged_with_the_outcome(
    then: str, caplog: pytest.LogCaptureFixture
) -> None:
    """attack305 F6: the end came as an undo waited to retry: the wait was made again, the
    rollback ran to its end, and the task ended plainly cancelled: nothing logged, the dead
    letter (or the halt, b and a left for a person) said nowhere. It ends on the LoopEnded
    asyncio logs, the outcome on it, as where the end cuts a step or an undo."""
    from rollback_lessons import Retry, RetryPolicy

    world: list[str] = []
    box: list[Any] = []

    def refund(state: dict) -> None:
        world.append("undo b")
        raise ConnectionError("refund service down")

    policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.2), then=then)
    saga = Saga([Step("a", lambda s: None, lambda s: world.append("undo a")),
                 Step("b", lambda s: None, refund), Step("c", lambda s: 1 / 0)],
                policy=policy)  # fmt: skip

    async def main() -> None:
        asyncio.create_task(saga.arun({})).add_done_callback(box.append)
        await asyncio.sleep(0.05)  # (main returns as b's undo waits to retry)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
    ended = box[0].exception()
    assert type(ended).__name__ == "LoopEnded" and "LoopEnded" in caplog.text
    outcome = ended.outcome
    if then == "dead_letter":
        assert world == ["undo b"] * 3 + ["undo a"] and outcome.status == "rollback_incomplete"
        assert "undo of b: ConnectionError('refund service down') after 3 attempts" in caplog.text
    else:
        assert world == ["undo b"] * 3 and outcome.status == "halted"
        assert outcome.pending == ("b", "a") and "left for a person: b, a" in caplog.text
