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
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Parallel, Saga, Step


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
