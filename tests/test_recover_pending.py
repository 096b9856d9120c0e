"""A Ctrl-C as recover's writer gathers what a run did (``Writer.undo_ran``, ``finished``)
never loses it (attack72, seen by fixpend72): ``statements += run.take()`` lost the undo's
``done`` when the Ctrl-C came as ``take`` returned, before the ``+=``: the interrupt did not
say the undo would run again, and the next recover ran it again."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import kbi_instants
from conftest import crash_at_first_undo

from rollback_lessons import Saga, Step
from rollback_lessons.durable import records, writer
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation

WORLD: list[str] = []
REGISTRY = Registry()
WATCHED = {writer.Writer.undo_ran.__code__, writer.Writer.finished.__code__}


@compensation("recover_pending_undo", REGISTRY)
def undo(k: str, idempotency_key: str | None = None) -> None:
    WORLD.append("undo " + k)


def saga() -> Saga:
    def fail(state: Any) -> None:
        raise RuntimeError("d fails")

    steps = [Step(k, lambda state, k=k: WORLD.append(k), undo.bind(k=k)) for k in "abc"]
    return Saga([*steps, Step("d", fail)], name="pending")


class Tracer:
    """Counts the instants (entry, line, right after a call returns) of the writer's
    gathering and of records.py's code it calls; raises at the n-th."""

    def __init__(self, n: int) -> None:
        self.n, self.count, self.depth, self.fired = n, 0, 0, None

    def glob(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code not in WATCHED and not (self.depth and code.co_filename == records.__file__):
            return None
        self.depth += code in WATCHED
        frame.f_trace_opcodes = True
        self._tick(frame, "entry")
        return self.local

    def local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return":
            self.depth -= frame.f_code in WATCHED
        elif event == "line" or frame.f_lasti in kbi_instants.instants(frame.f_code):
            self._tick(frame, event)
        return self.local

    def _tick(self, frame: FrameType, kind: str) -> None:
        self.count += 1
        if self.count == self.n:
            self.fired = (frame.f_code.co_name, frame.f_lineno, kind)
            sys.settrace(None)
            frame.f_trace = None
            raise KeyboardInterrupt(f"at {self.fired}")


def cut_recover(path: str, tracer: Tracer) -> BaseException | None:
    with Journal(path) as journal:
        sys.settrace(tracer.glob)
        try:
            recover(journal, REGISTRY)
        except KeyboardInterrupt as exc:
            return exc
        finally:
            sys.settrace(None)
    return None


def test_a_ctrl_c_as_recovers_writer_gathers_a_run_never_loses_an_undos_record(tmp_path):
    """At each instant: the undos recover ran are recorded, or the interrupt says they will
    run again; the next recover finishes the saga. Without the fix, the instant right after
    ``take`` returned in ``undo_ran`` ran c's undo twice, unannounced."""
    crash_at_first_undo(tmp_path / "count.db", saga())
    counter = Tracer(0)
    assert cut_recover(str(tmp_path / "count.db"), counter) is None
    assert counter.count >= 20, counter.count
    for n in range(1, counter.count + 1):
        path = str(tmp_path / f"j{n}.db")
        crash_at_first_undo(path, saga())
        WORLD.clear()
        tracer = Tracer(n)
        raised = cut_recover(path, tracer)
        assert tracer.fired is not None and raised is not None, n
        announced = getattr(raised, "unrecorded", None)
        with Journal(path) as journal:
            recover(journal, REGISTRY)
            assert journal.saga("s").status == "rolled_back", (n, tracer.fired)
        twice = [w for w in set(WORLD) if WORLD.count(w) > 1]
        assert sorted(set(WORLD)) == ["undo a", "undo b", "undo c"], (n, tracer.fired, WORLD)
        assert not twice or announced, (n, tracer.fired, WORLD)
