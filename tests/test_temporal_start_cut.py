"""A cancel of ``runner.run``'s caller (a Ctrl-C under ``asyncio.run``) as its saga's start is on
its way (attack69 F1): the CancelledError was raised bare, no cancel sent, and the start had
landed: the saga ran on, and a relaunch on the ``db_file`` took it forward to ``committed``.
Now the start's fate is awaited: one that landed is cancelled in its turn and awaited until
it compensated, as a cancel a moment later is; one that did not says so; a second cancel
cuts that wait, the saga's cancel sent all the same, and the note says whether it started.
The cancel lands at that instant by a hook on the start (no timing)."""

import asyncio
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import port_freed
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners import free_port
from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.runners.temporal import runner as runner_module

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def _saga(world: list[str], name: str) -> Saga:
    def step(n: str) -> Step:
        return Step(n, lambda s: world.append(f"do {n}"), lambda s: world.append(f"undo {n}"))

    return Saga([step("a"), step("b")], name=name)


def _cancelled(outcome, world: list[str]) -> None:
    """The saga was cancelled and compensated: nothing it did stands (an action whose
    activity the cancel found before its call is not run: attack69 F2)."""
    assert outcome.status is Status.CANCELLED, outcome
    assert any(e.kind == "rollback_start" and e.details["cancelled"] for e in outcome.events)
    done = [line.split()[1] for line in world if line.startswith("do ")]
    assert [line for line in world if line.startswith("undo ")] == [f"undo {n}" for n in done[::-1]]


def _cut_start(runner, started: list[str], landed: bool = True, hang: bool = False):
    """The start, as the SDK makes it (or refused: ``landed=False``), and the caller cancelled
    at the instant it landed, its answer not yet heard: the start's own await is cut then
    too, as a Ctrl-C cuts the SDK's call. ``hang``: its answer never comes."""
    real = runner.client.start_workflow
    caller: list[asyncio.Task] = []

    async def refused():
        raise RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b"")

    async def start(*args, **kwargs):
        started.append(kwargs["id"])
        landing = asyncio.ensure_future(real(*args, **kwargs) if landed else refused())
        landing.add_done_callback(lambda _: caller[0].cancel())  # (the Ctrl-C, now)
        answer = await landing
        if hang:
            await asyncio.Event().wait()
        return answer

    runner.client.start_workflow = start
    return caller


def test_a_cancel_as_the_start_lands_cancels_the_saga_and_it_compensates(on_temporal):
    world: list[str] = []
    saga = _saga(world, "cut start")

    async def scenario(runner):
        started: list[str] = []
        caller = _cut_start(runner, started)
        try:
            caller.append(asyncio.ensure_future(runner.run(saga, {})))
            with pytest.raises(asyncio.CancelledError) as cancelled:
                await caller[0]
        finally:
            del runner.client.start_workflow
        about = await runner.client.get_workflow_handle(started[0]).describe()
        return cancelled.value, about.status

    stopped, status = on_temporal(scenario)
    _cancelled(stopped.outcome, world)
    assert status is WorkflowExecutionStatus.COMPLETED  # (nothing left for a relaunch)


def test_a_cancel_as_a_start_fails_says_nothing_ran(on_temporal):
    world: list[str] = []
    saga = _saga(world, "cut start refused")

    async def scenario(runner):
        started: list[str] = []
        caller = _cut_start(runner, started, landed=False)
        try:
            caller.append(asyncio.ensure_future(runner.run(saga, {})))
            with pytest.raises(asyncio.CancelledError) as cancelled:
                await caller[0]
        finally:
            del runner.client.start_workflow
        with pytest.raises(RPCError) as unknown:  # (the server has no such run)
            await runner.client.get_workflow_handle(started[0]).describe()
        return cancelled.value, unknown.value.status, started[0]

    stopped, status, run_id = on_temporal(scenario)
    assert status is RPCStatusCode.NOT_FOUND and world == []
    assert not hasattr(stopped, "outcome")
    [note] = stopped.__notes__
    assert note.startswith(f"saga {run_id} was cancelled as it was started: the Temporal server")
    assert note.endswith("none of its steps ran here. Is it running?")


