"""``AsyncRollback``: a Ctrl-C inside asyncio's ``call_soon`` as its rollback task's end
wakes ``__aexit__`` (the wake's handle never queued) lost that wake once every undo was done:
asyncio.run's end cancelled the block's task, which waited for ever on a future already done
(attack65 F7). Now the wake is queued again: the KeyboardInterrupt leaves asyncio.run, with
the outcome, the rollback whole."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = r"""
import asyncio, sys
from rollback_lessons import AsyncRollback

function = sys.argv[1]
WAKES = ("_inner_done_callback", "ended")  # (asyncio.shield's then, the engine's own now)
log = []


def under_a_wake(frame):
    for _ in range(4):
        frame = frame.f_back
        if frame is None or frame.f_code.co_name in WAKES:
            return frame is not None
    return False


def tracer(frame, event, arg):
    if event == "call" and frame.f_code.co_name == function and "undo a" in log:
        if under_a_wake(frame):
            sys.settrace(None)
            raise KeyboardInterrupt
    return None


rb = AsyncRollback()


async def main():
    async with rb:
        await rb.do("a", lambda: log.append("effect a"), lambda: log.append("undo a"))
        await rb.do("b", lambda: log.append("effect b"), lambda: log.append("undo b"))
        raise RuntimeError("the block fails")


try:
    sys.settrace(tracer)
    asyncio.run(main())
except KeyboardInterrupt as exc:
    sys.settrace(None)
    outcome = getattr(exc, "outcome", None)
    print("KI", outcome is not None and outcome.status, rb.outcome.status, log)
"""


@pytest.mark.parametrize("function", ["call_soon", "_check_closed", "_call_soon", "get_debug"])
def test_a_ctrl_c_as_the_rollbacks_end_wakes_the_block_never_hangs(function: str) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, function], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"asyncio.run never ended (a Ctrl-C at {function} lost the wake)")
    out = done.stdout.strip()
    assert out == "KI rolled_back rolled_back ['effect a', 'effect b', 'undo b', 'undo a']", (
        out + done.stderr[-2000:]
    )
