"""``AsyncRollback``: a Ctrl-C (or sys.exit) as ``operations`` hands a step's call to
``adrive`` (the ``Call`` made, not yet called) is not in the call: the step is "not run",
never reported leaked (attack67 F2: ``self.began`` was set before the hand-over, so the
step read as cut inside its call: ``rollback_incomplete``, leaked, its action never
entered)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Status


def _cutter(cut: type[BaseException], fired: list[str]) -> Any:
    """Raise ``cut`` once, as ``operations`` makes b's ``Call`` (a call event under it)."""

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        back = frame.f_back
        if (
            not fired and event == "call" and back is not None
            and back.f_code.co_name == "operations" and back.f_locals.get("step") == "b"
        ):  # fmt: skip
            fired.append(frame.f_code.co_name)
            sys.settrace(None)
            raise cut(143) if cut is SystemExit else cut()
        return None

    return tracer


def _world() -> tuple[list[str], Any]:
    world: list[str] = []

    def step(name: str) -> tuple[Any, Any]:
        async def act() -> str:
            world.append(name)
            return name

        return act, lambda: world.append(f"undo {name}")

    return world, step


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
def test_async_rollback_a_ctrl_c_as_a_call_is_handed_over_leaves_the_step_not_run(cut):
    world, step = _world()
    fired: list[str] = []
    rb = AsyncRollback()

    async def main() -> None:
        async with rb:
            await rb.do("a", *step("a"))
            sys.settrace(_cutter(cut, fired))
            try:
                await rb.do("b", *step("b"))
            finally:
                sys.settrace(None)

    with pytest.raises(cut):
        asyncio.run(main())
    assert fired, "the instant was never reached"
    assert world == ["a", "undo a"], world
    assert rb.outcome is not None and rb.outcome.leaked == (), rb.outcome
    assert rb.outcome.status is Status.ROLLED_BACK, rb.outcome
