"""Sagas as DBOS workflows (DBOS Transact on a SQLite system database, in this process):
every single fault of the lesson worlds ends as in process; a policy of one's own decides
in the workflow; a process killed in the middle of the compensation and launched again
finishes the saga, each undo applied once (checked on the world's own record)."""

import logging
import threading

import pytest
from conftest import HaltOnAnythingButTimeouts, every_single_fault_ends_the_same, same_outcome

from rollback_lessons import Status
from rollback_lessons.errors import InvalidPipelineError
from rollback_lessons.runners import Runner, hosted
from rollback_lessons.runners.dbos import DBOSRunner, DBOSUnavailable
from rollback_lessons.worlds.crashlab import compare_worlds, crash_on_dbos, world_report
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


def test_every_single_fault_of_the_lesson_sagas_ends_the_same_on_dbos(dbos_runner):
    before = set(hosted.RUNS)  # another module's runs in this worker are not this test's
    seen = every_single_fault_ends_the_same(dbos_runner.run)
    assert {Status.COMMITTED, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE} <= seen
    assert set(hosted.RUNS) <= before  # each run released when it ended
    assert isinstance(dbos_runner, Runner)


def test_a_policy_of_ones_own_decides_in_the_workflow(dbos_runner):
    faults = {"step3": "fail", "step2": "undo_fails"}
    policy = HaltOnAnythingButTimeouts()
    remote = dbos_runner.run(xyz_saga(), xyz_state(), inject=faults, policy=policy)
    same_outcome(xyz_saga().run(xyz_state(), inject=faults, policy=policy), remote)
    assert remote.status is Status.HALTED and remote.pending == ("step2", "step1")


def test_a_halted_saga_waits_for_a_persons_answer(dbos_runner):
    inject = {"step3": "fail", "step1": "undo_fails_once"}
    handle = dbos_runner.start_saga(xyz_saga(), xyz_state(), inject=inject, policy="halt",
                                    halt_wait=30)  # fmt: skip
    waited = threading.Event()
    for _ in range(600):
        if handle.pending() == ["step1"]:
            waited.set()
            break
        waited.wait(0.05)
    assert waited.is_set()
    with pytest.raises(InvalidPipelineError, match="not one of: retry, fixed, leave"):
        handle.resolve("shrug")
    handle.resolve("retry")
    outcome = handle.outcome()
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("step2", "step1")


def test_dbos_is_one_per_process_and_quiet(dbos_runner, caplog):
    with pytest.raises(DBOSUnavailable, match="already runs in this process"):
        DBOSRunner.start()
    assert logging.getLogger("dbos").getEffectiveLevel() >= logging.WARNING


def test_killed_mid_compensation_and_launched_again_it_finishes_each_undo_once(tmp_path):
    """Two sagas in a process of their own; the second fails at step 3 and is killed
    (SIGKILL) after the undo of step 2, before it was checkpointed. DBOS, launched again on
    the same file, runs that undo again (harmless: it changes nothing the second time),
    then the undo of step 1."""
    crash = crash_on_dbos(tmp_path, sagas=2, fail_every=2, pause_at="after undo step2",
                          prefix="next")  # fmt: skip
    assert crash.killed == "after undo step2"
    assert crash.statuses == ("committed", "rolled_back")
    report = world_report(crash.world)
    assert report["undo_applied"] == [("next-2", "step1"), ("next-2", "step2")]  # once each
    assert report["undo_calls"] == [
        ("next-2", "step3", 0),  # logged before step 3, which failed first: nothing to undo
        ("next-2", "step2", 1),
        ("next-2", "step2", 0),  # [killed] run again on relaunch: changes nothing
        ("next-2", "step1", 1),
    ]
    assert [e for e in report["effects"] if e[0] == "next-1"] == [
        ("next-1", "step1", 0), ("next-1", "step2", 0), ("next-1", "step3", 0),
    ]  # fmt: skip
    assert "undone, 2 undo calls" in compare_worlds({"DBOS": crash.world})
