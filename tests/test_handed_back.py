"""attack86 F1-F4, F8-F11: a call that hands back work (a pool's concurrent Future, an asyncio
Task or Future) is that work, on every driver: waited for wherever it runs, its result the
call's, its error the call's; cancelled only where it cannot be waited for, and then said
truly how far it got. Before: a failed refund handed to a pool by an ``async def`` undo was
reported undone, a Task of another loop was refunded three times under a dead letter, a
charge done by a Task was taken for a refusal, and ``arun`` blocked its loop on a pool."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import crash_at_first_undo

from rollback_lessons import AsyncRollback, Rollback, Saga, Status, Step, UndoPolicy
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import BoundUndo, Registry
from rollback_lessons.policies import RetryPolicy


def _refund(world: list[str], fails: bool, pause: float = 0.05):
    def refund() -> None:
        time.sleep(pause)
        world.append("refund attempted")
        if fails:
            raise ConnectionError("bank down")
        world.append("refunded")

    return refund


async def _undoing(driver: str, undo, policy=None, settle: float = 0.0, **step):
    """Step "charge" (nothing to do) with ``undo`` (called with no argument), then a failure:
    its rollback by ``driver``, an AsyncRollback block or ``saga.arun`` ("arun", or "arun
    timed": ``step`` options on the charge); the outcome after ``settle`` seconds (work left
    running ends meanwhile)."""
    kept = {} if policy is None else {"policy": policy}  # (None is no policy's name)
    if driver == "AsyncRollback":
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback(**kept) as rb:
                await rb.do("charge", lambda: None, undo)
                raise ZeroDivisionError
        o = rb.outcome
    else:
        steps = [Step("charge", lambda s: None, lambda s: undo(), **step),
                 Step("b", lambda s: 1 / 0)]  # fmt: skip
        o = await Saga(steps).arun({}, **kept)
    await asyncio.sleep(settle)
    return o


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun", "arun timed"])
@pytest.mark.parametrize("fails", [False, True])
def test_an_async_undo_handing_its_refund_to_a_pool_is_that_refund(pool, driver, fails):
    """F1: ``async def undo(): return pool.submit(refund)``: the refund's error was dropped."""
    world: list[str] = []

    async def undo():
        return pool.submit(_refund(world, fails))

    timed = {"undo_timeout": 5.0} if driver == "arun timed" else {}

    o = asyncio.run(_undoing(driver, undo, **timed))
    if fails:
        assert o.status is Status.ROLLBACK_INCOMPLETE and world == ["refund attempted"]
        assert "bank down" in str(o.dead_letters[0].error)
    else:
        assert o.status is Status.ROLLED_BACK and world == ["refund attempted", "refunded"]


def test_an_async_action_handing_a_failing_charge_to_a_pool_fails_its_step(pool):
    """F1, an action: a declined charge handed to a pool committed the saga (and shipped)."""
    world: list[str] = []

    def charge():
        world.append("charge attempted")
        raise ConnectionError("card declined")

    async def action(state):
        return pool.submit(charge)

    saga = Saga([Step("charge", lambda s: action(s), lambda s: world.append("refund")),
                 Step("ship", lambda s: world.append("shipped"))])  # fmt: skip
    o = asyncio.run(saga.arun({}))
    assert o.status is Status.ROLLED_BACK and world == ["charge attempted"]
    assert "card declined" in str(o.error)


@pytest.mark.parametrize("driver", ["AsyncRollback", "Rollback"])
def test_a_task_of_another_running_loop_is_waited_for_there_once(other_loop, driver):
    """F2 (async: awaiting it raised "attached to a different loop", each retry refunding
    again, 3 refunds under a dead letter) and F8 (sync: "cancelled now, before it ran" of a
    Task that had begun: the refund made, a person told to make it)."""
    world: list[str] = []

    async def refund():
        world.append("refund sent")
        await asyncio.sleep(0.05)
        world.append("refund confirmed")

    def started():  # (the call starts the refund on its client's loop and hands back its Task)
        async def start():
            task = asyncio.get_running_loop().create_task(refund())
            await asyncio.sleep(0.01)  # (it has begun)
            return task

        return asyncio.run_coroutine_threadsafe(start(), other_loop).result()

    policy = UndoPolicy(RetryPolicy(max_attempts=3), then="dead_letter")

    async def amain():
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback(policy=policy) as rb:
                await rb.do("charge", lambda: None, started)
                raise ZeroDivisionError
        return rb.outcome

    if driver == "AsyncRollback":
        o = asyncio.run(amain())
    else:
        with pytest.raises(ZeroDivisionError), Rollback(policy=policy) as rb:
            rb.do("charge", lambda: None, started)
            raise ZeroDivisionError
        o = rb.outcome
    time.sleep(0.1)
    assert world == ["refund sent", "refund confirmed"]
    assert o.status is Status.ROLLED_BACK and o.compensated == ("charge",)


