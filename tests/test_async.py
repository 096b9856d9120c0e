"""AsyncRollback: the same rules with coroutines, and undos that survive cancellation."""

import asyncio

import pytest

from rollback_lessons import AsyncRollback, RetryPolicy, Status


def test_async_rollback_undoes_in_reverse(clock):
    undone = []

    async def undo(name):
        await asyncio.sleep(0)
        undone.append(name)

    async def main():
        async with AsyncRollback(
            policy="retry", inject={"a": "undo_fails_once"}, clock=clock
        ) as rb:
            await rb.do("a", lambda: asyncio.sleep(0), lambda: undo("a"))
            await rb.do("b", lambda: "sync ok", lambda: undo("b"))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(main())
    assert undone == ["b", "a"]
    assert clock.sleeps == [0.1]


def test_undos_run_when_the_task_is_cancelled_even_if_cancelled_again():
    undone = []
    started = asyncio.Event()
    outcome = {}

    async def slow_undo(name):
        await asyncio.sleep(0.01)
        undone.append(name)

    async def pipeline():
        rb = AsyncRollback()
        outcome["rb"] = rb
        async with rb:
            await rb.do("a", lambda: None, lambda: slow_undo("a"))
            await rb.do("b", lambda: None, lambda: slow_undo("b"))
            started.set()
            await asyncio.sleep(3600)

    async def main():
        task = asyncio.create_task(pipeline())
        await started.wait()
        task.cancel()
        await asyncio.sleep(0.005)  # inside the first slow undo now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert undone == ["b", "a"]
    done = outcome["rb"].outcome
    assert done.status is Status.CANCELLED
    assert done.compensated == ("b", "a")
    assert isinstance(done.error, asyncio.CancelledError)


def test_a_cancel_inside_a_step_is_judged_by_the_machine_rule():
    """The cancel lands in the running step's await: the step may have happened. Its undo
    logged before it, everything is undone: cancelled. Logged after, the step is reported
    leaked: rollback_incomplete (never a false cancelled); a failed undo too."""

    async def pipeline(rb, started, register):
        async with rb:
            await rb.do("a", lambda: None, lambda: None)
            await rb.do(
                "b", lambda: started.set() or asyncio.sleep(3600), lambda: None, register=register
            )

    async def cancelled(register="before", **options):
        rb, started = AsyncRollback(**options), asyncio.Event()
        task = asyncio.create_task(pipeline(rb, started, register))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return rb.outcome

    clean = asyncio.run(cancelled())
    assert (clean.status, clean.compensated) == (Status.CANCELLED, ("b", "a"))
    unknown = asyncio.run(cancelled("after"))
    assert (unknown.status, unknown.leaked) == (Status.ROLLBACK_INCOMPLETE, ("b",))
    failed_undo = asyncio.run(cancelled(inject={"a": "undo_fails"}))
    assert failed_undo.status is Status.ROLLBACK_INCOMPLETE


def test_a_failure_rolled_back_under_a_later_cancel_still_says_rolled_back():
    async def pipeline(rb):
        async with rb:
            await rb.do("a", lambda: None, lambda: asyncio.sleep(0.01))
            raise ValueError("card declined")

    async def main():
        rb = AsyncRollback()
        task = asyncio.create_task(pipeline(rb))
        await asyncio.sleep(0.005)  # inside the undo of a
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return rb.outcome

    outcome = asyncio.run(main())
    assert (outcome.status, outcome.compensated) == (Status.ROLLED_BACK, ("a",))


def test_async_action_retry_uses_the_clock(clock):
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError
        return 7

    async def main():
        async with AsyncRollback(clock=clock) as rb:
            return await rb.do("a", flaky, retry=RetryPolicy(initial_delay=2))

    assert asyncio.run(main()) == 7
    assert clock.sleeps == [2]


def test_async_fail_after_effect_with_register_before():
    state = {"paid": 0}

    async def charge():
        state["paid"] = 5

    async def refund():
        state["paid"] = 0

    async def main():
        async with AsyncRollback(inject={"charge": "fail_after_effect"}) as rb:
            await rb.do("charge", charge, refund, register="before")

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert state == {"paid": 0}
