"""attack174 F1: an undo that raises its own ``asyncio.CancelledError`` (no task was
cancelled: a library's future it awaited, say) is a dead letter in process, in ``saga.run``,
``arun``, ``Rollback`` alike (``calls.own_cancel``). After a crash, ``recover`` took it for
an interrupt: it stopped there, every run, the saga left running for good (``journal
settle`` refuses a running saga) and every saga after it in the journal never undone."""

from __future__ import annotations

import asyncio

from conftest import crash_at_first_undo

from rollback_lessons import Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import BoundUndo, Registry


def test_an_undo_raising_its_own_cancel_is_a_dead_letter_after_a_crash_as_in_process(tmp_path):
    world: list[str] = []
    reg = Registry()

    def cancels(item: str, idempotency_key: str | None = None) -> None:
        world.append(f"undo {item} called")
        raise asyncio.CancelledError("the undo's own")

    reg.add("cancels", cancels)
    reg.add("refund", lambda item, idempotency_key=None: world.append(f"undo {item}"))
    steps = [Step("a", lambda s: None, BoundUndo("cancels", {"item": "a"}, reg)),
             Step("b", lambda s: None, BoundUndo("refund", {"item": "b"}, reg)),
             Step("c", lambda s: 1 / 0)]  # fmt: skip
    saga = Saga(steps, name="own-cancel")
    in_process = saga.run({})
    assert in_process.status is Status.ROLLBACK_INCOMPLETE and in_process.compensated == ("b",)
    world.clear()
    path = tmp_path / "j.db"
    crash_at_first_undo(path, saga)  # (its process dies as it would undo b)
    with Journal(path) as journal:
        [recovered] = recover(journal, reg).recovered
    assert world == ["undo b", "undo a called"]
    assert (recovered.status, recovered.compensated) == (in_process.status, ("b",))
    [dead] = recovered.dead_letters
    assert dead.step == "a" and "CancelledError" in repr(dead.error)
