"""``saga.arun`` and a Ctrl-C (or sys.exit) at instants of its own driver (attack58 F4, F5,
F10): heard where it lands, the branches awaited and told, never a MachineError or a
"never awaited" warning logged at asyncio.run's end, nor a hang."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from rollback_lessons import Parallel, Saga, Step
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
