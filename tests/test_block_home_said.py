"""attack303 F5: the lines said as an ``AsyncRollback`` left open is ended named an "async
generator" for blocks in none: a task left pending whose coroutine the gc collected (a
notebook's loop, reused), a block entered through an ``AsyncExitStack`` an object owned and
dropped. Each line says what the block was in; its undos run once, as before."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

TASK = textwrap.dedent(
    """
    import asyncio, gc
    from rollback_lessons import AsyncRollback
    undone = []
    async def worker():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: 1, lambda: undone.append("a"))
            await asyncio.Event().wait()
    loop = asyncio.new_event_loop()
    task = loop.create_task(worker())
    loop.run_until_complete(asyncio.sleep(0.05))
    del task
    gc.collect()
    print("undone:", undone)
    loop.close()
    """
)

STACK = textwrap.dedent(
    """
    import asyncio, atexit, gc, contextlib
    from rollback_lessons import AsyncRollback
    undone = []
    atexit.register(lambda: print("undone:", undone))  # (after the package's own scan)
    class Session:
        async def start(self):
            self.stack = contextlib.AsyncExitStack()
            self.rb = await self.stack.enter_async_context(AsyncRollback())
            await self.rb.do("a", lambda: 1, lambda: undone.append("a"))
    async def main():
        session = Session()
        await session.start()
        del session
        gc.collect()
    asyncio.run(main())
    """
)


def _said(script: str, *args: str) -> tuple[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout, [s for s in done.stderr.splitlines() if s.startswith("rollback-lessons")]


def test_a_block_in_a_task_the_gc_collects_says_a_coroutine() -> None:
    out, said = _said(TASK)
    assert out == "undone: ['a']\n" and len(said) == 1, said
    assert "block was ended with no event loop running (its coroutine dropped" in said[0]
    assert "generator" not in said[0], said


def test_a_block_an_exit_stack_held_says_what_entered_it_is_gone() -> None:
    out, said = _said(STACK)  # (ended as the program ends: no generator will)
    assert out == "undone: ['a']\n" and len(said) == 1, said
    assert "block was left open, what entered it gone without ending it" in said[0]
    assert "generator" not in said[0], said


IN_A_GENERATOR = textwrap.dedent(
    """
    import asyncio, contextlib, sys, threading
    from rollback_lessons import AsyncRollback

    async def gen():
        async with contextlib.AsyncExitStack() as stack:
            rb = await stack.enter_async_context(AsyncRollback())
            await rb.do("a", lambda: 1, lambda: print("undo a", flush=True))
            yield 1

    held = []
    loop = asyncio.new_event_loop()

    async def main():
        agen = gen()
        held.append(agen)
        await agen.__anext__()  # (left at its yield)

    if sys.argv[1] == "daemon":
        threading.Thread(target=loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(main(), loop).result()
    else:
        loop.run_until_complete(main())
    print("the script ends", flush=True)
    """
)


@pytest.mark.parametrize("loop", ["stopped", "daemon"])
def test_a_block_an_exit_stack_entered_in_a_generator_is_ended_as_the_program_ends(loop) -> None:
    """attack306 F8: entered through an AsyncExitStack, the block's code was contextlib's, so
    the generator holding it at a yield was never found: no undo, not a word."""
    out, said = _said(IN_A_GENERATOR, loop)
    assert out == "the script ends\nundo a\n" and len(said) == 1, (out, said)
    assert "block was left suspended in an async generator as the program ended" in said[0]
