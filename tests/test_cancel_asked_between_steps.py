"""A cancel of an ``AsyncRollback``'s task asked between two steps (by the block's own code, by
an observer, by a step as it ends) is heard before the next step's call: that step is not run,
the block is ``cancelled``, what was done undone. It was heard at the next step's first await
and blamed on it (in doubt: leaked, ``rollback_incomplete``), or, with plain-function steps,
never heard in the block at all: it committed, the cancel held for the caller's next await
(attack95 F4). Once committed, a cancel is the caller's (held, nothing undone)."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import AsyncRollback, Saga, Status, Step

WHERE = [
    ("between", ["s1"]),
    ("step_start:s1", []),
    ("undo_registered:s1", ["s1"]),
    ("step_done:s1", ["s1"]),
    ("in:s1", ["s1"]),
    ("step_start:s2", ["s1"]),
    ("in:s2", ["s1", "s2"]),
    ("step_done:s2", ["s1", "s2"]),
]


def _cancels_at(where: str) -> tuple[asyncio.Task, object]:
    """(this task, an observer that cancels it at the event ``kind:step`` named ``where``)."""
    me = asyncio.current_task()
    assert me is not None

    def heard(event) -> None:
        if f"{event.kind}:{event.step}" == where:
            me.cancel()

    return me, heard


def _block(where: str, coroutines: bool) -> tuple[AsyncRollback, list[str], str]:
    """Run the block (s1, s2) in a task that cancels itself at ``where``: (block, world, how
    it ended: 'raised' or 'returned', then 'held' if the caller's next await heard a cancel)."""
    world: list[str] = []

    async def main() -> tuple[AsyncRollback, str]:
        me, heard = _cancels_at(where)

        def action(step: str):
            async def body() -> None:
                await asyncio.sleep(0)  # (a first await: nothing done yet)
                world.append(step)
                if where == f"in:{step}":
                    me.cancel()

            def plain() -> None:
                world.append(step)
                if where == f"in:{step}":
                    me.cancel()

            return body if coroutines else plain

        rb = AsyncRollback(on_event=heard)
        how = "returned"
        try:
            async with rb:
                await rb.do("s1", action("s1"), lambda: world.append("undo s1"))
                if where == "between":
                    me.cancel()
                await rb.do("s2", action("s2"), lambda: world.append("undo s2"))
        except asyncio.CancelledError:
            how = "raised"
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            how += ", held"
        return rb, how

    rb, how = asyncio.run(main())
    return rb, world, how


@pytest.mark.parametrize("coroutines", [True, False], ids=["coroutines", "functions"])
@pytest.mark.parametrize(("where", "ran"), WHERE)
def test_a_cancel_asked_between_steps_is_heard_before_the_next_call(where, ran, coroutines):
    rb, world, how = _block(where, coroutines)
    assert how == "raised"  # (heard in the block, not held past it)
    assert rb.outcome is not None and rb.outcome.status == Status.CANCELLED
    assert rb.outcome.leaked == ()
    assert world == [*ran, *[f"undo {s}" for s in reversed(ran)]]


@pytest.mark.parametrize("coroutines", [True, False], ids=["coroutines", "functions"])
def test_a_cancel_asked_once_committed_is_the_callers(coroutines):
    rb, world, how = _block("committed:None", coroutines)
    assert how == "returned, held" and world == ["s1", "s2"]
    assert rb.outcome is not None and rb.outcome.status == Status.COMMITTED


def test_arun_told_a_cancel_by_an_observer_undoes_what_ran_never_blamed_on_a_step():
    """``arun`` runs the steps in a task of its own: the caller's cancel, asked by an observer
    as s1 ended, reaches it once that task yields (in s2's call): s2 done, then undone."""
    world: list[str] = []

    async def main() -> BaseException:
        _me, heard = _cancels_at("step_done:s1")

        def step(name: str) -> Step:
            async def act(state) -> None:
                await asyncio.sleep(0)
                world.append(name)

            return Step(name, lambda s: act(s), lambda s: world.append(f"undo {name}"))

        saga = Saga([step("s1"), step("s2")], on_event=heard)
        with pytest.raises(asyncio.CancelledError) as stopped:
            await saga.arun({})
        return stopped.value

    outcome = asyncio.run(main()).outcome  # type: ignore[attr-defined]
    assert outcome.status == Status.CANCELLED and outcome.leaked == ()
    ran = [s for s in world if not s.startswith("undo")]
    assert world == [*ran, *[f"undo {s}" for s in reversed(ran)]] and ran[0] == "s1"


@pytest.mark.parametrize("coroutines", [True, False], ids=["coroutines", "functions"])
def test_arun_hears_its_tasks_cancel_before_the_next_step_whatever_its_steps(coroutines):
    """attack98 F1: ``arun``'s own task cancelled by an observer as a ended is heard before
    the next step starts, plain functions or coroutines alike: b and c never run, a undone
    (it was heard only as arun's task next ran: b called, then undone). (Heard once the last
    step had returned, its note says "heard", not "came": it was asked before.)"""
    world: list[str] = []

    def step(name: str) -> Step:
        async def body() -> None:
            await asyncio.sleep(0)
            world.append(name)

        def act(state) -> object:
            if coroutines:
                return body()
            world.append(name)
            return None

        return Step(name, act, lambda s: world.append(f"undo {name}"))

    async def main() -> BaseException:
        _me, heard = _cancels_at("step_done:a")

        with pytest.raises(asyncio.CancelledError) as stopped:
            await Saga([step("a"), step("b"), step("c")], on_event=heard).arun({})
        return stopped.value

    outcome = asyncio.run(main()).outcome  # type: ignore[attr-defined]
    assert outcome.status == Status.CANCELLED and outcome.leaked == ()
    assert world == ["a", "undo a"]


@pytest.mark.parametrize("register", ["after", "before"])
def test_a_block_that_swallows_the_cancel_goes_on_the_step_never_run(register):
    """attack98 F9: the step whose call the cancel preceded stayed begun in the machine: the
    block's next ``rb.do`` raised MachineError ("a driver's bug"), and an undo logged before
    the step was run, a refund of a charge never made. It is not run, withdrawn at once."""
    world: list[str] = []

    async def main() -> AsyncRollback:
        me, heard = _cancels_at("step_done:a")

        rb = AsyncRollback(on_event=heard)
        async with rb:
            await rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
            try:
                await rb.do("b", lambda: world.append("b"), lambda: world.append("undo b"),
                            register=register)  # fmt: skip
            except asyncio.CancelledError:
                me.uncancel()
                world.append("swallowed")
            await rb.do("c", lambda: world.append("c"), lambda: world.append("undo c"))
        return rb

    rb = asyncio.run(main())
    assert world == ["a", "swallowed", "c"]
    assert rb.outcome is not None and rb.outcome.status == Status.COMMITTED
    assert rb.outcome.completed == ("a", "c")


@pytest.mark.parametrize("how", ["wait_for", "taskgroup"])
def test_a_cancel_asked_before_a_step_awaited_in_a_task_of_its_own_is_heard_first(how):
    """attack98 F4: the step awaited through ``asyncio.wait_for`` (3.11: a task of its own) or
    in a TaskGroup was called after the cancel was asked, cut short, leaked, the saga left
    for a person: the check looked at the step's task only, not the block's."""
    world: list[str] = []

    async def main() -> AsyncRollback:
        _me, heard = _cancels_at("step_done:a")

        async def charge() -> None:
            await asyncio.sleep(0)
            world.append("b")

        rb = AsyncRollback(on_event=heard)
        with pytest.raises(asyncio.CancelledError):
            async with rb:
                await rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
                b = rb.do("b", charge, lambda: world.append("undo b"))
                if how == "wait_for":
                    await asyncio.wait_for(b, 10)
                else:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(b)
        return rb

    rb = asyncio.run(main())
    assert world == ["a", "undo a"]
    assert rb.outcome is not None and rb.outcome.status == Status.CANCELLED
    assert rb.outcome.leaked == ()


@pytest.mark.parametrize("how", ["shield", "wait"])
def test_a_step_the_block_shields_from_the_cancel_runs_then_is_undone(how):
    """attack99 F3: ``asyncio.shield`` and ``asyncio.wait`` pass no cancel on to the step's
    task: it runs (as asyncio promises), and is undone with the rest; the block cancelled."""
    world: list[str] = []

    async def main() -> AsyncRollback:
        _me, heard = _cancels_at("step_done:a")
        rb = AsyncRollback(on_event=heard)
        with pytest.raises(asyncio.CancelledError):
            async with rb:
                await rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
                b = rb.do("b", lambda: world.append("b"), lambda: world.append("undo b"))
                if how == "shield":
                    await asyncio.shield(b)
                else:
                    await asyncio.wait([asyncio.ensure_future(b)])
        return rb

    rb = asyncio.run(main())
    assert world == ["a", "b", "undo b", "undo a"]
    assert rb.outcome is not None and rb.outcome.status == Status.CANCELLED


@pytest.mark.parametrize(
    ("where", "shape", "ran"),
    [
        ("step_done:b", "pivot", ["a", "b"]),  # (the email never sent)
        ("step_start:b", "group", ["a", "b"]),  # (c, launched after b's start: never)
        ("step_done:a", "group", ["a"]),
        ("step_done:b", "list", ["a", "b"]),
    ],
)
def test_arun_starts_nothing_once_its_task_is_asked_to_cancel(where, shape, ran):
    """attack98 F1: an observer cancelling ``arun``'s task as b ended: the irreversible
    step after it was sent all the same, the cancel then "declined ... once the irreversible
    step had started"; as b started, its sibling c was launched after it. A task that had
    been cancelled before (a cancel caught, not uncancelled) runs a saga as any other."""
    from rollback_lessons import Parallel

    world: list[str] = []

    def step(name: str, kind: str = "compensable") -> Step:
        undo = None if kind == "pivot" else (lambda s: world.append(f"undo {name}"))
        return Step(name, lambda s: world.append(name), undo, kind=kind)

    steps = {
        "pivot": [step("a"), step("b"), step("email", "pivot")],
        "group": [step("a"), Parallel(step("b"), step("c")), step("d")],
        "list": [step("a"), step("b"), step("c")],
    }[shape]

    async def main() -> BaseException:
        me, heard = _cancels_at("nowhere")
        me.cancel()  # (a cancel this task heard and caught before: its count stays 1)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.sleep(0)
        _me, heard = _cancels_at(where)
        with pytest.raises(asyncio.CancelledError) as stopped:
            await Saga(steps, on_event=heard).arun({})
        return stopped.value

    outcome = asyncio.run(main()).outcome  # type: ignore[attr-defined]
    assert outcome.status == Status.CANCELLED and outcome.leaked == () and not outcome.notes
    assert world == [*ran, *[f"undo {s}" for s in reversed(ran)]]


def test_a_shielded_step_that_fails_after_the_cancel_leaves_no_unretrieved_task():
    """attack100 F10: the block records the failure of the step it shielded from its cancel,
    yet asyncio logged "Task exception was never retrieved" with a traceback at exit (the
    task's ``_log_traceback``, CPython's flag for that log, stays set)."""
    world: list[str] = []
    inner: list[asyncio.Task] = []

    async def fails() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("b fails")

    async def main() -> AsyncRollback:
        me = asyncio.current_task()
        assert me is not None
        rb = AsyncRollback()
        with pytest.raises(asyncio.CancelledError):
            async with rb:
                await rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
                me.cancel()
                inner.append(asyncio.ensure_future(rb.do("b", fails, lambda: None)))
                await asyncio.shield(inner[0])
        return rb

    rb = asyncio.run(main())
    assert rb.outcome is not None and rb.outcome.failed_step == "b"
    assert world == ["a", "undo a"]
    assert inner[0].done() and not inner[0]._log_traceback  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["wait_for", "timeout", "thread"])
