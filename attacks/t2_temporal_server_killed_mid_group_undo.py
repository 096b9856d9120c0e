"""Item 1: the dev server SIGKILLed while a group saga compensates (the k-th undo running),
then started again on the same database, port and task queue: does the saga finish with
every effect undone exactly once, in the declared order? Judged on the world's record.

    .venv/bin/python attacks/t2_temporal_server_killed_mid_group_undo.py [undo_order] [k]
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import threading

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.runners import free_port
from rollback_lessons.runners.temporal import ServerLost, TemporalRunner
from rollback_lessons.runners.temporal import server as server_module

ORDER = sys.argv[1] if len(sys.argv) > 1 else "by_dependency"
K = int(sys.argv[2]) if len(sys.argv) > 2 else 2

effects: list[str] = []
undos: list[str] = []
undo_started = [0]
at_k = threading.Event()
gate = threading.Event()


def effects_seen() -> bool:
    return RUNNING[0]


RUNNING = [False]


def step(name: str) -> Step:
    def act(state):
        effects.append(name)

    def und(state):
        undo_started[0] += 1
        if undo_started[0] == K and not gate.is_set() and effects_seen():
            at_k.set()
            gate.wait(30)
        undos.append(name)

    return Step(name, act, und)


saga = Saga([Parallel(step("A"), [step("B"), step("C")], step("D")), step("E"),
             Step("F", lambda s: 1 / 0)], name="grp")


def kill_server_on(port: int) -> None:
    for pid in server_module._server_processes(server_module.server_binary()):
        if port in {p for _, p in server_module.listening_sockets(pid)}:
            os.kill(pid, signal.SIGKILL)


async def main() -> None:
    here = saga.run({}, undo_order=ORDER)  # in process first, then the world starts empty
    effects.clear(), undos.clear()
    undo_started[0] = 0
    db, port = os.path.join(tempfile.mkdtemp(), "t.db"), free_port()
    first = await TemporalRunner.start(db_file=db, port=port)
    RUNNING[0] = True
    lost = outcome = None
    try:
        handle = await first.start_saga(saga, {}, undo_order=ORDER, step_timeout=5)
        while not at_k.is_set():
            await asyncio.sleep(0.02)
        kill_server_on(port)
        gate.set()
        try:
            outcome = await handle.outcome()
        except ServerLost as exc:
            lost = exc
        again = await TemporalRunner.start(db_file=db, port=port, task_queue=first.task_queue)
        async with again:
            outcome = await asyncio.wait_for(again.handle_for(saga, handle.run_id).outcome(), 90)
    finally:
        gate.set()
        await first.close()
    print("lost:", str(lost).splitlines()[0] if lost else None)
    print("outcome:", outcome.status, "compensated", list(outcome.compensated), "notes", outcome.notes)
    print("in process compensated:", list(here.compensated), here.status)
    print("world: effects", effects, "undo calls", undos)
    doubled = sorted({u for u in undos if undos.count(u) > 1})
    missing = sorted(set(effects) - set(undos))
    print("DOUBLED", doubled if doubled else "-", "| NOT UNDONE", missing if missing else "-")


asyncio.run(main())
