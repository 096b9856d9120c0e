"""``AsyncRollback``: a Ctrl-C (or sys.exit) just after a step's call returned, as
``Run.adrive`` resumes its loop with the result (``Run.operations``' generator): the step is
done, told so, and undone with the rest, never reported leaked nor left to a person by its
journal (attack65 F8; the sync ``Rollback`` held: ``tests/test_returned_steps.py``)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rollback_lessons import AsyncRollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

WORLD: list[str] = []
REGISTRY = Registry()


@compensation("arollback_returned_cut.undo", REGISTRY)
def _undo(step: str, idempotency_key: str | None = None) -> None:
    WORLD.append(f"undo {step}")


def _action(name: str, awaited: bool) -> Any:
    async def act() -> None:
        WORLD.append(name)

    return act if awaited else lambda: WORLD.append(name)


def _hook(cut: type[BaseException], fired: list[str]) -> Any:
    """Raise ``cut`` as ``adrive`` resumes ``operations`` once a's call returned."""

    def hook(frame: Any, event: str, arg: Any) -> None:
        back = frame.f_back
        by = back.f_code.co_name if back is not None else None
        resumed = event == "call" and frame.f_code.co_name == "operations" and by == "adrive"
        if resumed and "a" in WORLD and not fired:
            fired.append("operations")
            sys.settrace(None)
            raise cut(143) if cut is SystemExit else cut()

    return hook


@pytest.mark.filterwarnings("ignore:saga .* ended by sys.exit:RuntimeWarning")
@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("awaited", [False, True])
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
def test_a_ctrl_c_after_an_async_blocks_step_returned_undoes_it(
    tmp_path, cut: type[BaseException], awaited: bool, journalled: bool
) -> None:
    WORLD.clear()
    journal = Journal(str(tmp_path / "j.db")) if journalled else None
    rb = AsyncRollback(journal=journal, run_id="r1")
    fired: list[str] = []
    caught: list[BaseException] = []

    async def main() -> None:
        try:
            async with rb:
                await rb.do("a", _action("a", awaited), _undo.bind(step="a"))
                await rb.do("b", _action("b", awaited), _undo.bind(step="b"))
        except BaseException as exc:
            caught.append(exc)

    sys.settrace(_hook(cut, fired))
    try:
        asyncio.run(main())
    finally:
        sys.settrace(None)
    assert fired, "the instant was never reached"
    assert [type(e) for e in caught] == [cut], caught
    notes = getattr(caught[0], "__notes__", [])
    assert not [n for n in notes if "not undone" in n or "leaked" in n], notes
    assert WORLD == ["a", "undo a"], WORLD
    assert rb.outcome is not None
    assert (str(rb.outcome.status), rb.outcome.leaked) == ("rolled_back", ())
    if journal is not None:
        assert [s.status for s in journal.sagas()] == ["rolled_back"]
        assert journal.leaked("r1") == []
        journal.close()
