"""A registered ``async def`` compensation in a synchronous run (attack91 F2): accepted at
``bind``, it was dead-lettered at the rollback ("returned an awaitable"), while the same
saga killed before its rollback was ``rolled_back`` by ``recover``, which awaits it: two
stories of one saga. A synchronous run now refuses it before anything runs (nothing called,
nothing written); ``arun``, ``AsyncRollback`` and ``recover`` await it."""

from __future__ import annotations

import asyncio
import functools

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import BoundUndo, Registry, compensation

registry = Registry()
WORLD: list[str] = []


@compensation("sync_run.arefund", registry)
async def arefund(k: str, idempotency_key: str | None = None) -> None:
    WORLD.append(f"refund {k}")


class Refunder:  # an object whose __call__ is async def: async too
    async def __call__(self, k: str) -> None:
        WORLD.append(f"refund {k}")


registry.add("sync_run.obj", Refunder())
registry.add("sync_run.partial", functools.partial(arefund.fn))


@compensation("sync_run.refund", registry)
def refund(k: str) -> None:
    WORLD.append(f"refund {k}")


def charge(k: str):
    return lambda *_: WORLD.append(k)


def fail(*_: object) -> None:
    raise RuntimeError("declined")


def saga(name: str) -> Saga:
    return Saga([Step("a", charge("a"), BoundUndo(name, {"k": "a"}, registry)), Step("b", fail)])


ASYNC = ["sync_run.arefund", "sync_run.obj", "sync_run.partial"]


@pytest.fixture(autouse=True)
def _clear():
    WORLD.clear()


@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("name", ASYNC)
def test_a_sync_saga_run_refuses_it_before_anything_runs_or_is_written(tmp_path, name, journalled):
    kw = {"journal": Journal(tmp_path / "j.db"), "run_id": "r"} if journalled else {}
    with pytest.raises(TypeError, match=f"compensation '{name}', is an async function"):
        saga(name).run({}, **kw)
    assert WORLD == []
    if journalled:
        assert kw["journal"].sagas() == []  # type: ignore[attr-defined]
        kw["journal"].close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["do", "register"])
def test_the_sync_block_refuses_it_before_the_step(how):
    with pytest.raises(TypeError, match="is an async function; a synchronous run cannot"):
        with Rollback() as rb:
            if how == "do":
                rb.do("a", charge("a"), arefund.bind(k="a"))
            else:
                rb.register("a", arefund.bind(k="a"))
    assert WORLD == []


@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("name", ASYNC)
def test_arun_and_async_rollback_await_it(tmp_path, name, journalled):
    kw = {"journal": Journal(tmp_path / "j.db"), "run_id": "r"} if journalled else {}
    outcome = asyncio.run(saga(name).arun({}, **kw))
    assert outcome.status == "rolled_back" and WORLD == ["a", "refund a"]
    WORLD.clear()

    async def block() -> None:
        async with AsyncRollback() as rb:
            await rb.do("a", charge("a"), arefund.bind(k="a"))
            raise RuntimeError("declined")

    with pytest.raises(RuntimeError):
        asyncio.run(block())
    assert WORLD == ["a", "refund a"]


def test_a_plain_compensation_is_not_async():
    """(the sync run keeps taking what it can call)"""
    with Rollback() as rb:
        rb.do("a", charge("a"), refund.bind(k="a"))
    assert WORLD == ["a"] and not refund.bind(k="a").awaits() and arefund.bind(k="a").awaits()


@pytest.mark.parametrize("engine", ["sfn", "bpmn", "dbos"])
def test_every_engine_refuses_it_before_anything_runs(request, engine):
    """attack96 F9: the engines call undos synchronously; they ran every step, then
    dead-lettered the refund ("use AsyncRollback"), the charge left standing. The line says
    what works there (attack97 F6: "run the saga with await saga.arun" meant leaving it)."""
    runner = request.getfixturevalue(f"{engine}_runner")
    with pytest.raises(
        TypeError, match=r"compensation 'sync_run\.arefund', is an async function"
    ) as refused:
        runner.run(saga("sync_run.arefund"), {})
    assert WORLD == [] and "arun" not in str(refused.value)
    assert "calls undos synchronously: make it a plain function (def)" in str(refused.value)


def test_a_saga_written_for_arun_fails_cleanly_in_saga_run():
    """A ``Step`` takes a plain function whose only work is to make the awaitable
    (``lambda state: book(state)``, as the README writes it for ``arun``): in ``saga.run``
    the step fails cleanly, its coroutine closed, never run (no "never awaited" warning),
    and what was done before it is undone: ``rolled_back``, not leaked (attack99 F6: a
    function that did more before returning it breaks that contract)."""
    import warnings

    from rollback_lessons import Saga, Step

    ran: list[str] = []

    async def book(state: dict) -> None:
        ran.append("book")

    saga = Saga([Step("hold", lambda s: ran.append("hold"), lambda s: ran.append("release")),
                 Step("book", lambda s: book(s), lambda s: None)])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outcome = saga.run({})
    assert ran == ["hold", "release"]
    assert outcome.status == "rolled_back" and outcome.leaked == ()
    assert "a synchronous run cannot await it" in str(outcome.error)
