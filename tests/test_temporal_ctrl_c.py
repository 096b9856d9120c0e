"""A Ctrl-C under ``asyncio.run`` while ``TemporalRunner.run`` waits (attack42 F11): the caller's
task is cancelled, and the saga was not: every effect stood, the KeyboardInterrupt said nothing,
and on the runner's own (in-memory) dev server ``close`` then took the only record. Now the
saga is cancelled in its turn and awaited to its end (it compensates), as ``saga.arun``'s is,
and the CancelledError (the KeyboardInterrupt's context) carries the outcome."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    world = []

    def act(name):
        def action(state):
            if name == "s2":  # one Ctrl-C as it runs
                threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
                time.sleep(1.0)
            world.append(f"did {name}")
        return action

    def undo(name):
        return lambda state: world.append(f"undid {name}")

    saga = Saga([Step(n, act(n), undo(n)) for n in ("s0", "s1", "s2", "s3")], name="ctrl-c")

    async def main():
        async with await TemporalRunner.start(sys.argv[1]) as runner:
            await runner.run(saga, {}, inject={"s3": "fail"})

    try:
        asyncio.run(main())
    except KeyboardInterrupt as exc:
        outcome = getattr(exc.__context__, "outcome", None)
        print("outcome:", outcome.status.value, list(outcome.compensated))
    print("world:", world)
    """
)


def test_a_ctrl_c_while_a_temporal_run_waits_cancels_the_saga_and_it_compensates(on_temporal):
    async def address(shared):
        return shared.address

    done = subprocess.run(
        [sys.executable, "-c", CHILD, on_temporal(address)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["outcome"] == "cancelled ['s2', 's1', 's0']"
    assert eval(lines["world"]) == [
        "did s0", "did s1", "did s2", "undid s2", "undid s1", "undid s0",
    ]  # fmt: skip
