"""attack183: a cancel user code asks of the engine's own rollback task as it ends (an
``on_event`` observer's, or an undo's as it returns: ``asyncio.current_task().cancel(msg)``,
no await after it). ``AsyncRollback``'s rollback task ended cancelled, its answer dropped:
``rb.outcome`` None for good, the block stuck "ending", a bare ``CancelledError()`` raised with
no notes, even when the rollback halted with undos left for a person (F1); ``arun`` kept its
outcome but both lost the cancel's message (F2). The block's cancel now, as a cancel of its
task asked then: the outcome kept, the message and the notes on what is raised."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import AsyncRollback, Saga, Status, Step


def _parts(world: list[str], how: str):
    def act(name: str):
        def do(state: object = None) -> str:
            world.append(f"do {name}")
            if name == "c":
                raise RuntimeError("no seats")
            return name

        return do

    def undo(name: str):
        async def undone(state: object = None) -> None:
            if name == "b" and how == "fails":
                raise ConnectionError("the refund service is down")
            if name == "b" and how == "undo":
                asyncio.current_task().cancel("from inside")  # (and returns: no await)
            world.append(f"undo {name}")

        return undone

    def observer(event) -> None:
        kinds = {"undo": "undo_done", "observer": "undo_done", "fails": "undo_failed"}
        if how != "undo" and event.kind == kinds[how] and event.step == "b":
            asyncio.current_task().cancel("from inside")

    return act, undo, observer


async def _arun(how: str, world: list[str]):
    act, undo, observer = _parts(world, how)
    undos = {n: undo(n) for n in "ab"}  # (a Step's undo: a plain function giving an awaitable)
    steps = [Step(n, act(n), lambda s, u=undos[n]: u(s)) for n in "ab"]
    saga = Saga([*steps, Step("c", act("c"))],
                policy="halt", on_event=observer)  # fmt: skip
    with pytest.raises(asyncio.CancelledError) as raised:
        await saga.arun({})
    return raised.value, raised.value.outcome


async def _block(how: str, world: list[str]):
    act, undo, observer = _parts(world, how)
    rb = AsyncRollback(policy="halt", on_event=observer)
    with pytest.raises(asyncio.CancelledError) as raised:
        async with rb:
            for name in "ab":
                await rb.do(name, act(name), undo(name))
            await rb.do("c", act("c"))
    return raised.value, rb.outcome


@pytest.mark.parametrize("how", ["observer", "undo", "fails"])
@pytest.mark.parametrize("engine", [_arun, _block], ids=["arun", "AsyncRollback"])
def test_a_cancel_asked_inside_as_the_rollback_ends_keeps_its_outcome_and_message(engine, how):
    world: list[str] = []
    raised, outcome = asyncio.run(engine(how, world))
    assert raised.args == ("from inside",)
    assert outcome is not None
    if how == "fails":  # (the policy halts: left for a person, said on what is raised)
        assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
        assert raised.__notes__ == ["rollback halted; left for a person: b, a"]
        assert world == ["do a", "do b", "do c"]
    else:
        assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("b", "a")
        assert world == ["do a", "do b", "do c", "undo b", "undo a"]
