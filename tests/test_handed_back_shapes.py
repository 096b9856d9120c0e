"""attack88 F7, F14, F15: work handed back in the shapes left over. A pool's worker process
that dies as it runs the charge cut the call short (in doubt, never a clean refusal); a
pool's own cancel of work it never began is the pool's error, not a cancel of the caller's
task; a generator-based coroutine (``@types.coroutine``) is awaited as ``await`` takes it."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import types
from concurrent.futures import CancelledError, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Status, Step
from rollback_lessons.calls import is_async


def _charge_then_die(world: str) -> None:
    with open(world, "a") as file:
        file.write("charged\n")
    os._exit(9)  # (as an OOM kill would: the worker dies before it answers)


@pytest.mark.parametrize("driver", ["run", "arun"])
def test_a_charge_whose_pool_worker_died_is_in_doubt_never_a_refusal(tmp_path: Path, driver):
    """F14: BrokenProcessPool was a clean failure: rolled_back, the charge named nowhere."""
    world = tmp_path / "world"
    world.write_text("")
    with ProcessPoolExecutor(1) as pool:
        steps = [Step("book", lambda s: None, lambda s: world.open("a").write("unbooked\n")),
                 Step("charge", lambda s: pool.submit(_charge_then_die, str(world)),
                      lambda s: world.open("a").write("refunded\n"))]  # fmt: skip
        saga = Saga(steps)
        o = saga.run({}) if driver == "run" else asyncio.run(saga.arun({}))
    assert world.read_text().split() == ["charged", "unbooked"]
    assert o.status is Status.ROLLBACK_INCOMPLETE and o.leaked == ("charge",)
    assert "worker died" in str(o.error) and "may have" in str(o.error)


@pytest.mark.parametrize("driver", ["Rollback", "AsyncRollback", "run", "arun"])
def test_work_its_pool_cancels_before_it_began_is_the_pools_error(driver):
    """F7: AsyncRollback raised asyncio's CancelledError (a cancel of the caller's task) for
    a pool Future that ``shutdown(cancel_futures=True)`` cancelled; Rollback raised the
    pool's. Never begun: a clean failure, the step before it undone."""
    world: list[str] = []
    pool = ThreadPoolExecutor(1)

    gate = threading.Event()

    def cancelled_then_freed() -> None:  # (the queue cancelled before the worker is free,
        pool.shutdown(wait=False, cancel_futures=True)  # whatever the load: a full run's
        gate.set()  # flake, the sleep over before the timer fired, the charge made)

    def charge(*_):
        pool.submit(gate.wait, 10)  # (the worker busy: the charge waits in the queue)
        queued = pool.submit(world.append, "charged")
        threading.Timer(0.1, cancelled_then_freed).start()
        return queued

    def book(*_):
        world.append("booked")

    def unbook(*_):
        world.append("unbooked")

    async def block():
        async with AsyncRollback() as rb:
            await rb.do("book", book, unbook)
            await rb.do("charge", charge, lambda: world.append("refunded"))

    steps = [Step("book", book, unbook), Step("charge", charge, lambda s: None)]
    if driver == "Rollback":
        with pytest.raises(CancelledError), Rollback() as rb:
            rb.do("book", book, unbook)
            rb.do("charge", charge, lambda: world.append("refunded"))
    elif driver == "AsyncRollback":
        with pytest.raises(CancelledError):
            asyncio.run(block())
    else:
        saga = Saga(steps)
        o = saga.run({}) if driver == "run" else asyncio.run(saga.arun({}))
        assert o.status is Status.ROLLED_BACK and isinstance(o.error, CancelledError)
    assert world == ["booked", "unbooked"]


@types.coroutine
def _legacy_charge(world: list[str]):
    yield from asyncio.sleep(0.01).__await__()
    world.append("charged")
    return "receipt"


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
def test_a_generator_based_coroutine_is_awaited_as_await_takes_it(driver):
    """F15: refused as "a generator function" (AsyncRollback) or as sync-only inside arun."""
    world: list[str] = []

    async def main():
        if driver == "arun":
            steps = [Step("charge", lambda s: _legacy_charge(world), lambda s: None),
                     Step("ship", lambda s: 1 / 0)]  # fmt: skip
            return None, await Saga(steps).arun({})
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback() as rb:
                got = await rb.do("charge", lambda: _legacy_charge(world),
                                  lambda: world.append("refunded"))  # fmt: skip
                world.append(f"got {got}")
                raise ZeroDivisionError
        return got, rb.outcome

    got, o = asyncio.run(main())
    assert o.status is Status.ROLLED_BACK and o.compensated == ("charge",)
    assert world[0] == "charged" and got in (None, "receipt")


def test_a_generator_based_coroutine_function_is_async_to_the_sync_rollback():
    """Refused before anything runs, as an ``async def`` is: the sync block cannot await it."""
    legacy = types.coroutine(lambda: (yield))
    with pytest.raises(TypeError, match="async function"), Rollback() as rb:
        rb.do("charge", legacy)


def _ctrl_c_at(*seconds: float) -> None:
    """A real Ctrl-C (SIGINT to this process) at each of ``seconds``, from a timer thread."""
    import signal

    for at in seconds:
        threading.Timer(at, os.kill, (os.getpid(), signal.SIGINT)).start()


