"""A step run from another thread that outlives its block (a Ctrl-C gave the wait up): its
``do`` ends in one typed line whose cause is the step's own error, or none if it returned,
never the engine's internals (attack102 F4: an AssertionError, or the machine's refusal)."""

from __future__ import annotations

import threading

import pytest
from test_block_ended import _CtrlCWhileWaiting

from rollback_lessons import Rollback, StepStillRunning
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry
from rollback_lessons.machine import MachineError


@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("register", ["after", "before"])
@pytest.mark.parametrize("ends", ["returns", "raises"])
def test_a_late_step_says_its_own_cause(tmp_path, journalled, register, ends):
    started, go = threading.Event(), threading.Event()
    ended: list[BaseException] = []
    own = ValueError("the car's own error")
    registry = Registry()
    undo_car = registry.add("undo_car", lambda: None).bind()
    undo_room = registry.add("undo_room", lambda: None).bind()

    def car() -> str:
        started.set()
        go.wait(30)
        if ends == "raises":
            raise own
        return "car"

    def work() -> None:
        try:
            rb.do("car", car, undo_car, register=register)
        except BaseException as exc:
            ended.append(exc)

    journal = Journal(tmp_path / "j.db") if journalled else None
    rb = Rollback(journal=journal, run_id="late") if journal is not None else Rollback()
    rb._Waiter = _CtrlCWhileWaiting  # type: ignore[assignment,misc]
    worker = threading.Thread(target=work)
    with pytest.raises(KeyboardInterrupt):
        with rb:
            rb.do("room", lambda: None, undo_room)
            worker.start()
            assert started.wait(30)
            raise LookupError("charge refused")
    go.set()
    worker.join(30)
    assert len(ended) == 1 and type(ended[0]) is StepStillRunning
    cause = ended[0].__cause__
    assert cause is (own if ends == "raises" else None)
    assert not isinstance(cause, (AssertionError, MachineError))
    if journal is not None:
        journal.close()
