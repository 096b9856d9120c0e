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
        assert said == [f"{head}; none of its undos ran: the journal keeps it unfinished, and "
                        "recover runs them"], done.stderr  # fmt: skip
        return
    assert done.stdout.splitlines() == [
        "the script ends", "undo b", "undo a", "the consumer's finally"
    ], done  # fmt: skip
    assert "destroyed" not in done.stderr, done.stderr  # (its coroutine ended: not pending)
    assert said == [f"{head}: its task is cancelled now, its undos run on an event loop of their "
                    "own (end the block before the program exits)"], done.stderr  # fmt: skip
