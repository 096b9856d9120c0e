"""A synchronous run inside async code (a notebook cell, a service's startup) whose undo hands
back ``loop.run_in_executor(...)`` of the very loop it blocks cannot wait for that work, and its
thread goes on: the undo is not called again in that run, whatever the policy says (attack90
F10: retried, three refunds ran at once). In ``saga.run``, ``Rollback`` and ``recover``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from conftest import crash_at_first_undo

from rollback_lessons import Registry, RetryPolicy, Rollback, Saga, Step, UndoPolicy
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import BoundUndo
from rollback_lessons.errors import MayHaveRun

RETRY = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.01), then="dead_letter")


def _refunds(what: str = "refund") -> tuple[list[str], threading.Event, Any]:
    """(calls, go, fn): ``fn(...)`` hands back a ``run_in_executor`` Future of the running
    loop whose work waits for ``go`` (held until the run ended: a retry would find it
    running); ``calls`` says when each call began and its work ended."""
    calls: list[str] = []
    go = threading.Event()

    def slow() -> None:
        go.wait(10)
        calls.append(f"{what} done")

    def fn(*args: object, **kwargs: object) -> object:
        calls.append(f"{what} begins")
        return asyncio.get_running_loop().run_in_executor(None, slow)

    return calls, go, fn


def _fails() -> None:
    raise RuntimeError("ship failed")


@pytest.mark.parametrize("driver", ["run", "rollback"])
def test_an_undo_whose_thread_work_runs_on_is_not_retried(driver):
    calls, go, refund = _refunds()

    async def main():
        if driver == "run":
            outcome = Saga([Step("charge", lambda s: None, lambda s: refund()),
                            Step("ship", lambda s: _fails())], policy=RETRY).run({})  # fmt: skip
        else:
            rb = Rollback(policy=RETRY)
            with pytest.raises(RuntimeError), rb:
                rb.do("charge", lambda: None, refund)
                _fails()
            outcome = rb.outcome
        go.set()
        await asyncio.sleep(0.2)  # (its thread ends)
        return outcome

    outcome = asyncio.run(main())
    assert calls == ["refund begins", "refund done"]
    assert outcome.status == "rollback_incomplete"
    assert [type(d.error) for d in outcome.dead_letters] == [MayHaveRun]
    assert any("not called again in this run" in n for n in outcome.notes), outcome.notes


def test_recover_does_not_call_it_again_either(tmp_path):
    calls, go, refund = _refunds()
    registry = Registry()
    registry.add("refund", refund)
    saga = Saga([Step("charge", lambda s: None, BoundUndo("refund", {"item": "c"}, registry)),
                 Step("ship", lambda s: _fails())], policy=RETRY)  # fmt: skip
    crash_at_first_undo(tmp_path / "j.db", saga)

    async def main():
        report = recover(Journal(tmp_path / "j.db"), registry)
        go.set()
        await asyncio.sleep(0.2)
        return report

    report = asyncio.run(main())
    assert calls == ["refund begins", "refund done"], (calls, report)
    [saga_done] = report.recovered
    assert [d.step for d in saga_done.dead_letters] == ["charge"], report


@pytest.mark.parametrize("graph", [False, True], ids=["list", "group"])
def test_an_action_whose_thread_work_runs_on_is_not_retried(graph):
    """The action in that shape with a retry policy charged three times at once."""
    from rollback_lessons import Parallel

    calls, go, charge = _refunds("charge")

    step = Step("charge", charge, lambda s: calls.append("refund"),
                retry=RetryPolicy(max_attempts=3, initial_delay=0.01))  # fmt: skip

    async def main():
        outcome = Saga([Parallel(step)] if graph else [step]).run({})
        go.set()
        await asyncio.sleep(0.2)
        return outcome

    outcome = asyncio.run(main())
    assert calls == ["charge begins", "charge done"]
    assert outcome.leaked == ("charge",) and outcome.status == "rollback_incomplete"
    assert any("its effect landing after any undo (never tried again)" in n
               for n in outcome.notes), outcome.notes  # fmt: skip


def test_an_action_logged_before_is_undone_and_said_to_run_on():
    """attack98 F2: a step whose undo was logged before it, its work handed back and not
    waited for: undone at once while the work ran, with no note that it may land after."""
    calls, go, charge = _refunds("charge")

    async def main():
        outcome = Saga([Step("charge", charge, lambda s: calls.append("refund"),
                             register="before")]).run({})  # fmt: skip
        go.set()
        await asyncio.sleep(0.2)
        return outcome

    outcome = asyncio.run(main())
    assert calls == ["charge begins", "refund", "charge done"]
    assert outcome.leaked == ("charge",) and outcome.compensated == ("charge",)
    assert any("its effect landing after any undo" in n for n in outcome.notes), outcome.notes


def test_bpmn_does_not_call_such_an_undo_again_either(bpmn_runner):
    """attack98 F5: ``BpmnRunner.run`` is as synchronous as ``saga.run`` (its library runs in
    the caller's thread): the same undo in a notebook cell was retried, three refunds at once.
    The rule is the machine's now (``Machine.undo_failed``), whatever drives it."""
    from rollback_lessons import Parallel

    calls, go, refund = _refunds()

    async def main():
        saga = Saga([Parallel(Step("charge", lambda s: None, lambda s: refund())),
                     Step("ship", lambda s: _fails())], policy=RETRY)  # fmt: skip
        outcome = bpmn_runner.run(saga, {})
        go.set()
        await asyncio.sleep(0.2)
        return outcome

    outcome = asyncio.run(main())
    assert calls == ["refund begins", "refund done"]
    assert [(d.step, type(d.error)) for d in outcome.dead_letters] == [("charge", MayHaveRun)]
    assert any("not called again in this run" in n for n in outcome.notes), outcome.notes


def test_dbos_in_a_notebook_cell_returns_such_an_undo_never_waited_on(dbos_runner):
    """attack98 F7: ``DBOSRunner.run`` inside a running loop runs the saga in threads of its
    own while the caller's loop waits: DBOS's thread waited on that loop for the undo's Future,
    for ever. The loop is known blocked: the Future is work it cannot wait for."""
    calls: list[str] = []

    async def main():
        loop = asyncio.get_running_loop()  # (the cell's: the undo runs in DBOS's thread)

        def refund() -> object:
            calls.append("refund begins")
            return loop.run_in_executor(None, calls.append, "refund done")

        saga = Saga([Step("charge", lambda s: None, lambda s: refund()),
                     Step("ship", lambda s: _fails())], name="cell")  # fmt: skip
        outcome = dbos_runner.run(saga, {})
        await asyncio.sleep(0.2)
        return outcome

    outcome = asyncio.run(main())
    assert calls.count("refund begins") == 1  # (its work cancelled before it began, or run)
    assert [(d.step, type(d.error).__name__) for d in outcome.dead_letters] == [
        ("charge", "MayHaveRun")
    ]


def test_a_step_whose_work_runs_on_and_whose_undo_failed_is_leaked_in_the_journal(tmp_path):
    """attack99 F8: the run said b leaked (its work may land after any undo), the journal's
    row said only ``dead``: ``journal show`` leaked 0, ``recover`` named the dead letter
    alone. Its row is leaked now, saying both, its undo's error kept."""
    from rollback_lessons.journal_end import DEAD_RAN_ON

    _, go, charge = _refunds("charge")
    registry = Registry()

    def refund(item: str) -> None:
        raise RuntimeError(f"refund {item} fails")

    registry.add("refund", refund)
    saga = Saga([Step("b", charge, BoundUndo("refund", {"item": "b"}, registry),
                      register="before"),
                 Step("c", lambda s: _fails())])  # fmt: skip

    async def main():
        with Journal(tmp_path / "j.db") as journal:
            outcome = saga.run({}, journal=journal, run_id="r1")
        go.set()
        await asyncio.sleep(0.2)
        return outcome

    outcome = asyncio.run(main())
    assert outcome.leaked == ("b",) and [d.step for d in outcome.dead_letters] == ["b"]
    with Journal(tmp_path / "j.db") as journal:
        [row] = journal.undos("r1")
        assert row.state == "leaked" and DEAD_RAN_ON in (row.error or "")
        assert "refund b fails" in (row.error or "")
    report = recover(Journal(tmp_path / "j.db"), registry)
    assert [w.leaked for w in report.waiting] == [(f"b ({DEAD_RAN_ON})",)]
