"""An interrupt at any line of a journal run's write (``JournalRun.flush``): what it was to
write stays pending for the next write, never dropped (attack116 F2: the saga's row, taken
from the pending list, then dropped by a Ctrl-C before its write; the events after it were
written, and recover called the journal damaged, stopping the recovery of every saga in
it). Each line in turn, by a hook that raises there, for both blocks, the saga's id its own
(its row goes with the first write)."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import sys
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Rollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.records import JournalRun
from rollback_lessons.durable.registry import Registry

registry = Registry()
UNDO = registry.add("flushcut.undo", lambda step, idempotency_key=None: None)
CODE = JournalRun.flush.__code__
LINES = len(inspect.getsourcelines(JournalRun.flush)[0])


def _run(path: Any, nth: int, block: str) -> None:
    seen = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not CODE:
            return None

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line":
                seen[0] += 1
                if seen[0] == nth:
                    raise KeyboardInterrupt
            return local

        return local

    async def ablock() -> None:
        async with AsyncRollback(journal=Journal(path)) as rb:
            sys.settrace(tracer)
            await rb.do("a", lambda: None, UNDO.bind(step="a"))
            sys.settrace(None)
            raise RuntimeError("boom")

    try:
        if block == "async":
            asyncio.run(ablock())
        else:
            with Rollback(journal=Journal(path)) as rb:
                sys.settrace(tracer)
                rb.do("a", lambda: None, UNDO.bind(step="a"))
                sys.settrace(None)
                raise RuntimeError("boom")
    except (KeyboardInterrupt, RuntimeError):
        pass
    finally:
        sys.settrace(None)


@pytest.mark.parametrize("block", ["sync", "async"])
def test_an_interrupt_in_a_journal_write_never_drops_what_it_was_to_write(tmp_path, block):
    for nth in range(1, LINES + 2):
        path = tmp_path / f"{nth}.db"
        _run(path, nth, block)
        con = sqlite3.connect(path)
        try:
            sagas = {r[0] for r in con.execute("SELECT id FROM sagas")}
            events = {r[0] for r in con.execute("SELECT saga_id FROM events")}
        finally:
            con.close()
        assert events <= sagas, (nth, events, sagas)  # (no event of a saga with no row)
