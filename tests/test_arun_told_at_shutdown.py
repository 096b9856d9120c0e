"""The outcome ``asyncio.run``'s Ctrl-C carries says what the journal's end says (attack70 F3):
with repeated Ctrl-Cs, ``arun`` reported an undo compensated whose record a later Ctrl-C cut,
and its outcome said nothing of it (the notes on the exception did): the outcome was built
before the journal's end said that ``recover`` would call that undo again."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import Saga, Step, _guards
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

CUT = (
    "the undo of 'b' ran here; the Ctrl-C cut the write of its record: unless it landed, "
    "recover will call it again (same idempotency key)"
)


def test_an_undo_whose_record_a_third_ctrl_c_cut_is_said_in_the_outcome_asyncio_run_carries(
    tmp_path,
):
    calls: list[str] = []
    box: dict[str, object] = {}

    def undo(n: str, idempotency_key: str | None = None) -> None:
        calls.append(n)

    undone = compensation("told.undo", Registry())(undo)

    async def waits(state: object) -> None:
        box["main"].cancel()  # type: ignore[attr-defined]  # the first Ctrl-C: a cancel
        await asyncio.sleep(10)

    steps = [Step(n, lambda s: None, undone.bind(n=n)) for n in "ab"]
    saga = Saga([*steps, Step("c", lambda s: waits(s))])
    heard = _guards.cancel_heard

    def second(run, exc, taken=False):  # type: ignore[no-untyped-def]
        if "heard" not in box:
            box["heard"] = True
            raise KeyboardInterrupt  # a second Ctrl-C, as arun hears the first
        return heard(run, exc, taken)

    with Journal(str(tmp_path / "j.db")) as journal, pytest.MonkeyPatch.context() as mp:
        real = journal.write

        def write(statements, **kw):  # type: ignore[no-untyped-def]
            if "cut" not in box and any("state = 'done'" in str(s) for s in statements):
                box["cut"] = True
                raise KeyboardInterrupt  # a third, as b's record is written
            return real(statements, **kw)

        async def main() -> object:
            box["main"] = asyncio.current_task()
            return await saga.arun({}, journal=journal, run_id="r")

        mp.setattr(journal, "write", write)
        mp.setattr(_guards, "cancel_heard", second)
        with pytest.raises(KeyboardInterrupt) as raised:
            asyncio.run(main())
        mp.undo()
        rows = {u.step: u.state for u in journal.undos("r")}
    outcome = raised.value.outcome  # type: ignore[attr-defined]
    assert calls == ["b"] and rows == {"a": "pending", "b": "done"}  # (b's record, cut,
    # kept: it went with the run's last writes, attack266; the note's "unless it landed")
    assert outcome.compensated == ("b",) and outcome.pending == ("a",)
    assert CUT in outcome.notes
