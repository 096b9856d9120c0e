"""A KeyboardInterrupt or SystemExit raised in a task ``saga.arun`` makes (an async undo
with a timeout is awaited in a task of its own) is the interrupt rule's, as in ``saga.run``:
asyncio would re-raise it out of the event loop, past the run, with nothing undone, no
outcome and nothing noted (issue 25)."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()
LOG: list[str] = []
RAISED = {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit}


@compensation("h14_log", registry)
def log_it(k, idempotency_key=None):
    LOG.append(k)


@compensation("h14_raise", registry)
def raise_it(kind, idempotency_key=None):
    raise RAISED[kind]()


@compensation("h14_araise", registry)
async def araise_it(kind, idempotency_key=None):
    raise RAISED[kind]()


def _saga(exc_type: type[BaseException], engine: str) -> Saga:
    async def fails():
        raise ValueError("c refused")

    undo = raise_it if engine == "run" else araise_it
    return Saga(
        [
            Step("a", lambda s: None, log_it.bind(k="a")),
            Step("b", lambda s: None, undo.bind(kind=exc_type.__name__), undo_timeout=30),
            Step("c", (lambda s: fails()) if engine == "arun" else (lambda s: 1 / 0)),
        ]
    )


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_an_undo_with_a_timeout_is_the_same_in_arun_as_in_run(tmp_path, exc_type):
    seen = {}
    for engine in ("run", "arun"):
        LOG.clear()
        saga = _saga(exc_type, engine)
        with Journal(tmp_path / f"{engine}.db") as journal, pytest.raises(exc_type) as caught:
            if engine == "run":
                saga.run({}, journal=journal, run_id="r1")
            else:
                asyncio.run(saga.arun({}, journal=journal, run_id="r1"))
        with Journal(tmp_path / f"{engine}.db", create=False) as journal:
            kept = [(s.id, s.status) for s in journal.unfinished()]
        seen[engine] = (list(LOG), caught.value.__notes__, kept)
    assert seen["arun"] == seen["run"]
    log, notes, kept = seen["arun"]
    assert log == []  # interrupted at b's undo: a is left pending, for recover
    assert any("not known to be undone: b, a" in note for note in notes)
    assert kept == [("r1", "rolling_back")]
