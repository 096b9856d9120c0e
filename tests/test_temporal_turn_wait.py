"""How long an action waits for its turn on Temporal (``completion``), attack78 F1: the wait
was bounded by ``step_timeout`` times the steps, and a sibling's retries (their waits)
outlasted it: the step waiting failed with the runner's own bare TimeoutError, which the
workflow took as that step's clean failure (``rolled_back`` where ``saga.run`` commits).
Now the wait covers every step's tries (``turn_wait``), and a turn that still does not come
is refused as never begun (scheduled again), in one line that says so."""

from __future__ import annotations

import asyncio
import types

import pytest
from conftest import same_outcome
from temporalio.exceptions import ApplicationError

from rollback_lessons import Parallel, RetryPolicy, Saga, Status, Step, VirtualClock
from rollback_lessons.runners.temporal import TemporalRunner, turns
from rollback_lessons.runners.temporal.ends import NOT_CALLED
from rollback_lessons.runners.temporal.plan import plan_for
from rollback_lessons.runners.temporal.timeouts import turn_wait

pytestmark = pytest.mark.usefixtures("no_run_left_behind")

STEP_TIMEOUT = 0.5  # (a's two retry waits, 1 s each, outlast step_timeout x 2 steps)


def _saga(world: list[str]) -> Saga:
    """``a`` and ``b`` at once; ``a`` fails twice with ConnectionError, retried after 1 s."""

    def flaky(state) -> None:
        world.append("do a")
        if world.count("do a") < 3:
            raise ConnectionError("not yet")
        state["a"] = 1

    retry = RetryPolicy(max_attempts=3, initial_delay=1.0, multiplier=1.0, max_delay=1.0,
                        retry_on=(ConnectionError,))  # fmt: skip
    a = Step("a", flaky, lambda s: world.append("undo a"), retry=retry)
    b = Step("b", lambda s: world.append("do b") or s.update(b=1), lambda s: s.pop("b"))
    return Saga([Parallel(a, b)], name="turn-wait")


def test_a_step_waits_for_its_turn_through_a_siblings_retries_as_in_process():
    """b's turn comes after a's three tries (two waits of 1 s, longer than step_timeout x
    steps): b is called then, and the run commits, as ``saga.run(completion=...)`` does,
    field by field and event by event."""
    here: list[str] = []
    local = _saga(here).run({}, completion=["a", "b"], clock=VirtualClock())

    async def scenario() -> tuple:
        world: list[str] = []
        async with await TemporalRunner.start() as runner:
            outcome = await runner.run(
                _saga(world), {}, completion=["a", "b"], step_timeout=STEP_TIMEOUT
            )
        return outcome, world

    remote, world = asyncio.run(scenario())
    assert local.status is Status.COMMITTED, local
    same_outcome(local, remote)
    assert world == here == ["do a", "do a", "do a", "do b"]


def test_a_group_larger_than_the_updates_a_run_may_have_in_flight_plays_its_timing():
    """24 steps at once, played last to first: each action asks its ``turn`` only once the
    Query ``running`` says it is first, so the server's limit on Updates in flight (10) is
    never reached. Before, the turns of 10 steps waiting held them all: the others were
    refused, the run rolled back on an RPCError (and with turns refused scheduled again,
    the first one's never came: a livelock)."""
    names = [f"s{i}" for i in range(24)]

    def saga(world: list[str]) -> Saga:
        def act(name: str):
            return lambda s: world.append(name)

        return Saga([Parallel(*(Step(n, act(n), None) for n in names))], name="wide")

    here: list[str] = []
    local = saga(here).run({}, completion=names[::-1], clock=VirtualClock())

    async def scenario() -> tuple:
        world: list[str] = []
        async with await TemporalRunner.start() as runner:
            run = runner.run(saga(world), {}, completion=names[::-1], step_timeout=30.0)
            return await asyncio.wait_for(run, 300), world  # (a livelock: failed, not hung)

    remote, world = asyncio.run(scenario())
    same_outcome(local, remote)
    assert world == here == names[::-1]


def test_the_turns_wait_covers_every_steps_tries():
    """``turn_wait``: each step's every attempt within step_timeout, and its retry waits."""
    plan = plan_for(_saga([]), completion=["a", "b"], step_timeout=STEP_TIMEOUT)
    plan.turns = True
    assert turn_wait(plan) > 4 * STEP_TIMEOUT + 2 * 1.0  # a's 3 tries, 2 waits; b's one
    assert turn_wait(plan_for(_saga([]), step_timeout=STEP_TIMEOUT)) == 0.0  # no turns


class _Handle:
    """A workflow that never answers ``turn`` (``late``), or refuses it as the workflow does."""

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse

    async def query(self, name: str) -> list[str]:
        return ["b"]  # (b is first of the running: it asks its turn)

    async def execute_update(self, update: str, args: list) -> None:
        if self.refuse:
            from temporalio.client import WorkflowUpdateFailedError

            raise WorkflowUpdateFailedError(ApplicationError("step 'b' ended: no turn to give"))
        await asyncio.Event().wait()


@pytest.mark.parametrize("refuse", [False, True], ids=["never answered", "refused"])
def test_a_turn_that_does_not_come_is_refused_as_never_begun_in_one_line(monkeypatch, refuse):
    """Past ``turn_wait``, or refused, the action is not called: refused as never begun (the
    workflow schedules it again), its one line naming the turn, never a bare TimeoutError
    taken as the step's failure."""
    monkeypatch.setattr(turns.activity, "info", lambda: types.SimpleNamespace(activity_id="x"))

    async def waiting() -> None:
        wait_turn = turns._turns(_Handle(refuse), ["a", "b"], 0.05)  # type: ignore[arg-type]
        await asyncio.to_thread(wait_turn, "b")

    with pytest.raises(ApplicationError) as refused:
        asyncio.run(waiting())
    assert refused.value.type == NOT_CALLED
    said = refused.value.message
    assert said.startswith("the action of 'b' was not begun: its turn ") and "\n" not in said
    assert ("no turn to give" if refuse else "within 0.05 s") in said
