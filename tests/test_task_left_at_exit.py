"""attack303 F7: a block in an async generator suspended at an ``await`` (not a ``yield``) in
a task of a loop that stopped (a notebook's cell cut as the generator's step awaited), the
program then ending: the line said "its undos run", and none ran, ever (the generator's
``aclose`` is refused while it awaits; Python's shutdown closes only the task's coroutine).
Now the task is cancelled at the program's end, on a loop of its own: the block rolls back
as on any cancel, its undos once; with a journal none run there, said, recover runs them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from rollback_lessons import AsyncRollback, Registry
    from rollback_lessons.durable.journal import Journal

    journal_at, ending = sys.argv[1], sys.argv[2]
    registry = Registry()
    undo = registry.add("undo", lambda step: print("undo", step, flush=True))
    journal = Journal(journal_at) if journal_at != "-" else None

    async def agen():
        async with AsyncRollback(journal=journal, run_id="r1") as rb:
            for step in ("a", "b"):
                await rb.do(step, lambda: 1,
                            undo.bind(step=step) if journal else lambda s=step: undo(step=s))
            await asyncio.sleep(3600)  # (the loop stops here, never run again)
            yield 1

    async def consumer():
        try:
            async for _ in agen():
                pass
        finally:
            print("the consumer's finally", flush=True)

    loop = asyncio.new_event_loop()
    task = loop.create_task(consumer())
    loop.run_until_complete(asyncio.sleep(0.05))
    if ending == "closed":
        loop.close()
    print("the script ends", flush=True)
    """
)


@pytest.mark.parametrize("ending", ["stopped", "closed"])
@pytest.mark.parametrize("journalled", [False, True])
def test_a_task_awaiting_in_a_blocks_generator_is_cancelled_as_the_program_ends(
    tmp_path, ending, journalled
) -> None:
    at = str(tmp_path / "j.db") if journalled else "-"
    done = subprocess.run([sys.executable, "-c", CHILD, at, ending], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    head = (
        "rollback-lessons: saga 'r1': its AsyncRollback block was left suspended in an async "
        "generator awaiting in a task as the program ended, its event loop stopped"
    )
    assert "Traceback" not in done.stderr, done.stderr
    if journalled:  # (left as it was: asyncio says its task was destroyed pending)
        assert done.stdout.startswith("the script ends\n") and "undo" not in done.stdout, done
        assert said == [
            f"{head}; none of its undos ran (not known to be undone: b, a): the journal keeps "
            "it unfinished, and recover runs them"
        ], done.stderr
        return
    assert done.stdout.splitlines() == [
        "the script ends", "undo b", "undo a", "the consumer's finally"
    ], done  # fmt: skip
    assert "destroyed" not in done.stderr, done.stderr  # (its coroutine ended: not pending)
    assert said == [f"{head}: its task is cancelled now, its undos run on an event loop of their "
                    "own (end the block before the program exits)"], done.stderr  # fmt: skip


ROLLING = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from rollback_lessons import AsyncRollback

    calls, ready = [], threading.Event()

    async def step(i):
        calls.append(f"do{i}")
        await asyncio.sleep(0.03)
        if i == 3:
            raise RuntimeError("s3 fails")

    def undo2():
        calls.append("undo2 begins")
        ready.set()
        time.sleep(1.0)
        calls.append("undo2 ends")

    async def block():
        async with AsyncRollback() as rb:
            await rb.do("s1", lambda: step(1), lambda: calls.append("undo1"))
            await rb.do("s2", lambda: step(2), undo2, undo_timeout=3.0)
            await rb.do("s3", lambda: step(3))

    def ctrl_c():
        ready.wait(5)
        for _ in range(int(sys.argv[1])):
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()

    async def main():
        asyncio.create_task(block())
        await asyncio.sleep(0.15)  # (main returns as undo2 runs: asyncio.run's end)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("raised: KeyboardInterrupt")
    print("calls:", calls, flush=True)
    """
)


@pytest.mark.parametrize("ctrl_cs", [1, 2])
def test_a_rollback_cut_as_asyncio_runs_end_ran_it_is_named_whatever_ends_the_program(ctrl_cs):
    """attack305 F4: one Ctrl-C as ``asyncio.run``'s end rolled a block back (its task's),
    a second as the program ended: the line naming the undos never run (s2, s1) was lost,
    said only when Python's shutdown closed the task (``arun``'s is said at the end: kept)."""
    done = subprocess.run([sys.executable, "-c", ROLLING, str(ctrl_cs)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "raised: KeyboardInterrupt" in done.stdout and "undo1" not in done.stdout, done
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    named = [s for s in said if "the undos not known to be done (s2, s1)" in s]
    assert len(named) == 1 and "are kept nowhere (no journal)" in named[0], done.stderr
    assert "Task was destroyed" not in done.stderr, done.stderr  # (told once: attack305 F2)


ARUN_ROLLING = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from rollback_lessons import Saga, Step

    calls, started = [], threading.Event()

    def boom(state):
        raise RuntimeError("s3 fails")

    async def slow(n):
        calls.append(f"undo{n} begins")
        started.set()
        await asyncio.sleep(1)
        calls.append(f"undo{n} ends")

    saga = Saga([Step("s1", lambda st: calls.append("do1"), lambda st: slow(1)),
                 Step("s2", lambda st: calls.append("do2"), lambda st: slow(2)),
                 Step("s3", boom)])

    def ctrl_c():
        started.wait(5)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()

    async def main():
        asyncio.create_task(saga.arun({}))
        await asyncio.sleep(0.05)  # (main returns as the saga rolls back)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("raised: KeyboardInterrupt")
    print("calls:", calls, flush=True)
    """
)


