"""A signal handler's ``asyncio.current_task().cancel()`` in an undo (the engine's task it runs
in) cuts the undo short, in doubt, as a Ctrl-C does: the rest pending, the CancelledError
raised with the outcome. attack134 found it lost where another cancel came first: the
undo's own timeout cancelling it at that instant (F1: a dead letter, the next undo run, the
cut undo retried by a policy), or the async block's own task cancelled during its rollback
(a TaskGroup's sibling failing, ``asyncio.timeout``, the task's handle: F2, the private
``LoopEnded`` raised, "asyncio.run ended the loop"; F3 with a journal, the cut undo run again
in the run and the outcome ``rolled_back``). Every signal here is real, raised by the undo."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollback_lessons import AsyncRollback, RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

WORLD: list[str] = []
HOME: list[asyncio.Task] = []
FIRST: list[str] = []  # (what cancels the block first, as b's undo begins)
SIBLING: list[asyncio.Event] = []


@pytest.fixture(autouse=True)
def _handlers() -> Iterator[None]:
    """SIGALRM: the handler cancels the task it lands in; SIGUSR1: the block's own task."""
    WORLD.clear()
    HOME.clear()
    FIRST.clear()
    before = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGALRM, lambda *_: asyncio.current_task().cancel())  # type: ignore
    signal.signal(signal.SIGUSR1, lambda *_: HOME[0].cancel())
    yield
    signal.signal(signal.SIGALRM, before[0])
    signal.signal(signal.SIGUSR1, before[1])


async def _act(name: str) -> str:
    await asyncio.sleep(0)
    WORLD.append(f"do {name}")
    return name


async def _undo_cut_at_its_timeout(name: str) -> None:
    """b's undo has its effect, then outlives its timeout: as the timeout's cancel lands,
    the signal's handler cancels the undo's task too."""
    await asyncio.sleep(0)
    WORLD.append(f"undo {name}")
    if name == "b":
        try:
            await asyncio.sleep(5)
        finally:
            signal.raise_signal(signal.SIGALRM)


def _raised(main: Callable[[], object]) -> BaseException:
    async def run() -> BaseException:
        HOME.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await main()  # type: ignore[misc]
        except BaseException as exc:
            return exc
        raise AssertionError("nothing raised")

    return asyncio.run(run())


@pytest.mark.parametrize("timeout", ["undo_timeout", "policy halt", "policy dead_letter"])
def test_a_cut_as_an_undo_s_timeout_lands_is_a_cut_never_its_failure(timeout: str) -> None:
    """F1: a dead letter "took longer than its timeout", the next undo run, the cancel lost;
    under a policy the cut undo was made again (``undo b`` twice)."""
    kw: dict = {"undo_timeout": 0.05}
    policy: object = "continue"
    if timeout != "undo_timeout":
        then = timeout.split()[1]
        kw, policy = {}, UndoPolicy(RetryPolicy(max_attempts=2, timeout=0.05), then=then)
    steps = [Step(n, lambda s, n=n: _act(n), lambda *a, n=n, **k: _undo_cut_at_its_timeout(n),
                  **kw) for n in "ab"]  # fmt: skip
    steps.append(Step("c", lambda s: _act_fails(), None))
    raised = _raised(lambda: Saga(steps, policy=policy).arun({}))  # type: ignore[arg-type]
    assert type(raised) is asyncio.CancelledError
    outcome = raised.outcome  # type: ignore[attr-defined]
    assert outcome.status == "halted" and outcome.pending == ("b", "a")
    assert not outcome.dead_letters
    assert WORLD == ["do a", "do b", "undo b"]  # (once; a's not run)


async def _act_fails() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("c refuses")


def test_an_async_block_s_undo_cut_as_its_timeout_lands_leaves_the_rest_pending() -> None:
    """F1 in ``AsyncRollback``: the block's RuntimeError raised, b a dead letter, a undone."""
    box: list[AsyncRollback] = []

    async def block() -> None:
        async with AsyncRollback() as rb:
            box.append(rb)
            for n in "ab":
                await rb.do(n, lambda n=n: _act(n), lambda n=n: _undo_cut_at_its_timeout(n),
                            undo_timeout=0.05)  # fmt: skip
            raise RuntimeError("block failed")

    raised = _raised(block)
    assert type(raised) is asyncio.CancelledError
    assert box[0].outcome.status == "halted" and box[0].outcome.pending == ("b", "a")
    assert WORLD == ["do a", "do b", "undo b"]


async def _undo_after_the_block_was_cancelled(step: str) -> None:
    """b's undo: the block's task is cancelled first (``FIRST``), then, after b's effect, a
    real SIGALRM's handler cancels the undo's own task."""
    cutting = step == "b" and bool(FIRST)
    if cutting and FIRST[0] == "the block's handle":
        signal.raise_signal(signal.SIGUSR1)
    elif cutting and FIRST[0] == "a TaskGroup":
        SIBLING[0].set()  # (the sibling fails, the group cancels the block's task)
    elif cutting:
        await asyncio.sleep(0.2)  # (the block's asyncio.timeout expires)
    await asyncio.sleep(0)
    WORLD.append(f"undo {step}")
    if cutting:
        signal.raise_signal(signal.SIGALRM)
    await asyncio.sleep(0)


UNDO = Registry().add("undo_after", _undo_after_the_block_was_cancelled)


async def _block(box: list[AsyncRollback]) -> None:
    async with AsyncRollback() as rb:
        box.append(rb)
        for n in "ab":
            await rb.do(n, lambda n=n: _act(n), UNDO.bind(step=n))
        raise RuntimeError("block failed")


