"""``journal show`` of a saga whose process ended as it ran (a crash): listed ``running``,
nothing said it waits for ``recover`` (attack307): a line under the table says so."""

from __future__ import annotations

import subprocess
import sys

from rollback_lessons.cli import main
from rollback_lessons.durable.journal import Journal

CRASH = """
import os, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal

note = Registry().add("note", lambda name: None)
steps = [Step("a", lambda s: None, note.bind(name="a")), Step("b", lambda s: os._exit(3))]
Saga(steps, name="cr").run({}, journal=Journal(sys.argv[1]), run_id="r1")
"""


def test_a_saga_whose_process_ended_is_shown_left_for_recover(tmp_path, capsys) -> None:
    path = tmp_path / "j.db"
    done = subprocess.run([sys.executable, "-c", CRASH, str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 3, done
    with Journal(path) as journal:  # (a saga of this live process: no such line)
        journal.start("mine", "live")
        assert main(["journal", "show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines[1:3]) == ["live", "r1"], lines
    assert all(line.split()[2] == "running" for line in lines[1:3]), lines
    ended = "r1: running, but the process that ran it has ended: run `recover` on it"
    assert lines[3:] == [ended], lines


def test_a_saga_whose_process_ended_as_it_rolled_back_is_shown_left_for_recover(
    tmp_path, capsys
) -> None:
    """attack312 F1: a crash in an undo (``rolling_back``): no line, as for a live saga."""
    path = tmp_path / "j.db"
    script = CRASH.replace('Step("b", lambda s: os._exit(3))', 'Step("b", lambda s: 1 / 0)')
    script = script.replace("lambda name: None", "lambda name: os._exit(3)")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 3, done
    assert main(["journal", "show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["r1", "cr", "rolling_back"], lines
    assert lines[2:] == [
        "r1: rolling_back, but the process that ran it has ended: run `recover` on it"
    ], lines
