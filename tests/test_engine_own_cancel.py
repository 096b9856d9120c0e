"""A step's or an undo's own ``asyncio.CancelledError`` (a future it awaited was cancelled,
not its task) is a failure in ``saga.run``, and on every engine now (attack94 F3: each took it
for an interruption: the rollback stopped before the earlier undos, a never undone, the run
raising CancelledError instead of returning its Outcome)."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import Parallel, Saga, Status, Step


def _cancelled(what: str):
    def call(state) -> None:
        raise asyncio.CancelledError(what)

    return call


def _saga(world: list[str], case: str) -> Saga:
    def step(name: str, act=None, undo=None) -> Step:
        return Step(
            name,
            act or (lambda s: world.append(f"do {name}")),
            undo or (lambda s: world.append(f"undo {name}")),
        )

    if case == "action":
        return Saga([step("a"), step("b", act=_cancelled("b")), step("c")], name="own")
    if case == "graph action":
        return Saga([step("a"), Parallel(step("x"), step("b", act=_cancelled("b"))), step("c")],
                    name="own")  # fmt: skip
    return Saga([step("a"), step("b", undo=_cancelled("undo b")), step("c", act=_cancelled("c"))],
                name="own")  # fmt: skip


@pytest.mark.parametrize("case", ["action", "undo", "graph action"])
@pytest.mark.parametrize("engine", ["sfn", "bpmn", "dbos"])
def test_a_calls_own_cancelled_error_is_a_failure_on_every_engine(request, engine, case):
    world: list[str] = []
    local = _saga(world, case).run({})
    here = list(world)
    world.clear()
    runner = request.getfixturevalue(f"{engine}_runner")
    remote = runner.run(_saga(world, case), {})  # (returned: never raised)
    assert world == here and "undo a" in world
    want = Status.ROLLBACK_INCOMPLETE if case == "undo" else Status.ROLLED_BACK
    assert remote.status is local.status is want
    assert remote.compensated == local.compensated
    assert [d.step for d in remote.dead_letters] == [d.step for d in local.dead_letters]
