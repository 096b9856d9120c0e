"""A ``recover`` stopped by a Ctrl-C that a notebook or a service catches, while an undo's
work runs on (a pool's Future it handed back, an awaited undo that will not stop), leaves
that work running; the next ``recover`` in this process never makes that undo again while
it runs (attack90 F5: two refunds at once, the same key). Once it ended, the next recover
calls the undo again (its outcome was never written: undos are idempotent)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
from conftest import crash_at_first_undo

from rollback_lessons import Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import BoundUndo, Registry


def _interrupt_when(began: threading.Event) -> None:
    """A Ctrl-C, once the refund began (the work handed back, being waited for)."""

    def later() -> None:
        began.wait(10)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)  # (a real one: it wakes a blocked wait)

    threading.Thread(target=later, daemon=True).start()


def _setup(tmp_path, pool, shape: str):
    world: list[str] = []
    began, release = threading.Event(), threading.Event()
    reg = Registry()

    def refund(item: str, key: str | None) -> str:
        world.append(f"refund {item} begins")
        began.set()
        release.wait(10)
        world.append(f"refund {item} ends")
        return "ok"

    def pooled(item: str, idempotency_key: str | None = None):
        return pool.submit(refund, item, idempotency_key)

    async def stubborn(item: str, idempotency_key: str | None = None) -> None:
        world.append(f"refund {item} begins")
        began.set()
        end = time.monotonic() + 10
        while not release.is_set() and time.monotonic() < end:  # (a cancel swallowed)
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                continue
        world.append(f"refund {item} ends")

    reg.add("pooled", pooled)
    reg.add("stubborn", stubborn)
    path = tmp_path / "j.db"
    saga = Saga([Step("charge", lambda s: None, BoundUndo(shape, {"item": "c"}, reg)),
                 Step("ship", lambda s: 1 / 0)], name="s")  # fmt: skip
    crash_at_first_undo(path, saga)
    return path, reg, world, began, release


def _ended(world: list[str]) -> None:
    """Wait (up to 4 s) for the refund left running to end."""
    for _ in range(200):
        if len(world) == 2:
            return
        time.sleep(0.02)


@pytest.mark.parametrize("named", ["same", "symlink"])
@pytest.mark.parametrize("shape", ["pooled", "stubborn"])
def test_a_second_recover_never_calls_an_undo_a_stopped_one_left_running(
    tmp_path, pool, shape, named
):
    """(``symlink``: the second recover names the file otherwise, attack96 F3.)"""
    path, reg, world, began, release = _setup(tmp_path, pool, shape)
    other = path
    if named == "symlink":
        other = tmp_path / "link.db"
        other.symlink_to(path)
    with Journal(path) as journal:
        _interrupt_when(began)
        with pytest.raises(KeyboardInterrupt):
            recover(journal, reg)
    with Journal(other) as journal:
        [o] = recover(journal, reg).recovered  # at once, its refund still running
    assert world == ["refund c begins"]
    assert o.status is Status.ROLLBACK_INCOMPLETE and o.compensated == ()
    said = str(o.dead_letters[0].error)
    assert "not called again: its call, left running in this process by a recover" in said
    release.set()
    _ended(world)
    assert world == ["refund c begins", "refund c ends"]  # (once)


@pytest.mark.parametrize("shape", ["pooled", "stubborn"])
def test_once_the_left_work_ended_the_next_recover_calls_the_undo_again(tmp_path, pool, shape):
    path, reg, world, began, release = _setup(tmp_path, pool, shape)
    with Journal(path) as journal:
        _interrupt_when(began)
        with pytest.raises(KeyboardInterrupt):
            recover(journal, reg)
        release.set()
        _ended(world)
        time.sleep(0.1)  # (its loop's thread ended too)
        [o] = recover(journal, reg).recovered
    assert o.status is Status.ROLLED_BACK and o.compensated == ("charge",)
    assert world == ["refund c begins", "refund c ends", "refund c begins", "refund c ends"]
