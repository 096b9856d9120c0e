"""DBOS: a write of DBOS's own that fails mid-run (a step's result not saved: a disk full)
ends the workflow ERROR, which DBOS never resumes. The run says so in one line
(``WorkflowFailed``, DBOS's error its cause) naming what is done and not undone, from the
saga machine; a relaunch on the same file says the same (attack78 F5)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy
from conftest import world_saga
from dbos._sys_db import SystemDatabase

from rollback_lessons.runners.dbos import DBOSRunner, WorkflowFailed


def _full(sql: bool) -> Exception:
    """A full disk: as the OS says it, or as SQLite says it through SQLAlchemy (whose error,
    pickled, is rebuilt from its arguments and loses its notes: attack83 F3)."""
    if sql:
        full = sqlite3.OperationalError("database or disk is full")
        return sqlalchemy.exc.OperationalError("INSERT INTO operation_outputs", {}, full)
    return OSError(28, "No space left on device")


def _disk_full_at(monkeypatch: pytest.MonkeyPatch, k: int, sql: bool = False) -> None:
    """DBOS's k-th save of a step's result fails, as SQLite on a full disk would."""
    real, calls = SystemDatabase.record_operation_result, [0]

    def record(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == k:
            raise _full(sql)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SystemDatabase, "record_operation_result", record)


@pytest.mark.parametrize("sql", [False, True], ids=["os", "sqlalchemy"])
@pytest.mark.parametrize(
    ("graph", "k", "left"),
    [
        (False, 2, "may have happened, not undone: a"),  # (a's end not saved)
        (False, 3, "done, not undone: a"),  # (b's intent not saved: b never called)
        (True, 4, "done, not undone: a; may have happened, not undone: b"),
    ],
)
def test_a_failed_write_of_dbos_says_what_is_in_effect_then_and_at_a_relaunch(
    tmp_path, monkeypatch, caplog, graph, k, left, sql
):
    world: list[str] = []
    saga, db = world_saga(world, graph), str(tmp_path / "dbos.sqlite")
    _disk_full_at(monkeypatch, k, sql)
    with DBOSRunner.start(db) as runner, pytest.raises(WorkflowFailed) as got:
        runner.run(saga, {})
    said = str(got.value)
    causes, cause = [], got.value.__cause__
    while cause is not None:
        causes.append(type(cause))
        cause = cause.__cause__
    assert type(_full(sql)) in causes and "\n" not in said
    assert said.endswith(f"), which DBOS never resumes; {left} (have a person check and "
                         "undo them by hand)")  # fmt: skip
    run_id = said.split("'")[1]
    assert said.startswith(f"saga {run_id!r} ended ERROR in DBOS ({type(_full(sql)).__name__}(")
    ran = list(world)
    monkeypatch.undo()  # (the disk has room again)
    with caplog.at_level("WARNING", logger="rollback_lessons"):
        runner = DBOSRunner.start(db, sagas={"eng": lambda rid: saga})
    with runner:  # (closed whatever fails: a runner left open fails every later DBOS test)
        logged = [r.getMessage() for r in caplog.records if r.name == "rollback_lessons"]
        assert logged == [said]
        assert runner.failed == {run_id: said} and runner.waiting() == {}
        with pytest.raises(WorkflowFailed) as again:
            runner.handle_for(saga, run_id).outcome()
        assert str(again.value) == said
        with pytest.raises(WorkflowFailed) as read:
            runner.record(run_id)
        assert str(read.value) == said
    assert world == ran  # (nothing resumed, nothing undone twice)


def _write_fails(monkeypatch: pytest.MonkeyPatch, workflow: str, function: str) -> None:
    """DBOS's save of ``function``'s result in workflow ``workflow`` fails, once: the disk
    is full at that write."""
    real, failed = SystemDatabase._record_operation_result_txn, []

    def record(self, result, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not failed and (result["workflow_uuid"], result["function_name"]) == (
            workflow,
            function,
        ):
            failed.append(True)
            raise _full(True)
        return real(self, result, *args, **kwargs)

    monkeypatch.setattr(SystemDatabase, "_record_operation_result_txn", record)


def test_a_branch_at_once_whose_child_workflow_ended_error_is_heard_not_waited_for(
    tmp_path, monkeypatch
):
    """attack83 F4: at_once, a child workflow (one attempt of a step) whose own write failed
    ends ERROR and never tells the saga it ended: the saga waited for ever, a done, nothing
    said. Its end is looked for now: in doubt (it may have happened), the rest undone."""
    world: list[str] = []
    _write_fails(monkeypatch, "r1:1", "rollback_lessons.action")  # (a's end, not saved)
    with DBOSRunner.start(str(tmp_path / "dbos.sqlite")) as runner:
        outcome = runner.run(world_saga(world, graph=True), {}, run_id="r1", at_once=True)
    assert world == ["do a"]  # done, then nothing: its end unknown to the saga
    assert outcome.status.value == "rollback_incomplete" and outcome.completed == ()
    assert outcome.leaked == ("a",) and outcome.failed_step == "a"
    assert "a child workflow, ended ERROR in DBOS (OperationalError(" in str(outcome.error)


def test_a_child_workflow_that_ended_error_prints_no_traceback_and_its_error_is_one_line(
    tmp_path, monkeypatch, capfd, caplog
):
    """attack87's F2: DBOS logged its own 60-line traceback of the child workflow that ended
    ERROR ("Exception encountered in background workflow") on stderr, beside the run's
    one-line outcome. Its saga hears it and says it: kept off stderr, as DBOS's other logs
    are; the Outcome's error one line."""
    import logging

    world: list[str] = []
    _write_fails(monkeypatch, "r1:1", "rollback_lessons.action")  # (a's end, not saved)
    with caplog.at_level(logging.ERROR, logger="dbos"):
        with DBOSRunner.start(str(tmp_path / "dbos.sqlite")) as runner:
            outcome = runner.run(world_saga(world, graph=True), {}, run_id="r1", at_once=True)
    assert outcome.leaked == ("a",)
    err = capfd.readouterr().err
    assert "Exception encountered in background workflow" not in err and "Traceback" not in err
    assert not [r for r in caplog.records if "background workflow" in r.getMessage()]
    assert "\n" not in str(outcome.error), str(outcome.error)