def test_a_done_task_handed_back_is_its_result_and_a_cancelled_one_in_doubt():
    """F3: a sync action handed back a Task that had run (it charged): the run called it a
    refusal, rolled_back with the charge standing. Its result is the call's; a cancelled
    one may have begun (``MayHaveRun``): its step is reported leaked."""
    world: list[str] = []

    async def charge():
        world.append("charged")
        return "receipt"

    async def main():
        done = asyncio.ensure_future(charge())
        await asyncio.sleep(0)  # (it runs to its end)
        with Rollback() as rb:
            got = rb.do("charge", lambda: done, lambda: world.append("refunded"))
        cancelled = asyncio.get_running_loop().create_future()
        cancelled.cancel()
        with pytest.raises(TypeError, match=r"someone else cancelled .*: it may have begun"):
            with Rollback() as again:
                again.do("charge", lambda: cancelled)
        return got, rb.outcome, again.outcome

    got, o, again = asyncio.run(main())
    assert got == "receipt" and o.status is Status.COMMITTED and world == ["charged"]
    assert again.status is Status.ROLLBACK_INCOMPLETE and again.leaked == ("charge",)


def test_a_task_the_sync_run_blocks_that_had_begun_is_in_doubt_not_never_run():
    """F8's other half: a Task of this thread's own loop (a sync block inside async code)
    cannot be waited for; one that had begun is cut mid-way: its step leaked, never "before
    it ran"."""
    world: list[str] = []

    async def charge():
        world.append("charge sent")
        await asyncio.sleep(0.05)
        world.append("charge confirmed")

    async def main():
        task = asyncio.ensure_future(charge())
        await asyncio.sleep(0.01)  # (begun, waiting on the bank)
        with pytest.raises(TypeError, match="had begun"), Rollback() as rb:
            rb.do("charge", lambda: task, lambda: world.append("refunded"))
        await asyncio.sleep(0.1)
        return rb.outcome

    o = asyncio.run(main())
    assert world == ["charge sent"] and o.leaked == ("charge",)
    assert o.status is Status.ROLLBACK_INCOMPLETE


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
@pytest.mark.parametrize("shape", ["pool", "executor"])
def test_a_timed_out_undo_whose_work_runs_on_in_a_thread_is_never_called_again(pool, driver, shape):
    """F9: the timeout's cancel stopped the await, not the pool's thread: the retries made
    three refunds at once, the dead letter saying it took too long (none made)."""
    world: list[str] = []
    running = [0, 0]  # now, most at once

    def slow():
        running[0] += 1
        running[1] = max(running)
        time.sleep(0.4)
        world.append("refunded")
        running[0] -= 1

    if shape == "pool":
        undo = lambda s=None: pool.submit(slow)  # noqa: E731
    else:

        async def undo(s=None):
            return pool.submit(slow)

    policy = UndoPolicy(RetryPolicy(max_attempts=3, timeout=0.1), then="dead_letter")

    o = asyncio.run(_undoing(driver, undo, policy, settle=0.6))
    assert world == ["refunded"] and running[1] == 1
    assert o.status is Status.ROLLBACK_INCOMPLETE
    assert "may still complete" in str(o.dead_letters[0].error)


@pytest.mark.parametrize("fails", [False, True])
def test_an_async_undo_handing_back_the_task_it_started_is_awaited(fails):
    """F10: ``return asyncio.create_task(refund())``: reported undone; the refund never ran
    when the program ended at once, and its failure was "never retrieved"."""
    world: list[str] = []

    async def refund():
        await asyncio.sleep(0.02)
        if fails:
            raise ConnectionError("bank down")
        world.append("refunded")

    async def undo(state=None):
        return asyncio.create_task(refund())

    saga = Saga([Step("charge", lambda s: None, lambda s: undo(s)), Step("b", lambda s: 1 / 0)])
    o = asyncio.run(saga.arun({}))  # (asyncio.run ends right after: nothing runs later)
    if fails:
        assert o.status is Status.ROLLBACK_INCOMPLETE and world == []
    else:
        assert o.status is Status.ROLLED_BACK and world == ["refunded"]


