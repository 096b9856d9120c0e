"""``saga.arun``, a Ctrl-C (or sys.exit) as a step's first call is handed over by its loop,
before its action is called (attack62 F3): the step was not run, as a list's step at that
instant under ``saga.run`` (attack58 F1): said so, its journal row written not run, never
reported leaked nor left to a person by ``recover``; also when the Ctrl-C lands in asyncio's
own loop as it was to give the step's task its first turn (attack67 F1)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from typing import Any

import pytest

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons import _graph_drive as graph_drive
from rollback_lessons._drive import Call
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()
WORLD: list[str] = []


@compensation("arun_not_run.undo", registry)
def undo(step: str, idempotency_key: str | None = None) -> None:
    WORLD.append(f"undo {step}")


def _act(name: str, delay: float = 0.01) -> Any:
    def act(state: object) -> Any:
        WORLD.append(f"call {name}")

        async def go() -> None:
            await asyncio.sleep(delay)
            WORLD.append(f"do {name}")

        return go()

    return act


def _saga(grouped: bool) -> Saga:
    a, b, d, c = (Step(n, _act(n), undo.bind(step=n)) for n in ("a", "b", "d", "c"))
    return Saga([Parallel(a, b, d), c] if grouped else [a, b, c])


class _Handed:
    """A step's loop (``step_ops``) whose first ``Call`` of ``target`` is followed, as it is
    handed to the branch, by ``cut``: the instant before the branch calls the action."""

    def __init__(self, loop: Any, step: str, target: str, cut: type[BaseException]) -> None:
        self.loop, self.armed, self.cut = loop, step == target, cut

    def _handed(self, todo: Any) -> Any:
        if self.armed and isinstance(todo, Call):
            self.armed = False
            raise self.cut(143) if self.cut is SystemExit else self.cut()
        return todo

    def __next__(self) -> Any:
        return self._handed(next(self.loop))

    def send(self, value: Any) -> Any:
        return self._handed(self.loop.send(value))

    def throw(self, exc: BaseException) -> Any:
        return self._handed(self.loop.throw(exc))

    def close(self) -> None:
        self.loop.close()


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(
    ("grouped", "target"), [(False, "a"), (False, "b"), (True, "a"), (True, "b"), (True, "d")]
)
def test_a_ctrl_c_as_a_steps_first_call_is_handed_over_says_it_not_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, cut: type[BaseException], grouped: bool,
    target: str,
) -> None:  # fmt: skip
    """attack62 F3: the step, never called, was reported "not undone (no undo logged for
    it)", its journal row left ``intent``: recover asked a person about it."""
    real = graph_drive.step_ops
    monkeypatch.setattr(
        graph_drive,
        "step_ops",
        lambda run, step, *a: _Handed(real(run, step, *a), step, target, cut),
    )
    WORLD.clear()
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(cut) as got:
        asyncio.run(_saga(grouped).arun({}, journal=journal, run_id="r"))
    monkeypatch.undo()
    notes = getattr(got.value, "__notes__", [])
    what = "Ctrl-C" if cut is KeyboardInterrupt else "SystemExit"
    assert f"rollback: {target} was not run: the {what} came as it started" in notes, notes
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert f"call {target}" not in WORLD, WORLD
    done = sorted(e.split()[1] for e in WORLD if e.startswith("do "))
    assert sorted(e.split()[1] for e in WORLD if e.startswith("undo ")) == done, WORLD
    with journal:
        states = {u.step: u.state for u in journal.undos("r")}
        assert states.get(target, "not_run") == "not_run", states
        assert not journal.leaked("r")
    del got
    gc.collect()


def _at_first_turn(target: str, cut: type[BaseException], fired: list[str]) -> Any:
    """A trace raising ``cut`` at the entry of asyncio's ``Handle._run`` as it is about to give
    ``target``'s branch task its first turn (its coroutine not begun): a real signal instant
    inside the loop's own code."""
    import inspect

    def glob(frame: Any, event: str, arg: Any) -> Any:
        if event != "call" or frame.f_code.co_name != "_run" or fired:
            return None
        task = getattr(getattr(frame.f_locals.get("self"), "_callback", None), "__self__", None)
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if getattr(coro, "__name__", "") != "branch":
            return None
        begun = inspect.getcoroutinestate(coro) != inspect.CORO_CREATED
        if not begun and coro.cr_frame.f_locals.get("step") == target:  # type: ignore[union-attr]
            fired.append(target)
            sys.settrace(None)
            raise cut(143) if cut is SystemExit else cut()
        return None

    return glob


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("target", ["a", "b", "c", "d", "e"])
def test_a_ctrl_c_as_the_loop_gives_a_steps_task_its_first_turn_says_it_not_run(
    caplog: pytest.LogCaptureFixture, tmp_path: Any, cut: type[BaseException], target: str
) -> None:
    """attack67 F1: a Ctrl-C (or a SIGTERM handler's sys.exit) at the entry of asyncio's
    ``Handle._run`` as the loop was to give a step's task its first turn lost that task
    (never stepped again); asyncio.run's end found it, and the step, its action never
    called, was reported leaked (``rollback_incomplete``), that branch logged "unhandled
    exception" by asyncio.run's end. (In a thread: a hang fails. b the slowest: d's first
    turn comes before the driver's wake, so the Ctrl-C is known; for c, b's next step is
    due: its cancel carries no Ctrl-C, a ``LoopEnded``, once logged as arun's exception.)"""
    delays = {"b": 0.0 if target == "c" else 0.1}
    a, b, c, d, e = (Step(n, _act(n, delays.get(n, 0.01)), undo.bind(step=n)) for n in "abcde")
    saga = Saga([a, Parallel(b, [c, d]), e])
    journal = Journal(tmp_path / "j.db")
    fired: list[str] = []
    ended: list[BaseException] = []

    async def main() -> Any:
        sys.settrace(_at_first_turn(target, cut, fired))
        try:
            return await saga.arun({}, journal=journal, run_id="r")
        finally:
            sys.settrace(None)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            ended.append(exc)

    WORLD.clear()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "arun hung"
    assert fired and [type(x) for x in ended] == [cut], ended
    assert "exception" not in caplog.text, caplog.text
    notes = getattr(ended[0], "__notes__", [])
    what = "Ctrl-C" if cut is KeyboardInterrupt else "SystemExit"
    assert f"rollback: {target} was not run: the {what} came as it started" in notes, notes
    assert f"call {target}" not in WORLD, WORLD
    done = sorted(x.split()[1] for x in WORLD if x.startswith("do "))
    cut_short = [n for n in "abcde" if f"call {n}" in WORLD and f"do {n}" not in WORLD]
    assert sorted(x.split()[1] for x in WORLD if x.startswith("undo ")) == done, WORLD
    outcome = ended[0].outcome  # type: ignore[attr-defined]
    assert list(outcome.leaked) == cut_short, outcome  # (b, running as d was to begin)
    with journal:
        states = {u.step: u.state for u in journal.undos("r")}
        assert states.get(target, "not_run") == "not_run", states
        assert journal.leaked("r") == cut_short
    ended.clear()
    gc.collect()