def test_the_saga_ended_error_names_the_branches_its_children_may_have_done(tmp_path, monkeypatch):
    """attack83 F5: at_once, the saga's own write failed while a branch's child had done
    its step, its message unheard: the line said "nothing done is left in effect"."""
    world: list[str] = []
    _write_fails(monkeypatch, "r1", "DBOS.recv")  # (the saga's wait for a's end)
    with (
        DBOSRunner.start(str(tmp_path / "dbos.sqlite")) as runner,
        pytest.raises(WorkflowFailed) as got,
    ):
        runner.run(world_saga(world, graph=True), {}, run_id="r1", at_once=True)
    assert world == ["do a"]
    assert str(got.value).endswith(
        "which DBOS never resumes; may have happened, not undone: a (have a person check and "
        "undo them by hand)"
    )


def test_a_branch_whose_child_workflow_dbos_cancels_is_heard_in_doubt(tmp_path):
    """attack89 F5: ``DBOS.cancel_workflow`` of an at_once branch's child workflow (its own
    id, ``<run id>:<n>``): it never told the saga it ended, and the saga waited for ever."""
    import threading
    import time

    from dbos import DBOS

    from rollback_lessons import Parallel, Saga, Step

    world: list[str] = []

    def step(name: str, sleep: float = 0.0, fails: bool = False) -> Step:
        def act(state):
            time.sleep(sleep)
            if fails:
                raise RuntimeError(f"{name} refused")
            world.append(f"do {name}")

        return Step(name, act, lambda s: world.append(f"undo {name}"))

    saga = Saga([step("a"), Parallel(step("b", sleep=4.0), step("x")), step("c", fails=True)])

    def cancel_the_slow_child() -> None:
        for _ in range(300):
            time.sleep(0.02)
            kids = [w.workflow_id for w in DBOS.list_workflows(status="PENDING")
                    if w.workflow_id.startswith("r1:")]  # fmt: skip
            if len(kids) == 1 and "do x" in world:  # (x's child ended: b's alone runs)
                DBOS.cancel_workflow(kids[0])
                return

    with DBOSRunner.start(str(tmp_path / "dbos.sqlite")) as runner:
        threading.Thread(target=cancel_the_slow_child, daemon=True).start()
        outcome = runner.run(saga, {}, run_id="r1", at_once=True)
    for _ in range(200):  # (b's action runs on in this process until its sleep ends: a DBOS
        if "do b" in world:  # launched meanwhile, by the next test on this worker, is
            break  # refused, ci78)
        time.sleep(0.05)
    time.sleep(0.5)  # (its child then stops at its next step)
    assert outcome.status.value == "rollback_incomplete" and outcome.leaked == ("b",)
    assert "ended CANCELLED in DBOS" in str(outcome.error)
    assert world[:2] == ["do a", "do x"] and "undo x" in world and "undo a" in world
