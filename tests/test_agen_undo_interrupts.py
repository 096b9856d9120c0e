"""attack302 F4: a block in an async generator that ``asyncio.run``'s end closes (main broke
out of its ``async for``, then returned or raised), whose undo raises KeyboardInterrupt or
calls ``sys.exit``: the caller got it, with the outcome, and then asyncio printed the task's
copy, "Task exception was never retrieved", a raw traceback through the package, at the
program's end. The task closing it is the loop's (its async generator hook): nobody awaits
it, so its copy is not logged; anything else asyncio reports still is."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from rollback_lessons import AsyncRollback

    mode, kind = sys.argv[1:3]
    said = []

    def undo_b():
        said.append("undo b")
        if kind == "ctrl-c":
            raise KeyboardInterrupt
        sys.exit(3)

    async def gen():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: 1, lambda: said.append("undo a"))
            await rb.do("b", lambda: 1, undo_b)
            yield 1
            yield 2

    async def other():
        raise RuntimeError("not awaited by anyone")  # (asyncio reports this one still)

    async def main():
        async for _ in gen():
            break
        if mode == "other":
            asyncio.ensure_future(other())
            await asyncio.sleep(0.01)
        if mode == "raise":
            raise ValueError("main fails")

    try:
        asyncio.run(main())
    except BaseException as exc:
        outcome = exc.outcome
        print("raised:", type(exc).__name__, outcome.status, list(outcome.pending))
    print("said:", said)
    """
)


@pytest.mark.parametrize("kind", ["ctrl-c", "exit"])
@pytest.mark.parametrize("mode", ["return", "raise", "other"])
def test_an_undo_interrupt_in_a_generator_asyncio_closes_is_raised_once(mode, kind):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, kind], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    raised = "KeyboardInterrupt" if kind == "ctrl-c" else "SystemExit"
    assert f"raised: {raised} halted ['b', 'a']" in done.stdout, (done.stdout, done.stderr)
    assert "said: ['undo b']" in done.stdout
    if mode == "other":  # (another task's error is asyncio's to report, as before)
        assert done.stderr.count("never retrieved") == 1, done.stderr
        assert "exception=RuntimeError('not awaited by anyone')" in done.stderr
    else:
        assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr


CUT = textwrap.dedent(
    """
    import asyncio, os, signal, threading
    from rollback_lessons import AsyncRollback

    said = []

    async def undo_b():
        said.append("undo b")
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        await asyncio.sleep(5)
        said.append("b undone")

    async def gen():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: 1, lambda: said.append("undo a"))
            await rb.do("b", lambda: 1, undo_b)
            yield 1

    async def main():
        async for _ in gen():
            break  # (asyncio.run's end closes it: its rollback runs there)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("raised: KeyboardInterrupt")
    print("said:", said)
    """
)