def test_arun_awaits_a_branchs_pool_future_never_blocking_its_loop(pool):
    """F11: ``arun`` waited for an action's pool Future with a blocking ``.result()`` on its
    loop: the other branches stopped, and a Future that needs the loop hung it for good."""
    from rollback_lessons import Parallel

    world: list[str] = []

    def room():
        time.sleep(0.5)
        world.append("room")

    async def car(state):
        await asyncio.sleep(0.05)
        world.append("car")

    async def flight():
        world.append("flight")

    async def main():
        loop = asyncio.get_running_loop()
        on_loop = lambda s: asyncio.run_coroutine_threadsafe(flight(), loop)  # noqa: E731
        saga = Saga([Parallel(Step("room", lambda s: pool.submit(room)),
                              Step("car", lambda s: car(s))), Step("flight", on_loop)])  # fmt: skip
        return await asyncio.wait_for(saga.arun({}), 10)

    o = asyncio.run(main())
    assert o.status is Status.COMMITTED and world == ["car", "room", "flight"]


@pytest.mark.parametrize("shape", ["async_pool", "task_here"])
@pytest.mark.parametrize("under_a_loop", [False, True])
def test_recover_takes_handed_back_work_to_its_end_or_says_it_never_ran(
    tmp_path, pool, shape, under_a_loop
):
    """F4: recover said "undone" of an ``async def`` compensation whose pool refund failed,
    and a Task it was handed on the caller's loop (recover called inside ``asyncio.run``)
    was a dead letter "attached to a different loop" that then ran: refunded twice by hand."""
    world: list[str] = []
    reg = Registry()

    async def async_pool(item, idempotency_key=None):
        return pool.submit(_refund(world, fails=True))

    async def arefund():
        world.append("refunded")

    def task_here(item, idempotency_key=None):
        coro = arefund()
        try:
            return asyncio.ensure_future(coro)
        except RuntimeError:  # (no loop: closed, or Python warns of it at some later gc)
            coro.close()
            raise

    reg.add("async_pool", async_pool)
    reg.add("task_here", task_here)
    path = tmp_path / "j.db"
    saga = Saga([Step("charge", lambda s: None, BoundUndo(shape, {"item": "c"}, reg)),
                 Step("ship", lambda s: 1 / 0)], name="s")  # fmt: skip
    crash_at_first_undo(path, saga)  # (its process dies as it would undo the charge)

    def recovered():
        with Journal(path) as journal:
            return recover(journal, reg).recovered

    async def amain():
        done = recovered()
        await asyncio.sleep(0.1)  # (a Task left on this loop would run now)
        return done

    [o] = asyncio.run(amain()) if under_a_loop else recovered()
    time.sleep(0.1)
    assert o.status is Status.ROLLBACK_INCOMPLETE and o.compensated == ()
    if shape == "async_pool":
        assert world == ["refund attempted"] and "bank down" in str(o.dead_letters[0].error)
    else:  # (with no loop, its own ensure_future fails: no Task at all)
        said = "before it ran" if under_a_loop else "no current event loop"
        assert world == [] and said in str(o.dead_letters[0].error)


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
def test_an_undo_that_swallows_its_cancel_and_ends_in_the_grace_is_never_called_again(driver):
    """F12: one that would not stop and ended within the grace was a plain failed attempt,
    retried: three refunds made, the dead letter saying it took too long (none made)."""
    world: list[str] = []

    async def refund():
        try:
            await asyncio.sleep(0.15)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # (it goes on, and ends, within the grace)
        world.append("refunded")

    policy = UndoPolicy(RetryPolicy(max_attempts=3, timeout=0.1), then="dead_letter")

    o = asyncio.run(_undoing(driver, refund, policy))
    assert world == ["refunded"] and o.status is Status.ROLLBACK_INCOMPLETE
    assert "may still complete (or has)" in str(o.dead_letters[0].error)


