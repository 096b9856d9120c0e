"""Durable execution, shown: kill the booking saga's worker in the middle of its rollback,
start another, and watch the saga finish from Temporal's history (lesson 08 and its test)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from ..crashlab import world_report
from .workflows import BookingInput, BookingResult, BookingSaga

PAUSE = "before undo reserve_room"  # where the first worker stops, to be killed


def start_worker(address: str, task_queue: str, **env: str) -> subprocess.Popen[str]:
    """``python -m rollback_lessons.worlds.temporal_booking.worker`` in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rollback_lessons.worlds.temporal_booking.worker",
         "--address", address, "--task-queue", task_queue],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "worker ready":
        process.kill()
        raise RuntimeError(f"the worker did not start (it said {line!r})")
    return process


@dataclass
class Takeover:
    """What happened: the world when the first worker died, the saga's result, the world
    after, and how many worker processes did the saga's work (from its history)."""

    before: dict[str, Any]
    result: BookingResult
    after: dict[str, Any]
    workers: int


async def kill_a_worker_mid_rollback(runner: Any, world: str, saga: str = "b1") -> Takeover:
    """Run the booking (its email fails) on a worker that stops before the room's undo;
    SIGKILL it there, start a second worker, and wait for the saga to finish."""
    address = runner.env.client.service_client.config.target_host
    queue = f"booking-{uuid.uuid4().hex[:8]}"
    first = start_worker(address, queue, CRASHLAB_PAUSE_AT=PAUSE)
    second = None
    try:
        handle = await runner.client.start_workflow(
            BookingSaga.run,
            BookingInput(world, saga, fail_at="send_email"),
            id=f"booking-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        loop = asyncio.get_running_loop()
        assert first.stdout is not None
        paused = await asyncio.wait_for(loop.run_in_executor(None, first.stdout.readline), 60)
        if paused.strip() != f"paused at {PAUSE}":
            raise RuntimeError(f"the first worker did not pause (it said {paused!r})")
        before = world_report(world)
        first.send_signal(signal.SIGKILL)  # dies in the middle of the rollback
        first.wait()
        second = start_worker(address, queue)
        result = await asyncio.wait_for(handle.result(), 90)
        workers = {
            e.activity_task_started_event_attributes.identity
            async for e in handle.fetch_history_events()
            if e.WhichOneof("attributes") == "activity_task_started_event_attributes"
        }
        return Takeover(before, result, world_report(world), len(workers))
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
