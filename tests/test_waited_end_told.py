"""The end of an action's pool work that a run waited for as a Ctrl-C came is told first,
on every driver (attack95 F2, F3):

- ``saga.run`` (a list's plan), one Ctrl-C, the work refusing: the step failed with its own
  error (nothing to undo; a pivot that refused is compensated across), never reported
  leaked ("not undone (no undo logged for it)"), as ``Rollback`` already told it.
- ``saga.arun`` under ``asyncio.run``, a second Ctrl-C (the loop stopped, its tasks
  cancelled at its shutdown): the work waited for to its end, that end told: done, undone
  with the rest (``cancelled``); refused, nothing to undo. Both were reported leaked."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import signal
import threading
import time

import pytest

from rollback_lessons import Saga, Step

WORLD: list[str] = []


def _charge() -> str:
    time.sleep(0.5)
    WORLD.append("charged")
    return "ok"


def _decline() -> str:
    time.sleep(0.5)
    WORLD.append("declined")
    raise ValueError("card declined")


def _sigints(n: int) -> None:
    def go() -> None:
        for i in range(n):
            time.sleep(0.15 if i == 0 else 0.1)
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=go, daemon=True).start()


@pytest.fixture
def pool():
    WORLD.clear()
    executor = cf.ThreadPoolExecutor(2)
    yield executor
    executor.shutdown(wait=True)


def _saga(pool, work, hits: int, pivot: bool = False) -> Saga:
    def act(_: object):
        _sigints(hits)
        return pool.submit(work)

    steps = [Step("hold", lambda s: WORLD.append("held"), lambda s: WORLD.append("released"))]
    if pivot:
        steps.append(Step("email", act, kind="pivot"))
    else:
        steps.append(Step("charge", act, lambda s: WORLD.append("refunded")))
    kind = "retriable" if pivot else "compensable"
    ship = Step("ship", lambda s: WORLD.append("shipped"), kind=kind)
    return Saga([*steps, ship])


@pytest.mark.parametrize("pivot", [False, True])
def test_saga_run_tells_a_refusal_it_waited_for_as_the_refusal(pool, pivot):
    with pytest.raises(KeyboardInterrupt) as caught:
        _saga(pool, _decline, 1, pivot).run({})
    assert WORLD == ["held", "declined", "released"]  # (compensated across the pivot too)
    assert not [n for n in getattr(caught.value, "__notes__", []) if "no undo logged" in n]


@pytest.mark.parametrize(("work", "world"), [
    (_charge, ["held", "charged", "refunded", "released"]),
    (_decline, ["held", "declined", "released"]),
])  # fmt: skip
def test_arun_at_asyncio_runs_second_ctrl_c_tells_the_end_it_waited_for(pool, work, world):
    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(_saga(pool, work, 2).arun({}))
    assert world == WORLD
    notes = " | ".join(getattr(caught.value, "__notes__", []))
    assert "(cancelled)" in notes and "leaked" not in notes, notes


def test_saga_runs_second_ctrl_c_note_names_the_run_not_a_block(pool):
    """attack95 F5: ``saga.run`` (no with-block anywhere) said "when the block stopped"."""
    with pytest.raises(KeyboardInterrupt) as caught:
        _saga(pool, _charge, 2).run({})
    notes = " | ".join(getattr(caught.value, "__notes__", []))
    assert "step 'charge' still ran when the run stopped waiting for it" in notes, notes
    assert "the block" not in notes
