"""``saga.arun``, a Ctrl-C (or sys.exit) as its driver reads the branches' answers after a
wait, or as it looks for a branch asyncio lost (attack62 F2): heard there as at the wait, the
answers read so far kept, the branches still running awaited and told, then the run fails;
never a MachineError logged per branch at asyncio.run's end, nor a live branch dropped,
left leaked."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Any

import pytest

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons import _graph_drive as graph_drive


def _act(world: list[str], name: str, delay: float, fail: bool = False, after: Any = None) -> Any:
    """An async action ending after ``delay`` s, and once ``after()`` is true (polled each
    loop turn: a branch ends in a wait of its own, whatever a CI's load does to timings)."""

    def act(state: object) -> Any:
        async def go() -> None:
            await asyncio.sleep(delay)
            while after is not None and not after():
                await asyncio.sleep(0.001)
            world.append(f"do {name}")
            if fail:
                raise RuntimeError(f"{name} failed")

        return go()

    return act


def _undo(world: list[str], name: str) -> Any:
    return lambda state: world.append(f"undo {name}")


def _run(saga: Saga, cut: type[BaseException], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Run ``saga`` under arun, expecting ``cut`` out: its notes; nothing logged by asyncio."""
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(cut) as got:
        asyncio.run(saga.arun({}))
    assert "MachineError" not in caplog.text and "exception" not in caplog.text, caplog.text
    notes = list(getattr(got.value, "__notes__", []))
    del got
    gc.collect()
    return notes


def _first_over_cut(nth: int, cut: type[BaseException], fired: list[str]) -> Any:
    """A trace function raising ``cut`` as the driver's answers are read the ``nth`` time
    (the return of the list comprehension picking the answer that ends the run, if any)."""

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "return":
            fired.append("read")
            if len(fired) == nth:
                sys.settrace(None)
                raise cut(143) if cut is SystemExit else cut()
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        back = frame.f_back
        if event == "call" and frame.f_code.co_name == "<listcomp>" and back is not None:
            return local if back.f_code.co_name in ("first_over", "adrive_graph") else None
        return None

    return tracer


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("nth", [1, 2, 3])
def test_an_interrupt_as_the_answers_are_read_is_heard_there(
    caplog: pytest.LogCaptureFixture, cut: type[BaseException], nth: int
) -> None:
    """The 1st and 2nd reads: a branch ended, others run; the 3rd: c's failure read, the
    rollback answered (the Ctrl-C before it was acted on: attack62 F1's "MachineError
    during the undo of b", nothing undone)."""
    world: list[str] = []
    fired: list[str] = []

    def read(k: int) -> Any:  # (b ends once a's end was read, d once b's: the cut stops reads)
        return lambda: len(fired) >= min(k, nth)

    a, b, d = (
        Step(n, _act(world, n, 0.01, after=read(k)), _undo(world, n)) for k, n in enumerate("abd")
    )
    saga = Saga(
        [Parallel(a, b, d), Step("c", _act(world, "c", 0.01, fail=True), _undo(world, "c"))]
    )

    async def main() -> None:
        sys.settrace(_first_over_cut(nth, cut, fired))
        try:
            await saga.arun({})
        finally:
            sys.settrace(None)

    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(cut) as got:
        asyncio.run(main())
    assert "MachineError" not in caplog.text and "exception" not in caplog.text, caplog.text
    notes = list(getattr(got.value, "__notes__", []))
    del got
    gc.collect()
    assert len(fired) == nth
    assert not [n for n in notes if "not undone" in n or "MachineError" in n], notes
    undone = sorted(e.split()[1] for e in world if e.startswith("undo "))
    assert undone == ["a", "b", "d"], world  # (c failed: nothing of it to undo)


@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
def test_an_interrupt_as_the_lost_branches_are_looked_for_awaits_a_live_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cut: type[BaseException]
) -> None:
    """d fails at once; a, slow, still runs as the driver looks for lost branches (no branch
    ended for LOST seconds): a Ctrl-C there left a dropped, never told, reported leaked."""
    world: list[str] = []
    real, looks = graph_drive.rescued, []

    def rescued(*args: Any) -> Any:
        found = real(*args)
        looks.append(1)
        if len(looks) == 1:
            raise cut(143) if cut is SystemExit else cut()
        return found

    monkeypatch.setattr(graph_drive, "LOST", 0.05)
    monkeypatch.setattr(graph_drive, "rescued", rescued)
    a = Step("a", _act(world, "a", 0.3), _undo(world, "a"))
    d = Step("d", _act(world, "d", 0.01, fail=True), _undo(world, "d"))
    notes = _run(Saga([Parallel(a, d)]), cut, caplog)
    assert looks, "the driver never looked for lost branches"
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert world.index("undo a") > world.index("do a"), world


def test_a_ctrl_c_as_the_failing_steps_error_is_told_names_itself(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """attack62 F1: a Ctrl-C as the machine returned its answer to c's error (the rollback)
    halted it by an internal MachineError ("fail() cannot happen while the machine is
    undo"), named as the reason and logged; now the Ctrl-C is, as under saga.run."""
    from rollback_lessons.schedule import GraphMachine

    world: list[str] = []
    real, told = GraphMachine.step_error, []

    def step_error(self: GraphMachine, step: str, error: BaseException) -> Any:
        op = real(self, step, error)
        if step == "c" and not told:
            told.append(step)
            raise KeyboardInterrupt
        return op

    monkeypatch.setattr(GraphMachine, "step_error", step_error)
    steps = [Step(n, _act(world, n, 0.01, fail=n == "c"), _undo(world, n)) for n in "abc"]
    with caplog.at_level(logging.ERROR), pytest.raises(KeyboardInterrupt) as got:
        asyncio.run(Saga(steps).arun({}))
    notes = list(getattr(got.value, "__notes__", []))
    assert told and "MachineError" not in caplog.text, caplog.text
    assert not [n for n in notes if "MachineError" in n], notes
    assert [n for n in notes if "interrupted by KeyboardInterrupt" in n], notes
    del got
    gc.collect()
