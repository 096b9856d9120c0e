"""A cancel asked while the irreversible step waits to retry, its attempts refused before any
effect: nothing irreversible has happened, so the cancel stops it there and what was done is
undone (attack103 F11: declined, "undoing the steps before it would not take it back", and
the email went after the cancel). An attempt that may have had its effect (a timeout) still
makes the pivot in doubt: a cancel then is declined, as before."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rollback_lessons import Parallel, RetryPolicy, Saga, Status, Step
from rollback_lessons.stopping import PAST_PIVOT


def _saga(world: list[str], doubt: bool, group: bool) -> Saga:
    tries = [0]

    def email(state: object) -> None:
        tries[0] += 1
        if tries[0] == 1:
            world.append("email refused")
            if doubt:  # (it may have gone: a timeout after the send)
                raise TimeoutError("smtp timed out after DATA")
            raise ConnectionError("smtp down: nothing sent")
        world.append("email sent")

    book = Step("book", lambda s: world.append("book"), lambda s: world.append("unbook"))
    first = Parallel(book, Step("seat", lambda s: None, lambda s: None)) if group else book
    return Saga([first, Step("email", email, kind="pivot",
                             retry=RetryPolicy(max_attempts=3, initial_delay=0.4)),
                 Step("after", lambda s: None, kind="retriable")])  # fmt: skip


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("doubt", [False, True])
def test_saga_run_cancel_in_a_pivots_wait_to_retry(doubt, group):
    world: list[str] = []
    asked = threading.Event()
    threading.Timer(0.15, asked.set).start()
    outcome = _saga(world, doubt, group).run({}, cancel=asked)
    if doubt:  # (in doubt: declined, the run goes on forward)
        assert outcome.status is Status.COMMITTED and "email sent" in world
        assert PAST_PIVOT in outcome.notes
    else:
        assert outcome.status is Status.CANCELLED, outcome
        assert "email sent" not in world and "unbook" in world
        assert PAST_PIVOT not in outcome.notes


@pytest.mark.parametrize("group", [False, True])
def test_arun_cancel_in_a_pivots_wait_to_retry(group):
    world: list[str] = []

    async def main() -> object:
        task = asyncio.create_task(_saga(world, False, group).arun({}))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as raised:
            await task
        return raised.value.outcome  # type: ignore[attr-defined]

    outcome = asyncio.run(main())
    assert outcome.status is Status.CANCELLED, outcome
    assert "email sent" not in world and "unbook" in world
