"""Extending the package (README, "Extending"): a new named policy and a new runner, each
added to a copy of the package by touching at most 2 of its files, and each working at once,
in a fresh interpreter that imports the copy: the policy in process and written into a state
machine; the runner, a driver of the machine that runs each task on a thread pool, ending
every single fault of the lesson worlds as in process, and a policy of one's own too."""

import filecmp
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NEW_POLICY = '''

PATIENT = UndoPolicy(RetryPolicy(max_attempts=5, initial_delay=0.01), then="halt")
"""Five attempts, then a person: a named policy, as data."""
POLICIES["patient"] = PATIENT
'''

NEW_RUNNER = '''
"""A runner of one's own: each task on a thread of a pool, the saga machine deciding."""

import uuid
from concurrent.futures import ThreadPoolExecutor

from ..faults import NO_FAULTS, normalize_injection
from ..machine import Machine
from ..operations import Ask, Finished, RunStep, RunUndo, Wait
from ..saga import snapshot
from . import hosted, remote
from .wire import outcome_of, plan_of


class PoolRunner:
    @classmethod
    def start(cls):
        return cls()

    def __init__(self):
        self.pool = ThreadPoolExecutor(2)

    def run(self, saga, state=None, *, inject=None, policy=None):
        faults = normalize_injection(inject, saga.names)
        plan = plan_of(saga, f"{saga.name}-{uuid.uuid4().hex[:8]}", policy=policy)
        world = {} if state is None else state
        before = snapshot(world) if state is not None else None
        m = Machine(plan.undo_policy(), plan=plan.specs(), name=plan.name, run_id=plan.run_id)
        op = m.start()
        while not isinstance(op, Finished):
            if type(op) is RunStep:
                fault = faults.get(op.step, NO_FAULTS).action
                task = self.pool.submit(remote.run_action, saga, op.step, world, fault)
                error = task.result()
                op = m.step_ok() if error is None else m.step_failed(error.to_exception())
            elif type(op) is RunUndo:
                fault = faults.get(op.step, NO_FAULTS).undo
                task = self.pool.submit(
                    remote.run_undo, saga, op.step, world, fault, op.attempt, plan.run_id
                )
                error = task.result()
                op = m.undo_ok() if error is None else m.undo_failed(error.to_exception())
            elif type(op) is Wait:
                op = m.resume()  # (a real engine would wait here)
            elif type(op) is Ask:
                op = m.answer("leave")
        hosted.release(plan.run_id)
        return outcome_of(saga, op.record, before=before, state=state)

    def close(self):
        self.pool.shutdown()
'''

CHECK = """
import sys
sys.path.insert(0, {tests!r})
import rollback_lessons
assert rollback_lessons.__file__.startswith({copy!r}), rollback_lessons.__file__
from conftest import lesson_worlds, same_outcome, single_faults
from rollback_lessons import Saga, Status, Step, UndoPolicy, VirtualClock
from rollback_lessons.runners import Runner
from rollback_lessons.runners.stepfunctions import to_asl
from rollback_lessons.worlds.demo import xyz_saga, xyz_state

# the policy: by its name, in process and in a state machine
halted = xyz_saga().run(xyz_state(), inject={{"step3": "fail", "step1": "undo_fails"}},
                        policy="patient", clock=VirtualClock())
assert halted.status is Status.HALTED, halted
assert [e.details["attempt"] for e in halted.events if e.kind == "undo_failed"] == [1, 2, 3, 4, 5]
undo = to_asl(xyz_saga(), policy="patient")["States"]["Undo step1"]
assert undo["Retry"][-1]["MaxAttempts"] == 4 and undo["Catch"][-1]["Next"].startswith("Ask")

# the runner: a Runner, ending every single fault as in process
from rollback_lessons.runners.pool import PoolRunner

runner = PoolRunner.start()
assert isinstance(runner, Runner)
worlds, checked = lesson_worlds(), 0
for name, inject in single_faults():
    make_saga, make_state = worlds[name]
    local = make_saga().run(make_state(), inject=inject, clock=VirtualClock())
    same_outcome(local, runner.run(make_saga(), make_state(), inject=inject))
    checked += 1


class HaltAlways(UndoPolicy):
    def decide(self, attempt, error):
        return "halt"


mine = runner.run(xyz_saga(), xyz_state(), inject={{"step3": "fail", "step1": "undo_fails"}},
                  policy=HaltAlways())
assert mine.status is Status.HALTED and mine.pending == ("step1",)
runner.close()
print("checked", checked)
"""


def _changed(original: Path, copy: Path) -> list[str]:
    """The files of ``copy`` that differ from ``original``'s, or are new (no caches)."""
    found = []
    for here, _dirs, files in os.walk(copy):
        if "__pycache__" in here:
            continue
        for name in files:
            path = Path(here) / name
            twin = original / path.relative_to(copy)
            if not twin.exists() or not filecmp.cmp(path, twin, shallow=False):
                found.append(str(path.relative_to(copy)))
    return sorted(found)


def test_a_new_policy_and_a_new_runner_each_touch_at_most_two_files(tmp_path):
    package = ROOT / "rollback_lessons"
    copy = tmp_path / "rollback_lessons"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "policies.py", "a") as policies:
        policies.write(NEW_POLICY)
    policy_files = _changed(package, copy)
    (copy / "runners" / "pool.py").write_text(textwrap.dedent(NEW_RUNNER))
    runner_files = [f for f in _changed(package, copy) if f not in policy_files]
    assert policy_files == ["policies.py"] and runner_files == ["runners/pool.py"]
    check = CHECK.format(tests=str(ROOT / "tests"), copy=str(copy))
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 40