@pytest.mark.parametrize("driver", ["Rollback", "AsyncRollback"])
def test_an_undo_handing_its_refund_to_the_other_stdlib_pool_is_that_refund(driver):
    """F13: ``ThreadPool.apply_async`` (an ``AsyncResult``) was reported undone at once."""
    from multiprocessing.pool import ThreadPool

    world: list[str] = []
    with ThreadPool(1) as tp:
        undo = lambda: tp.apply_async(_refund(world, fails=True))  # noqa: E731
        if driver == "Rollback":
            with pytest.raises(ZeroDivisionError), Rollback() as rb:
                rb.do("charge", lambda: None, undo)
                raise ZeroDivisionError
        else:

            async def main():
                with pytest.raises(ZeroDivisionError):
                    async with AsyncRollback() as rb:
                        await rb.do("charge", lambda: None, undo)
                        raise ZeroDivisionError
                return rb

            rb = asyncio.run(main())
        o = rb.outcome
    assert o.status is Status.ROLLBACK_INCOMPLETE and world == ["refund attempted"]
    assert "bank down" in str(o.dead_letters[0].error)


def test_a_task_of_another_loop_that_would_not_stop_is_never_called_again(other_loop):
    """attack88 F1: the timeout's cancel ended the wait on the other loop at once, while the
    Task there swallowed it and refunded: retried, three refunds, "took longer" (none)."""
    world: list[str] = []

    async def refund():
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # (it goes on)
        world.append("refunded")

    started = lambda: asyncio.run_coroutine_threadsafe(_task_of(refund), other_loop).result()  # noqa: E731
    policy = UndoPolicy(RetryPolicy(max_attempts=3, timeout=0.1), then="dead_letter")

    async def main():
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback(policy=policy) as rb:
                await rb.do("charge", lambda: None, started)
                raise ZeroDivisionError
        await asyncio.sleep(0.5)
        return rb.outcome

    o = asyncio.run(main())
    assert world == ["refunded"] and o.status is Status.ROLLBACK_INCOMPLETE
    assert "may still complete (or has)" in str(o.dead_letters[0].error)


async def _task_of(work):
    return asyncio.get_running_loop().create_task(work())


def test_a_task_whose_loop_stops_while_waited_on_is_in_doubt_never_a_hang():
    """attack88 F2: a sync run waited for ever on a Task whose loop stopped meanwhile."""
    world: list[str] = []
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def charge():
        world.append("charge begun")
        await asyncio.sleep(0.5)
        world.append("charged")

    def action():
        task = asyncio.run_coroutine_threadsafe(_task_of(charge), loop).result()
        threading.Timer(0.2, lambda: loop.call_soon_threadsafe(loop.stop)).start()
        return task

    try:
        with pytest.raises(TypeError, match="had begun"), Rollback() as rb:
            rb.do("charge", action, lambda: world.append("refunded"))
    finally:
        thread.join(5)
        loop.close()
    assert world == ["charge begun"] and rb.outcome.leaked == ("charge",)


def test_recover_in_a_running_loop_with_a_timeout_cancels_a_task_of_that_loop(tmp_path):
    """attack88 F4: with a timeout, the compensation runs in a helper thread, which waited on
    the caller's loop (blocked by recover) the whole timeout; the refund then ran after
    recover had dead-lettered it."""
    world: list[str] = []
    reg = Registry()

    async def arefund():
        world.append("refunded")

    made: list = []  # (the Task, made on the cell's loop before recover: the client's)
    reg.add("task_here", lambda item, idempotency_key=None: made[0])
    path = tmp_path / "j.db"
    policy = UndoPolicy(RetryPolicy(max_attempts=1, timeout=5.0), then="dead_letter")
    saga = Saga([Step("charge", lambda s: None, BoundUndo("task_here", {"item": "c"}, reg)),
                 Step("ship", lambda s: 1 / 0)], name="s", policy=policy)  # fmt: skip
    crash_at_first_undo(path, saga)

    async def main():
        made.append(asyncio.ensure_future(arefund()))
        began = time.monotonic()
        with Journal(path) as journal:
            [o] = recover(journal, reg).recovered
        took = time.monotonic() - began
        await asyncio.sleep(0.1)  # (a Task left on this loop would run now)
        return o, took

    o, took = asyncio.run(main())
    assert world == [] and "before it ran" in str(o.dead_letters[0].error)
    assert took < 4.0  # (never the whole timeout of 5 s)


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
def test_a_cancel_while_awaiting_a_pools_work_is_never_swallowed(pool, stop):
    """attack88 F8: a task.cancel() (a Ctrl-C under asyncio.run, an asyncio.timeout) that
    landed while AsyncRollback awaited an action's pool Future was swallowed: the block went
    on, shipped and committed."""
    world: list[str] = []

    def charge():
        time.sleep(0.4)
        world.append("charged")

    async def block():
        async with AsyncRollback() as rb:
            await rb.do("charge", lambda: pool.submit(charge), lambda: world.append("refund"))
            await rb.do("ship", lambda: world.append("shipped"))
        return rb

    async def main():
        task = asyncio.ensure_future(block())
        if stop == "cancel":
            asyncio.get_running_loop().call_later(0.1, task.cancel)
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await task

    asyncio.run(main())
    assert "shipped" not in world and world[0] == "charged"


