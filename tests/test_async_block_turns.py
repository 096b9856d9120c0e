"""An ``AsyncRollback`` whose deadline (``asyncio.timeout``, ``wait_for``, a thread's or
another task's cancel, a watchdog task's ``wait_for`` or a ``wait_for(shield(task))`` then a
cancel) passes while a blocking step runs: the cancel lands before the next step's call,
that step never runs, what was done is undone and the deadline is raised (attack103 F9: the
email went, the block committed, and the TimeoutError never came; attack104 F5: four turns
were too few for a watchdog's 3.11 ``wait_for``)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Status


@pytest.mark.parametrize(
    "deadline", ["timeout", "wait_for", "thread", "task", "watchdog", "shield"]
)
def test_a_deadline_that_passed_in_a_blocking_step_lands_before_the_next(deadline):
    world: list[str] = []
    rb = AsyncRollback()

    def book() -> None:
        time.sleep(0.3)
        world.append("book")

    async def block() -> None:
        async with rb:
            await rb.do("book", book, lambda: world.append("unbook"))
            await rb.do("email", lambda: world.append("email"))

    async def main() -> Any:
        me, loop = asyncio.current_task(), asyncio.get_running_loop()
        assert me is not None
        if deadline == "timeout":
            async with asyncio.timeout(0.1):
                await block()
        elif deadline == "wait_for":
            await asyncio.wait_for(block(), 0.1)
        elif deadline == "thread":
            threading.Timer(0.1, loop.call_soon_threadsafe, (me.cancel,)).start()
            await block()
        elif deadline == "task":

            async def watchdog() -> None:
                await asyncio.sleep(0.1)
                me.cancel()

            keep = asyncio.create_task(watchdog())
            await block()
            await keep
        elif deadline == "watchdog":  # (another task's wait_for times out, then cancels)
            done = asyncio.Event()

            async def body() -> None:
                try:
                    await block()
                finally:
                    done.set()

            task = asyncio.create_task(body())

            async def waits() -> None:
                try:
                    await asyncio.wait_for(done.wait(), 0.1)
                except TimeoutError:
                    task.cancel()

            keep = asyncio.create_task(waits())
            try:
                await task
            finally:
                await keep
        else:
            task = asyncio.create_task(block())
            try:
                await asyncio.wait_for(asyncio.shield(task), 0.1)
            except TimeoutError:
                task.cancel()
            await task

    raised = TimeoutError if deadline in ("timeout", "wait_for") else asyncio.CancelledError
    with pytest.raises(raised):
        asyncio.run(main())
    assert world == ["book", "unbook"]
    assert rb.outcome is not None and rb.outcome.status is Status.CANCELLED
