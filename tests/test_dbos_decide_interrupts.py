"""attack100 F11: on DBOS a policy's ``decide`` raising KeyboardInterrupt, SystemExit or a
CancelledError left the workflow unfinished: ``runner.run`` raised it with no word of the
rollback, ``record`` then waited for ever and every relaunch raised it again inside DBOS's
thread, a's undo never run. As in process (and on Temporal) now: the rollback cut there, the
rest pending, the interruption raised with the machine's note; the run is over."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from rollback_lessons import Saga, Step, UndoPolicy


@dataclass(frozen=True)
class Interrupting(UndoPolicy):
    """A policy of one's own whose ``decide`` raises what ends a process or a task (at
    module level: DBOS keeps a policy in code by its class)."""

    raises: type[BaseException] = KeyboardInterrupt

    def decide(self, attempt, error):
        raise self.raises("decide stopped")


def _saga(world: list[str], raises: type[BaseException]) -> Saga:
    def refund(s) -> None:
        world.append("undo b")
        raise RuntimeError("refund down")

    def fails(s) -> None:
        raise RuntimeError("c fails")

    return Saga([Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
                 Step("b", lambda s: world.append("b"), refund),
                 Step("c", fails)], name="decides", policy=Interrupting(raises=raises))  # fmt: skip


@pytest.mark.parametrize("at_once", [False, True])
@pytest.mark.parametrize("raises", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_a_decide_that_raises_a_ctrl_c_cuts_the_rollback_on_dbos(raises, at_once, dbos_runner):
    here: list[str] = []
    with pytest.raises(raises) as local:
        _saga(here, raises).run({})
    world: list[str] = []
    options = {"at_once": True} if at_once else {}
    with pytest.raises(raises) as there:
        dbos_runner.run(_saga(world, raises), {}, run_id=f"decides-{raises.__name__}-{at_once}",
                        **options)  # fmt: skip
    assert world == here == ["a", "b", "undo b"]
    assert there.value.__notes__[-1] == local.value.__notes__[-1]
    assert "not known to be undone: b, a" in there.value.__notes__[-1]
    record = dbos_runner.record(f"decides-{raises.__name__}-{at_once}")  # (it waited for ever)
    assert record.status == "halted" and record.pending == ("b", "a"), record
