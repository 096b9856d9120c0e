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

from rollback_lessons import AsyncRollback, Saga, Step


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
