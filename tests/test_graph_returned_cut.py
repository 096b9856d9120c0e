"""``saga.run`` with a Parallel group (the sync graph driver): a Ctrl-C (or sys.exit) after a
step's call returned, before (or as) the machine is told it is done (the driver's stamp
``called``, ``GraphMachine.step_done``'s entry, its ``_running``): the step is done, told so,
and undone with the rest, never reported leaked nor left to a person (attack65 F3; as a
list's step, ``tests/test_returned_steps.py``, and arun's branches, fixarun3)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

WORLD: list[str] = []
REGISTRY = Registry()


@compensation("graph_returned_cut.undo", REGISTRY)
def _undo(step: str, idempotency_key: str | None = None) -> None:
    WORLD.append(f"undo {step}")


def _step(name: str) -> Step:
    return Step(name, lambda state: WORLD.append(name), _undo.bind(step=name))


Shape = tuple[list[Any], list[str] | None, list[str]]
SHAPES: dict[str, Shape] = {  # (the saga, completion=, what the world holds once it is over)
    "mid": (["a", ("b", "c"), "d"], None, ["a", "b", "undo b", "undo a"]),
    "last": (["a", ("c", "b")], None, ["a", "c", "b", "undo b", "undo c", "undo a"]),
    "timing": ([("b", "c")], ["b", "c"], ["b", "undo b"]),  # (c launched, never called)
}


def _saga(shape: list[Any]) -> Saga:
    return Saga([Parallel(*map(_step, s)) if isinstance(s, tuple) else _step(s) for s in shape])


def _hook(function: str, cut: type[BaseException], fired: list[str]) -> Any:
    """Raise ``cut`` at ``function``'s entry once b's call returned (its effect in WORLD)."""

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == function and "b" in WORLD:
            fired.append(function)
            sys.setprofile(None)
            raise cut(143) if cut is SystemExit else cut()

    return hook


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("function", ["called", "step_done", "_running"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_ctrl_c_after_a_graph_steps_call_returned_undoes_it(
    tmp_path, shape: str, function: str, cut: type[BaseException], journalled: bool
) -> None:
    WORLD.clear()
    steps, completion, after = SHAPES[shape]
    journal = Journal(str(tmp_path / "j.db")) if journalled else None
    fired: list[str] = []
    sys.setprofile(_hook(function, cut, fired))
    try:
        with pytest.raises(cut) as got:
            _saga(steps).run({}, journal=journal, run_id="r1", completion=completion)
    finally:
        sys.setprofile(None)
    assert fired, "the instant was never reached"
    notes = getattr(got.value, "__notes__", [])
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert after == WORLD, WORLD
    if journal is not None:
        assert [s.status for s in journal.sagas()] == ["rolled_back"]
        assert journal.leaked("r1") == []
        journal.close()
