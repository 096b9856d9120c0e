"""Durable execution, shown: kill the booking saga's worker in the middle of its rollback,
start another, and watch the saga finish from Temporal's history (lesson 08 and its test)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..crashlab import world_report
from . import workflows
from .activities import do_step, undo_step
from .workflows import BookingInput, BookingResult, BookingSaga

PAUSE = "before undo reserve_room"  # where the first worker stops, to be killed


def start_worker(address: str, task_queue: str, **env: str) -> subprocess.Popen[str]:
    """``python -m rollback_lessons.worlds.temporal_booking.worker`` in its own process."""
    from .worker import READY  # (here: the module imports temporalio's worker and client)

    process = subprocess.Popen(
        [sys.executable, "-m", "rollback_lessons.worlds.temporal_booking.worker",
         "--address", address, "--task-queue", task_queue],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip
    try:
        wait_for_line(process, READY)
    except RuntimeError:
        process.kill()
        process.wait()
        raise
    return process


def wait_for_line(process: subprocess.Popen[str], line: str) -> None:
    """Read a worker's stdout up to ``line`` (``worker.READY``, crashlab's "paused at ...").

    Its other lines are not taken for it: the SDK core writes its warnings to the same
    stdout (a loaded machine's "[TMPRL1104] Workflow task duration exceeded 5 seconds" came
    before the pause, and the demo failed); they are passed on to stderr."""
    assert process.stdout is not None
    last = ""
    for said in process.stdout:
        if said.strip() == line:
            return
        sys.stderr.write(said)
        last = said.strip()
    raise RuntimeError(f"the worker ended without saying {line!r} (its last line: {last!r})")


@dataclass
class Takeover:
    """What happened: the world when the first worker died, the saga's result, the world
    after, how many worker processes did the saga's work, and each activity's failures
    (both from its history)."""

    before: dict[str, Any]
    result: BookingResult
    after: dict[str, Any]
    workers: int
    failures: tuple[str, ...] = ()


async def kill_a_worker_mid_rollback(runner: Any, world: str, saga: str = "b1") -> Takeover:
    """Run the booking (its email fails) on a worker that stops before the room's undo;
    SIGKILL it there, start a second worker, and wait for the saga to finish."""
    return await kill_a_worker_at(runner, world, PAUSE, BookingInput(world, saga, "send_email"))


async def kill_a_worker_at(
    runner: Any,
    world: str,
    at: str,
    booking: BookingInput,
    answer: Callable[[dict[str, Any]], str] | None = None,
) -> Takeover:
    """Run ``booking`` on a worker in its own process that stops at crashlab's checkpoint
    ``at`` ("after charge_card", "before undo reserve_room"...); SIGKILL it there, start a
    second worker, and wait for the saga to finish. If the saga asks a person (the email in
    doubt), ``answer`` says what they answer, having looked at the world."""
    address = runner.env.client.service_client.config.target_host
    queue = f"booking-{uuid.uuid4().hex[:8]}"
    first = start_worker(address, queue, CRASHLAB_PAUSE_AT=at)
    second = None
    try:
        handle = await runner.client.start_workflow(
            BookingSaga.run, booking, id=f"booking-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        loop = asyncio.get_running_loop()
        paused = loop.run_in_executor(None, wait_for_line, first, f"paused at {at}")
        await asyncio.wait_for(paused, 60)
        before = world_report(world)
        first.send_signal(signal.SIGKILL)  # dies there, no cleanup
        first.wait()
        second = start_worker(address, queue)
        ended = asyncio.ensure_future(handle.result())
        while answer is not None and not ended.done():
            if await handle.query(BookingSaga.pending):  # a person is asked
                await handle.signal(BookingSaga.resolve, answer(world_report(world)))
                break
            await asyncio.wait({ended}, timeout=0.1)
        result = await asyncio.wait_for(ended, 90)
        started = [
            e.activity_task_started_event_attributes
            async for e in handle.fetch_history_events()
            if e.WhichOneof("attributes") == "activity_task_started_event_attributes"
        ]
        workers = {e.identity for e in started}
        failures = tuple(e.last_failure.message for e in started if e.last_failure.message)
        return Takeover(before, result, world_report(world), len(workers), failures)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


@dataclass
class Restart:
    """The server restarted mid-rollback: the world when it went down, whether its port was
    really closed meanwhile, the saga's result from the new server, and the world after."""

    before: dict[str, Any]
    port_closed: bool
    result: BookingResult
    after: dict[str, Any]
    history: Any


