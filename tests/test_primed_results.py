"""A call that hands back a generator whose body had begun (a consumer primed with
``next``): its code ran to a yield, so it may have had its effect; every driver says so
(in doubt, never "its body never ran") and leaves the generator as it is, never closing it
(its ``finally`` is its owner's). attack111 F4: the async drivers said its body never ran
and closed it. A class returned is not looked into, whatever its metaclass (F6: an ABC's
namespace was walked, a plain class's not)."""

from __future__ import annotations

import abc
import asyncio
import enum
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Status, Step
from rollback_lessons.errors import MayHaveRun


def _consumer(log: list[str]) -> Any:
    log.append("ran to its first yield")
    try:
        while True:
            log.append(f"got {(yield)}")
    finally:
        log.append("closed")


def _primed(log: list[str]) -> Any:
    sink = _consumer(log)
    next(sink)
    return sink


def _run(driver: str, action: Any, world: list[str]) -> Any:
    """Run ``sink`` (``action``) then a failing step; the outcome (or the block's error)."""
    undo = lambda *_: world.append("undone")  # noqa: E731

    def fail(*_: Any) -> None:
        raise RuntimeError("boom")

    if driver == "Rollback":
        rb = Rollback()
        with pytest.raises(MayHaveRun), rb:
            rb.do("sink", action, undo)
            rb.do("next", fail)
        return rb.outcome
    if driver == "AsyncRollback":

        async def block() -> Any:
            arb = AsyncRollback()
            with pytest.raises(MayHaveRun):
                async with arb:
                    await arb.do("sink", action, undo)
                    await arb.do("next", fail)
            return arb.outcome

        return asyncio.run(block())
    saga = Saga([Step("sink", lambda s: action(), undo), Step("next", fail)], name="p")
    return asyncio.run(saga.arun({})) if driver == "arun" else saga.run({})


AWAITED = [(d, False) for d in ("Rollback", "AsyncRollback", "saga.run", "arun")] + [
    (d, True)
    for d in ("AsyncRollback", "arun")  # (an async action: the async drivers')
]


@pytest.mark.parametrize("driver, awaited", AWAITED)
def test_a_primed_generator_handed_back_is_in_doubt_and_left_open(driver, awaited):
    log: list[str] = []

    async def aprimed() -> Any:
        return _primed(log)

    outcome = _run(driver, aprimed if awaited else (lambda: _primed(log)), log)
    assert log == ["ran to its first yield"], log  # (never closed, nor undone before it)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("sink",)
    said = str(outcome.error)
    assert isinstance(outcome.error, MayHaveRun) and "ran to a yield" in said, said
    assert "never ran" not in said and "a Future not done" not in said, said


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
def test_a_generator_never_begun_awaited_back_is_still_said_never_run(driver):
    """The rule kept for one whose body never ran: an ``await`` missing inside."""
    log: list[str] = []

    async def forgot() -> Any:
        return _consumer(log)

    outcome = _run(driver, forgot, log)
    assert log == [] and "never ran" in str(outcome.error), (log, outcome.error)


def _class_holding(kind: str, job: Any) -> type:
    if kind == "plain":
        return type("Plain", (), {"job": job})
    if kind == "abc":
        return abc.ABCMeta("WithABC", (abc.ABC,), {"job": job})
    return enum.Enum("Jobs", {"FIRST": 1})  # (an EnumType: a metaclass of its own)


@pytest.mark.parametrize("kind", ["plain", "abc", "enum"])
def test_a_class_returned_is_not_looked_into_whatever_its_metaclass(kind):
    busy = ThreadPoolExecutor(1).submit(time.sleep, 0.3)  # (not done as it is returned)
    holder = _class_holding(kind, busy)
    saga = Saga([Step("make", lambda s: holder), Step("after", lambda s: None)])
    assert saga.run({}).status is Status.COMMITTED