@pytest.mark.parametrize("first", ["the block's handle", "asyncio.timeout", "a TaskGroup"])
def test_a_cut_after_the_block_s_own_cancel_is_the_block_s(first: str) -> None:
    """F2: the private LoopEnded raised (in the TaskGroup's group), "asyncio.run ended the
    loop while the saga ran": the block's CancelledError, b and a pending."""
    box: list[AsyncRollback] = []
    FIRST[:] = [first]

    async def main() -> None:
        if first == "asyncio.timeout":
            async with asyncio.timeout(0.05):
                await _block(box)
        elif first == "a TaskGroup":
            SIBLING[:] = [asyncio.Event()]

            async def sibling() -> None:
                await SIBLING[0].wait()
                raise ValueError("sibling failed")

            async with asyncio.TaskGroup() as group:
                group.create_task(_block(box))
                group.create_task(sibling())
        else:
            await _block(box)

    raised = _raised(main)
    if first == "a TaskGroup":
        assert type(raised) is ExceptionGroup
        assert [type(e) for e in raised.exceptions] == [ValueError]
    else:
        assert type(raised) is asyncio.CancelledError
    outcome = box[0].outcome
    assert outcome.status == "halted" and outcome.pending == ("b", "a")
    assert "interrupted by CancelledError during the undo of b" in outcome.notes[0]
    assert WORLD == ["do a", "do b", "undo b"]


CHILD = """
import asyncio, json, signal, sys
from rollback_lessons import AsyncRollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

world = open(sys.argv[2], "a", buffering=1)
home = []
signal.signal(signal.SIGALRM, lambda *_: asyncio.current_task().cancel())
signal.signal(signal.SIGUSR1, lambda *_: home[0].cancel())


async def undo(step):
    if step == "b":
        signal.raise_signal(signal.SIGUSR1)  # (the block's task cancelled)
    await asyncio.sleep(0)
    world.write(f"undo {step}\\n")
    if step == "b":
        signal.raise_signal(signal.SIGALRM)  # (then the undo's own: b's cut)
    await asyncio.sleep(0)


UNDO = Registry().add("undo_it", undo)
box = []


async def main():
    home.append(asyncio.current_task())
    async with AsyncRollback(journal=Journal(sys.argv[1]), run_id="r1") as rb:
        box.append(rb)
        for n in "ab":
            await rb.do(n, lambda n=n: world.write(f"do {n}\\n"), UNDO.bind(step=n))
        raise RuntimeError("block failed")


try:
    asyncio.run(main())
except asyncio.CancelledError:
    outcome = box[0].outcome
    print(json.dumps([outcome.status, list(outcome.pending)]))
"""


def test_with_a_journal_the_cut_undo_is_left_to_recover_never_run_twice(tmp_path: Path) -> None:
    """F3: the cut undo of b run again in the run, the outcome ``rolled_back``, the cut
    reported nowhere. Left pending in the journal (the run's process ended: recover takes
    it), recover undoes b (again, by its key, as the README says of a cut undo) and a, once."""
    import json
    import subprocess
    import sys

    path, world = tmp_path / "j.db", tmp_path / "world"
    (tmp_path / "child.py").write_text(CHILD)
    ran = subprocess.run([sys.executable, tmp_path / "child.py", path, world],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert json.loads(ran.stdout) == ["halted", ["b", "a"]], ran.stderr
    assert world.read_text().split("\n") == ["do a", "do b", "undo b", ""]

    def undo_it(step: str) -> None:
        with world.open("a") as file:
            file.write(f"undo {step}\n")

    registry = Registry()
    registry.add("undo_it", undo_it)
    [done] = recover(Journal(path), registry).recovered
    assert (done.status, list(done.compensated)) == ("rolled_back", ["b", "a"])
    assert not recover(Journal(path), registry).recovered
    assert world.read_text().split("\n") == ["do a", "do b", "undo b", "undo b", "undo a", ""]


@pytest.mark.parametrize("then", ["dead_letter", "halt"])
def test_an_async_rollback_cancelled_as_an_undo_waits_to_retry_says_what_is_left(then):
    """attack148 F3: a task cancel as b's failed undo waited to retry (the rollback goes on,
    shielded, to its end): ``arun``'s CancelledError carried the notes of what was left, an
    ``AsyncRollback``'s none (only the block's error, its context, had them)."""
    policy = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.2, max_delay=0.2), then=then)

    def steps(task):
        def broken(state=None):
            asyncio.get_running_loop().call_later(0.05, task.cancel)  # (in the wait)
            raise RuntimeError("undo b broke")

        def failed(state=None):
            raise ValueError("F failed")

        return [("a", lambda s=None: None, lambda s=None: None), ("b", lambda s=None: None, broken),
                ("F", failed, None)]  # fmt: skip

    async def block():
        rb = AsyncRollback(policy=policy)
        async with rb:
            for name, do, undo in steps(asyncio.current_task()):
                await rb.do(name, do, undo)

    async def arun():
        made = steps(asyncio.current_task())
        return await Saga([Step(*s) for s in made], name="w", policy=policy).arun({})

    said = {}
    for name, main in (("block", block), ("arun", arun)):
        with pytest.raises(asyncio.CancelledError) as raised:
            asyncio.run(main())
        said[name] = raised.value.__notes__
    assert said["block"] == said["arun"]
    assert any(("dead letter" if then == "dead_letter" else "left for a person") in note
               for note in said["block"])  # fmt: skip
