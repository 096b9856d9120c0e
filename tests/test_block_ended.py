"""A with-block that fails while a step of another thread still runs (issue 25's leftovers):
that step begins no new try once its block failed (its wait to retry ends at once), a try
that succeeds is still logged and undone with the rest; a Ctrl-C while the block waits for
it says once that it still ran."""

from __future__ import annotations

import threading

import pytest

from rollback_lessons import RetryPolicy, Rollback, Status
from rollback_lessons.machine import RAISE, Machine, Phase


class _Told(threading.Event):
    """``Rollback``'s wait for the running step, telling when the block begins to wait for
    it (by then the block has failed, and said so to the run)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def _block_fails_while(car, retry: RetryPolicy):
    """Run ``car`` in another thread of a block that fails once car's first try began."""
    world: list[str] = []
    ended: list[BaseException] = []
    rb = Rollback()
    told = _Told()
    rb._Waiter = lambda: told  # type: ignore[assignment,method-assign]
    began = threading.Event()

    def work() -> None:
        try:
            rb.do("car", lambda: car(world, began, told.waiting),
                  lambda: world.append("undo car"), retry=retry)  # fmt: skip
        except BaseException as exc:
            ended.append(exc)

    worker = threading.Thread(target=work)
    with pytest.raises(LookupError):
        with rb:
            rb.do("room", lambda: world.append("do room"), lambda: world.append("undo room"))
            worker.start()
            assert began.wait(30)
            raise LookupError("charge refused")
    worker.join(30)
    assert not worker.is_alive()
    return rb, world, ended


@pytest.mark.parametrize("second", ["fails", "succeeds"])
def test_a_failed_block_begins_no_new_try_of_the_step_it_waits_for(second):
    """The block fails during car's second try (of 20): no third try begins; a second try
    that fails is car's failure for good (its own error, in its thread), one that succeeds
    is done, its undo logged and run with the rest."""
    tries: list[int] = []

    def car(world, began, waiting) -> str:
        tries.append(len(tries) + 1)
        if len(tries) == 2:
            began.set()
            assert waiting.wait(30)  # the block failed and waits for this try
            if second == "succeeds":
                world.append("do car")
                return "car"
        raise ConnectionError(f"busy ({len(tries)})")

    rb, world, ended = _block_fails_while(
        car, RetryPolicy(max_attempts=20, initial_delay=0.001, multiplier=1.0)
    )
    assert tries == [1, 2]
    outcome = rb.outcome
    assert outcome.status is Status.ROLLED_BACK
    if second == "fails":
        assert world == ["do room", "undo room"] and outcome.compensated == ("room",)
        assert len(ended) == 1 and str(ended[0]) == "busy (2)"
        failed = [e for e in outcome.events if e.kind == "step_failed"]
        assert [(e.step, e.details["error"]) for e in failed] == [
            ("car", "ConnectionError('busy (2)')")
        ]
    else:
        assert world == ["do room", "do car", "undo car", "undo room"]
        assert outcome.compensated == ("car", "room") and not ended


def test_a_failed_block_ends_the_wait_to_retry_of_the_step_it_waits_for():
    """The block fails while car waits 5 s to retry: the wait ends, no second try."""
    tries: list[int] = []

    def car(world, began, waiting) -> None:
        tries.append(1)
        began.set()
        raise ConnectionError("busy")

    rb, world, ended = _block_fails_while(car, RetryPolicy(max_attempts=2, initial_delay=5.0))
    assert tries == [1] and world == ["do room", "undo room"]
    assert rb.outcome.status is Status.ROLLED_BACK and isinstance(ended[0], ConnectionError)


