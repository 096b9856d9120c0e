"""A Ctrl-C that cuts a with-block's rollback (heard at an event of the rollback: under
``asyncio.run`` a second one) is re-raised once the rollback stopped, and carries the
outcome as ``saga.arun``'s does (attack283 F1: ``error.outcome`` was missing on
``AsyncRollback``'s, though the README says the KeyboardInterrupt raised after carries it;
``rb.outcome`` and the notes were right)"""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Step


def ctrl_c_at(*instants: str):
    def observer(event) -> None:
        if f"{event.kind.value}:{event.step}" in instants:
            raise KeyboardInterrupt  # (as a Ctrl-C heard in the observer)

    return observer


INSTANTS = ("undo:s2",)  # (the rollback stops there: s2 and s1 left pending)


def test_an_async_with_blocks_ctrl_c_carries_its_outcome():
    undone: list[str] = []

    async def undo(name: str) -> None:
        undone.append(name)

    async def block() -> AsyncRollback:
        rb = AsyncRollback(on_event=ctrl_c_at(*INSTANTS))
        with pytest.raises(KeyboardInterrupt) as caught:
            async with rb:
                for name in ("s1", "s2"):
                    await rb.do(name, lambda: None, lambda n=name: undo(n))
                raise RuntimeError("block fails")
        assert rb.outcome is not None
        assert getattr(caught.value, "outcome", None) is rb.outcome
        return rb

    rb = asyncio.run(block())
    assert rb.outcome is not None and rb.outcome.status == "halted"
    assert (rb.outcome.pending, undone) == (("s2", "s1"), [])


def test_a_with_blocks_ctrl_c_carries_its_outcome():
    undone: list[str] = []
    rb = Rollback(on_event=ctrl_c_at(*INSTANTS))
    with pytest.raises(KeyboardInterrupt) as caught, rb:
        for name in ("s1", "s2"):
            rb.do(name, lambda: None, lambda n=name: undone.append(n))
        raise RuntimeError("block fails")
    assert rb.outcome is not None and rb.outcome.status == "halted"
    assert getattr(caught.value, "outcome", None) is rb.outcome
    assert (rb.outcome.pending, undone) == (("s2", "s1"), [])


def test_saga_aruns_ctrl_c_carries_the_same():
    steps = [Step(n, lambda s: None, lambda s: None) for n in ("s1", "s2", "s3")]
    saga = Saga(steps, on_event=ctrl_c_at(*INSTANTS))
    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(saga.arun({}, inject={"s3": "fail"}))
    outcome = caught.value.outcome  # type: ignore[attr-defined]
    assert (outcome.status, outcome.pending) == ("halted", ("s2", "s1"))


FIRST_CTRL_C = """
import asyncio, os, signal, threading
from rollback_lessons import AsyncRollback, Saga, Step

async def slow(*_):
    await asyncio.sleep(5)

async def block():
    async with AsyncRollback() as rb:
        await rb.do("a", lambda: None, lambda: None)
        await rb.do("b", slow)

for main in (lambda: Saga([Step("a", lambda s: None, lambda s: None),
                         Step("b", lambda s: slow())]).arun({}),
             block):
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        asyncio.run(main())
    except KeyboardInterrupt as e:
        outcome = getattr(e.__context__, "outcome", None)
        print(type(e.__context__).__name__, outcome.status if outcome else None)
"""


def test_a_first_ctrl_c_under_asyncio_run_leaves_the_outcome_on_its_context():
    """(attack284's observation, as the README now says it: asyncio.run raises its own
    KeyboardInterrupt; saga.arun's CancelledError, its ``__context__``, carries the outcome.)"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FIRST_CTRL_C], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.splitlines() == ["CancelledError cancelled", "CancelledError None"], done
