"""A turn given to an activity whose worker was already gone (fixtrace, ci: 1 run in 5 of
``test_temporal_exit``'s killed saga): the workflow counted an action "may have begun" once
it *gave* its turn, though the activity that asked was never told (its worker killed while
it waited). The server then timed that activity out, and the action, never called, was
reported leaked (in doubt): an operator told to check an effect that cannot exist. Now an
action's call may begin only once the workflow recorded its ``begin`` (an Update the activity
sends once told its turn, refused once its end was heard): a turn nobody heard is no begin.
Each interleaving is driven here, never timed (the server hears a worker gone by its
silence: no heartbeat)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateStage

from rollback_lessons import Parallel, Saga, Status, Step
from rollback_lessons.runners.temporal import activities, runner, workerend
from rollback_lessons.runners.temporal import workflow as saga_workflow

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def _silenced(monkeypatch) -> set[str]:
    """The activities (ids) whose worker is gone, as the server hears it: no heartbeat once
    named there, timed out 3 s after."""
    silent: set[str] = set()
    monkeypatch.setattr(saga_workflow, "HEARTBEAT_TIMEOUT", 3.0)  # (the server hears it soon)

    async def beating(self):  # a heartbeat every BEAT s, none once its worker is gone
        asker = activity.info().activity_id
        while asker not in silent:
            self._outbound.heartbeat()
            await asyncio.sleep(workerend.BEAT)

    monkeypatch.setattr(workerend._Cut, "_beating", beating)
    return silent


def _saga(world: list[str], before) -> Saga:
    """b and d at once, each action telling ``world`` once ``before(name)`` returned."""

    def act(name: str):
        def action(state) -> None:
            assert before(name)
            world.append(f"do {name}")

        return action

    steps = [Step(n, act(n), lambda s, n=n: world.append(f"undo {n}")) for n in "bd"]
    return Saga([Parallel(*steps)], name="turn-lost")


def _order(history, asker: str) -> list[str]:
    """What the history says of ``asker``'s activity and its turn, in order: "granted" (its
    turn's Update completed) and "timed out" (the server's timeout of the activity)."""
    scheduled, updates, said = {}, set(), []
    for event in history.events:
        kind = EventType.Name(event.event_type)
        if kind == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            accepted = event.workflow_execution_update_accepted_event_attributes
            request = accepted.accepted_request
            args = [json.loads(p.data) for p in request.input.args.payloads]
            if request.input.name == "turn" and args[-1] == asker:
                updates.add(request.meta.update_id)
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED":
            if event.workflow_execution_update_completed_event_attributes.meta.update_id in updates:
                said.append("granted")
        elif kind == "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT":
            timed_out = event.activity_task_timed_out_event_attributes.scheduled_event_id
            if scheduled.get(timed_out) == asker:
                said.append("timed out")
    return said


def test_a_turn_given_once_its_worker_was_gone_is_no_begin(on_temporal, monkeypatch):
    """b and d wait for their turns (completion b, d). d's first activity asks its turn, then
    its worker is gone: no heartbeat, its turn never heard, its action never called. b ends:
    d is given the turn nobody hears; the server times d's activity out. d was never called:
    scheduled again, it runs (committed, nothing leaked), never reported in doubt."""
    world: list[str] = []
    silent = _silenced(monkeypatch)
    asked, released, gone = threading.Event(), threading.Event(), []
    real_turns = runner._turns

    def turns(handle, completion, timeout):
        loop, real = asyncio.get_running_loop(), real_turns(handle, completion, timeout)

        def gate(step: str) -> None:
            asker = activity.info().activity_id
            if step != "d" or gone:
                return real(step)
            gone.append(asker)  # d's first activity: it asks its turn (the Update accepted)
            ask = handle.start_update(  # and its worker is gone, never told: silent
                "turn", args=[step, list(completion), asker],
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )  # fmt: skip
            asyncio.run_coroutine_threadsafe(ask, loop).result(30)
            silent.add(asker)
            asked.set()
            released.wait(60)  # (the test's end: its answer is dropped, its activity over)
            raise activities.not_begun(step, "its worker was gone (this test's)")

        return gate

    monkeypatch.setattr(runner, "_turns", turns)
    saga = _saga(world, lambda name: name != "b" or asked.wait(30))  # (b's end: once d asked)

    async def scenario(runner):
        handle = await runner.start_saga(saga, {}, completion=["b", "d"], step_timeout=30.0)
        try:
            outcome = await handle.outcome()
        finally:
            released.set()
        history = await runner.client.get_workflow_handle(outcome.run_id).fetch_history()
        return outcome, history

    try:
        outcome, history = on_temporal(scenario)
    finally:
        released.set()
    assert _order(history, gone[0]) == ["granted", "timed out"]  # (the interleaving meant)
    assert outcome.leaked == (), outcome
    assert outcome.status is Status.COMMITTED, (outcome, outcome.notes)
    assert world == ["do b", "do d"], world


class _Late:
    """A workflow handle whose ``begin`` for ``asker`` is sent only once ``then`` is set,
    its activity silent from then on (its worker slow: the server times it out meanwhile)."""

    def __init__(self, handle, asker: list[str], silent: set[str], then: threading.Event):
        self.handle, self.asker, self.silent, self.then = handle, asker, silent, then
        self.refused: list[BaseException] = []

    async def execute_update(self, update: str, args: list):
        if update == "begin" and args[1] in self.asker:
            self.silent.add(args[1])
            await asyncio.to_thread(self.then.wait, 30)
            try:
                return await self.handle.execute_update(update, args=args)
            except Exception as exc:
                self.refused.append(exc)
                raise
        return await self.handle.execute_update(update, args=args)

    async def query(self, name: str):
        return await self.handle.query(name)


def test_a_begin_sent_once_the_activitys_end_was_heard_is_refused(on_temporal, monkeypatch):
    """d's first activity is told its turn, then its worker falls silent before it says its
    call begins; the server times it out, the workflow judges it never begun and schedules
    d again. Its ``begin``, sent only then, is refused: its action is never called (were it
    taken, d would run twice, once unaccounted for)."""
    world: list[str] = []
    silent, again, first = _silenced(monkeypatch), threading.Event(), []
    late: list[_Late] = []
    real_turns = runner._turns

    def turns(handle, completion, timeout):
        late.append(_Late(handle, first, silent, again))
        real = real_turns(late[0], completion, timeout)  # type: ignore[arg-type]

        def gate(step: str) -> None:
            if step == "d" and not first:  # d's first activity
                first.append(activity.info().activity_id)
            elif step == "d":  # d scheduled again: the workflow heard the first one's end
                again.set()
            return real(step)

        return gate

    monkeypatch.setattr(runner, "_turns", turns)
    saga = _saga(world, lambda name: True)

    async def scenario(runner):
        handle = await runner.start_saga(saga, {}, completion=["b", "d"], step_timeout=30.0)
        return await handle.outcome()

    outcome = on_temporal(scenario)
    assert world == ["do b", "do d"], world  # (d's first call: never)
    assert again.is_set() and late[0].refused, late  # (d scheduled again; the late begin refused)
    assert outcome.leaked == () and outcome.status is Status.COMMITTED, (outcome, outcome.notes)