def test_a_ctrl_c_as_asyncio_runs_end_rolls_back_names_what_it_left():
    """attack302 F5: one Ctrl-C as ``asyncio.run``'s end runs a rollback (its own handler is
    gone by then: Python's raises it in the loop, which stops) leaves the rest undone, as the
    README's third Ctrl-C; the line said "check them by hand", naming none. It names them."""
    done = subprocess.run([sys.executable, "-c", CUT], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["raised: KeyboardInterrupt", "said: ['undo b']"], done
    said = [line for line in done.stderr.splitlines() if line.startswith("rollback-lessons")]
    assert said == [
        f"rollback-lessons: saga {said[0].split(chr(39))[1]!r}: its AsyncRollback block was "
        "closed (GeneratorExit: its event loop stopped) as its rollback ran; the undos not known "
        "to be done (b, a) are kept nowhere (no journal): check them by hand"
    ], done.stderr


IN_A_TASK = textwrap.dedent(
    """
    import asyncio, os, signal
    from rollback_lessons import AsyncRollback

    said = []

    async def slow():
        said.append("do b")
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        await asyncio.sleep(5)

    async def block():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: said.append("do a"), lambda: said.append("undo a"))
            await rb.do("b", slow, lambda: said.append("undo b"))

    async def main():
        asyncio.create_task(block())  # (a task of its own: main awaits something else)
        await asyncio.sleep(5)

    try:
        asyncio.run(main())
    except KeyboardInterrupt as exc:
        print("raised: KeyboardInterrupt", exc.outcome.status)
    print("said:", said)
    """
)


def test_a_ctrl_c_ending_asyncio_run_as_a_block_runs_in_a_task_of_its_own_is_raised_once():
    """attack305 F3: the block, in a task main did not await, rolled back as asyncio.run ended
    on the Ctrl-C, then ended its task on that very KeyboardInterrupt: logged "Task exception
    was never retrieved", a raw traceback (``arun`` there: nothing). Its task ends cancelled;
    asyncio.run's own KeyboardInterrupt, raised once, carries the outcome."""
    done = subprocess.run(
        [sys.executable, "-c", IN_A_TASK], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.splitlines() == [
        "raised: KeyboardInterrupt rollback_incomplete",
        "said: ['do a', 'do b', 'undo a']",
    ], done
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr


LEFT_RUNNING = textwrap.dedent(
    """
    import asyncio, sys
    from rollback_lessons import AsyncRollback, Saga, Step

    driver, kind = sys.argv[1:3]
    said = []

    def undo_a():
        said.append("undo a")
        raise KeyboardInterrupt if kind == "ctrl-c" else SystemExit(4)

    async def undo_b():
        said.append("undo b begins")
        await asyncio.sleep(5)  # (cut by asyncio.run's end: a dead letter, never again)

    async def block():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: said.append("do a"), undo_a)
            await rb.do("b", lambda: said.append("do b"), undo_b)
            raise RuntimeError("c fails")

    async def arun():
        steps = [Step("a", lambda s: said.append("do a"), lambda s: undo_a()),
                 Step("b", lambda s: said.append("do b"), lambda s: undo_b()),
                 Step("c", lambda s: 1 / 0)]
        await Saga(steps).arun({})

    async def main():
        asyncio.create_task(block() if driver == "block" else arun())  # (nobody awaits it)
        await asyncio.sleep(0.05)  # (main returns as undo b runs)

    try:
        asyncio.run(main())
    except BaseException as exc:
        print("raised:", type(exc).__name__, exc.outcome.status, list(exc.outcome.pending))
    print("said:", said)
    """
)


@pytest.mark.parametrize("kind", ["ctrl-c", "exit"])
@pytest.mark.parametrize("driver", ["block", "arun"])
def test_an_undo_interrupt_in_a_rollback_nobody_awaits_is_raised_once(driver, kind):
    """attack305 F5: a run main left in a task of its own rolled back as asyncio.run ended,
    an undo raising KeyboardInterrupt (or sys.exit): the caller got it with its outcome, and
    asyncio logged the task's copy too, "Task exception was never retrieved", raw."""
    done = subprocess.run([sys.executable, "-c", LEFT_RUNNING, driver, kind],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    raised = "KeyboardInterrupt" if kind == "ctrl-c" else "SystemExit"
    assert done.stdout.splitlines() == [
        f"raised: {raised} halted ['a']", "said: ['do a', 'do b', 'undo b begins', 'undo a']"
    ], done  # fmt: skip
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr


OWN = textwrap.dedent(
    """
    import asyncio, sys
    from rollback_lessons import AsyncRollback

    kind = sys.argv[1]
    said = []

    def b():
        raise KeyboardInterrupt if kind == "ctrl-c" else SystemExit(2)

    async def block():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: said.append("do a"), lambda: said.append("undo a"))
            await rb.do("b", b)

    async def main():
        asyncio.create_task(block())
        await asyncio.sleep(1)

    try:
        asyncio.run(main())
    except BaseException as exc:
        print("raised:", type(exc).__name__)
    print("said:", said)
    """
)


@pytest.mark.parametrize("kind", ["ctrl-c", "exit"])
def test_a_blocks_own_interrupt_raised_out_of_a_task_is_told_once(kind):
    """attack306 F3: a block in a task of its own whose step raised KeyboardInterrupt (or
    sys.exit): rolled back, re-raised as it was, and asyncio printed the task's copy too,
    "Task exception was never retrieved", raw (``arun`` there: nothing)."""
    done = subprocess.run([sys.executable, "-c", OWN, kind], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    raised = "KeyboardInterrupt" if kind == "ctrl-c" else "SystemExit"
    assert done.stdout.splitlines() == [f"raised: {raised}", "said: ['do a', 'undo a']"], done
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr
