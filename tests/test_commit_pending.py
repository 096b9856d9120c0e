"""A write that did not land takes its statements back out of the pending ones, whatever
instant a Ctrl-C or an exit lands at (attack72 F2, F3; the harness: pending_instants.py).
The commit's statements were queued before the ``try`` that takes them out: cut there, its
event's insert went with each write of the rollback, which reused its seq (each failed
"UNIQUE constraint failed", the journal stayed running, recover undid every step again), or
its ``committed`` went with the rollback's first write (a crash then left a committed saga
that recover never undid)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DRIVERS = ["run", "graph", "arun", "rb", "arb"]


def problems(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / "pending_instants.py"), *args],
        cwd=HERE, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_once_the_commits_event_is_queued_leaves_it_out_of_the_rollbacks_writes(
    driver,
):
    """F2: without the fix recover ran c, b and a a second time, on every driver."""
    found = problems(driver, "kbi", "event")
    assert found["problems"] == [], found


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_once_the_commits_status_is_queued_never_writes_it(driver):
    """F3: without the fix the rollback's first write said committed: a crash right after
    it left a saga committed that its run rolled back, which recover never undid."""
    found = problems(driver, "kbi", "end")
    assert found["problems"] == [], found


@pytest.mark.parametrize(
    "driver, exc", [*((d, "kbi") for d in DRIVERS), ("run", "exit"), ("arb", "exit")]
)
def test_an_interrupt_at_any_instant_of_the_commits_write(driver, exc):
    """Each instant of records.py while the commit is written (about 37), then a crash after
    each later write, or the process's end, then recover: every effect undone exactly once,
    or the saga committed with nothing undone, as the run said. Without the fix 17 of 44
    instants failed on every driver, with a Ctrl-C or a SystemExit alike."""
    found = problems(driver, exc)
    assert found["total"] >= 30 and len(found["tried"]) == found["total"], found
    assert found["problems"] == [], "\n".join(found["problems"])


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("first", ["second", "full"])
def test_the_commits_statements_leave_the_pending_ones_whatever_cuts_their_clean_up(first, driver):
    """attack75 F2: the commit's write fails (a Ctrl-C at its entry, or a full disk), then a
    Ctrl-C at each instant CPython hears one at after that. Without the fix the clean-up's
    comprehension and generator (functions: their starts are such instants) were cut: the
    commit's statements stayed pending, every write of the rollback failed UNIQUE, and
    recover undid c, b and a a second time (5 instants of 35, on every driver)."""
    found = problems(driver, "kbi", first)
    assert found["armed"] and len(found["tried"]) == found["total"], found
    assert found["problems"] == [], "\n".join(found["problems"])
