"""A with-block that fails while a step of another thread still runs (issue 25's leftovers):
that step begins no new try once its block failed (its wait to retry ends at once), a try
that succeeds is still logged and undone with the rest; a Ctrl-C while the block waits for
it says once that it still ran."""

from __future__ import annotations

import contextlib
import threading

import pytest

from rollback_lessons import RetryPolicy, Rollback, Status
from rollback_lessons.machine import RAISE, Machine, Phase


class _Told:
    """``Rollback``'s wait for the running step (a lock the step releases), telling when the
    block begins to wait for it (by then the block has failed, and said so to the run)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            self.waiting.set()
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self.lock.release()


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


class _CtrlCWhileWaiting:
    """``Rollback``'s wait for the running step, with a Ctrl-C landing in it."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            raise KeyboardInterrupt
        return True

    def release(self) -> None:
        pass


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
        refusals = (
            "refused before its action",
            "only usable inside its with block",
            "a with-block runs one step at a time",
        )  # (a's do in its turns: F9)
        assert isinstance(said[0], RuntimeError) and any(r in str(said[0]) for r in refusals)
        assert "b" not in rb.outcome.compensated and "b" not in rb.outcome.completed


def _ctrl_c_at(where):
    """A tracer raising KeyboardInterrupt once, at ``where(frame, event)``."""
    import sys

    def tracer(frame, event, arg):
        if where(frame, event):
            sys.settrace(None)
            raise KeyboardInterrupt
        return tracer

    return tracer


def _fails_while_another_thread_steps(where, retry: RetryPolicy | None = None):
    """A block that fails while s0 runs in another thread, a Ctrl-C at ``where``: the
    outcome at the block's end, the effects and undos once the thread ended."""
    import sys
    import time

    effects, undos, began = [], [], threading.Event()

    def action():
        began.set()
        time.sleep(0.3)
        if retry is not None:
            raise ConnectionError("flaky")
        effects.append("s0")

    rb = Rollback()

    def step():
        with contextlib.suppress(BaseException):  # (its own end: the block's outcome tells)
            rb.do("s0", action, lambda: undos.append("s0"), retry=retry)

    thread = threading.Thread(target=step, daemon=True)
    with pytest.raises(KeyboardInterrupt):
        with rb:
            thread.start()
            began.wait(5)
            sys.settrace(_ctrl_c_at(where))
            raise RuntimeError("body fails")
    sys.settrace(None)
    at_end = rb.outcome
    thread.join(5 if retry is None else 0.5)
    return at_end, effects, undos


def test_a_ctrl_c_as_the_block_begins_to_wait_for_a_step_reports_it_leaked():
    """attack31 F2: a Ctrl-C heard at the entry of the block's wait (a function's entry,
    outside the wait's own handler) rolled back over the step still running in another
    thread: rolled_back, nothing leaked, its effect landing after, never undone (with a
    journal, lost for good)."""
    at_end, effects, undos = _fails_while_another_thread_steps(
        lambda frame, event: event == "call" and frame.f_code.co_name == "_wait_step"
    )
    assert at_end is not None and at_end.status is Status.ROLLBACK_INCOMPLETE
    assert at_end.leaked == ("s0",)  # it still ran: what it did is for a person
    assert effects == ["s0"] and undos == []


def test_a_ctrl_c_inside_the_wake_of_a_retrying_step_never_hangs_the_block():
    """attack31 F3: a Ctrl-C heard as the wake's Event took its lock left the lock held;
    the handler woke it again and waited on that lock for good."""

    def in_the_wake(frame, event):
        back = frame.f_back
        caller = back.f_back if back is not None else None
        return (event == "return" and frame.f_code.co_name == "__enter__"
                and back is not None and back.f_code.co_name == "set"
                and caller is not None and caller.f_code.co_name == "_stop_tries")  # fmt: skip

    ended = []
    worker = threading.Thread(
        target=lambda: ended.append(
            _fails_while_another_thread_steps(
                in_the_wake, RetryPolicy(max_attempts=5, initial_delay=1.0)
            )
        ),
        daemon=True,
    )
    worker.start()
    worker.join(20)
    assert ended, "the block's end hung"
    at_end, _, _ = ended[0]
    assert at_end is not None and at_end.status is Status.ROLLBACK_INCOMPLETE


def test_a_ctrl_c_between_a_gathered_steps_done_and_its_undo_logged_is_undone():
    """attack31 F1: a KeyboardInterrupt heard in the machine's step_ok after the step was
    done and before its undo was logged, in a gathered task, leaves the loop; asyncio.run
    cancels the block's task and the block rolled back as cancelled with an empty log:
    'cancelled', the step done, its undo never called, neither leaked nor pending."""
    import asyncio
    import sys

    from rollback_lessons import AsyncRollback

    def at_entry(frame, event):
        back = frame.f_back
        return (event == "call" and frame.f_code.co_name == "__init__"
                and frame.f_code.co_filename.endswith("operations.py")
                and back is not None and back.f_code.co_name == "step_ok")  # fmt: skip

    rb, done, undone = AsyncRollback(), [], []

    def step(name):
        async def action():
            await asyncio.sleep(0)
            done.append(name)

        async def undo():
            undone.append(name)

        return rb.do(name, action, undo)

    async def block():
        async with rb:
            sys.settrace(_ctrl_c_at(at_entry))
            await asyncio.gather(step("s0"), step("s1"))

    with pytest.raises((KeyboardInterrupt, asyncio.CancelledError)):
        asyncio.run(block())
    sys.settrace(None)
    outcome = rb.outcome
    assert outcome is not None and done
    left = set(done) - set(undone)
    assert left <= set(outcome.leaked) | set(outcome.pending)  # each undone or reported
    assert set(undone) <= set(done)
