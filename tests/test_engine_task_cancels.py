"""The engine's tasks (``_forward.engine_task``) know who asked their last cancel: code inside
them (a step's, an undo's, a signal handler's ``current_task().cancel()``), code while the loop
ran (another task's, a callback's), or asyncio.run's end (the loop stopped). attack135 found
what a rule by "was arun's task asked too" got wrong: F1 a "graceful shutdown" cancelling
every task raised the private ``LoopEnded``, "asyncio.run ended the loop"; F2 an undo that
cancels its own task and takes it back (``uncancel``, as a cancel scope does), then a Ctrl-C
that ends asyncio.run: the Ctrl-C carried no outcome, no note (b and a named nowhere); F3 a
saga left running when main returned, the run's task cancelled first at asyncio.run's end:
it ended plainly cancelled, nothing logged, or said CancelledError where the loop ended."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Saga, Step

WORLD: list[str] = []


async def _act(name: str) -> str:
    await asyncio.sleep(0)
    if name == "c":
        raise RuntimeError("c refuses")
    WORLD.append(f"do {name}")
    return name


def _run(kind: str, undo: Callable[[str], object], box: list) -> Callable[[], object]:
    """arun (a, b, c: c refuses) or an AsyncRollback (a, b, then the block fails)."""

    async def arun() -> object:
        steps = [Step(n, lambda s, n=n: _act(n), lambda *a, n=n, **k: undo(n)) for n in "abc"]
        return await Saga(steps).arun({})

    async def block() -> None:
        async with AsyncRollback() as rb:
            box.append(rb)
            for n in "ab":
                await rb.do(n, lambda n=n: _act(n), lambda n=n: undo(n))
            raise RuntimeError("block failed")

    return arun if kind == "arun" else block


def _outcome(raised: BaseException, box: list) -> object:
    return box[0].outcome if box else raised.outcome  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _world() -> None:
    WORLD.clear()


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback"])
def test_a_shutdown_cancelling_every_task_during_an_undo_is_a_cancel(kind: str) -> None:
    """F1: a callback cancels every task as b's undo awaits, its effect made."""

    async def undo(name: str) -> None:
        await asyncio.sleep(0)
        WORLD.append(f"undo {name}")
        if name == "b":
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
            await asyncio.sleep(0.5)

    box: list = []

    async def main() -> BaseException:
        try:
            await _run(kind, undo, box)()  # type: ignore[misc]
        except BaseException as exc:
            return exc
        raise AssertionError("nothing raised")

    raised = asyncio.run(main())
    assert type(raised) is asyncio.CancelledError
    outcome = _outcome(raised, box)
    assert outcome.status == "halted" and outcome.pending == ("b", "a")  # type: ignore[attr-defined]
    assert WORLD == ["do a", "do b", "undo b"]


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback"])
def test_a_ctrl_c_after_an_undo_took_back_its_own_cancel_is_the_ctrl_c(kind: str) -> None:
    """F2: the undo cancels its task and takes it back (``uncancel``); then a Ctrl-C in the
    loop's own code ends asyncio.run: its cancel was taken for the undo's own."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def undo(name: str) -> None:
        await asyncio.sleep(0)
        WORLD.append(f"undo {name}")
        if name == "b":
            me = asyncio.current_task()
            me.cancel()  # type: ignore[union-attr]
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                me.uncancel()  # type: ignore[union-attr]
            asyncio.get_running_loop().call_later(0.01, interrupt)
            await asyncio.sleep(0.5)

    box: list = []
    with pytest.raises(KeyboardInterrupt) as raised:
        asyncio.run(_run(kind, undo, box)())  # type: ignore[arg-type]
    outcome = _outcome(raised.value, box)
    assert outcome.status == "halted" and outcome.pending == ("b", "a")  # type: ignore[attr-defined]
    said = "rollback: rollback interrupted by KeyboardInterrupt during the undo of b"
    assert any(note.startswith(said) for note in raised.value.__notes__)
    assert WORLD == ["do a", "do b", "undo b"]


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback"])
@pytest.mark.parametrize("first", ["the run's task", "the engine's"])
def test_a_saga_left_running_when_main_returns_is_told_whatever_task_is_cancelled_first(
    kind: str, first: str
) -> None:
    """F3: what asyncio.run's end does (``runners._cancel_all_tasks``: every task left
    cancelled with the loop stopped, then run to its end), in a fixed order (asyncio's is a
    set's). The run's task first: it ended plainly cancelled (nothing logged, a not undone,
    b and a named nowhere), or an AsyncRollback's said CancelledError. The cut undo, b, is a
    dead letter (it may have happened), the rollback going on to a, as the policy says."""
    began = asyncio.Event()

    async def undo(name: str) -> None:
        await asyncio.sleep(0)
        WORLD.append(f"undo {name}")
        if name == "b":
            began.set()
            await asyncio.sleep(0.5)

    box: list = []
    loop = asyncio.new_event_loop()
    try:
        run = loop.create_task(_run(kind, undo, box)())  # type: ignore[arg-type]
        loop.run_until_complete(began.wait())  # (main returns, the saga's undo running)
        engine = [t for t in asyncio.all_tasks(loop) if t is not run]
        for task in [run, *engine] if first == "the run's task" else [*engine, run]:
            task.cancel()
        loop.run_until_complete(asyncio.gather(run, *engine, return_exceptions=True))
    finally:
        loop.close()
    assert not run.cancelled()
    ended = run.exception()
    assert type(ended).__name__ == "LoopEnded"  # (the README's: asyncio logs it, its note)
    said = "rollback: undo of b: LoopCut(\"asyncio.run's end cut the undo of b: it may have"
    assert any(note.startswith(said) for note in ended.__notes__)  # type: ignore[union-attr]
    if box:  # (attack302 F7: b in doubt, never called again; a, which nothing cut, undone)
        outcome = box[0].outcome
        assert outcome.status == "rollback_incomplete" and outcome.compensated == ("a",)
        assert [d.step for d in outcome.dead_letters] == ["b"] and outcome.pending == ()
    assert WORLD == ["do a", "do b", "undo b", "undo a"]


def test_a_declined_cancel_then_a_cut_step_past_the_pivot_never_says_the_run_went_on() -> None:
    """attack136 F3: a cancel of the run declined past the pivot ("the run goes on as if
    none had come"), then the step after it cut short (a shutdown cancelling every task): the
    run halted, the note said it went on."""
    from rollback_lessons.verdicts import PAST_PIVOT, PAST_PIVOT_CUT

    home: list[asyncio.Task] = []

    async def r(state: dict) -> str:
        WORLD.append("do r")
        home[0].cancel()
        await asyncio.sleep(0.01)  # (the run's task hears it: declined past the pivot)
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        await asyncio.sleep(0)  # (r cut short here)
        return "r"

    steps = [Step("a", lambda s: _act("a"), lambda *a, **k: WORLD.append("undo a")),
             Step("p", lambda s: _act("p"), None, kind="pivot"),
             Step("r", lambda s: r(s), None, kind="retriable")]  # fmt: skip

    async def main() -> BaseException:
        home.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await Saga(steps).arun({})
        except BaseException as exc:
            return exc
        raise AssertionError("nothing raised")

    raised = asyncio.run(main())
    outcome = raised.outcome  # type: ignore[attr-defined]
    assert outcome.status == "halted" and outcome.leaked == ("r",)
    assert PAST_PIVOT not in outcome.notes and PAST_PIVOT_CUT in outcome.notes
    assert WORLD == ["do a", "do p", "do r"]  # (a never undone across the pivot)


@pytest.mark.parametrize("caught", [False, True])
def test_a_task_group_in_an_async_block_s_step_is_never_taken_for_a_cancel(caught: bool) -> None:
    """attack136 F2: on Python 3.11 a TaskGroup whose child fails as the group exits leaves
    its host's cancel count up (3.12 takes it back): read as a cancel the step swallowed, the
    block was undone and raised CancelledError, its own error lost, or a step that caught
    the group's error undone with the rest."""

    async def b() -> str:
        async def fails() -> None:
            await asyncio.sleep(0.01)
            raise ValueError("a child fails")

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(fails())
                group.create_task(asyncio.sleep(0.1))
        except* ValueError:
            if not caught:
                raise
        WORLD.append("do b")
        return "b"

    box: list[AsyncRollback] = []

    async def block() -> None:
        async with AsyncRollback() as rb:
            box.append(rb)
            await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
            await rb.do("b", b, lambda: WORLD.append("undo b"))
            WORLD.append("block ends")

    if caught:
        asyncio.run(block())
        assert box[0].outcome.status == "committed"
        assert WORLD == ["do a", "do b", "block ends"]
    else:
        with pytest.raises(ExceptionGroup):
            asyncio.run(block())
        assert box[0].outcome.status == "rolled_back"
        assert WORLD == ["do a", "undo a"]


async def _handled_group() -> None:
    """A TaskGroup whose child fails as the group exits, its error handled: on Python 3.11
    it leaves its host's cancel count up (3.12 takes it back); plain asyncio runs on."""

    async def child() -> None:
        raise ValueError("a child fails")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(child())
    except* ValueError:
        pass


async def _own_cancelled_future() -> None:
    """The code's own CancelledError: a future it awaits, cancelled by a callback (nobody
    cancels a task): a failure of the code, never a cancel of the run."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_later(0.005, future.cancel)
    await future


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback", "AsyncRollback, group before"])
def test_a_step_s_own_cancelled_future_after_a_handled_task_group_is_its_failure(
    kind: str,
) -> None:
    """attack137 F1, F2: after a handled group (in the step, or in the caller's task before
    the block), the step's own CancelledError was a cancel of the run: arun raised it, b
    reported leaked, or the block said ``cancelled``."""

    async def b() -> None:
        if kind != "AsyncRollback, group before":
            await _handled_group()
        await _own_cancelled_future()

    async def main() -> object:
        if kind == "arun":
            steps = [Step("a", lambda s: _act("a"), lambda *a, **k: WORLD.append("undo a")),
                     Step("b", lambda s: b(), lambda *a, **k: WORLD.append("undo b"))]  # fmt: skip
            return await Saga(steps).arun({})
        if kind == "AsyncRollback, group before":
            await _handled_group()
        box: list[AsyncRollback] = []
        with pytest.raises(asyncio.CancelledError):  # (the step's own, re-raised unchanged)
            async with AsyncRollback() as rb:
                box.append(rb)
                await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
                await rb.do("b", b, lambda: WORLD.append("undo b"))
        return box[0].outcome

    outcome = asyncio.run(main())
    assert outcome.status == "rolled_back" and outcome.leaked == ()  # type: ignore[attr-defined]
    assert WORLD == ["do a", "undo a"]


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback"])
def test_an_undo_s_own_cancelled_future_after_a_handled_task_group_is_a_dead_letter(
    kind: str,
) -> None:
    """attack137 F3: the rollback halted there (a never undone), the block's KeyError
    replaced by CancelledError, arun raising though nothing cancelled it."""

    async def undo_b() -> None:
        WORLD.append("undo b")
        await _handled_group()
        await _own_cancelled_future()

    async def main() -> object:
        if kind == "arun":
            steps = [Step("a", lambda s: _act("a"), lambda *a, **k: WORLD.append("undo a")),
                     Step("b", lambda s: _act("b"), lambda *a, **k: undo_b()),
                     Step("c", lambda s: _act("c"), None)]  # fmt: skip
            return await Saga(steps).arun({})  # (c refuses)
        box: list[AsyncRollback] = []
        with pytest.raises(KeyError):
            async with AsyncRollback() as rb:
                box.append(rb)
                await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
                await rb.do("b", lambda: _act("b"), undo_b)
                raise KeyError("the block's own")
        return box[0].outcome

    outcome = asyncio.run(main())
    assert outcome.status == "rollback_incomplete"  # type: ignore[attr-defined]
    assert [d.step for d in outcome.dead_letters] == ["b"]  # type: ignore[attr-defined]
    assert WORLD == ["do a", "do b", "undo b", "undo a"]


async def _block_with_own_cancelled_step(box: list) -> None:
    """a, then b whose action's future a callback cancels (its own CancelledError)."""
    with pytest.raises(asyncio.CancelledError):
        async with AsyncRollback() as rb:
            box.append(rb)
            await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
            await rb.do("b", _own_cancelled_future, lambda: WORLD.append("undo b"))


def test_a_block_entered_in_the_except_of_a_failed_group_tells_its_step_s_own_cancel() -> None:
    """attack138 F1: entered while an exception is handled (the group's own ``except*``),
    after a 3.11 group left its host's count up: b said leaked, ``rollback_incomplete``."""
    box: list = []

    async def main() -> None:
        async def child() -> None:
            raise ValueError("a child fails")

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(child())
        except* ValueError:
            await _block_with_own_cancelled_step(box)

    asyncio.run(main())
    assert box[0].outcome.status == "rolled_back" and box[0].outcome.leaked == ()
    assert WORLD == ["do a", "undo a"]


@pytest.mark.parametrize("between", [None, "AsyncRollback", "arun"])
def test_a_cancel_the_caller_swallowed_before_a_run_stays_the_caller_s(between) -> None:
    """attack138 F2: entering a block or arun took back a cancel another task asked and the
    caller swallowed: an enclosing ``asyncio.timeout`` then raised TimeoutError where plain
    asyncio raises CancelledError, the task's count 0 where it is 1."""

    async def worker() -> tuple[str, int]:
        me = asyncio.current_task()
        try:
            async with asyncio.timeout(0.05):
                with contextlib.suppress(asyncio.CancelledError):  # (swallowed)
                    await asyncio.sleep(1)  # (cancelled by main)
                if between == "AsyncRollback":
                    async with AsyncRollback() as rb:
                        await rb.do("a", lambda: _act("a"), lambda: None)
                elif between == "arun":
                    await Saga([Step("a", lambda s: _act("a"), lambda s: None)]).arun({})
                await asyncio.sleep(1)  # (the timeout expires)
        except BaseException as exc:
            return type(exc).__name__, me.cancelling()  # type: ignore[union-attr]
        return "nothing", 0

    async def main() -> tuple[str, int]:
        task = asyncio.create_task(worker())
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(main()) == ("CancelledError", 1)  # (as without any run: None)


@pytest.mark.parametrize("nested", ["AsyncRollback", "arun"])
def test_a_run_nested_in_a_step_that_swallowed_the_block_s_cancel_keeps_that_cancel(
    nested: str,
) -> None:
    """attack138 F3: the nested run's entry took back the outer block's cancel: the block
    committed and ran its next step."""
    box: list = []

    async def b() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # (swallowed; then a sub-saga)
            await asyncio.sleep(1)  # (the block's task cancelled here)
        if nested == "AsyncRollback":
            async with AsyncRollback() as inner:
                await inner.do("x", lambda: _act("x"), lambda: WORLD.append("undo x"))
        else:
            await Saga([Step("x", lambda s: _act("x"), lambda s: None)]).arun({})
        return "b"

    async def block() -> None:
        async with AsyncRollback() as rb:
            box.append(rb)
            await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
            await rb.do("b", b, lambda: WORLD.append("undo b"))
            await rb.do("c", lambda: _act("c"), lambda: WORLD.append("undo c"))

    async def main() -> None:
        task = asyncio.create_task(block())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert box[0].outcome.status == "cancelled"
    assert "do c" not in WORLD and WORLD[-2:] == ["undo b", "undo a"]


def _cancelled_later(run: Callable[[], Any], after: float, message: str) -> BaseException:
    """What ``run()``, in a task of its own, raises once cancelled ``after`` seconds with
    ``message`` (another task's cancel, an outer scope's)."""

    async def main() -> BaseException:
        task = asyncio.create_task(run())
        await asyncio.sleep(after)
        task.cancel(message)
        try:
            await task
        except BaseException as exc:
            return exc
        raise AssertionError("nothing raised")

    return asyncio.run(main())


def test_a_block_cancelled_in_its_rollback_raises_that_cancel_with_its_message() -> None:
    """attack138 F4: a bare CancelledError lost ``cancel("my reason")``'s message (anyio's
    ``move_on_after`` knows its own cancel by it, and let it escape)."""

    async def undo_b() -> None:
        await asyncio.sleep(0.1)  # (the block's task cancelled here)
        WORLD.append("undo b")

    async def block() -> None:
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
            await rb.do("b", lambda: _act("b"), undo_b)
            raise KeyError("the block's own")

    raised = _cancelled_later(block, 0.03, "my reason")
    assert type(raised) is asyncio.CancelledError and raised.args == ("my reason",)
    assert WORLD == ["do a", "do b", "undo b", "undo a"]


def test_a_task_is_left_as_it_was_once_a_run_in_it_ended() -> None:
    """attack138 F5: the wrapper of the task's ``cancel`` stayed for the task's life: later
    plain code in it ran as on 3.12, not as its own Python does."""

    async def later() -> tuple[str, int]:
        me = asyncio.current_task()
        try:
            async with asyncio.timeout(0.02):
                await _handled_group()
                await asyncio.sleep(1)
        except BaseException as exc:
            return type(exc).__name__, me.cancelling()  # type: ignore[union-attr]
        return "nothing", 0

    async def after_a_block() -> tuple[str, int]:
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: _act("a"), lambda: None)
        return await later()

    assert asyncio.run(after_a_block()) == asyncio.run(later())


@pytest.mark.parametrize("how", ["wait_for", "gather"])
@pytest.mark.parametrize("then", ["returns", "its own cancel"])
def test_a_step_awaited_in_a_task_of_its_own_keeps_its_task_group_to_itself(
    how: str, then: str
) -> None:
    """attack139 F1: ``rb.do`` awaited in a task of its own (``wait_for``'s, ``gather``'s)
    whose action handles a 3.11 TaskGroup: that task's count was read as a cancel (the block
    undone and raised CancelledError; its own cancel said in doubt, b leaked)."""
    box: list = []

    async def b() -> str:
        await _handled_group()
        if then == "its own cancel":
            await _own_cancelled_future()
        return "b"

    async def block() -> None:
        async with AsyncRollback() as rb:
            box.append(rb)
            await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
            step = rb.do("b", b, lambda: WORLD.append("undo b"))
            await (asyncio.wait_for(step, 5) if how == "wait_for" else asyncio.gather(step))

    if then == "returns":
        asyncio.run(block())
        assert box[0].outcome.status == "committed" and WORLD == ["do a"]
    else:
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(block())
        assert box[0].outcome.status == "rolled_back" and box[0].outcome.leaked == ()
        assert WORLD == ["do a", "undo a"]


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback"])
def test_a_cancel_heard_in_a_rollback_begun_by_a_cancel_is_raised_with_its_message(
    kind: str,
) -> None:
    """attack139 F2: a run already failing on a CancelledError (an inner ``asyncio.timeout``
    cut its step), cancelled again in its rollback ("m2", an outer scope's): the first was
    raised, "m2" lost (anyio's scopes know theirs by their message, and let it escape)."""

    async def step_b() -> None:
        await asyncio.sleep(1)  # (the inner timeout cuts it)

    async def undo_b() -> None:
        WORLD.append("undo b begins")
        await asyncio.sleep(0.1)  # (cancelled again here: "m2")
        WORLD.append("undo b ends")

    async def run() -> None:
        async with asyncio.timeout(0.02):
            if kind == "arun":
                steps = [Step("a", lambda s: _act("a"), lambda *a, **k: WORLD.append("undo a")),
                         Step("b", lambda s: step_b(), lambda *a, **k: undo_b(),
                              register="before")]  # fmt: skip
                await Saga(steps).arun({})
            else:
                async with AsyncRollback() as rb:
                    await rb.do("a", lambda: _act("a"), lambda: WORLD.append("undo a"))
                    await rb.do("b", step_b, undo_b, register="before")

    raised = _cancelled_later(run, 0.05, "m2")
    assert type(raised) is asyncio.CancelledError and raised.args == ("m2",)
    assert WORLD == ["do a", "undo b begins", "undo b ends", "undo a"]


@pytest.mark.parametrize("kind", ["arun", "AsyncRollback"])
def test_of_two_cancels_heard_in_a_rollback_the_later_is_raised(kind: str) -> None:
    """attack140 F1: the block raised the first cancel heard in its rollback (an inner
    ``asyncio.timeout``'s), the later one ("m3", an outer scope's) lost; arun raised it."""

    async def step_b() -> None:
        raise RuntimeError("b refuses")

    async def undo_a() -> None:
        WORLD.append("undo a begins")
        await asyncio.sleep(0.2)  # (the inner timeout, then "m3", come here)
        WORLD.append("undo a ends")

    async def run() -> None:
        async with asyncio.timeout(0.02):  # (expires in the rollback)
            if kind == "arun":
                steps = [Step("a", lambda s: _act("a"), lambda *a, **k: undo_a()),
                         Step("b", lambda s: step_b(), None)]  # fmt: skip
                await Saga(steps).arun({})
            else:
                async with AsyncRollback() as rb:
                    await rb.do("a", lambda: _act("a"), undo_a)
                    await rb.do("b", step_b, None)

    raised = _cancelled_later(run, 0.05, "m3")
    assert type(raised) is asyncio.CancelledError and raised.args == ("m3",)
    assert WORLD == ["do a", "undo a begins", "undo a ends"]
