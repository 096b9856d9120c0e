"""A step whose handed-back work a second Ctrl-C (or cancel) gave up waiting for, its undo
logged before it: the undo ran, and the work may land after it. The outcome says so
(leaked, "undone, but it still ran"); the journal now says so too: its row ``leaked``, the
saga waiting for a person (``recover`` exit 1, ``journal show`` leaked 1, ``settle``
takes it). attack95 F1: the journal said "nothing left for a person" (exit 0), the charge
landing after its refund."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import signal
import threading
import time

import pytest

from rollback_lessons import AsyncRollback, Parallel, Rollback, Saga, Status, Step
from rollback_lessons.cli import main
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.outcome import EARLY

registry = Registry()
WORLD: list[str] = []


@compensation("ran_on.refund", registry)
def refund(idempotency_key: str | None = None) -> None:
    WORLD.append("refunded")


def _charge() -> str:
    time.sleep(0.6)
    WORLD.append("charged")
    return "ok"


def _twice(hit) -> None:
    def go() -> None:
        time.sleep(0.15)
        hit()
        time.sleep(0.1)
        hit()

    threading.Thread(target=go, daemon=True).start()


@pytest.mark.parametrize("driver", ["rb", "arb", "graph"])
def test_a_step_undone_while_its_work_ran_on_waits_for_a_person_in_the_journal(
    tmp_path, capsys, driver
):
    WORLD.clear()
    pool = cf.ThreadPoolExecutor(1)
    path = tmp_path / "j.db"
    outcome = None
    try:
        with Journal(path) as journal:
            if driver == "graph":  # (saga.run of a Parallel group: attack96 F2)

                def charge(_: object):
                    _twice(lambda: os.kill(os.getpid(), signal.SIGINT))
                    return pool.submit(_charge)

                saga = Saga([Parallel(Step("charge", charge, refund.bind(), register="before"),
                                      Step("sib", lambda s: None))], name="rollback")  # fmt: skip
                with pytest.raises(KeyboardInterrupt) as caught:
                    saga.run({}, journal=journal, run_id="r1")
                outcome = caught.value  # (its notes: the outcome's)
            elif driver == "rb":
                rb = Rollback(journal=journal, run_id="r1")

                def act():
                    _twice(lambda: os.kill(os.getpid(), signal.SIGINT))
                    return pool.submit(_charge)

                with pytest.raises(KeyboardInterrupt), rb:
                    rb.do("charge", act, refund.bind(), register="before")
                outcome = rb.outcome
            else:
                arb = AsyncRollback(journal=journal, run_id="r1")

                async def block() -> None:
                    me, loop = asyncio.current_task(), asyncio.get_running_loop()
                    assert me is not None

                    def act():
                        _twice(lambda: loop.call_soon_threadsafe(me.cancel))
                        return pool.submit(_charge)

                    async with arb:
                        await arb.do("charge", act, refund.bind(), register="before")

                with pytest.raises(asyncio.CancelledError):
                    asyncio.run(block())
                outcome = arb.outcome
    finally:
        pool.shutdown(wait=True)
    assert WORLD == ["refunded", "charged"]  # (the charge landed after its refund)
    if driver == "graph":
        notes = " | ".join(getattr(outcome, "__notes__", []))
        assert "step 'charge' still ran when the run stopped waiting for it" in notes, notes
    else:
        assert outcome is not None and outcome.status is Status.ROLLBACK_INCOMPLETE
        assert outcome.leaked == ("charge",) and outcome.compensated == ("charge",)
    with Journal(path) as journal:
        [undo] = journal.undos("r1")
        assert undo.state == "leaked" and EARLY in (undo.error or "")
    capsys.readouterr()
    assert main(["recover", str(path), "--registry", __name__]) == 1
    out = capsys.readouterr().out
    assert (
        f"r1 (rollback): rollback_incomplete earlier (leaked charge ({EARLY})); waits for a person"
        in out
    )  # (its undo already ran: said, attack96 F8, so that nobody refunds by hand again)
    assert main(["journal", "show", str(path)]) == 0
    [row] = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("r1")]
    assert row[-4:] == ["1", "1", "0", "1"], row  # (undos, undone: its undo logged and run,
    assert main(["journal", "settle", str(path), "r1", "--note", "checked"]) == 0  # F4)
    assert WORLD == ["refunded", "charged"]
