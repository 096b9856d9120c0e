"""attack302 F6: an event loop running in a daemon thread (a service's, a kernel's), a block
left suspended in an async generator on it as the program ends: the loop never closes it (it
dies with the program), and the atexit scan skipped a loop that "runs": no undo, not a word.
Now the generator is closed on that loop, waited for (no journal: the undos run there, their
only chance, said first; a journal: none run, said, recover runs them); a loop too busy to take
the close within ``TAKEN`` seconds is said, and the exit goes on."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    import rollback_lessons._late_threads as late
    from rollback_lessons import AsyncRollback, Registry
    from rollback_lessons.durable.journal import Journal

    journal_at, busy = sys.argv[1], sys.argv[2] == "busy"
    late.TAKEN = 0.5
    registry = Registry()

    def undone(step):
        print("undo", step, flush=True)
        if sys.argv[2] == "undo-ctrl-c":  # (it ends the loop's thread: never waited for)
            raise KeyboardInterrupt

    undo = registry.add("undo", undone)
    journal = Journal(journal_at) if journal_at != "-" else None
    kept = []

    async def gen():
        async with AsyncRollback(journal=journal, run_id="r1") as rb:
            await rb.do("a", lambda: 1, undo.bind(step="a") if journal else lambda: undo(step="a"))
            yield 1
            yield 2

    async def main():
        agen = gen()
        async for _ in agen:
            break
        kept.append(agen)  # (held: never collected, never closed)

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(main(), loop).result()
    if busy:
        loop.call_soon_threadsafe(time.sleep, 30)  # (its thread blocked as the program ends)
        time.sleep(0.1)
    print("the script ends", flush=True)
    """
)


@pytest.mark.parametrize("journalled", [False, True])
def test_a_block_left_on_a_daemon_threads_loop_is_ended_there(tmp_path, journalled) -> None:
    at = str(tmp_path / "j.db") if journalled else "-"
    done = subprocess.run([sys.executable, "-c", CHILD, at, "idle"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    head = ("rollback-lessons: saga 'r1': its AsyncRollback block was left suspended in an async "
            "generator as the program ended, its event loop left running in another thread (a "
            "daemon's, ended with the program)")  # fmt: skip
    if journalled:
        assert done.stdout == "the script ends\n", done
        assert said == [
            f"{head}; none of its undos ran (not known to be undone: a): the journal keeps "
            "it unfinished, and recover runs them"
        ], done.stderr
    else:
        assert done.stdout == "the script ends\nundo a\n", done
        assert said == [f"{head}: it is ended now, its undos run on that loop (end the block "
                        "before the program exits)"], done.stderr  # fmt: skip


def test_a_daemon_loop_too_busy_to_close_it_is_said_and_the_exit_goes_on() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "-", "busy"], capture_output=True, text=True, timeout=20
    )  # fmt: skip (its thread sleeps 30 s)
    assert done.returncode == 0 and done.stdout == "the script ends\n", done
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    assert said[-1] == (
        "rollback-lessons: saga 'r1': its event loop did not take the close within 0.5 s: none "
        "of its undos ran (not known to be undone: a), kept nowhere"
    ), done.stderr


def test_an_undo_ending_the_daemon_loops_thread_is_said_and_the_exit_goes_on() -> None:
    """attack306 F5: an undo raising KeyboardInterrupt as the block closed on its daemon
    loop ended that loop's thread: the close was waited for for ever, the exit hung."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "-", "undo-ctrl-c"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stdout == "the script ends\nundo a\n", done
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    assert said[1:] == [  # (the thread's own end is Python's to report: its excepthook; its
        # rollback over as the loop stopped, its end said once, attack310 F6)
        "rollback-lessons: saga 'r1' ended halted there (kept nowhere): not known to be undone: a",
    ], done.stderr


TASK = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    from rollback_lessons import AsyncRollback, Registry
    from rollback_lessons.durable.journal import Journal

    registry = Registry()
    undo = registry.add("undo", lambda step: print("undo", step, flush=True))
    journal = Journal(sys.argv[1]) if sys.argv[1] != "-" else None

    async def background():  # (a service's background work: awaiting as the program ends)
        async with AsyncRollback(journal=journal, run_id="r1") as rb:
            for step in ("a", "b"):
                await rb.do(step, lambda: 1,
                            undo.bind(step=step) if journal else lambda s=step: undo(step=s))
            await asyncio.sleep(3600)

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    loop.call_soon_threadsafe(lambda: globals().update(task=loop.create_task(background())))
    time.sleep(0.3)
    print("the script ends", flush=True)
    """
)


@pytest.mark.parametrize("journalled", [False, True])
def test_a_block_in_a_daemon_loops_task_is_ended_there(tmp_path, journalled) -> None:
    """attack306 F7: a block open in a task of a loop still running in a daemon thread (a
    service's background work), awaiting as the program ends: lost, not a word. The task is
    cancelled on its loop, waited for: its undos run there (a journal: none, said)."""
    at = str(tmp_path / "j.db") if journalled else "-"
    done = subprocess.run([sys.executable, "-c", TASK, at], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]
    head = (
        "rollback-lessons: saga 'r1': its AsyncRollback block was left open in a task of an event "
        "loop running in another thread as the program ended (a daemon's, ended with the program)"
    )
    if journalled:
        assert done.stdout == "the script ends\n", done
        assert said == [
            f"{head}; none of its undos ran (not known to be undone: b, a): the journal keeps "
            "it unfinished, and recover runs them"
        ], done.stderr
        return
    assert done.stdout == "the script ends\nundo b\nundo a\n", done
    assert said == [
        f"{head}: its task is cancelled now, its undos run on that loop (end the block before "
        "the program exits)"
    ], done.stderr
