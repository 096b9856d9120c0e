"""A deadline another task keeps on ``arun`` (a watchdog's ``wait_for`` on 3.11, or
``wait_for(shield(task))`` then a cancel) passes while a blocking step runs: its cancel
lands before the irreversible step starts (attack103 F6, F12: it took more than the four
turns of the loop ``arun`` gave, and the email went after the deadline)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rollback_lessons import Saga, Status, Step


def _saga(world: list[str]) -> Saga:
    def book(state: Any) -> None:
        time.sleep(0.3)  # (blocking: the deadline passes meanwhile)
        world.append("book")

    return Saga([Step("book", book, lambda s: world.append("unbook")),
                 Step("email", lambda s: world.append("email"), kind="pivot"),
                 Step("after", lambda s: None, kind="retriable")])  # fmt: skip


@pytest.mark.parametrize("shape", ["watchdog", "shield"])
def test_a_deadline_kept_by_another_task_lands_before_the_email(shape):
    world: list[str] = []

    async def main() -> Any:
        task = asyncio.create_task(_saga(world).arun({}))
        if shape == "watchdog":
            stop = asyncio.Event()
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                task.cancel()
        else:
            try:
                await asyncio.wait_for(asyncio.shield(task), 0.1)
            except TimeoutError:
                task.cancel()
        with pytest.raises(asyncio.CancelledError) as raised:
            await task
        return raised.value.outcome  # type: ignore[attr-defined]

    outcome = asyncio.run(main())
    assert outcome.status is Status.CANCELLED, outcome
    assert world == ["book", "unbook"]
