"""A Ctrl-C while ``DBOSRunner.run`` waits on its run (a group's branches, a step's wait to
retry: DBOS's threads, not this one): the run is DBOS's, left unfinished on the file for a
later launch, but the KeyboardInterrupt said nothing of it (attack42 F11). Now its note says
so, and where; the launch it names finishes the run, each undo once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading
    from rollback_lessons import Parallel, RetryPolicy, Saga, Step
    from rollback_lessons.runners.dbos import DBOSRunner

    path, how = sys.argv[1], sys.argv[2]
    world = open(path + ".world", "a")

    def note(text):
        world.write(text + "\\n"); world.flush()

    def act(n):
        def action(state):
            note(f"did {n}")
        return action

    def undo(n):
        return lambda state: note(f"undid {n}")

    def s1(state):  # refuses, nothing done; a Ctrl-C comes while it waits to retry
        if how == "run":
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        raise ValueError("refused, nothing done")

    retry = RetryPolicy(max_attempts=2, initial_delay=1.5)
    saga = Saga([Step("s0", act("s0"), undo("s0")),
                 Parallel(Step("s1", s1, undo("s1"), retry=retry),
                          Step("s2", act("s2"), undo("s2")))], name="t")
    with DBOSRunner.start(path, sagas={"t": lambda run_id: saga}) as runner:
        if how == "run":
            try:
                runner.run(saga, {}, run_id="t1")
            except KeyboardInterrupt as exc:
                print("notes:", exc.__notes__)
        else:  # (the launch that goes on with it)
            print("record:", runner.record("t1").status.value)
    """
)


def _child(path, how: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(line.split(": ", 1) for line in done.stdout.splitlines())


def test_a_ctrl_c_while_a_dbos_run_waits_says_it_is_left_for_a_launch_there(tmp_path):
    path = tmp_path / "d.sqlite"
    said = _child(path, "run")
    assert f"'t1' is left unfinished on {path}: a launch there" in said["notes"]
    assert _child(path, "launch")["record"] == "rolled_back"
    world = (tmp_path / "d.sqlite.world").read_text().splitlines()
    assert world.count("undid s0") == 1 and "did s0" in world
    assert all(world.count(f"undid {n}") == world.count(f"did {n}") for n in ("s0", "s2"))
