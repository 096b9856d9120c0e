"""A recover stopped midway in a process that lives on (a service, a notebook): its clean-up
writes with the journal's wait cut to one try, then puts the wait back. That was a
``@contextmanager`` (``briefly``): a Ctrl-C at the entry of contextlib's ``__exit__`` skipped
the generator's ``finally``, and the journal's connection kept a wait of 0 for the rest of
the process's life (every later write, of every later recover, tried once: fixrec75's note).
The wait is now put back in a ``finally`` with no call before it: at every instant of the
clean-up a second Ctrl-C may land, the wait is the journal's own afterwards."""

from __future__ import annotations

import signal
import sys
from typing import Any

import pytest
from conftest import SOAK, a_part, dead_pid
from test_cli_exits import _crashed
from test_cli_exits import registry as REGISTRY

from rollback_lessons.durable import recovery
from rollback_lessons.durable.journal import Journal


def _trial(path: Any, gap: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, float]:
    """recover stopped by a Ctrl-C as its first undo's run is written; a second one at the
    ``gap``-th function start (anywhere: contextlib's too) once its clean-up began. Where
    the second landed ("": it did not), and the journal's wait once recover raised."""
    state: dict[str, Any] = {"cleaned": None, "n": 0, "second": ""}

    def undo_ran(self: Any, run: Any) -> None:
        raise KeyboardInterrupt("first")

    def inside(frame: Any) -> bool:  # (the clean-up's own calls, and theirs: not after)
        while frame is not None and frame is not state["cleaned"]:
            frame = frame.f_back
        return frame is not None

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        if frame.f_code.co_name == "cleaned" and frame.f_code.co_filename.endswith("cleanup.py"):
            state["cleaned"] = frame
        elif state["cleaned"] is not None and inside(frame.f_back):
            state["n"] += 1
            if state["n"] == gap:
                state["second"] = f"{frame.f_code.co_filename}:{frame.f_code.co_name}"
                sys.settrace(None)
                raise KeyboardInterrupt("second")

    monkeypatch.setattr(recovery.Writer, "undo_ran", undo_ran)
    handlers = {which: signal.getsignal(which) for which in (signal.SIGINT, signal.SIGTERM)}
    with Journal(path, timeout=2.0) as journal:
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        sys.settrace(tracer)
        try:  # (the Ctrl-C kept, as a notebook keeps the last error: ``sys.last_value``)
            with pytest.raises(KeyboardInterrupt) as kept:
                recovery.recover(journal, REGISTRY)
        finally:
            sys.settrace(None)
            monkeypatch.undo()
            for which, handler in handlers.items():  # (a Ctrl-C at ``held``'s exit's entry
                signal.signal(which, handler)  # left them swapped: the tracer's, not real)
        assert kept.value is not None
        return state["second"], journal._con.wait  # type: ignore[attr-defined]


def test_the_journals_wait_is_put_back_whatever_instant_a_second_ctrl_c_cuts_the_clean_up(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    landed, every = 0, 1 if SOAK else 3  # (make test: a third of the instants, from an
    first = a_part(list(range(1, every + 1)), every, name="wait restored gaps")[0]  # offset)
    for gap in range(first, 2000, every):
        (tmp_path / str(gap)).mkdir()
        path = _crashed(tmp_path / str(gap))
        second, wait = _trial(path, gap, monkeypatch)
        if not second:
            break  # (recover ended before the gap-th function start: every instant tried)
        landed += 1
        assert wait == 2.0, f"gap {gap}, at {second}'s start: the journal's wait left {wait}"
    print(f"{landed} instants landed")
    assert landed > 60 // every