def test_arun_hears_a_cancel_the_loop_delivers_before_the_irreversible_step(how):
    """attack102 F7: a wait_for's (or asyncio.timeout's) time passed while a blocking step
    ran, or a thread asked the cancel (a UI's Stop): arun went on to the email without a
    turn of the loop, so the cancel landed inside it: "declined", committed, and the caller
    got TimeoutError for a saga whose email was sent."""
    import threading
    import time

    world: list[str] = []

    def slow(state) -> None:
        world.append("a")
        if how == "thread":
            loop, task = state["loop"], state["task"]
            threading.Thread(target=loop.call_soon_threadsafe, args=(task.cancel,)).start()
        time.sleep(0.3)

    saga = Saga([Step("a", slow, lambda s: world.append("undo a")),
                 Step("email", lambda s: world.append("email"), kind="pivot"),
                 Step("c", lambda s: world.append("c"), kind="retriable")])  # fmt: skip

    async def main() -> None:
        state = {"loop": asyncio.get_running_loop(), "task": asyncio.current_task()}
        if how == "wait_for":
            await asyncio.wait_for(saga.arun(state), 0.1)
        elif how == "timeout":
            async with asyncio.timeout(0.1):
                await saga.arun(state)
        else:
            await saga.arun(state)

    with pytest.raises((TimeoutError, asyncio.CancelledError)):
        asyncio.run(main())
    assert world == ["a", "undo a"], world