def test_a_begun_task_of_a_closed_loop_is_in_doubt_not_a_refusal():
    """attack88 F9: cancelling it raised "Event loop is closed" first: rolled_back, nothing
    leaked, the charge it had sent standing."""
    world: list[str] = []
    loop = asyncio.new_event_loop()

    async def body():
        world.append("charge sent")
        await asyncio.sleep(10)

    task = loop.create_task(body())
    loop.run_until_complete(asyncio.sleep(0.01))  # (it begins, then waits on the bank)
    loop.close()
    with pytest.raises(TypeError, match="had begun"), Rollback() as rb:
        rb.do("charge", lambda: task, lambda: world.append("refund"))
    assert rb.outcome.leaked == ("charge",) and rb.outcome.status is Status.ROLLBACK_INCOMPLETE


def test_an_awaited_action_that_ran_and_gave_back_a_coroutine_is_in_doubt():
    """attack88 F10: it charged, then returned ``confirm()`` (an await missing): taken for a
    refusal, rolled_back, the charge standing and named nowhere."""
    world: list[str] = []

    async def confirm():
        world.append("confirmed")

    async def charge():
        world.append("charged")
        return confirm()

    saga = Saga([Step("charge", lambda s: charge(), lambda s: world.append("refunded")),
                 Step("ship", lambda s: None)])  # fmt: skip
    o = asyncio.run(saga.arun({}))
    assert world == ["charged"] and o.leaked == ("charge",)
    assert o.status is Status.ROLLBACK_INCOMPLETE and "may have had its effect" in str(o.error)


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
def test_an_executor_future_handed_back_and_timed_out_is_never_made_twice(driver):
    """attack88 F6: ``return loop.run_in_executor(None, refund)`` with a timeout: the cancel
    ended the await, the thread went on, and the retries made three refunds at once."""
    world: list[str] = []

    def slow():
        time.sleep(0.4)
        world.append("refunded")

    async def undo(state=None):
        return asyncio.get_running_loop().run_in_executor(None, slow)

    policy = UndoPolicy(RetryPolicy(max_attempts=3, timeout=0.1), then="dead_letter")

    o = asyncio.run(_undoing(driver, undo, policy, settle=0.6))
    assert world == ["refunded"] and "may still complete" in str(o.dead_letters[0].error)


@pytest.mark.parametrize("given", ["task", "future"])
def test_work_its_owner_cancels_while_awaited_is_in_doubt(given):
    """attack88 F11: a Task (or Future) of this loop, the charge sent, cancelled by its owner
    while arun awaited it: rolled_back with a bare CancelledError, the charge standing."""
    world: list[str] = []

    async def charge():
        world.append("charge sent")
        await asyncio.sleep(0.5)

    async def action():
        loop = asyncio.get_running_loop()
        work = loop.create_task(charge()) if given == "task" else loop.create_future()
        if given == "future":
            world.append("charge sent")
        loop.call_later(0.1, work.cancel)
        return work

    saga = Saga([Step("charge", lambda s: action(), lambda s: world.append("refunded")),
                 Step("ship", lambda s: None)])  # fmt: skip
    o = asyncio.run(saga.arun({}))
    assert world == ["charge sent"] and o.leaked == ("charge",)
    assert "may have begun" in str(o.error) and "AsyncRollback" not in str(o.error)


