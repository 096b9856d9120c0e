"""A second Ctrl-C under ``asyncio.run`` while an async undo runs (attack40 F4): the loop stops
and ``asyncio.run`` cancels every task left, the engine's rollback too, then runs the loop until
they end. The rollback was cut mid-undo, the undos after it never ran and, for ``saga.arun``,
the KeyboardInterrupt said nothing of them. Now the rollback runs to its end first (the undo
cut is made again: undos are idempotent) and the KeyboardInterrupt says how it ended and
carries the outcome."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from rollback_lessons import AsyncRollback, Saga, Step

    said = []

    async def act(n):
        return None

    async def undo(n):
        said.append(f"undo {n}")
        if n == "s1" and said.count("undo s1") == 1:  # two Ctrl-Cs as it runs
            loop = asyncio.get_running_loop()
            for delay in (0.05, 0.15):
                loop.call_later(delay, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.5)
        said.append(f"{n} undone")

    box = {}

    async def main():
        if sys.argv[1] == "block":
            rb = box["rb"] = AsyncRollback()
            async with rb:
                for n in ("s0", "s1", "s2"):
                    await rb.do(n, lambda n=n: act(n), lambda n=n: undo(n))
                raise RuntimeError("the block fails")
        saga = Saga([Step(n, lambda state, n=n: act(n), lambda state, n=n: undo(n))
                     for n in ("s0", "s1", "s2", "s3")])
        await saga.arun({}, inject={"s3": "fail"})

    try:
        asyncio.run(main())
    except KeyboardInterrupt as exc:
        outcome = getattr(exc, "outcome", None)
        print("notes:", getattr(exc, "__notes__", None))
        print("outcome:", outcome.status, list(outcome.compensated), list(outcome.pending))
    print("said:", said)
    """
)


@pytest.mark.parametrize("how", ["block", "arun"])
def test_a_second_ctrl_c_under_asyncio_run_lets_the_rollback_end_first(how):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, how], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["outcome"] == "rolled_back ['s2', 's1', 's0'] []"
    assert "rolled back: the rollback ran to its end first (rolled_back)" in lines["notes"]
    said = eval(lines["said"])  # the world's own record
    assert said[-3:] == ["s1 undone", "undo s0", "s0 undone"] and said.count("undo s1") == 2
