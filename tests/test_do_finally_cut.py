"""An interrupt inside ``do``'s ``finally`` (after the step returned, before it freed its
claim to run) left the block's end waiting for a step "still running" that was its own:
``Rollback`` hung for ever (only a second Ctrl-C got out), ``AsyncRollback`` too (attack114
F1). A hook that raises (a tracer, a debugger) lands there, as a signal handler of a later
Python may: the block now sees the claim is its own thread's (its own task's), ends, undoes
the step and re-raises. Each line of the ``finally`` in turn, in a child process (a hang
fails the test, never the suite)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = r"""
import asyncio, inspect, sys
from rollback_lessons import AsyncRollback, Rollback

mode, nth = sys.argv[1], int(sys.argv[2])
block = AsyncRollback if mode == "async" else Rollback
code = block.do.__code__
lines, first = inspect.getsourcelines(block.do)
after = first + next(i for i, l in enumerate(lines) if l.strip().startswith("finally:"))
world, seen = [], []

def tracer(frame, event, arg):
    if frame.f_code is not code:
        return None
    def local(frame, event, arg):
        if event == "line" and frame.f_lineno > after and world == ["a"]:
            seen.append(frame.f_lineno)
            if len(seen) == nth:
                sys.settrace(None)
                raise KeyboardInterrupt
        return local
    return local

async def main():
    async with AsyncRollback() as rb:
        await rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
        await rb.do("b", lambda: world.append("b"), lambda: world.append("undo b"))

sys.settrace(tracer)
try:
    if mode == "async":
        asyncio.run(main())
    else:
        with Rollback() as rb:
            rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
            rb.do("b", lambda: world.append("b"), lambda: world.append("undo b"))
    print("NO CUT", world)
except KeyboardInterrupt:
    print("CUT", world, len(seen) == nth)
"""


@pytest.mark.parametrize("nth", [1, 2])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_interrupt_in_dos_finally_never_hangs_the_block(mode, nth):
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(nth)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    out = done.stdout.strip()
    if out.startswith("NO CUT"):  # (fewer lines than nth in that finally: none to cut)
        assert nth > 1, out
        return
    assert out == "CUT ['a', 'undo a'] True", (out, done.stderr[-2000:])
