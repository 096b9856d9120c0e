"""attack69 F2: a stop (Ctrl-C, a ``sys.exit``, leaving ``async with``: each cancels the
saga) that came once a step's action activity was scheduled, or handed to the worker, but
before its call began was read as a step cut short after its effect: ``rollback_incomplete``,
the step leaked, though its action was never called. Now the workflow says "not called"
and the machine decides, as ``saga.run`` does for a step begun but not called: not run, so
``cancelled``, nothing to undo. Each instant is reached by a hook or an order of events,
never by timing."""

import asyncio
import threading
import time
import uuid

import pytest

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners.temporal import TemporalRunner, activities
from rollback_lessons.runners.temporal.plan import plan_for
from rollback_lessons.runners.temporal.workflow import SagaWorkflow

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def _saga(world: list[str], name: str, kind: str = "compensable") -> Saga:
    undo = (lambda s: world.append("undo a")) if kind == "compensable" else None
    return Saga(
        [Step("a", lambda s: world.append("do a"), undo, kind=kind),
         Step("b", lambda s: world.append("do b"), lambda s: world.append("undo b"))],
        name=name, allow_unsafe_order=True,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["compensable", "pivot"])
def test_a_cancel_as_the_worker_takes_the_action_before_its_call_leaves_it_not_run(
    on_temporal, monkeypatch, kind
):
    """The cancel lands while a's activity is in the worker, before its call (held there by a
    hook until the cancel is raised into its thread): a was not run, the saga ``cancelled``
    (an irreversible a too: never called, it never started, so the cancel is not declined)."""
    world: list[str] = []
    handed, cut = threading.Event(), threading.Event()
    real = activities._hosted_here

    def held(run_id, what):  # (the worker has the activity; its call has not begun)
        if what == "the action of 'a'" and not handed.is_set():
            handed.set()
            try:
                end = time.monotonic() + 60
                while time.monotonic() < end:  # until the cancel is raised into this thread
                    time.sleep(0.01)
            except BaseException:
                cut.set()
                raise
        return real(run_id, what)

    monkeypatch.setattr(activities, "_hosted_here", held)

    async def scenario(runner):
        handle = await runner.start_saga(_saga(world, f"uncalled-held-{kind}", kind))
        assert await asyncio.to_thread(handed.wait, 30)
        await handle.cancel()
        return await handle.outcome()

    outcome = on_temporal(scenario)
    assert cut.is_set()  # (the instant was the one meant: the cancel cut the wait)
    assert world == [], world  # a's action was never called, nor anything after it
    assert outcome.status is Status.CANCELLED, (outcome.status, outcome.notes)
    assert outcome.leaked == () and outcome.completed == () and outcome.compensated == ()
    assert any("a was not run" in note for note in outcome.notes), outcome.notes


def test_a_cancel_before_any_worker_took_the_action_leaves_it_not_run(on_temporal):
    """The saga is started on a task queue no worker polls and cancelled there; a worker then
    takes it up: its first workflow task begins a and hears the cancel, a's activity is
    dropped before it is sent (no worker ever had it): a was not run, the saga
    ``cancelled`` (attack69: ``rollback_incomplete``, a leaked)."""
    world: list[str] = []
    saga, queue = _saga(world, "uncalled-unsent"), f"uncalled-{uuid.uuid4().hex[:8]}"

    async def scenario(runner):
        plan = plan_for(saga)
        plan.history_limit = runner.history_limit
        workflow = await runner.client.start_workflow(
            SagaWorkflow.run, plan, id=plan.run_id, task_queue=queue
        )
        await workflow.cancel()
        async with await TemporalRunner.start(runner.address, task_queue=queue) as taker:
            return await (await taker.handle_for(saga, plan.run_id)).outcome()

    outcome = on_temporal(scenario)
    assert world == [], world
    assert outcome.status is Status.CANCELLED, (outcome.status, outcome.notes)
    assert outcome.leaked == () and outcome.completed == ()
