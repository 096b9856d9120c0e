"""A Ctrl-C at every instant CPython 3.11 hears one in rollback.py during a with-block's
steps and end (attack28 F1, F2; the harness: kbi_instants.py): the block never hangs, the
KeyboardInterrupt is re-raised, and the block ends with an outcome that tells what was done
and undone; only the entry of ``__exit__`` / ``__aexit__`` (and ``__aexit__``'s hand-off of
the rollback to a task) is Python's, as the README says. Every instant in make soak, every
fourth in make test (a_part)."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import SLICE, SOAK

HERE = Path(__file__).parent
MODES = ["fail", "ok", "stepfail", "fail+w", "ok+w", "stepfail+w", "afail", "aok", "afail+w"]


@pytest.mark.parametrize("mode", MODES)
def test_a_ctrl_c_at_any_instant_of_a_blocks_steps_and_end(mode):
    every = 1 if SOAK else 4
    offset = (SLICE + zlib.crc32(mode.encode())) % every
    done = subprocess.run(
        [sys.executable, str(HERE / "kbi_instants.py"), mode, str(every), str(offset)],
        cwd=HERE, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["total"] >= 14 and found["tried"], found  # (the harness fired)
    assert found["problems"] == [], "\n".join(found["problems"])