@pytest.mark.parametrize("driver", ["run", "arun"])
def test_a_task_of_another_loop_its_owner_cancels_while_waited_on_is_in_doubt(other_loop, driver):
    """attack89 F3: the charge sent there, its Task cancelled by its owner meanwhile: a clean
    refusal (rolled_back, nothing leaked) on every driver, only this loop's were in doubt."""
    world: list[str] = []

    async def charge():
        world.append("charge sent")
        await asyncio.sleep(0.5)

    def action(state=None):
        task = asyncio.run_coroutine_threadsafe(_task_of(charge), other_loop).result()
        other_loop.call_soon_threadsafe(lambda: other_loop.call_later(0.1, task.cancel))
        return task

    saga = Saga([Step("charge", action, lambda s: world.append("refunded")),
                 Step("ship", lambda s: None)])  # fmt: skip
    o = saga.run({}) if driver == "run" else asyncio.run(saga.arun({}))
    assert world == ["charge sent"] and o.leaked == ("charge",)
    assert o.status is Status.ROLLBACK_INCOMPLETE


def test_a_sync_run_given_pool_work_that_ran_and_gave_back_a_coroutine_is_in_doubt(pool):
    """attack89 F4: the pool's work charged, then returned a coroutine: a clean refusal in
    a synchronous run (a pivot so was compensated across), in doubt in the async ones."""
    world: list[str] = []

    async def confirm():
        world.append("confirmed")

    def charge():
        world.append("charged")
        return confirm()

    saga = Saga([Step("charge", lambda s: pool.submit(charge), lambda s: world.append("refund")),
                 Step("ship", lambda s: None)])  # fmt: skip
    o = saga.run({})
    assert world == ["charged"] and o.leaked == ("charge",)
    assert "may have had its effect" in str(o.error)


def _work_of(shape: str, pool, other, body):
    """``body`` handed back as ``shape``: a pool's Future, the other stdlib pool's AsyncResult,
    a ``run_in_executor`` Future, or a Task of a loop in another thread that would not stop
    (its body in a thread: a cancel cannot cut it)."""
    if shape == "pool":
        return pool.submit(body)
    if shape == "async_result":
        from multiprocessing.pool import ThreadPool

        return ThreadPool(1).apply_async(body)
    if shape == "executor":
        return asyncio.get_running_loop().run_in_executor(pool, body)

    async def stubborn():
        thread = asyncio.ensure_future(asyncio.to_thread(body))
        while True:
            try:
                return await asyncio.shield(thread)
            except asyncio.CancelledError:
                continue  # (it will not stop: it runs on to its end)

    return asyncio.run_coroutine_threadsafe(_task_of(stubborn), other).result(5)


@pytest.mark.parametrize("shape", ["pool", "async_result", "executor", "other_loop_task"])
@pytest.mark.parametrize("declined", [False, True])
@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
def test_a_cancel_that_waited_for_a_charges_end_tells_that_end_first(
    pool, other_loop, shape, declined, driver
):
    """attack89 F1: AsyncRollback cancelled while it awaited a charge that runs on waited for
    its end, then said the step was cut: the charge done was reported leaked and left
    standing (rollback_incomplete), one declined said to be in doubt; ``arun`` refunded and
    said cancelled. Now every driver tells the end first, then the cancel."""
    world: list[str] = []
    blocks: list[AsyncRollback] = []

    def charge():
        time.sleep(0.3)
        if declined:
            raise ValueError("card declined")
        world.append("charged")
        return "receipt"

    def act(*_):
        return _work_of(shape, pool, other_loop, charge)

    def refund(*_):
        world.append("refunded")

    def refund_first(*_):
        world.append("unfirst")

    async def block():
        if driver == "arun":
            first = Step("first", lambda _: world.append("first"), refund_first)
            ship = Step("ship", lambda s: world.append("shipped"))
            return await Saga([first, Step("charge", act, refund), ship]).arun({})
        async with AsyncRollback() as rb:
            blocks.append(rb)
            await rb.do("first", lambda: world.append("first"), refund_first)
            await rb.do("charge", act, refund)
            await rb.do("ship", lambda: world.append("shipped"))

    async def main():
        task = asyncio.ensure_future(block())
        asyncio.get_running_loop().call_later(0.1, task.cancel)
        with pytest.raises(asyncio.CancelledError) as raised:
            await task
        return raised.value

    cancel = asyncio.run(main())
    o = blocks[0].outcome if blocks else cancel.outcome
    done = [] if declined else ["charged", "refunded"]
    assert world == ["first", *done, "unfirst"]
    assert o.status is Status.CANCELLED and o.leaked == () and o.pending == ()
    assert o.compensated == (("first",) if declined else ("charge", "first"))
    [failed] = [e for e in o.events if e.kind.value == "step_failed"] if declined else [None]
    assert failed is None or "card declined" in failed.details["error"]
