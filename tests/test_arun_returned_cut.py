"""``saga.arun``, a Ctrl-C (or sys.exit) in a Parallel branch after its step's call returned,
before (or as) the machine is told it is done: the step is done, told so, and undone with
the rest, never reported leaked (fixarun3; as a list's step at that instant, attack60 F3)."""

from __future__ import annotations

import asyncio
import gc
import linecache
import os
import sys
from typing import Any

import pytest

import rollback_lessons
from rollback_lessons import Parallel, Saga, Step

PACKAGE = os.path.dirname(rollback_lessons.__file__)
INSTANTS = [  # (function, the line's start): each after b's call returned
    ("acarry", "todo = loop.send(done)"),
    ("step_ops", "run.results[step] = result"),
    ("step_ops", "run.called()"),
    ("step_done", "spec = self._running"),
    ("step_done", "try:"),
    ("step_done", "self.where[step]"),  # (where and busy_count: one instant, not two)
    ("step_done", "self.completed.append(step)"),
    ("step_done", "self.ended.append(step)"),
]


def _cutter(function: str, text: str, cut: type[BaseException], fired: list[Any]) -> Any:
    """A trace raising ``cut`` once, at ``function``'s line starting with ``text``, in b's
    branch (after b's call returned: its first line of that text once b ran)."""

    def local(frame: Any, event: str, arg: Any) -> Any:
        if fired or event != "line" or "b" not in WORLD:
            return local
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        step = frame.f_locals.get("step", frame.f_locals.get("name"))
        if line.startswith(text) and step == "b":
            fired.append(line)
            sys.settrace(None)
            raise cut(143) if cut is SystemExit else cut()
        return local

    def glob(frame: Any, event: str, arg: Any) -> Any:
        ours = frame.f_code.co_filename.startswith(PACKAGE)
        return local if ours and frame.f_code.co_name == function else None

    return glob


WORLD: list[str] = []


def _step(name: str, last: str = "") -> Step:
    async def act() -> None:  # (b ends first, or ``last`` ends last)
        await asyncio.sleep(0.001 if name == "b" and not last else 0.02 + 0.02 * (name == last))
        WORLD.append(name)

    return Step(name, lambda state: act(), lambda state: WORLD.append(f"undo {name}"))


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(("function", "text"), INSTANTS)
def test_a_ctrl_c_after_a_branchs_call_returned_undoes_it(function, text, cut) -> None:
    _run_cut(_cutter, function, text, cut)
    assert sorted(WORLD) == ["a", "b", "undo a", "undo b"], WORLD


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(("function", "text"), INSTANTS)
def test_a_ctrl_c_after_the_last_steps_call_returned_never_commits(function, text, cut) -> None:
    """b is the last step to end: told done, the run fails all the same (never committed),
    and b and a are undone, as ``saga.run``'s graph does (``tests/test_graph_returned_cut``,
    "last") and a list's. It was told done first: the run committed, nothing undone."""
    saga = Saga([Parallel(_step("a", last="b"), _step("b", last="b"))])
    _run_cut(_cutter, function, text, cut, saga)
    assert sorted(WORLD) == ["a", "b", "undo a", "undo b"], WORLD


def _run_cut(
    cutter: Any, function: str, text: str, cut: type[BaseException], saga: Saga | None = None
) -> None:
    """a and b in a Parallel, then c, under arun (or ``saga``), ``cut`` raised by ``cutter``'s
    trace: the interrupt raised, its notes name nothing "not undone" nor "leaked"."""
    WORLD.clear()
    saga = saga or Saga([Parallel(_step("a"), _step("b")), _step("c")])
    fired: list[Any] = []

    async def main() -> None:
        sys.settrace(cutter(function, text, cut, fired))
        try:
            await saga.arun({})
        finally:
            sys.settrace(None)

    with pytest.raises(cut) as got:
        asyncio.run(main())
    assert fired, "the instant was never reached"
    notes = getattr(got.value, "__notes__", [])
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    del got
    gc.collect()


