"""``saga.arun`` (and ``AsyncRollback``), a Ctrl-C (or sys.exit) at instants of the tasks
asyncio steps (attack65 F1, F2, F4): as asyncio.run makes the run's task, as arun's own
task resumes while branches run, as a retry wait's task takes its first step. Each time
nothing runs after it unnamed, the running steps are awaited before their undo, and
nothing is logged by asyncio."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Parallel, RetryPolicy, Saga, Step


def _raise(cut: type[BaseException]) -> None:
    sys.settrace(None)
    raise cut(143) if cut is SystemExit else cut()


def _at_create_task(cut: type[BaseException], fired: list[str]) -> Any:
    """A trace raising ``cut`` at ``WeakSet.add`` called by ``create_task``: as asyncio.run's
    ``Runner.run`` makes its main task (Python 3.11: its first step scheduled, its
    registration in ``all_tasks`` cut), before asyncio's SIGINT handler is in place."""

    def glob(frame: Any, event: str, arg: Any) -> Any:
        back = frame.f_back
        made = back is not None and back.f_code.co_name == "create_task"
        if event == "call" and frame.f_code.co_name == "add" and made and not fired:
            fired.append("add")
            _raise(cut)
        return None

    return glob


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("how", ["arun", "AsyncRollback"])
def test_a_ctrl_c_as_asyncio_run_makes_the_task_runs_nothing_of_it(
    caplog: pytest.LogCaptureFixture, how: str, cut: type[BaseException]
) -> None:
    """attack65 F1: the caller got the bare Ctrl-C, yet the task, scheduled and never
    registered, was not cancelled by asyncio.run's close: it ran in the loop's shutdown
    (``shutdown_asyncgens``), its steps called after the Ctrl-C, their effects never undone,
    named nowhere, and the task destroyed pending. Now it refuses to begin."""
    world: list[str] = []
    fired: list[str] = []

    def act(name: str) -> Any:
        return lambda *state: world.append(f"do {name}")

    def undo(name: str) -> Any:
        return lambda *state: world.append(f"undo {name}")

    saga = Saga([Step("a", act("a"), undo("a")), Step("b", act("b"), undo("b"))])

    async def block() -> None:
        async with AsyncRollback() as rb:
            await rb.do("a", act("a"), undo("a"))
            await rb.do("b", act("b"), undo("b"))

    main = saga.arun({}) if how == "arun" else block()
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(cut):
        sys.settrace(_at_create_task(cut, fired))
        try:
            asyncio.run(main)
        finally:
            sys.settrace(None)
    gc.collect()
    assert fired
    assert world == [], world
    assert "destroyed" not in caplog.text and "exception" not in caplog.text, caplog.text


def _saga(world: list[str], b_after: float = 0.1) -> Saga:
    def step(name: str, delay: float) -> Step:
        async def act() -> None:
            await asyncio.sleep(delay)
            world.append(f"do {name}")

        def call(state: Any) -> Any:
            world.append(f"call {name}")
            return act()

        return Step(name, call, lambda state: world.append(f"undo {name}"))

    return Saga([Parallel(step("a", 0.01), step("b", b_after)), step("c", 0.01)])


def _resumed(name: str, cut: type[BaseException], world: list[str], fired: list[str]) -> Any:
    """A trace raising ``cut`` as the coroutine ``name`` resumes (its ``call`` event) once a's
    call ended and while b's runs."""

    def glob(frame: Any, event: str, arg: Any) -> Any:
        running = "do a" in world and "call b" in world and "do b" not in world
        if event == "call" and frame.f_code.co_name == name and running and not fired:
            fired.append(name)
            _raise(cut)
        return None

    return glob


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", ["kept", "send"])
def test_a_ctrl_c_as_aruns_own_task_resumes_awaits_the_running_branches(
    caplog: pytest.LogCaptureFixture, where: str, cut: type[BaseException]
) -> None:
    """attack65 F2: a Ctrl-C raised in ``_arun.kept`` as it resumed (a branch ended, another
    still running) dropped the driver at its wait: arun rolled back at once while the other
    branch ran (its undo before its call ended, its effect after), and the branches, told
    after the run's end, logged a MachineError each at asyncio.run's end. Now heard at the
    driver's wait: the running branch awaited, then everything done undone. (``send``: the
    entry of ``Driven.send``, a real signal instant as the driver is resumed.)"""
    world: list[str] = []
    fired: list[str] = []

    async def main() -> None:
        sys.settrace(_resumed(where, cut, world, fired))
        try:
            await _saga(world).arun({})
        finally:
            sys.settrace(None)

    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(cut) as got:
        asyncio.run(main())
    assert fired
    assert "MachineError" not in caplog.text and "exception" not in caplog.text, caplog.text
    notes = getattr(got.value, "__notes__", [])
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert "call c" not in world and sorted(world) == [
        "call a", "call b", "do a", "do b", "undo a", "undo b"
    ], world  # fmt: skip
    assert world.index("do b") < world.index("undo b")
    del got
    gc.collect()


