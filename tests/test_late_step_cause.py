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


class _ExitWhileWaiting(_CtrlCWhileWaiting):
    """The block's wait for the running step, cut by a SIGTERM handler's ``sys.exit``."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            raise SystemExit(143)
        return True


@pytest.mark.parametrize("cut", ["ctrl-c", "sys.exit"])
@pytest.mark.parametrize("where", ["in its call", "in its wait to retry"])
def test_a_late_step_says_what_cut_the_wait_and_what_the_outcome_says(cut, where):
    """attack104 F8: a step's StepStillRunning said "a Ctrl-C came" when a SIGTERM's
    ``sys.exit`` cut the block's wait, and "the block's outcome reports it cut short" of a
    step stopped in its wait to retry, which the outcome reports nothing of."""
    from rollback_lessons import RetryPolicy

    started, go = threading.Event(), threading.Event()
    ended: list[BaseException] = []

    def car() -> None:
        started.set()
        if where == "in its wait to retry":
            raise ConnectionError("refused, nothing done")
        go.wait(30)

    def work() -> None:
        try:
            rb.do("car", car, lambda: None, retry=RetryPolicy(max_attempts=3, initial_delay=30))
        except BaseException as exc:
            ended.append(exc)

    rb = Rollback()
    rb._Waiter = _CtrlCWhileWaiting if cut == "ctrl-c" else _ExitWhileWaiting  # type: ignore[assignment,misc]
    worker = threading.Thread(target=work)
    with pytest.raises(KeyboardInterrupt if cut == "ctrl-c" else SystemExit):
        with rb:
            rb.do("room", lambda: None, lambda: None)
            worker.start()
            assert started.wait(30)
            raise LookupError("charge refused")
    go.set()
    worker.join(30)
    assert not worker.is_alive(), "the wait to retry was not woken"
    [late] = ended
    said = str(late)
    assert type(late) is StepStillRunning
    assert ("a Ctrl-C came" in said) is (cut == "ctrl-c"), said
    assert ("a SystemExit came" in said) is (cut == "sys.exit"), said
    leaked = rb.outcome is not None and "car" in rb.outcome.leaked
    assert leaked is (where == "in its call"), rb.outcome
    assert ("cut short (leaked)" in said) is leaked, said
    assert ("does not report it leaked" in said) is (not leaked), said
