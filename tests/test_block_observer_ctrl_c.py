"""attack205 F1: a Ctrl-C raised by an observer as a block's step failure was told: the
block's outcome said the step failed with the KeyboardInterrupt (its own error only the
interrupt's context); ``saga.arun`` kept the step's error and raised the Ctrl-C after."""

import asyncio

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

UNDONE: list[str] = []
registry = Registry()


@compensation("observer_ctrl_c.undo", registry)
def _undo(step: str, idempotency_key: str | None = None) -> None:
    UNDONE.append(step)


def _told(event) -> None:
    if event.kind == "step_failed" and event.step == "e":
        raise KeyboardInterrupt("a Ctrl-C as e's failure is told")


def _boom() -> None:
    raise RuntimeError("boom e")


@pytest.mark.parametrize("journal", [False, True])
def test_a_ctrl_c_told_with_a_steps_failure_leaves_that_failure_the_blocks_error(tmp_path, journal):
    UNDONE.clear()
    a, e = _undo.bind(step="a"), _undo.bind(step="e")

    def opened(name: str):
        return Journal(tmp_path / f"{name}.db") if journal else None

    saga = Saga([Step("a", lambda s: None, a), Step("e", lambda s: _boom(), e)], on_event=_told)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(saga.arun({}, journal=opened("arun"), run_id="r1"))
    rb = Rollback(journal=opened("sync"), on_event=_told, run_id="r1")
    with pytest.raises(KeyboardInterrupt), rb:
        rb.do("a", lambda: None, a)
        rb.do("e", _boom, e)
    arb = AsyncRollback(journal=opened("async"), on_event=_told, run_id="r1")

    async def block() -> None:
        async with arb:
            await arb.do("a", lambda: None, a)
            await arb.do("e", _boom, e)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(block())
    for name, outcome in (("Rollback", rb.outcome), ("AsyncRollback", arb.outcome)):
        assert outcome.failed_step == "e" and repr(outcome.error) == "RuntimeError('boom e')", (
            name, outcome.error)  # fmt: skip
        assert outcome.status.value == "rolled_back", (name, outcome)
    assert UNDONE == ["a", "a", "a"]
