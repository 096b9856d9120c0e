"""An interrupt as a halted rollback ends (the undo policy ``halt``, an undo failed: the
undos left for a person): the note names every undo not done. attack118 F2: at the entry of
``_rollback_done`` (where a real signal's handler runs) or inside the pending list's making,
the note said "every undo had run", or named a only, while b and a both stood (without a
journal, nothing corrected it)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.machine import Machine

WHERE = {"entry": Machine._rollback_done.__code__, "leave": Machine.answer.__code__}


def _refuse(state: Any) -> None:
    raise ConnectionError("refund service down")


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", ["entry", "leave"])
def test_an_interrupt_as_a_halted_rollback_ends_names_every_undo_left(where, kind):
    world: list[str] = []
    cut: list[int] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        mine = frame.f_code is WHERE[where] and event == "call" and not cut
        if mine and (where == "entry" or frame.f_locals.get("answer") == "leave"):
            cut.append(1)  # (at its entry: a real signal's handler runs there)
            raise kind()
        return None

    saga = Saga([Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
                 Step("b", lambda s: world.append("b"), _refuse),
                 Step("c", lambda s: 1 / 0)], policy="halt")  # fmt: skip
    sys.settrace(tracer)
    try:
        with pytest.raises(kind) as raised:
            saga.run({})
    finally:
        sys.settrace(None)
    assert cut and world == ["a", "b"], (cut, world)  # (nothing undone: b's undo failed)
    said = " ".join(raised.value.__notes__)  # type: ignore[attr-defined]
    assert "every undo had run" not in said, said
    assert "not known to be undone: b, a" in said, said
