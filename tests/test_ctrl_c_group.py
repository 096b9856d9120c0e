"""attack51 F5: a terminal sends its Ctrl-C to the whole foreground process group (Jupyter's
interrupt too: ``killpg``). The server a runner starts (Temporal's dev server, a
``moto_server``) was in that group, so the same Ctrl-C stopped it, and the compensation the
README promises had no server: Temporal's run ended ``ServerLost``, everything in effect.
Each child here runs in a session of its own and sends SIGINT to its whole group while b's
action runs, as a terminal does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

GROUP_CTRL_C = """
import os, signal, threading, time
from rollback_lessons import Saga, Step

world = []

def act(name):
    def action(state):
        if name == "b":  # one Ctrl-C to the whole group, as a terminal sends it
            threading.Timer(0.3, os.killpg, (os.getpgid(0), signal.SIGINT)).start()
            time.sleep(1.0)
        world.append(f"did {name}")
    return action

saga = Saga([Step(n, act(n), lambda s, n=n: world.append(f"undid {n}")) for n in "abc"],
            name="group")
"""

TEMPORAL = GROUP_CTRL_C + textwrap.dedent(
    """
    import asyncio
    from rollback_lessons.runners.temporal import TemporalRunner

    async def main():
        async with await TemporalRunner.start() as runner:
            await runner.run(saga, {})

    try:
        asyncio.run(main())
    except KeyboardInterrupt as exc:
        outcome = getattr(exc.__context__, "outcome", None)
        print("outcome:", outcome.status.value, list(outcome.compensated))
    print("world:", world)
    """
)

MOTO_SERVER = GROUP_CTRL_C + textwrap.dedent(
    """
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    try:
        with StepFunctionsRunner.start("moto_server") as runner:
            runner.run(saga, {}, timeout=60)
    except KeyboardInterrupt as exc:
        print("notes:", getattr(exc, "__notes__", []))
    print("world:", world)
    """
)


def _child(code: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        start_new_session=True,  # its own group: the Ctrl-C it sends is its alone
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(line.split(": ", 1) for line in done.stdout.splitlines())


def test_a_terminals_ctrl_c_leaves_temporals_dev_server_to_compensate():
    """``runner.run``'s saga is cancelled and compensated on the dev server, which the Ctrl-C
    no longer stops (was: ServerLost, a and b in effect)."""
    lines = _child(TEMPORAL)
    assert lines["outcome"] == "cancelled ['b', 'a']"
    assert eval(lines["world"]) == ["did a", "did b", "undid b", "undid a"]


def test_a_terminals_ctrl_c_leaves_the_moto_server_to_undo_what_was_done():
    """The Ctrl-C cuts b's action (in this thread): b fails for good, a is undone on the
    moto_server, then it is raised (was: StepFunctionsError, the server gone, a in effect)."""
    lines = _child(MOTO_SERVER)
    assert eval(lines["world"]) == ["did a", "undid a"]
    assert eval(lines["notes"]) == ["rollback: not undone (no undo logged for it): b"]
