"""A Ctrl-C at every instant CPython 3.11 hears one in rollback.py during a with-block's
steps and end (attack28 F1, F2; the harness: kbi_instants.py): the block never hangs, the
KeyboardInterrupt is re-raised, and the block ends with an outcome that tells what was done
and undone; only the entry of ``__exit__`` / ``__aexit__`` is Python's, as the README says
(``__aexit__``'s hand-off of the rollback to a task too, until harden46: no outcome). Every
instant, in make test too:
about 260 trials, 2 CPU s, most of it the nine interpreters' start (every fourth cost 1.9);
the four threaded modes and the real signals (attack32) add about 130 trials and 200."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MODES = ["fail", "ok", "stepfail", "fail+w", "ok+w", "stepfail+w", "afail", "aok", "afail+w"]
# (attack32 F1, F2) the block's end waits for a step of another thread, the Ctrl-C in the
# main one: the step's (the block in a worker) or the block's; threading's instants too
MODES += ["mainstep-ok", "mainstep-fail", "blockwait-ok", "blockwait-fail"]


@pytest.mark.parametrize("mode", MODES)
def test_a_ctrl_c_at_any_instant_of_a_blocks_steps_and_end(mode):
    done = subprocess.run(
        [sys.executable, str(HERE / "kbi_instants.py"), mode, "1", "0"],
        cwd=HERE, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["total"] >= 12 and len(found["tried"]) == found["total"], found
    assert found["problems"] == [], "\n".join(found["problems"])


@pytest.mark.parametrize("shape", ["mainstep", "blockwait"])
def test_a_real_signal_as_a_step_of_another_thread_ends_never_hangs_the_block(shape):
    """attack32 F1 as found: a real signal heard as a Ctrl-C (SIGALRM, its handler
    ``default_int_handler``) 1..40 us after the other thread's step had its effect, 100
    trials: the block always ends with an outcome naming that effect (done, undone or
    leaked), and what reaches the block is the KeyboardInterrupt. Before the wait was a
    bare lock, about one mainstep trial in five hung (a wake lost in ``Event.set``)."""
    done = subprocess.run(
        [sys.executable, str(HERE / "kbi_instants.py"), "signals", shape, "100"],
        cwd=HERE, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found == {"tried": 100, "problems": []}, "\n".join(found["problems"])


def test_threads_racing_for_a_step_one_runs_at_a_time_and_every_claim_is_freed():
    """The claim that replaced the lock (attack28 F2), for many threads: a step runs alone
    (the others refused before their action, one line), every claim is freed as its ``do``
    ends, and the block's end, waiting for the last, never hangs."""
    import threading

    from rollback_lessons import Rollback, StepStillRunning

    inside, most, refused, ran = [0], [0], [], []
    gate = threading.Barrier(8)

    def action(i: int) -> int:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        threading.Event().wait(0.001)
        inside[0] -= 1
        ran.append(i)
        return i

    def work(rb: Rollback, i: int) -> None:
        gate.wait(30)
        for j in range(20):
            try:
                rb.do(f"s{i}-{j}", lambda i=i: action(i), lambda: None)
            except StepStillRunning:
                refused.append(i)

    rb = Rollback()
    with rb:
        workers = [threading.Thread(target=work, args=(rb, i)) for i in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    assert most[0] == 1 and ran and len(ran) + len(refused) == 160, (most, len(ran))
    assert rb._running == {} and rb.outcome.status.value == "committed"
