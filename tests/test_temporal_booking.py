"""The hand-written booking saga on Temporal's dev server: durable execution shown, not told.

A worker process is killed with SIGKILL in the middle of the saga's compensation; a new
worker takes over from the workflow's history and finishes it, and the world's own record
shows every effect undone exactly once.
"""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.worlds.crashlab import world_report
from rollback_lessons.worlds.temporal_booking.workflows import BookingInput, BookingSaga


def worker(address: str, queue: str, **env: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "rollback_lessons.worlds.temporal_booking.worker",
         "--address", address, "--task-queue", queue],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip
    assert process.stdout.readline().strip() == "worker ready"
    return process


def run_async(coroutine_function):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function())).result()


def test_a_worker_killed_mid_compensation_is_replaced_and_the_saga_finishes(tmp_path):
    world = str(tmp_path / "world.db")
    queue = f"booking-{uuid.uuid4().hex[:8]}"

    async def main():
        async with await TemporalRunner.start() as runner:
            address = runner.env.client.service_client.config.target_host
            first = worker(address, queue, CRASHLAB_PAUSE_AT="before undo reserve_room")
            handle = await runner.client.start_workflow(
                BookingSaga.run,
                BookingInput(world, "b1", fail_at="send_email"),
                id=f"booking-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            loop = asyncio.get_running_loop()
            paused = await asyncio.wait_for(loop.run_in_executor(None, first.stdout.readline), 60)
            assert paused.strip() == "paused at before undo reserve_room"
            before = world_report(world)
            first.send_signal(signal.SIGKILL)  # the worker dies in the middle of the rollback
            first.wait()
            second = worker(address, queue)
            try:
                result = await asyncio.wait_for(handle.result(), 90)
            finally:
                second.kill()
                second.wait()
            history = [e async for e in handle.fetch_history_events()]
            return before, result, history

    before, result, history = run_async(main)
    # when the first worker died: the charge was refunded, the room not yet released
    assert before["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 0)]
    assert result.status == "rolled_back"
    assert result.undone == ["send_email", "charge_card", "reserve_room"]
    report = world_report(world)
    assert report["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 1)]
    assert sorted(report["undo_applied"]) == [("b1", "charge_card"), ("b1", "reserve_room")]
    # every undo ran once, send_email's harmlessly (its step never had an effect)
    assert sorted(report["undo_calls"]) == [
        ("b1", "charge_card", 1), ("b1", "reserve_room", 1), ("b1", "send_email", 0),
    ]  # fmt: skip
    identities = {
        e.activity_task_started_event_attributes.identity
        for e in history
        if e.WhichOneof("attributes") == "activity_task_started_event_attributes"
    }
    assert len(identities) == 2  # two worker processes did the saga's work
