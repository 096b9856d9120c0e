"""Item 1 (limits): the runner's history check counts 3 events per step, but retries,
timers, undos and workflow tasks add events; a saga the check accepts can reach Temporal's
history limit mid-run. What happens then to the effects already done?

Scaled down: a dev server started here with limit.historyCount.error lowered to LIMIT (the
same mechanism as the default 51,200), the runner pointed at it by TEMPORAL_ADDRESS. The
saga: three bookings at once, then a step retried up to 100 times that always fails.

    .venv/bin/python attacks/t3_temporal_history_limit.py [LIMIT]
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

from rollback_lessons import Parallel, RetryPolicy, Saga, Step
from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.runners.temporal.server import server_binary

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


world: dict = {}


def step(name):
    return Step(name, lambda s: world.__setitem__(name, "booked"), lambda s: world.pop(name))


def never(state):
    raise ConnectionError("the card service is down")


saga = Saga([Parallel(step("room"), step("car"), step("flight")),
             Step("charge", never, retry=RetryPolicy(max_attempts=int(os.environ.get("ATTEMPTS", "100")), initial_delay=0.01,
                                                      max_delay=0.01))], name="limits")


async def main(port: int) -> None:
    os.environ["TEMPORAL_ADDRESS"] = f"127.0.0.1:{port}"
    async with await TemporalRunner.start() as runner:
        handle = await runner.start_saga(saga, world, step_timeout=5)
        try:
            outcome = await asyncio.wait_for(handle.outcome(), float(os.environ.get("WAIT", "120")))
            print("outcome:", outcome.status, "compensated", outcome.compensated)
        except BaseException as exc:  # what the caller gets
            print("raised:", type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")
        desc = await handle.workflow.describe()
        print("workflow status on the server:", desc.status.name, "history events:",
              desc.raw_description.workflow_execution_info.history_length)
    print("world after:", world, "(still booked:", sorted(world), ")")
    print("in process:", saga.run({}).status)


port = free_port()
server = subprocess.Popen(
    [server_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
     "--headless", "--log-level", "error", "--db-filename", os.path.join(tempfile.mkdtemp(), "t.db"),
     "--dynamic-config-value", f"limit.historyCount.error={LIMIT}",
     "--dynamic-config-value", f"limit.historyCount.warn={LIMIT // 2}"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    asyncio.run(main(port))
finally:
    server.terminate()
    server.wait(10)
