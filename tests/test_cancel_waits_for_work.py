"""attack90: an ``AsyncRollback`` cancelled while an action's work runs waits for that
work's real end, whatever its shape, and tells it first: the undo never runs before the
effect lands, the cancel is never swallowed (F1 a Future whose result is another, F2 a Task
that swallows the cancel, F4 a second cancel, F8 a queued pool job, F12 a
``run_coroutine_threadsafe`` Future or a bare Future, F14 another loop that stops). An
undo's such work past its timeout is never called again (F13); an awaited call that gives
back a lazy awaitable never ran it (F16)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Status, Step, UndoPolicy
from rollback_lessons.policies import RetryPolicy


def _charge(world: list[str], pause: float = 0.3):
    def charge() -> str:
        time.sleep(pause)
        world.append("charged")
        return "receipt"

    return charge


async def _stubborn(world: list[str]) -> str:
    """A charge that will not stop when cancelled, however often: it goes on to its end."""
    end = time.monotonic() + 0.3
    while (left := end - time.monotonic()) > 0:
        try:
            await asyncio.sleep(left)
        except asyncio.CancelledError:
            continue
    world.append("charged")
    return "receipt"


def _shape(shape: str, world: list[str], pool, other):
    """The action: hands back its charge as ``shape``."""
    if shape == "future_of_future":
        return lambda: pool.submit(lambda: pool.submit(_charge(world)))
    if shape == "queued":  # (the pool's one worker busy first: the charge waits in its queue)
        single = ThreadPoolExecutor(1)
        return lambda: single.submit(time.sleep, 0.3) and single.submit(_charge(world, 0.0))
    if shape == "stubborn_task":
        return lambda: asyncio.ensure_future(_stubborn(world))
    if shape == "threadsafe":
        return lambda: asyncio.run_coroutine_threadsafe(_stubborn(world), other)
    assert shape == "bare_future"

    def bare():
        future: Future[str] = Future()
        threading.Thread(target=lambda: future.set_result(_charge(world)())).start()
        return future

    return bare


@pytest.mark.parametrize(
    "shape", ["future_of_future", "queued", "stubborn_task", "threadsafe", "bare_future"]
)
@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("stop", ["cancel", "twice", "timeout"])
def test_a_cancelled_block_waits_for_the_charge_and_refunds_it_after(
    pool, other_loop, shape, register, stop
):
    """Before: the refund (logged before) ran while the charge went on, the charge standing
    under ``cancelled``; or the step was reported leaked though its end was known; or the
    cancel was swallowed and the block committed."""
    world: list[str] = []
    blocks: list[AsyncRollback] = []
    action = _shape(shape, world, pool, other_loop)

    async def block():
        async with AsyncRollback() as rb:
            blocks.append(rb)
            await rb.do("charge", action, lambda: world.append("refunded"), register=register)
            await rb.do("ship", lambda: world.append("shipped"))

    async def main():
        task = asyncio.ensure_future(block())
        if stop == "timeout":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await task
            return
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, task.cancel)
        if stop == "twice":
            loop.call_later(0.15, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    time.sleep(0.4)  # (anything left running would land now)
    o = blocks[0].outcome
    if stop == "twice" and o.status is not Status.CANCELLED:  # a second cancel (not one
        assert shape != "stubborn_task"  # asyncio coalesced with the first) gives the wait
        assert o.status is Status.ROLLBACK_INCOMPLETE and o.leaked == ("charge",)  # up: in
        assert any("still ran" in note for note in o.notes) and "charged" in world  # doubt
        return
    assert world == ["charged", "refunded"]
    assert o.status is Status.CANCELLED and o.compensated == ("charge",) and o.leaked == ()


def test_a_cancel_then_the_other_loop_stopping_is_raised_as_the_cancel(other_loop):
    """F14: the block raised MayHaveRun instead of the CancelledError; the step is in doubt."""
    world: list[str] = []
    blocks: list[AsyncRollback] = []

    async def make():
        return asyncio.ensure_future(_stubborn(world))

    def action():
        return asyncio.run_coroutine_threadsafe(make(), other_loop).result(5)

    async def block():
        async with AsyncRollback() as rb:
            blocks.append(rb)
            await rb.do("charge", action, lambda: world.append("refunded"))

    async def main():
        task = asyncio.ensure_future(block())
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, task.cancel)
        loop.call_later(0.2, lambda: other_loop.call_soon_threadsafe(other_loop.stop))
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    o = blocks[0].outcome
    assert o.status is Status.ROLLBACK_INCOMPLETE and o.leaked == ("charge",)


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
def test_an_undo_handing_back_threadsafe_work_past_its_timeout_is_never_called_again(
    other_loop, driver
):
    """F13: its Future's cancel() succeeded while its refund ran on: three refunds at once."""
    world: list[str] = []

    async def refund():
        world.append("refund begins")
        await _stubborn(world)
        world.append("refunded")

    def undo(*_):
        return asyncio.run_coroutine_threadsafe(refund(), other_loop)

    policy = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.01), then="dead_letter")

    async def main():
        if driver == "arun":
            steps = [Step("charge", lambda s: None, undo, undo_timeout=0.1),
                     Step("ship", lambda s: 1 / 0)]  # fmt: skip
            return await Saga(steps).arun({}, policy=policy)
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback(policy=policy) as rb:
                await rb.do("charge", lambda: None, undo, undo_timeout=0.1)
                raise ZeroDivisionError
        return rb.outcome

    o = asyncio.run(main())
    time.sleep(0.8)
    assert world.count("refund begins") == 1
    assert o.status is Status.ROLLBACK_INCOMPLETE and "not called again" in str(o.dead_letters)


