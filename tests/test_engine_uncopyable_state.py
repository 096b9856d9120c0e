"""A state holding what ``copy.deepcopy`` refuses (a client, a connection, a lock, put there
by a step): ``saga.run`` returns its Outcome, the value shown by its type. Every engine ran
the whole saga and then raised a bare ``TypeError: cannot pickle '_thread.lock' object``
(attack94 F4): the Outcome, committed or rolled back, lost after its effects. They take the
state's snapshots as ``saga.run`` does now (``safe_snapshot``)."""

from __future__ import annotations

import threading

import pytest

from rollback_lessons import Saga, Status, Step


def _saga(world: list[str], fail: bool) -> Saga:
    def connect(state) -> None:
        state["conn"] = threading.Lock()  # (a connection kept for the next steps)
        world.append("a")

    def last(state) -> None:
        if fail:
            raise RuntimeError("declined")
        world.append("c")

    return Saga([
        Step("a", connect, lambda s: world.append("undo a")),
        Step("b", lambda s: world.append("b"), lambda s: world.append("undo b")),
        Step("c", last),
    ], name="conn")  # fmt: skip


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("engine", ["sfn", "bpmn", "dbos"])
def test_an_uncopyable_state_ends_with_the_outcome_saga_run_gives(request, engine, fail):
    world: list[str] = []
    local = _saga(world, fail).run({})
    here = list(world)
    world.clear()
    runner = request.getfixturevalue(f"{engine}_runner")
    remote = runner.run(_saga(world, fail), {})
    assert world == here
    assert remote.status is local.status is (Status.ROLLED_BACK if fail else Status.COMMITTED)
    assert remote.completed == local.completed and remote.compensated == local.compensated
    assert remote.state_after == local.state_after
    assert remote.state_after["conn"] == "<uncopyable lock>"
