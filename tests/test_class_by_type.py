"""An error read by its type, never by ``__class__`` (which ``isinstance`` asks, and an error
may make raise, or lie): issue 25's audit (harden50), after ``errors.interrupts`` and
``machine.fail`` (f310193). A Ctrl-C whose ``__class__`` raises or says ValueError is a
Ctrl-C; an error whose ``__class__`` says ConnectionError is not retried as one; and the
lab's result panel tells such an error. Before: in process the Ctrl-C was taken for a clean
failure (``rolled_back``, b's effect unreported, nothing raised) or replaced by
ValueError('no class'); the retry policy retried the liar, or the run failed with
ValueError('no class') instead of its error; the panel raised ValueError."""

from __future__ import annotations

import pytest

from rollback_lessons import RetryPolicy, Saga, Step
from rollback_lessons.lab.panel_html import result_html
from rollback_lessons.runners.stepfunctions.matched import _Rule


class SlyInterrupt(KeyboardInterrupt):
    @property
    def __class__(self):  # type: ignore[override]
        raise ValueError("no class")


class LyingInterrupt(KeyboardInterrupt):
    __class__ = ValueError  # type: ignore[assignment]


class SlyError(ValueError):
    @property
    def __class__(self):  # type: ignore[override]
        raise ValueError("no class")


class LyingError(ValueError):
    __class__ = ConnectionError  # type: ignore[assignment]


def _saga(kind: type[BaseException], where: str, world: list[str], retry=None) -> Saga:
    def b(state):
        world.append("do b")
        if where == "step":
            raise kind("x")

    def c(state):
        if where == "undo":
            raise RuntimeError("c")

    def undo_b(state):
        if where == "undo":
            raise kind("x")
        world.append("undo b")

    steps = [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
             Step("b", b, undo_b, retry=retry), Step("c", c)]  # fmt: skip
    return Saga(steps, name="by-type")


@pytest.mark.parametrize("order", ["reverse", "reverse_start"])
@pytest.mark.parametrize("where", ["step", "undo"])
@pytest.mark.parametrize("kind", [SlyInterrupt, LyingInterrupt])
def test_a_ctrl_c_whatever_its_class_says_is_heard_as_one(kind, where, order):
    world: list[str] = []
    with pytest.raises(KeyboardInterrupt) as raised:
        _saga(kind, where, world).run({}, undo_order=order)
    assert type(raised.value) is kind
    if where == "step":  # cut short: in doubt, its effect leaked; a undone
        assert world == ["do a", "do b", "undo a"]
        assert raised.value.__notes__ == ["rollback: not undone (no undo logged for it): b"]
    else:  # the rollback ends there, the rest pending
        assert world == ["do a", "do b"]
        assert raised.value.__notes__ == [
            f"rollback: rollback interrupted by {kind.__name__} during the undo of b; "
            "not known to be undone: b, a"
        ]


@pytest.mark.parametrize("kind", [SlyError, LyingError])
def test_a_retry_policy_reads_an_errors_class_by_its_type(kind):
    world: list[str] = []
    policy = RetryPolicy(max_attempts=3, initial_delay=0.0, retry_on=(ConnectionError,))
    outcome = _saga(kind, "step", world, retry=policy).run({})
    assert world == ["do a", "do b", "undo a"]  # (tried once: not a ConnectionError)
    assert type(outcome.error) is kind and outcome.status == "rolled_back"
    told = [e.kind for e in outcome.events if e.step == "b"]
    assert told == ["step_start", "step_failed", "pipeline_failed"]
    record = _Rule(policy).record(kind("x"), "b")  # Step Functions' worker names it so
    assert record.type == kind.__name__ and "ConnectionError" not in record.lineage


def test_the_result_panel_tells_an_error_whose_class_raises():
    outcome = _saga(SlyError, "step", []).run({})
    assert "b failed with SlyError(&#x27;x&#x27;)" in result_html(outcome)


class ClaimsCancelled(ValueError):
    __class__ = __import__("asyncio").CancelledError  # type: ignore[assignment]


@pytest.mark.parametrize("kind", [SlyError, ClaimsCancelled])
def test_an_async_with_blocks_error_is_read_by_its_type(kind):
    """attack34 F1 and F3: in an ``AsyncRollback``, a step's error whose ``__class__`` raised
    left the block with that ValueError, no outcome, and the done step never undone; one
    whose ``__class__`` said CancelledError made the block say ``cancelled``, though nobody
    cancelled it. As ``Rollback``, ``saga.run`` and ``arun``: undone, ``rolled_back``, and
    the step's own error re-raised."""
    import asyncio

    from rollback_lessons import AsyncRollback, Status

    world = {"a": 0}
    rb = AsyncRollback()

    def fail() -> None:
        raise kind("refused, nothing done")

    async def body() -> BaseException | None:
        try:
            async with rb:
                await rb.do(
                    "a", lambda: world.__setitem__("a", 1), lambda: world.__setitem__("a", 0)
                )
                await rb.do("b", fail)
        except BaseException as exc:  # (caught in the task: asyncio's own isinstance on an
            return exc  # error leaving a task asks its __class__ too)
        return None

    caught = asyncio.run(body())
    assert type(caught) is kind and world == {"a": 0}
    assert rb.outcome is not None and rb.outcome.status is Status.ROLLED_BACK


def test_a_steps_own_cancelled_error_in_an_async_with_block_is_a_failure_not_a_cancel():
    """attack35 F1: a step's CancelledError from a future it awaited (its task not
    cancelled) made ``AsyncRollback`` say ``cancelled``; ``arun``, ``saga.run`` and
    ``Rollback`` say ``rolled_back``: a failure of the step, as the README says."""
    import asyncio

    from rollback_lessons import AsyncRollback, Status

    world = {"a": 0}
    rb = AsyncRollback()

    async def awaits_a_cancelled_future() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    async def body() -> BaseException | None:
        try:
            async with rb:
                await rb.do(
                    "a", lambda: world.__setitem__("a", 1), lambda: world.__setitem__("a", 0)
                )
                await rb.do("b", awaits_a_cancelled_future)
        except BaseException as exc:
            return exc
        return None

    caught = asyncio.run(body())
    assert type(caught) is asyncio.CancelledError and world == {"a": 0}
    assert rb.outcome is not None and rb.outcome.status is Status.ROLLED_BACK
    assert not rb.outcome.cancelled
