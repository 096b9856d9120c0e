"""attack181 F1: a ``recover`` cut (a Ctrl-C a service or a notebook catches) while a call of
an undo it made runs on (past its timeout, in its helper thread) gave its claim back at once:
the saga's row said its owner dead and no claim, so a ``recover`` in another process took
it and made b's undo again beside that call (two refunds at once). Kept now, as a run keeps
a saga a call of which runs on, until the process ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("recover_left_running.py")


def _phase(journal: Path, world: Path, phase: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parent.parent)}  # (this checkout's package)
    return subprocess.run([sys.executable, str(SCRIPT), str(journal), str(world), phase],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_a_recover_cut_while_its_undo_runs_on_keeps_the_saga_from_another_process(tmp_path):
    journal, world = tmp_path / "j.db", tmp_path / "world.txt"
    first = _phase(journal, world, "first")
    assert first.returncode == -9, first.stderr[-2000:]
    cut = _phase(journal, world, "cut")
    assert cut.returncode == 0, cut.stderr[-2000:]
    lines = cut.stdout.splitlines()
    assert lines[:2] == ["recover cut", "claim True"], cut.stdout
    assert lines[2].startswith("other 0 recovered 0 skipped 1"), cut.stdout
    assert "or kept by it while a call of an undo it left running may still land" in lines[2]
    undone = [line for line in world.read_text().splitlines() if "undone" in line]
    assert undone == ["cut: undone b"], world.read_text()  # (once: its late call's)