def test_an_arun_cut_as_asyncio_runs_end_rolled_it_back_is_told_once() -> None:
    """attack305 F2: one Ctrl-C as ``asyncio.run``'s end ran an ``arun``'s rollback (its
    task left running as main returned): the package's line named the undos never done,
    and asyncio's own "Task was destroyed but it is pending!", twice, with the tasks'
    reprs, said it again, raw: now the line alone."""
    done = subprocess.run([sys.executable, "-c", ARUN_ROLLING], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert "raised: KeyboardInterrupt" in done.stdout and "undo1 ends" not in done.stdout, done
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    assert len(said) == 1 and "(not known to be undone: s2, s1)" in said[0], done.stderr
    assert done.stderr.strip() == said[0], done.stderr


TWO_GENERATORS = textwrap.dedent(
    """
    import asyncio
    from rollback_lessons import AsyncRollback

    calls, blocks = [], []

    async def interrupting():
        calls.append("A.undo2")
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def slow():
        calls.append("B.undo2 begins")
        await asyncio.sleep(0.2)

    async def gen(tag, undo2):
        async with AsyncRollback() as rb:
            blocks.append(rb)
            undo1 = lambda: calls.append(tag + ".undo1")
            await rb.do("s1", lambda: calls.append(tag + ".do1"), undo1)
            await rb.do("s2", lambda: calls.append(tag + ".do2"), undo2)
            yield 1

    async def main():
        ga, gb = gen("A", interrupting), gen("B", slow)
        async for _ in ga:
            break
        async for _ in gb:
            break

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("raised: KeyboardInterrupt")
    print("calls:", calls, flush=True)
    """
)


def test_a_second_generators_rollback_cut_by_the_firsts_interrupt_is_told_by_one_line() -> None:
    """attack305 F1: the first generator's undo raises KeyboardInterrupt as asyncio.run's
    end closes both: the second's rollback is cut (its undo of s2 begun, s1's never run), its
    line names s2, s1; asyncio's own "Task was destroyed but it is pending!" for the engine's
    task said it again, raw (the one for asyncio's own close of it, printed as asyncio.run
    closes its loop, before any code of the package's runs, stays)."""
    done = subprocess.run([sys.executable, "-c", TWO_GENERATORS], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "raised: KeyboardInterrupt" in done.stdout and "B.undo1" not in done.stdout, done
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    assert len(said) == 1 and "the undos not known to be done (s2, s1)" in said[0], done.stderr
    assert "EngineTask" not in done.stderr, done.stderr


HELD = textwrap.dedent(
    """
    import asyncio, os, signal, threading, time
    from rollback_lessons import AsyncRollback

    calls, ready, held = [], threading.Event(), []

    async def undo1():
        calls.append("undo1 begins")
        ready.set()
        await asyncio.sleep(0.5)

    async def undo2():
        calls.append("undo2 begins")
        await asyncio.sleep(0.3)

    async def block():
        async with AsyncRollback() as rb:
            held.append(rb)  # (kept in a global)
            await rb.do("s1", lambda: calls.append("do1"), undo1)
            await rb.do("s2", lambda: calls.append("do2"), undo2)
            raise RuntimeError("s3 fails")

    def ctrl_c():
        ready.wait(5)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    def flusher():  # (a daemon thread of this module: Python's shutdown keeps its globals)
        while True:
            time.sleep(0.05)

    threading.Thread(target=ctrl_c, daemon=True).start()

    async def main():
        threading.Thread(target=flusher, daemon=True).start()
        held.append(asyncio.create_task(block()))
        await asyncio.sleep(0.05)  # (main returns as undo2 runs)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("raised: KeyboardInterrupt")
    print("calls:", calls, flush=True)
    """
)


def test_a_rollback_cut_as_the_program_ends_is_named_though_a_daemon_thread_holds_it() -> None:
    """attack305 F7: the block and its task kept in globals, a daemon thread of the script's
    running: Python's shutdown never closed the task (the module's globals stay), so the line
    it would say never came: the undos never run named nowhere, exit 0. Said at the end."""
    done = subprocess.run([sys.executable, "-c", HELD], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout.splitlines() == [
        "raised: KeyboardInterrupt", "calls: ['do1', 'do2', 'undo2 begins', 'undo1 begins']"
    ], done  # fmt: skip
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    assert len(said) == 1 and "was left rolling back as the program ended" in said[0], said
    assert "the undos not known to be done (s2, s1) are kept nowhere" in said[0], said


LOCKED = textwrap.dedent(
    """
    import asyncio
    from rollback_lessons import AsyncRollback

    lock = asyncio.Lock()

    async def gen():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: 1, lambda: print("undo a", flush=True))
            await asyncio.sleep(1000)  # (awaiting, not at a yield)
            yield 1

    async def consumer():
        try:
            async for _ in gen():
                pass
        finally:
            print("the consumer's finally", flush=True)
            async with lock:  # (held by a task of the old loop, never run again)
                print("never", flush=True)

    async def holder():
        async with lock:
            await asyncio.sleep(1000)

    loop = asyncio.new_event_loop()

    async def cell():
        globals().update(held=asyncio.ensure_future(holder()),
                         task=asyncio.ensure_future(consumer()))
        await asyncio.sleep(0.1)

    loop.run_until_complete(cell())
    print("the script ends", flush=True)
    """
)


def test_the_code_past_the_block_in_a_cancelled_task_is_not_run_to_a_hang() -> None:
    """attack306 F4: the task cancelled at the program's end rolled its block back, then ran
    on into its own finally, which awaited a lock a task of the old loop held: the exit hung
    for ever, unsaid (a Ctrl-C then said the undos still ran). The task is driven until its
    blocks are over; the rest is Python's shutdown's to close."""
    done = subprocess.run([sys.executable, "-c", LOCKED], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["the script ends", "undo a", "the consumer's finally"], done