BEFORE = [  # (function, the line's start): b's branch begun, its action not called yet
    ("branch", "op = await acarry"),
    ("acarry", "called = False"),
    ("step_ops", "call = Call("),  # (its Call made: a Ctrl-C in it is not in the action)
    ("step_ops", "result = yield call"),  # (before it is handed over)
]


def _entry_cutter(function: str, text: str, cut: type[BaseException], fired: list[Any]) -> Any:
    """A trace raising ``cut`` once, at ``function``'s line starting with ``text``, in b's
    branch, before b's action is called."""

    def local(frame: Any, event: str, arg: Any) -> Any:
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        loop = frame.f_locals.get("loop")
        frame_of = getattr(loop, "gi_frame", None)  # (acarry: its step's loop, begun)
        step = frame.f_locals.get("step") or (frame_of and frame_of.f_locals.get("step"))
        if not fired and event == "line" and line.startswith(text) and step == "b":
            fired.append(line)
            sys.settrace(None)
            raise cut(143) if cut is SystemExit else cut()
        return local

    def glob(frame: Any, event: str, arg: Any) -> Any:
        ours = frame.f_code.co_filename.startswith(PACKAGE)
        return local if ours and frame.f_code.co_name == function else None

    return glob


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(("function", "text"), BEFORE)
def test_a_ctrl_c_as_a_branch_begins_leaves_its_step_not_run(function, text, cut) -> None:
    """A Ctrl-C at b's branch's first lines, before ``acarry``'s ``try`` (its entry): b was
    never called, so not run (said so), never reported leaked (it was: "not undone (no undo
    logged for it): b"), a undone."""
    _run_cut(_entry_cutter, function, text, cut)
    assert "b" not in WORLD and sorted(WORLD) == ["a", "undo a"], WORLD


@pytest.mark.parametrize("second", ["told", "not_run", "original"])
def test_a_second_ctrl_c_before_a_never_called_step_is_marked_leaves_it_not_run(
    tmp_path, second: str
) -> None:
    """A Ctrl-C as b's Call is made (never called), a second one as that is told (in
    ``told``, the not-run mark, ``original``): b's intent row was left as if it might have
    run, and ``recover`` reported b leaked. Now b is not run, recover leaves nothing."""
    from conftest import dead_pid

    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.recovery import recover
    from rollback_lessons.durable.registry import Registry, compensation

    registry = Registry()

    @compensation("returned_cut.undo", registry)
    def undo(step: str, idempotency_key: str | None = None) -> None:
        WORLD.append(f"undo {step}")

    def step(name: str) -> Step:
        async def act() -> None:
            await asyncio.sleep(0.02)
            WORLD.append(name)

        return Step(name, lambda state: act(), undo.bind(step=name))

    WORLD.clear()
    saga = Saga([Parallel(step("a"), step("b")), step("c")])
    fired: list[Any] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        ours = frame.f_code.co_filename.startswith(PACKAGE)
        if ours and event == "call" and frame.f_code.co_name == second:
            fired.append(second)
            sys.setprofile(None)
            raise KeyboardInterrupt

    first = _entry_cutter("step_ops", "call = Call(", KeyboardInterrupt, fired)

    def armed(local: Any) -> Any:  # (the second armed as the first is raised)
        def wrapped(frame: Any, event: str, arg: Any) -> Any:
            try:
                return armed(local(frame, event, arg))
            except KeyboardInterrupt:
                sys.setprofile(profile)
                raise

        return wrapped if local is not None else None

    def glob(frame: Any, event: str, arg: Any) -> Any:
        return armed(first(frame, event, arg))

    async def main(journal: Journal) -> None:
        sys.settrace(glob)
        try:
            await saga.arun({}, journal=journal, run_id="r")
        finally:
            sys.settrace(None)
            sys.setprofile(None)

    with Journal(str(tmp_path / "j.db")) as journal:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(main(journal))
        assert len(fired) == 2, fired
        assert {u.step: u.state for u in journal.undos("r")}.get("b") == "not_run"
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        recover(journal, registry)
        assert journal.leaked("r") == []
    assert "b" not in WORLD and WORLD.count("undo a") == 1, WORLD
    gc.collect()
