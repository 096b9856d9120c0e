"""``saga.arun`` and a Ctrl-C (or sys.exit) at instants of its own driver (attack58 F4, F5,
F10): heard where it lands, the branches awaited and told, never a MachineError or a
"never awaited" warning logged at asyncio.run's end, nor a hang."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import warnings

import pytest

from rollback_lessons import Parallel, Saga, Step, _forward
from rollback_lessons.schedule import GraphMachine


def _act(world: list[str], name: str, delay: float = 0.01):
    def act(state):
        async def go():
            await asyncio.sleep(delay)
            world.append(f"do {name}")

        return go()

    return act


def _saga(world: list[str]) -> Saga:
    def undo(name: str):
        return lambda state: world.append(f"undo {name}")

    return Saga([
        Parallel(Step("a", _act(world, "a"), undo("a")), Step("d", _act(world, "d"), undo("d"))),
        Step("c", _act(world, "c"), undo("c")),
    ])  # fmt: skip


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("nth", [1, 2], ids=["first-look", "second-look"])
def test_an_interrupt_between_the_branches_start_and_the_wait_is_heard_there(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, exc_type, nth: int
) -> None:
    """attack58 F4: a Ctrl-C as ``gm.failing`` returned on the lines between ``start_ready()``
    and ``await asyncio.wait`` left adrive_graph with its branch tasks made and never told:
    a MachineError per branch logged at asyncio.run's end, and the branches, whose actions
    then ran, reported leaked ("not undone (no undo logged for it): a, d")."""
    world: list[str] = []
    real = GraphMachine.failing.fget  # type: ignore[attr-defined]
    looks: list[int] = []

    def failing(self: GraphMachine) -> bool:
        said = real(self)
        if sys._getframe(1).f_code.co_name == "adrive_graph" and self.busy:
            looks.append(1)
            if len(looks) == nth:
                raise exc_type()
        return said

    monkeypatch.setattr(GraphMachine, "failing", property(failing))
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(exc_type) as got:
        asyncio.run(_saga(world).arun({}))
    monkeypatch.undo()
    assert len(looks) >= nth
    assert "MachineError" not in caplog.text and "exception" not in caplog.text
    notes = getattr(got.value, "__notes__", [])
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert sorted(world) == ["do a", "do d", "undo a", "undo d"]
    assert world.index("undo a") > world.index("do a") and "do c" not in world
    del got
    gc.collect()  # (what the Ctrl-C's traceback held, closed now, not amid a later test)


@pytest.mark.parametrize("target", ["sleeping", "wait"])
@pytest.mark.parametrize("when", ["before", "unscheduled", "scheduled", "made"])
def test_a_ctrl_c_as_a_retry_waits_tasks_are_made_leaves_no_coroutine_unawaited(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, target: str, when: str
) -> None:
    """attack58 F10: a Ctrl-C inside ``ensure_future`` as a branch's retry wait made its two
    tasks (its sleep, the run's wake) printed "coroutine '_wait.<locals>.sleeping' was never
    awaited" (or 'Event.wait'); the Ctrl-C here lands before the task is made, inside its
    ``call_soon`` (the task made, its first step never scheduled), just after that, or once
    the task is made. Each time the run rolls back, and nothing is logged or warned."""
    from rollback_lessons.policies import RetryPolicy

    world: list[str] = []
    tries: list[int] = []

    def flaky(state):
        async def go():
            tries.append(1)
            if len(tries) == 1:
                raise ConnectionError("flaky")
            world.append("do b")

        return go()

    real_future = _forward.engine_task  # (where the engine makes its tasks)
    cut: list[str] = []

    def armed(coroutine) -> bool:  # (a retry wait's ``carried``: the clock's sleep, the wake)
        frame = getattr(coroutine, "cr_frame", None)
        waits = getattr(frame.f_locals.get("wait"), "__name__", "") if frame is not None else ""
        return not cut and waits == {"sleeping": "asleep", "wait": "wait"}[target]

    def ensure_future(coroutine, *args, **kwargs):
        if armed(coroutine) and when == "before":
            cut.append(when)
            raise KeyboardInterrupt
        task = real_future(coroutine, *args, **kwargs)
        if armed(coroutine) and when == "made":
            cut.append(when)
            raise KeyboardInterrupt
        return task

    def patch_loop(loop: asyncio.AbstractEventLoop) -> None:
        real_soon = loop.call_soon

        def call_soon(callback, *args, **kwargs):
            task = getattr(callback, "__self__", None)
            if isinstance(task, asyncio.Task) and armed(task.get_coro()) and when in (
                "unscheduled", "scheduled"
            ):  # fmt: skip
                cut.append(when)
                if when == "scheduled":
                    real_soon(callback, *args, **kwargs)
                raise KeyboardInterrupt
            return real_soon(callback, *args, **kwargs)

        loop.call_soon = call_soon  # type: ignore[method-assign]

    saga = Saga([
        Parallel(Step("a", _act(world, "a", 0.2), lambda s: world.append("undo a")),
                 Step("b", flaky, lambda s: world.append("undo b"),
                      retry=RetryPolicy(max_attempts=3, initial_delay=0.05))),
    ])  # fmt: skip

    async def main():
        patch_loop(asyncio.get_running_loop())
        monkeypatch.setattr(_forward, "engine_task", ensure_future)
        try:
            return await saga.arun({})
        finally:
            monkeypatch.undo()

    with warnings.catch_warnings(record=True) as said, caplog.at_level(logging.ERROR):
        warnings.simplefilter("always")
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(main())
        gc.collect()
    assert cut == [when]
    assert [str(w.message) for w in said if "never awaited" in str(w.message)] == []
    assert "destroyed" not in caplog.text and "Exception" not in caplog.text, caplog.text
    assert "do b" not in world and world.count("undo a") == world.count("do a")
    del said
    gc.collect()  # (what the Ctrl-C's traceback held, closed now, not amid a later test)


@pytest.mark.parametrize("target", ["branch", "kept"])
@pytest.mark.parametrize("scheduled", [False, True], ids=["unscheduled", "scheduled"])
def test_a_ctrl_c_inside_a_tasks_call_soon_never_hangs_arun(
    caplog: pytest.LogCaptureFixture, target: str, scheduled: bool
) -> None:
    """attack58 F5 (F8's instants, a little earlier): a Ctrl-C inside the ``call_soon`` that
    schedules a new task's first step (a branch's, or arun's own ``kept``) left a task made
    and never scheduled: arun awaited the branch's for ever (asyncio.run never ended), and
    arun's own was logged "Task was destroyed but it is pending!". (The run is in a thread
    of its own, so a hang fails the test instead of stopping it.)"""
    world: list[str] = []
    cut: list[bool] = []
    ended: list[BaseException] = []

    def patch_loop(loop: asyncio.AbstractEventLoop) -> None:
        real_soon = loop.call_soon

        def call_soon(callback, *args, **kwargs):
            task = getattr(callback, "__self__", None)
            name = getattr(getattr(task, "get_coro", lambda: None)(), "__name__", "")
            if isinstance(task, asyncio.Task) and name == target and not cut:
                cut.append(True)
                if scheduled:
                    real_soon(callback, *args, **kwargs)
                raise KeyboardInterrupt
            return real_soon(callback, *args, **kwargs)

        loop.call_soon = call_soon  # type: ignore[method-assign]

    async def main():
        patch_loop(asyncio.get_running_loop())
        return await _saga(world).arun({})

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            ended.append(exc)

    with caplog.at_level(logging.ERROR):
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "arun hung"
        gc.collect()
    assert cut and [type(e) for e in ended] == [KeyboardInterrupt]
    assert "destroyed" not in caplog.text and "Exception" not in caplog.text, caplog.text
    assert world.count("undo a") == world.count("do a") and "do c" not in world
    ended.clear()
    gc.collect()


def test_a_branch_whose_wake_asyncio_lost_is_ended_never_awaited_for_ever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """attack58 F5: a Ctrl-C inside the ``call_soon`` that schedules a branch's next step
    (its action at a bare ``await asyncio.sleep(0)``) leaves that task pending, never to
    run again; asyncio.run's end cancels every task, and arun awaited that branch for ever
    (a hang until a second Ctrl-C). Now a branch asyncio lost is ended, its step cut short
    (it may have happened: README's LoopEnded case), and the run rolls back to its end."""
    import inspect

    world: list[str] = []
    cut: list[bool] = []
    ended: list[BaseException] = []

    def yields(state):
        async def go():
            await asyncio.sleep(0)  # (a bare yield: its next step is scheduled at once)
            await asyncio.sleep(0.01)
            world.append("do a")

        return go()

    saga = Saga([
        Parallel(Step("a", yields, lambda s: world.append("undo a")),
                 Step("d", _act(world, "d", 0.05), lambda s: world.append("undo d"))),
        Step("c", _act(world, "c"), lambda s: world.append("undo c")),
    ])  # fmt: skip

    async def main():
        loop = asyncio.get_running_loop()
        real_soon = loop.call_soon

        def call_soon(callback, *args, **kwargs):
            task = getattr(callback, "__self__", None)
            coro = task.get_coro() if isinstance(task, asyncio.Task) else None
            if (getattr(coro, "__name__", "") == "branch" and not cut and not args
                    and inspect.getcoroutinestate(coro) == inspect.CORO_SUSPENDED):  # fmt: skip
                cut.append(True)
                raise KeyboardInterrupt  # (its next step never scheduled)
            return real_soon(callback, *args, **kwargs)

        loop.call_soon = call_soon  # type: ignore[method-assign]
        return await saga.arun({})

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            ended.append(exc)

    with caplog.at_level(logging.ERROR, logger="rollback_lessons"):
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "arun hung"
    assert cut and [type(e) for e in ended] == [KeyboardInterrupt]
    assert "MachineError" not in caplog.text
    assert "do c" not in world and world.count("undo d") == world.count("do d")
    ended.clear()
    gc.collect()


LOOP_LINES = ["cut = ask()", "look = False", "if cut is not None", "if not tasks"]


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("text", LOOP_LINES)
def test_an_interrupt_on_the_driver_loops_own_lines_is_heard_there(
    caplog: pytest.LogCaptureFixture, exc_type, text: str
) -> None:
    """fixarun3: a Ctrl-C on ``adrive_graph``'s turn's own lines, once a branch ended and
    another still runs (outside the wait's try), left the loop with that branch running:
    told after the run's end, a MachineError logged at asyncio.run's end. Now heard there,
    as at the wait: the branch awaited, everything done undone."""
    import linecache
    import os

    import rollback_lessons

    package, world, fired = os.path.dirname(rollback_lessons.__file__), [], []
    seen: list[int] = []

    def local(frame, event, arg):  # type: ignore[no-untyped-def]
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if event == "line" and line.startswith(text) and "do d" in world and "do a" not in world:
            seen.append(frame.f_lineno)
            if not fired and frame.f_locals.get("tasks"):
                fired.append(line)
                sys.settrace(None)
                raise exc_type(143) if exc_type is SystemExit else exc_type()
        return local

    def glob(frame, event, arg):  # type: ignore[no-untyped-def]
        ours = frame.f_code.co_filename.startswith(package)
        return local if ours and frame.f_code.co_name == "adrive_graph" else None

    def undo(name: str):
        return lambda state: world.append(f"undo {name}")

    saga = Saga([
        Parallel(Step("a", _act(world, "a", 0.05), undo("a")),
                 Step("d", _act(world, "d"), undo("d"))),
        Step("c", _act(world, "c"), undo("c")),
    ])  # fmt: skip

    async def main() -> None:
        sys.settrace(glob)
        try:
            await saga.arun({})
        finally:
            sys.settrace(None)

    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(exc_type) as got:
        asyncio.run(main())
    assert fired, seen
    assert "MachineError" not in caplog.text and "exception" not in caplog.text
    notes = getattr(got.value, "__notes__", [])
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert sorted(world) == ["do a", "do d", "undo a", "undo d"], world
    del got
    gc.collect()
