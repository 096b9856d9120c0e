"""attack118 F1: a Ctrl-C raised as a ``with lock:`` block's exit began (a tracer's instant)
left the module's lock held: every later journalled run in the process hung for ever. The
calls every run makes hold no lock now: a Ctrl-C at any line of them leaves the next run
free."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

UNDO = Registry().add("noop", lambda step: None)


def _run(path: Path, run_id: str) -> str:
    saga = Saga([Step(n, lambda s: None, UNDO.bind(step=n)) for n in "ab"])
    with Journal(path) as journal:
        return str(saga.run({}, journal=journal, run_id=run_id).status)


def _cut_at(function: str, nth: int):
    """A tracer raising KeyboardInterrupt at the ``nth`` line of the package's ``function``."""
    count = [0]

    def local(frame, event, arg):
        if event == "line":
            count[0] += 1
            if count[0] == nth:
                raise KeyboardInterrupt
        return local

    def tracer(frame, event, arg):
        code = frame.f_code
        if code.co_name != function or "rollback_lessons" not in code.co_filename:
            return None
        return local

    return tracer


def test_a_ctrl_c_at_any_line_of_left_running_leaves_the_next_run_free(tmp_path: Path) -> None:
    cut = 0
    for nth in range(1, 8):  # (left_running: asked as every journalled run ends)
        sys.settrace(_cut_at("left_running", nth))
        try:
            _run(tmp_path / f"{nth}.db", f"cut{nth}")
        except KeyboardInterrupt:
            cut += 1
        finally:
            sys.settrace(None)
        said: list[str] = []
        after = threading.Thread(
            target=lambda said=said, nth=nth: said.append(_run(tmp_path / "next.db", f"n{nth}"))
        )
        after.start()
        after.join(30)
        assert said == ["committed"], nth  # (not hung on a lock left held)
    assert cut >= 1  # (its lines were reached)