class _CtrlCWhileWaiting(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        raise KeyboardInterrupt


def test_a_ctrl_c_while_the_block_waits_says_once_that_the_step_still_ran():
    """The note that the step still ran is the machine's (``interrupted(still_runs=True)``),
    said once: in the outcome and on the Ctrl-C."""
    go = threading.Event()
    began = threading.Event()

    def car() -> None:
        began.set()
        go.wait(30)

    rb = Rollback()
    rb._Waiter = _CtrlCWhileWaiting  # type: ignore[assignment,misc]
    ended: list[BaseException] = []

    def work() -> None:
        try:
            rb.do("car", car)
        except BaseException as exc:  # (its block ended first: StepStillRunning)
            ended.append(exc)

    worker = threading.Thread(target=work)
    with pytest.raises(KeyboardInterrupt) as raised:
        with rb:
            worker.start()
            assert began.wait(30)
            raise LookupError("charge refused")
    go.set()
    worker.join(30)
    said = [n for n in rb.outcome.notes if "'car' still ran" in n]
    assert len(said) == 1 and rb.outcome.leaked == ("car",)
    assert len([n for n in raised.value.__notes__ if "'car' still ran" in n]) == 1
    assert len(ended) == 1


def test_the_machine_says_a_step_still_runs_and_not_one_waiting_to_retry():
    m = Machine()
    m.begin("car", has_undo=True, register="before")
    m.interrupted(KeyboardInterrupt(), still_runs=True)
    assert [n for n in m.notes if "still ran" in n] and m.leaked == ["car"]
    m = Machine()
    m.begin("car", has_undo=True, retry=RetryPolicy(max_attempts=3))
    m.step_failed(ConnectionError("busy"))
    assert m.phase is Phase.STEP_WAIT
    m.interrupted(KeyboardInterrupt(), still_runs=True)  # (waiting: no new try begins)
    assert not m.notes and not m.leaked


def test_a_machine_stopped_while_its_with_block_step_waits_begins_no_new_try():
    """The rule is the machine's: a with-block step ``stop``ped is not tried again, in its
    wait or as a try fails; a saga's (a plan) is untouched by this rule."""
    m = Machine()
    m.begin("car", retry=RetryPolicy(max_attempts=5))
    m.step_failed(ConnectionError("one"))
    m.stop(LookupError("block"))
    assert m.resume() is RAISE and m.phase is Phase.FORWARD and m.completed == []
    assert m.rows[-1][0] == "step_failed" and "one" in dict(m.rows[-1][2])["error"]
    m = Machine()
    m.begin("car", retry=RetryPolicy(max_attempts=5))
    m.stop(LookupError("block"))
    m.step_failed(ConnectionError("one"))
    assert m.phase is Phase.FORWARD and m.rows[-1][0] == "step_failed"


def _async_block_fails_while(car, retry: RetryPolicy):
    """Run ``car`` gathered with a part of the block that fails once car's first try began
    (issue 25's leftover: ``AsyncRollback`` waited through all of car's retries)."""
    import asyncio

    from rollback_lessons import AsyncRollback

    world: list[str] = []
    ended: list[BaseException] = []
    rb = AsyncRollback()

    async def main() -> None:
        began = asyncio.Event()

        async def gathered() -> None:
            try:
                await rb.do("car", lambda: car(world, began),
                            lambda: world.append("undo car"), retry=retry)  # fmt: skip
            except BaseException as exc:
                ended.append(exc)

        async def refused() -> None:
            await asyncio.wait_for(began.wait(), 30)
            raise LookupError("charge refused")

        with pytest.raises(LookupError):
            async with rb:
                await rb.do("room", lambda: world.append("do room"),
                            lambda: world.append("undo room"))  # fmt: skip
                async with asyncio.timeout(60):
                    await asyncio.gather(gathered(), refused())

    asyncio.run(main())
    return rb, world, ended


def test_a_failed_async_block_ends_the_wait_to_retry_of_the_step_it_waits_for():
    """The async twin: the block fails while car waits 30 s to retry (of 5 tries): the wait
    ends at once, no second try, car fails for good with its own error; the room undone."""
    tries: list[int] = []

    async def car(world, began) -> None:
        tries.append(1)
        began.set()
        raise ConnectionError("busy")

    rb, world, ended = _async_block_fails_while(
        car, RetryPolicy(max_attempts=5, initial_delay=30.0)
    )
    assert tries == [1] and world == ["do room", "undo room"]
    assert rb.outcome.status is Status.ROLLED_BACK
    assert len(ended) == 1 and isinstance(ended[0], ConnectionError)


def test_an_async_block_that_succeeds_lets_its_step_retry_as_it_would():
    """Only a failed block stops the tries: one that ends well waits for car's retry (its
    wait not cut short), and car, done on its second try, is committed with the rest."""
    import asyncio

    from rollback_lessons import AsyncRollback

    tries: list[int] = []
    world: list[str] = []
    rb = AsyncRollback()

    async def car() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("busy")
        world.append("do car")
        return "car"

    async def main() -> None:
        async with rb:
            task = asyncio.ensure_future(
                rb.do("car", car, retry=RetryPolicy(max_attempts=3, initial_delay=0.05))
            )
            await asyncio.sleep(0)  # (car's first try begins, fails, waits to retry)
        assert task.done() and task.result() == "car"

    asyncio.run(main())
    assert tries == [1, 1] and world == ["do car"]
    assert rb.outcome.status is Status.COMMITTED


@pytest.mark.parametrize("register", ["after", "before"])
@pytest.mark.parametrize("ticks", range(6))
def test_a_gathered_step_begun_as_the_async_block_ends_is_undone_or_refused(ticks, register):
    """attack27 F2: a gathered task's ``rb.do`` begun a few loop turns after another's step
    failed (the block already ending, no step running) ran its action beside the rollback:
    the block said rolled_back (with b "compensated" before its effect, when its undo was
    logged first), b's effect landed after and stayed, and b's do raised a bare
    AssertionError. Now a step begun once the block is ending is refused before its action
    with one line; one begun before is waited for and undone. Whatever the turn: no effect
    is left standing, and the outcome never claims an undo that ran before its effect."""
    import asyncio

    from rollback_lessons import AsyncRollback

    world: dict[str, str] = {}
    said: list[BaseException] = []
    rb = AsyncRollback()

    async def fails() -> None:
        raise LookupError("charge refused")

    async def late() -> None:
        for _ in range(ticks):
            await asyncio.sleep(0)

        async def slow() -> None:
            await asyncio.sleep(0.05)
            world["b"] = "on"

        async def undo() -> None:
            world.pop("b", None)

        try:
            await rb.do("b", slow, undo, register=register)  # type: ignore[arg-type]
        except BaseException as exc:
            said.append(exc)

    async def main() -> None:
        with pytest.raises(LookupError):
            async with rb:
                await asyncio.gather(rb.do("a", fails), late())
        await asyncio.sleep(0.1)  # (a step that ran beside the rollback would land by now)

    asyncio.run(main())
    assert world == {}, (ticks, register, rb.outcome)
    assert rb.outcome.status is Status.ROLLED_BACK
    if said:  # refused: one line, before its action, and b is nowhere in the outcome
        refusals = ("refused before its action", "only usable inside its with block")
        assert isinstance(said[0], RuntimeError) and any(r in str(said[0]) for r in refusals)
        assert "b" not in rb.outcome.compensated and "b" not in rb.outcome.completed
