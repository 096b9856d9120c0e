"""A Ctrl-C (or exit) while the engine looks into what a step returned (a result of many
objects takes a while): the step's call had returned, so it is done, told first, and undone
as the run fails with the Ctrl-C. A second one, as the look is made again, gives it up: the
step is in doubt (its value may hold work that goes on), reported leaked, never undone
before it. attack111 F3: the charge was reported leaked "no undo logged for it", its refund
never called, though an undo was given. The interrupt is injected into the look itself
(the n-th look raises), as a signal landing there would."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rollback_lessons import AsyncRollback, Parallel, Rollback, Saga, Status, Step, _wrapped

DRIVERS = ["Rollback", "AsyncRollback", "saga.run", "arun", "graph"]


class Rows:
    """A result the look walks into (no plain type): a query's rows."""

    def __init__(self) -> None:
        self.rows = [{"id": n} for n in range(3)]


def _cut_looks(monkeypatch: pytest.MonkeyPatch, cuts: set[int], kind: type) -> list[int]:
    """Looks numbered from 1; those in ``cuts`` raise ``kind`` as they begin."""
    real, looks = _wrapped.holds_work, []

    def look(thing: Any) -> bool:
        looks.append(1)
        if len(looks) in cuts and isinstance(thing, Rows):
            raise kind()
        return real(thing)

    monkeypatch.setattr(_wrapped, "holds_work", look)
    return looks


def _run(driver: str, world: list[str], kind: type, pooled: bool = False) -> Any:
    """Run charge (returns Rows, or pool work ending in Rows) then ship; the outcome."""
    pool = ThreadPoolExecutor(1)

    def charge(*_: Any) -> Any:
        world.append("charged")
        return pool.submit(Rows) if pooled else Rows()

    def refund(*_: Any) -> None:
        world.append("refunded")

    def ship(*_: Any) -> None:
        world.append("shipped")

    if driver == "Rollback":
        rb = Rollback()
        with pytest.raises(kind), rb:
            rb.do("charge", charge, refund)
            rb.do("ship", ship)
        return rb.outcome
    if driver == "AsyncRollback":

        async def block() -> Any:
            arb = AsyncRollback()
            with pytest.raises(kind):
                async with arb:
                    await arb.do("charge", charge, refund)
                    await arb.do("ship", ship)
            return arb.outcome

        return asyncio.run(block())
    steps: list[Any] = [Step("charge", charge, refund), Step("ship", ship)]
    if driver == "graph":
        steps = [Parallel(Step("charge", charge, refund), Step("sib", lambda s: None)),
                 Step("ship", ship)]  # fmt: skip
    saga = Saga(steps, name="look")
    with pytest.raises(kind) as caught:
        if driver == "arun":
            asyncio.run(saga.arun({}))
        else:
            saga.run({})
    return caught.value


def _said(outcome: Any) -> tuple[Any, ...]:
    """(status, compensated, leaked, notes) of a block's outcome; a saga's Ctrl-C: its notes."""
    if isinstance(outcome, BaseException):
        return (None, None, None, getattr(outcome, "__notes__", []))
    return (outcome.status, outcome.compensated, outcome.leaked, list(outcome.notes))


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("pooled", [False, True], ids=["returned", "pool-work"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_as_a_returned_value_is_looked_at_undoes_the_step(
    monkeypatch, driver, pooled, kind
):
    world: list[str] = []
    _cut_looks(monkeypatch, {1}, kind)
    status, compensated, leaked, notes = _said(_run(driver, world, kind, pooled))
    assert world == ["charged", "refunded"], world  # (done, undone once, nothing after)
    assert not [n for n in notes if "charge" in n], notes  # (nothing left to say of it)
    if status is not None:
        assert (status, compensated, leaked) == (Status.ROLLED_BACK, ("charge",), ())


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_second_ctrl_c_gives_the_look_up_the_step_in_doubt(monkeypatch, driver):
    world: list[str] = []
    looks = _cut_looks(monkeypatch, {1, 2, 3, 4}, KeyboardInterrupt)
    status, _, leaked, notes = _said(_run(driver, world, KeyboardInterrupt))
    assert len(looks) == 2, looks  # (looked at again once, that look given up)
    assert world == ["charged"], world  # (never undone before what it may hold lands)
    assert any("'charge' still ran" in n and "may land after any undo" in n for n in notes)
    if status is not None:
        assert (status, leaked) == (Status.ROLLBACK_INCOMPLETE, ("charge",))


def test_a_ctrl_c_raised_on_carries_no_step_end_into_an_outer_saga(monkeypatch):
    """The inner run told its step's end; the Ctrl-C it raises on is not the outer step's."""
    world: list[str] = []
    _cut_looks(monkeypatch, {1}, KeyboardInterrupt)

    def inner(_: Any) -> None:
        raise _run("graph", world, KeyboardInterrupt)  # (the Ctrl-C it raised, raised on)

    book = Step("book", lambda s: world.append("booked"), lambda s: world.append("unbooked"))
    outer = Saga([book, Step("pay", inner, lambda s: world.append("paid back"))])
    with pytest.raises(KeyboardInterrupt):
        outer.run({})
    assert world == ["booked", "charged", "refunded", "unbooked"], world