def _first_steps(
    nth: int, made: bool, cut: type[BaseException], world: list[str], fired: list[str]
) -> Any:
    """A trace raising ``cut`` at the ``nth`` frame entered, once b's first attempt failed,
    as the top of a task's step (``Handle._run`` calls it) other than arun's own (the retry
    wait's tasks: their first steps); ``made``: as the wait's coroutines are made (called by
    ``primed`` or ``carried``), before their tasks."""
    seen: list[str] = []
    ours = ("branch", "kept", "main")
    by = ("primed", "carried") if made else ("_run",)

    def glob(frame: Any, event: str, arg: Any) -> Any:
        back = frame.f_back
        top = back is not None and back.f_code.co_name in by
        if event != "call" or not top or "call b" not in world or fired:
            return None
        if frame.f_code.co_name not in ours and "do a" not in world:
            seen.append(frame.f_code.co_name)
            if len(seen) == nth:
                fired.append(frame.f_code.co_name)
                _raise(cut)
        return None

    return glob


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(
    ("nth", "made"), [(1, False), (2, False), (1, True), (2, True)],
    ids=["sleep-task", "wake-task", "sleep-made", "wake-made"],
)  # fmt: skip
def test_a_ctrl_c_as_a_retry_waits_task_starts_is_carried_out_of_it(
    caplog: pytest.LogCaptureFixture, nth: int, made: bool, cut: type[BaseException]
) -> None:
    """attack65 F4: a Ctrl-C at the first line of a retry wait's task (its sleep's, or the
    run's wake's: before the ``try`` that carries one out as ``Escaped``) left the task raw:
    asyncio stopped its loop with it, its end cancelled the branch still running, whose
    undo ran before its call ended, and "Task exception was never retrieved" was logged.
    Now the task's coroutine is run to its first pause as it is made (``primed``): its first
    step resumes it inside its ``try``; a Ctrl-C as it is made is the step's, in its wait.
    (``-made``: instants of the fix's own, guards.)"""
    world: list[str] = []
    fired: list[str] = []

    def flaky(state: Any) -> Any:
        world.append("call b")
        raise ConnectionError("b refused")

    async def slow() -> None:
        await asyncio.sleep(0.1)
        world.append("do a")

    saga = Saga([
        Parallel(
            Step("a", lambda state: (world.append("call a"), slow())[1],
                 lambda state: world.append("undo a")),
            Step("b", flaky, lambda state: world.append("undo b"),
                 retry=RetryPolicy(max_attempts=3, initial_delay=0.05)),
        ),
    ])  # fmt: skip

    async def main() -> None:
        sys.settrace(_first_steps(nth, made, cut, world, fired))
        try:
            await saga.arun({})
        finally:
            sys.settrace(None)

    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(cut) as got:
        asyncio.run(main())
    assert fired
    assert "exception" not in caplog.text and "MachineError" not in caplog.text, caplog.text
    notes = getattr(got.value, "__notes__", [])
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert sorted(world) == ["call a", "call b", "do a", "undo a"], world
    assert world.index("do a") < world.index("undo a")
    del got
    gc.collect()


def _in_arun(name: str, cut: type[BaseException], fired: list[str]) -> Any:
    """A trace raising ``cut`` as arun's own task enters ``name`` (its cancel just heard)."""

    def glob(frame: Any, event: str, arg: Any) -> Any:
        back = frame.f_back
        ours = name != "shield" or (back is not None and back.f_code.co_name == "shielded")
        if event == "call" and frame.f_code.co_name == name and ours and not fired:
            fired.append(name)
            _raise(cut)
        return None

    return glob


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("name", ["heard", "cancel_heard", "shield"])
def test_a_second_ctrl_c_as_arun_hears_the_first_says_what_the_run_did(
    caplog: pytest.LogCaptureFixture, name: str, cut: type[BaseException]
) -> None:
    """attack67: a first Ctrl-C (asyncio.run's cancel of the main task) heard by arun, a
    second one (a KeyboardInterrupt asyncio.run's handler raises) on arun's own lines as it
    heard it: the run went on in its task, rolled back in asyncio.run's end, and nothing
    was said (the KeyboardInterrupt bare: no note, no outcome, steps cut short unnamed).
    Now that task ends the run and the exception says what it left."""
    world: list[str] = []
    fired: list[str] = []
    ended: list[BaseException] = []

    async def main() -> None:
        task = asyncio.current_task()

        async def first_ctrl_c() -> None:
            while "call b" not in world:
                await asyncio.sleep(0)
            sys.settrace(_in_arun(name, cut, fired))
            task.cancel()  # type: ignore[union-attr]

        first = asyncio.ensure_future(first_ctrl_c())
        try:
            await _saga(world).arun({})
        finally:
            first.cancel()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            ended.append(exc)
        finally:
            sys.settrace(None)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "arun hung"
    assert fired and [type(e) for e in ended] == [cut], ended
    assert "exception" not in caplog.text and "MachineError" not in caplog.text, caplog.text
    outcome = getattr(ended[0], "outcome", None)
    assert outcome is not None, getattr(ended[0], "__notes__", [])
    cut_short = sorted(n for n in "ab" if f"call {n}" in world and f"do {n}" not in world)
    assert sorted(outcome.leaked) == cut_short and "call c" not in world, (outcome, world)
    for n in "ab":
        assert (f"do {n}" in world) == (f"undo {n}" in world), world
    notes = " ".join(getattr(ended[0], "__notes__", []))
    assert f"asyncio.run ended on this {cut.__name__}" in notes, notes
    ended.clear()
    gc.collect()
