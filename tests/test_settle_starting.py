"""attack291 F2: a Ctrl-C or SIGTERM as ``journal settle`` starts (the package loading, its
first handler in place) said only "interrupted (Ctrl-C)", where a settle's line says
whether the saga is settled (README): none is then."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

SITE = """
import os, sys

class Interrupting:  # (the signal lands as the package loads: after its first module)
    def find_spec(self, name, path=None, target=None):
        if name == "rollback_lessons.errors":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), int(os.environ["SIGNAL_AT_START"]))
        return None

sys.meta_path.insert(0, Interrupting())
"""


@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")],
)
@pytest.mark.parametrize("command", ["settle", "show"])
def test_a_signal_as_the_command_starts_says_whether_a_settle_was_written(
    tmp_path, signum, status, said, command
):
    (tmp_path / "sitecustomize.py").write_text(SITE)
    env = {**os.environ, "SIGNAL_AT_START": str(int(signum)),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path[1:]])}  # fmt: skip
    args = ["journal", "settle", str(tmp_path / "j.db"), "r1", "--note", "refunded by hand"]
    if command == "show":
        args = ["journal", "show", str(tmp_path / "j.db")]
    done = subprocess.run([sys.executable, "-m", "rollback_lessons", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    line = f"rollback-lessons: interrupted ({said})"
    if command == "settle":
        line += " before the settle was written: nothing was settled"
    assert (done.returncode, done.stderr) == (status, line + "\n"), done
    assert not (tmp_path / "j.db").exists()