def test_a_second_cancel_as_the_start_is_awaited_sends_the_sagas_cancel(on_temporal, monkeypatch):
    """The wait for the start's fate cut too: the start (landed) is cut, the saga's cancel
    sent; it compensates in this runner's worker, the note says it started."""
    world: list[str] = []
    saga = _saga(world, "cut start twice")
    real_cut, in_cut = getattr(runner_module, "cut", None), []

    async def cut(*args):
        in_cut[0].set()  # (the caller waits for the start's fate from here on)
        return await real_cut(*args)

    monkeypatch.setattr(runner_module, "cut", cut, raising=False)  # (none without the fix)

    async def scenario(runner):
        started: list[str] = []
        caller = _cut_start(runner, started, hang=True)
        in_cut.append(asyncio.Event())
        try:
            caller.append(asyncio.ensure_future(runner.run(saga, {})))
            cutting = asyncio.ensure_future(in_cut[0].wait())
            await asyncio.wait({cutting, caller[0]}, return_when=asyncio.FIRST_COMPLETED)
            caller[0].cancel()  # the second cancel
            with pytest.raises(asyncio.CancelledError) as cancelled:
                await caller[0]
        finally:
            del runner.client.start_workflow
        outcome = await (await runner.handle_for(saga, started[0])).outcome()
        return cancelled.value, outcome, started[0]

    stopped, outcome, run_id = on_temporal(scenario)
    _cancelled(outcome, world)
    assert stopped.__notes__ == [
        f"saga {run_id}'s caller was cancelled as it started it, and the wait for that start "
        "was cut too: "
        "it started, and its cancel was sent: it compensates in this runner's worker"
    ]


EXIT = textwrap.dedent(
    """
    import asyncio, signal, sys
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
    world = []

    def step(n):
        return Step(n, lambda s: world.append(f"do {n}"), lambda s: world.append(f"undo {n}"))

    async def main():
        db, port, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            real = r.client.start_workflow

            async def start(*args, **kwargs):  # (its SIGTERM the instant the start landed)
                print("RUNID", kwargs["id"], flush=True)
                landing = asyncio.ensure_future(real(*args, **kwargs))
                landing.add_done_callback(lambda _: signal.raise_signal(signal.SIGTERM))
                return await landing

            r.client.start_workflow = start
            await r.run(Saga([step("a"), step("b")], name="exit-at-start"), {})

    try:
        asyncio.run(main())
    finally:
        print("WORLD", world, flush=True)
    """
)


def test_a_sys_exit_as_the_start_lands_sends_the_sagas_cancel_and_the_relaunch_compensates(
    tmp_path,
):
    """attack69 F1 with a db_file: a SIGTERM's ``sys.exit`` (``asyncio.run``'s end cancelling
    the worker and the start) the instant the start landed: the saga's cancel is sent all
    the same, ``WorkerGone`` says it started; the relaunch compensates, never goes forward."""
    db, port, queue = tmp_path / "t.db", free_port(), f"start-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, "-c", EXIT, str(db), str(port), queue],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    run_id = done.stdout.split("RUNID ")[1].split()[0]
    world: list[str] = []
    port_freed(port)

    async def relaunch():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as again:
            return await (await again.handle_for(_saga(world, "exit-at-start"), run_id)).outcome()

    with ThreadPoolExecutor(1) as pool:  # (asyncio.run in a thread: a loop may be running)
        outcome = pool.submit(lambda: asyncio.run(relaunch())).result()
    _cancelled(outcome, world)  # (without: committed, a and b done by the relaunch)
    assert "WORLD []" in done.stdout
    assert f"WorkerGone: saga {run_id}'s caller was cancelled as it started it" in done.stderr
    assert "it started; the worker running saga" in done.stderr, done.stderr[-2000:]