class _Request:
    """Lazy until awaited, as an HTTP client's request object."""

    def __init__(self, world: list[str]) -> None:
        self.world = world

    def __await__(self):
        yield from asyncio.sleep(0).__await__()
        self.world.append("refunded")


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
def test_an_undo_giving_back_a_lazy_awaitable_is_a_dead_letter_never_undone(driver):
    """F16: ``return Request(...)`` (an await missing) was reported undone: the refund never ran."""
    world: list[str] = []

    async def undo(*_):
        return _Request(world)

    async def main():
        if driver == "arun":
            steps = [Step("charge", lambda s: world.append("charged"), lambda s: undo()),
                     Step("ship", lambda s: 1 / 0)]  # fmt: skip
            return await Saga(steps).arun({})
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback() as rb:
                await rb.do("charge", lambda: world.append("charged"), undo)
                raise ZeroDivisionError
        return rb.outcome

    o = asyncio.run(main())
    assert world == ["charged"] and o.status is Status.ROLLBACK_INCOMPLETE
    assert o.compensated == () and "gave back an awaitable" in str(o.dead_letters[0].error)


@pytest.mark.parametrize("driver", ["AsyncRollback", "Rollback"])
def test_a_cut_told_by_a_block_inside_an_action_is_never_the_outer_steps_end(pool, driver):
    """attack92 F1: an action running a block of its own, cut while that block waited for
    its charge: the inner block undid it, and the outer step was then taken as done (the
    inner step's end) and undone too: two refunds."""
    import os
    import signal

    world: list[str] = []

    def charge():
        time.sleep(0.3)
        world.append("charged")

    async def abook():
        async with AsyncRollback() as inner:
            await inner.do("charge", lambda: pool.submit(charge), lambda: world.append("refund"))

    def book():
        with Rollback() as inner:
            inner.do("charge", lambda: pool.submit(charge), lambda: world.append("refund"))

    async def ablock():
        async with AsyncRollback() as rb:
            blocks.append(rb)
            await rb.do("trip", abook, lambda: world.append("refund all"))

    blocks: list[AsyncRollback | Rollback] = []
    if driver == "AsyncRollback":

        async def main():
            task = asyncio.ensure_future(ablock())
            asyncio.get_running_loop().call_later(0.1, task.cancel)
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
    else:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt), Rollback() as rb:
            blocks.append(rb)
            rb.do("trip", book, lambda: world.append("refund all"))
    assert world == ["charged", "refund"]
    assert blocks[0].outcome.leaked == ("trip",) and blocks[0].outcome.compensated == ()


def test_a_contextvar_an_async_action_sets_is_seen_after_it(pool):
    """attack92 F3: the action ran in a task of its own: what it set was lost."""
    import contextvars

    seen = contextvars.ContextVar("seen", default="unset")

    async def action():
        seen.set("set by the action")
        return id(asyncio.current_task())

    async def main():
        async with AsyncRollback() as rb:
            task = await rb.do("a", action)
        return seen.get(), task == id(asyncio.current_task())

    assert asyncio.run(main()) == ("set by the action", True)


def test_a_future_nobody_sets_never_hangs_a_cancelled_block():
    """attack92 F11: waited for through every cancel, a Future nobody sets hung the block for
    good. The second cancel gives the wait up: the step in doubt."""
    blocks: list[AsyncRollback] = []

    async def block():
        async with AsyncRollback() as rb:
            blocks.append(rb)
            never: Future[None] = Future()
            await rb.do("charge", lambda: never)

    async def main():
        task = asyncio.ensure_future(block())
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, task.cancel)
        loop.call_later(0.1, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert blocks[0].outcome.leaked == ("charge",)


def test_a_ctrl_c_in_an_undos_pool_work_stops_the_rollback_at_once(pool):
    """attack92 F6: the wait for an action's work was made for undos too: the Ctrl-C heard
    only once the refund ended, which was then said not known to be undone."""
    import os
    import signal

    world: list[str] = []

    def refund():
        time.sleep(0.4)
        world.append("refunded")

    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt), Rollback() as rb:
        rb.do("charge", lambda: world.append("charged"), lambda: pool.submit(refund))
        raise ValueError("ship failed")
    assert world == ["charged"] and rb.outcome.pending == ("charge",)
