"""A Ctrl-C (or sys.exit) as the rollback is handed to its loop (at ``Run.drive`` /
``Run.adrive``'s entry, before its ``try``; at ``Run.roll_back``'s in a with-block), once the
machine heard the run failed: the rollback is cut there, named by the interrupt "as the
rollback began", everything left pending; it was named as an internal MachineError ('fail()
cannot happen while the machine is undo') "during the undo of" a step nobody undid
(attack65 F6)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Parallel, Rollback, Saga, Step

WORLD: list[str] = []


def _step(name: str) -> Step:
    return Step(name, lambda state: WORLD.append(name), lambda state: WORLD.append(f"undo {name}"))


def _refuse(state: Any) -> None:
    raise RuntimeError("d refused")


def _saga(shape: str) -> Saga:
    mid = [Parallel(_step("b"), _step("c"))] if shape == "graph" else [_step("b"), _step("c")]
    return Saga([_step("a"), *mid, Step("d", _refuse, lambda state: None)])


def _block(rb: Any) -> None:
    rb.do("a", lambda: WORLD.append("a"), lambda: WORLD.append("undo a"))
    rb.do("b", lambda: WORLD.append("b"), lambda: WORLD.append("undo b"))
    rb.do("c", lambda: WORLD.append("c"), lambda: WORLD.append("undo c"))
    raise RuntimeError("the block fails")


async def _ablock(rb: Any) -> None:
    await rb.do("a", lambda: WORLD.append("a"), lambda: WORLD.append("undo a"))
    await rb.do("b", lambda: WORLD.append("b"), lambda: WORLD.append("undo b"))
    await rb.do("c", lambda: WORLD.append("c"), lambda: WORLD.append("undo c"))
    raise RuntimeError("the block fails")


def _run(how: str) -> None:
    if how.startswith("run"):
        _saga(how.split()[1]).run({})
    elif how.startswith("arun"):
        asyncio.run(_saga(how.split()[1]).arun({}))
    elif how == "rollback":
        with Rollback() as rb:
            _block(rb)
    else:  # (the rollback's own task raises it out of asyncio.run, as asyncio does)
        caught: list[BaseException] = []

        async def main() -> None:
            try:
                async with AsyncRollback() as rb:
                    await _ablock(rb)
            except BaseException as exc:
                caught.append(exc)

        asyncio.run(main())
        raise caught[0]


CASES = [  # (how it runs, the function a Ctrl-C lands at the entry of, once c's effect is in)
    ("run graph", "drive"),
    ("arun list", "adrive"),
    ("arun graph", "adrive"),
    ("rollback", "roll_back"),
    ("arollback", "adrive"),
]


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(("how", "function"), CASES)
def test_a_ctrl_c_as_the_rollback_is_entered_is_named_so(how, function, cut) -> None:
    WORLD.clear()
    fired: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == function and "c" in WORLD:
            fired.append(function)
            sys.settrace(None)
            raise cut(143) if cut is SystemExit else cut()

    sys.settrace(tracer)
    try:
        with pytest.raises(cut) as got:
            _run(how)
    finally:
        sys.settrace(None)
    assert fired, "the instant was never reached"
    notes = getattr(got.value, "__notes__", [])
    said = f"rollback interrupted by {cut.__name__} as the rollback began"
    assert [n for n in notes if said in n and "not known to be undone: c, b, a" in n], notes
    assert not [n for n in notes if "MachineError" in n or "during the undo" in n], notes
    assert WORLD == ["a", "b", "c"], WORLD  # (nothing undone: all of it named pending)
