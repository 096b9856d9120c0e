"""attack164 F3: a run resumed by a launch and stopped at once. DBOS had not yet begun it
again (queued), so the stop left it CANCELLED with no record here: ``StoppedUnrecorded``,
"check by hand", though every step it did was on the file (5 of 5). Stopped as it replayed
what DBOS saved, the record missed those steps: b's undo, done and saved, said pending (a
person sent to refund it twice). ``stop()`` now waits for the replay; a bare
``DBOS.cancel_workflow`` heard in a replay is said as such, never a record missing work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("dbos_relaunch_stop.py")


def _phase(db: Path, world: Path, phase: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parent.parent)}  # (this checkout's package)
    return subprocess.run([sys.executable, str(SCRIPT), str(db), str(world), phase],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def _killed_in_the_rollback(tmp_path: Path) -> tuple[Path, Path]:
    db, world = tmp_path / "dbos.sqlite", tmp_path / "world.txt"
    first = _phase(db, world, "first")
    assert first.returncode == -9, first.stderr[-2000:]  # (SIGKILL, as a's undo began)
    assert world.read_text().splitlines() == [
        "first: did a",
        "first: did b",
        "first: did c",
        "first: undone b",
    ]
    return db, world


@pytest.mark.parametrize("phase", ["stop", "bare"])
def test_a_run_stopped_as_a_launch_resumes_it_never_misses_what_it_did(tmp_path, phase):
    db, world = _killed_in_the_rollback(tmp_path)
    then = _phase(db, world, phase)
    assert then.returncode == 0, then.stderr[-2000:]
    told = json.loads(then.stdout.strip().splitlines()[-1])
    assert "Traceback" not in then.stderr and "ERROR" not in then.stderr, then.stderr  # 166 F3
    undone = {line.split()[-1] for line in world.read_text().splitlines() if "undone" in line}
    if phase == "bare":  # (heard on a step DBOS had saved: said, nothing false)
        assert "as a launch replayed what DBOS had saved of it" in told["raised"]
        assert undone == {"b"}
        return
    assert "raised" not in told, told  # (its record: what the file and this launch did)
    assert "b" not in told["pending"] and set(told["compensated"]) == undone
    assert set(told["pending"]) | undone == {"a", "b"}


def test_a_stop_as_a_launch_goes_on_with_an_action_a_dead_one_began_leaves_it_in_doubt(tmp_path):
    """attack166 F2: killed in c's action (its intent saved), the launch that took the run up
    heard a cancel at c's next step: "c was not run" (its action was never called), though
    the dead process had called it. In doubt now: leaked, never said not run."""
    db, world = tmp_path / "dbos.sqlite", tmp_path / "world.txt"
    first = _phase(db, world, "first-in-c")
    assert first.returncode == -9 and world.read_text().splitlines()[-1] == "first-in-c: did c"
    then = _phase(db, world, "at-c")
    assert then.returncode == 0, then.stderr[-2000:]
    told = json.loads(then.stdout.strip().splitlines()[-1])
    assert "Traceback" not in then.stderr and "ERROR" not in then.stderr, then.stderr  # 166 F3
    assert told["status"] == "halted" and told["leaked"] == ["c"], told
    assert not any("c was not run" in note for note in told["notes"]), told