@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("driver", ["Rollback", "run"])
@pytest.mark.parametrize("declined", [False, True])
def test_a_ctrl_c_while_a_sync_run_waits_for_pool_work_waits_for_its_end_first(
    pool, register, driver, declined
):
    """attack90 F7: the Ctrl-C ended the wait at once: the refund logged before the charge
    ran while the charge went on (rolled_back, the charge standing). Now the work's end is
    waited for and told first: done, refunded after it; declined, nothing to undo."""
    world: list[str] = []

    def charge():
        time.sleep(0.4)
        if declined:
            raise ValueError("card declined")
        world.append("charged")

    def refund(*_):
        world.append("refunded")

    _ctrl_c_at(0.1)
    with pytest.raises(KeyboardInterrupt):
        if driver == "Rollback":
            with Rollback() as rb:
                rb.do("charge", lambda: pool.submit(charge), refund, register=register)
                rb.do("ship", lambda: world.append("shipped"))
        else:
            steps = [Step("charge", lambda s: pool.submit(charge), refund, register=register),
                     Step("ship", lambda s: world.append("shipped"))]  # fmt: skip
            Saga(steps).run({})
    time.sleep(0.1)
    if declined:  # (a refund logged before it may run: the charge had ended, declined)
        assert "charged" not in world and "shipped" not in world
    else:
        assert world == ["charged", "refunded"]
    if driver == "Rollback" and not declined:
        assert rb.outcome.compensated == ("charge",) and rb.outcome.leaked == ()
    if driver == "Rollback" and declined:
        assert rb.outcome.leaked == () and rb.outcome.status is Status.ROLLED_BACK


def test_a_second_ctrl_c_gives_the_wait_up_and_the_step_is_in_doubt(pool):
    """The second Ctrl-C ends the wait: the work still runs, so its step is leaked (a note
    says its effect may land after any undo), never reported undone."""
    world: list[str] = []

    def charge():
        time.sleep(0.6)
        world.append("charged")

    _ctrl_c_at(0.1, 0.2)
    with pytest.raises(KeyboardInterrupt), Rollback() as rb:
        rb.do("charge", lambda: pool.submit(charge), lambda: world.append("refunded"),
              register="before")  # fmt: skip
    o = rb.outcome
    assert o.leaked == ("charge",) and o.status is not Status.ROLLED_BACK
    assert any("still ran" in note for note in o.notes)


def test_a_sync_runs_undo_handing_back_its_blocked_loops_executor_future_says_it_may_go_on():
    """attack90 F10: said "cancelled mid-way", yet cancelling the Future stops no thread."""
    world: list[str] = []

    def refund() -> None:
        time.sleep(0.2)
        world.append("refunded")

    async def main():
        loop = asyncio.get_running_loop()
        steps = [Step("charge", lambda s: world.append("charged"),
                      lambda s: loop.run_in_executor(None, refund)),
                 Step("ship", lambda s: 1 / 0)]  # fmt: skip
        return Saga(steps).run({})

    o = asyncio.run(main())
    assert o.status is Status.ROLLBACK_INCOMPLETE and o.compensated == ()
    said = str(o.dead_letters[0].error)
    assert "may go on" in said and "cancelled mid-way" not in said


class _AsyncCall:
    async def __call__(self, *_):
        raise AssertionError("never called: refused before anything runs")


class _LegacyCall:
    @types.coroutine
    def __call__(self, *_):
        raise AssertionError("never called: refused before anything runs")
        yield


_ASYNC_SHAPES = {
    "object": _AsyncCall(),
    "partial of object": functools.partial(_AsyncCall()),
    "legacy object": _LegacyCall(),
}


@pytest.mark.parametrize("shape", list(_ASYNC_SHAPES))
@pytest.mark.parametrize("role", ["action", "undo"])
def test_what_is_async_is_refused_by_the_sync_rollback_before_anything_runs(shape, role):
    """attack90 F9: an object whose ``__call__`` is ``async def`` (or a partial of one) was
    taken as an undo: the charge ran, and the undo was a dead letter at rollback."""
    fn, world = _ASYNC_SHAPES[shape], []
    assert is_async(fn)
    with pytest.raises(TypeError, match="is an async function; the synchronous Rollback"):
        with Rollback() as rb:
            if role == "undo":
                rb.do("charge", lambda: world.append("charged"), fn)
            else:
                rb.do("charge", fn, lambda: world.append("refunded"))
    assert world == [] and rb.outcome.status is Status.ROLLED_BACK
    assert not rb.outcome.dead_letters
    with Rollback() as rb, pytest.raises(TypeError, match="is an async function"):
        rb.register("charge", fn)  # (an undo logged by itself: the same rule)
    with pytest.raises(TypeError, match="is an async function; a Step takes a plain function"):
        Step("charge", fn) if role == "action" else Step("charge", lambda s: 1, fn)


def test_a_class_with_an_async_call_is_not_async_its_instances_are():
    """Calling the class makes an instance (no coroutine): the rule looks at the type's."""
    assert not is_async(_AsyncCall) and is_async(_AsyncCall())
    assert not is_async(functools.partial(print)) and not is_async(len)


def test_a_partial_of_an_async_call_object_is_awaited_by_async_rollback_with_a_timeout():
    """Counted async now, it is still awaited by the async block (here with a timeout)."""
    world: list[str] = []

    class Refund:
        async def __call__(self, what: str) -> None:
            await asyncio.sleep(0)
            world.append(what)

    async def main():
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback() as rb:
                await rb.do("charge", lambda: world.append("charged"),
                            functools.partial(Refund(), "refunded"), undo_timeout=5)  # fmt: skip
                raise ZeroDivisionError
        return rb.outcome

    o = asyncio.run(main())
    assert o.status is Status.ROLLED_BACK and world == ["charged", "refunded"]