def _port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def restart_the_server_mid_rollback(
    db_file: str | os.PathLike[str], world: str, saga: str = "b1", *, down: float = 0.0
) -> Restart:
    """Run the booking (its email fails) on a worker process that stops before the room's
    undo; stop the server there (for at least ``down`` seconds), start a new server process
    on the same database file and port, let the worker go on, and read the saga's result and
    history from the new server.

    The worker is let go once, then its stdin is closed: a server down longer than the
    undo's timeout (``ACTIVITY_TIMEOUT``; a slow machine's restart, or ``down``) times the
    paused attempt out and the saga asks again, and that attempt must not wait for a word
    nobody will send (it runs the undo again, harmlessly: the undo is idempotent)."""
    from ...runners import free_port
    from ...runners.temporal import TemporalRunner
    from ...runners.temporal.runner import history_table

    port = free_port()
    queue = f"booking-{uuid.uuid4().hex[:8]}"
    workflow_id = f"booking-{uuid.uuid4().hex[:8]}"
    worker = None
    try:
        async with await TemporalRunner.start(db_file=db_file, port=port) as first:
            worker = start_worker(f"127.0.0.1:{port}", queue, CRASHLAB_PAUSE_AT=PAUSE)
            await first.client.start_workflow(
                BookingSaga.run,
                BookingInput(world, saga, fail_at="send_email"),
                id=workflow_id,
                task_queue=queue,
            )
            assert worker.stdout is not None and worker.stdin is not None
            loop = asyncio.get_running_loop()
            paused = loop.run_in_executor(None, wait_for_line, worker, f"paused at {PAUSE}")
            await asyncio.wait_for(paused, 60)
            before = world_report(world)
        closed = _port_closed(port)  # the first server process is gone
        await asyncio.sleep(down)  # (at least: a slower machine only keeps it down longer)
        async with await TemporalRunner.start(db_file=db_file, port=port) as second:
            worker.stdin.write("go on\n")  # the worker finishes the undo it was in
            worker.stdin.close()
            handle = second.client.get_workflow_handle(workflow_id, result_type=BookingResult)
            result = await asyncio.wait_for(handle.result(), 90)
            history = await history_table(handle.fetch_history_events(), ids=False)
        return Restart(before, closed, result, world_report(world), history)
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()


@contextlib.asynccontextmanager
async def _worker(runner: Any, **options: Any) -> AsyncIterator[str]:
    """A worker in this process (Temporal's sandbox on, unless ``options`` say otherwise)
    on a task queue of its own, which it yields."""
    from temporalio.worker import Worker

    queue = f"booking-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(4) as pool:
        async with Worker(
            runner.client,
            task_queue=queue,
            workflows=[BookingSaga],
            activities=[do_step, undo_step],
            activity_executor=pool,
            **options,
        ):
            yield queue


async def run_bookings(
    runner: Any,
    bookings: Sequence[BookingInput],
    *,
    compensate: Callable[..., Awaitable[None]] | None = None,
) -> list[BookingResult]:
    """Run each booking to its end on a worker in this process (Temporal's sandbox on).

    ``compensate`` replaces the workflow's own (lesson 08's exercise): the worker then runs
    workflows unsandboxed, so it sees the learner's function, and an error raised in it
    fails the workflow (``WorkflowFailureError``) instead of being retried for ever.
    """
    from temporalio.worker import UnsandboxedWorkflowRunner

    options: dict[str, Any] = {}
    if compensate is not None:
        options = {
            "workflow_runner": UnsandboxedWorkflowRunner(),
            "workflow_failure_exception_types": [Exception],
        }
        workflows.COMPENSATE[0] = compensate
    try:
        async with _worker(runner, **options) as queue:
            return [
                await runner.client.execute_workflow(
                    BookingSaga.run,
                    booking,
                    id=f"booking-{uuid.uuid4().hex[:8]}",
                    task_queue=queue,
                    execution_timeout=timedelta(seconds=60),
                )
                for booking in bookings
            ]
    finally:
        workflows.COMPENSATE[0] = workflows.compensate


@dataclass
class InDoubt:
    """The email timed out after the mail server took it: what the saga asked a person
    about, the world while it waited, its result after the answer, the world after, and
    its history."""

    asked: list[str]
    waiting: dict[str, Any]
    result: BookingResult
    after: dict[str, Any]
    history: Any
    email_attempts: int


async def attempts(events: AsyncIterator[Any], step: str) -> int:
    """How many times a history's activities for ``step`` were attempted (a retried
    activity is scheduled once; its started event says which attempt ended it)."""
    scheduled: set[int] = set()
    count = 0
    async for event in events:
        kind = event.WhichOneof("attributes")
        if kind == "activity_task_scheduled_event_attributes":
            payload = event.activity_task_scheduled_event_attributes.input.payloads[0].data
            if json.loads(payload)["step"] == step:
                scheduled.add(event.event_id)
        elif kind == "activity_task_started_event_attributes":
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                count += started.attempt
    return count


async def email_in_doubt(runner: Any, world: str, answer: str, saga: str = "b1") -> InDoubt:
    """Run the booking with its email timing out after it went; when the saga asks a person
    (its ``pending`` Query), send ``answer`` ("sent" or "not sent") as the Signal."""
    from ...runners.temporal.runner import history_table

    if answer not in workflows.ANSWERS:
        raise ValueError(f"answer {answer!r} is not one of: {', '.join(workflows.ANSWERS)}")
    async with _worker(runner) as queue:
        handle = await runner.client.start_workflow(
            BookingSaga.run,
            BookingInput(world, saga, email_times_out=True),
            id=f"booking-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=60),
        )

        async def asked() -> list[str]:
            while not (steps := await handle.query(BookingSaga.pending)):
                await asyncio.sleep(0.05)
            return steps

        steps = await asyncio.wait_for(asked(), 60)
        waiting = world_report(world)
        await handle.signal(BookingSaga.resolve, answer)
        result = await asyncio.wait_for(handle.result(), 60)
        history = await history_table(handle.fetch_history_events(), ids=False)
        tried = await attempts(handle.fetch_history_events(), workflows.PIVOT)
    return InDoubt(steps, waiting, result, world_report(world), history, tried)
