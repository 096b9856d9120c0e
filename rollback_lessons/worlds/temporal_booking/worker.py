"""``python -m rollback_lessons.worlds.temporal_booking.worker --address HOST:PORT
--task-queue Q``: a worker process for the booking saga, to be killed and replaced."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from .activities import do_step, undo_step
from .workflows import BookingSaga

READY = "worker ready"
"""Its line once its worker is built, before it polls: its stdout carries the SDK core's
warnings too, so the demo waits for this very line (``demo.wait_for_line``)."""


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    with ThreadPoolExecutor(max_workers=4) as pool:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[BookingSaga],
            activities=[do_step, undo_step],
            activity_executor=pool,
            # one activity at a time (a booking runs one): while it runs, the worker keeps
            # no activity poll open, so once it is killed mid-activity the server does not
            # hand the retry to a poll of the dead process (seen here: that attempt was
            # lost too, and a step with three attempts ran out of them)
            max_concurrent_activities=1,
            # if this worker dies, another one takes the workflow over after this long
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        )
        print(READY, flush=True)
        await worker.run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the booking saga's worker until killed.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.address, args.task_queue))
    return 0


if __name__ == "__main__":
    sys.exit(main())
