"""Item 1: a group saga on Temporal halts for a person (halt_wait=30: the room's undo
fails once under policy halt), then the workflow is cancelled while it waits. README: the
person is no longer waited for, the undos are left pending. Judged on the world: what is
still booked must be exactly what the Outcome lists pending; nothing undone twice.
Then the same, answered "retry" by Signal after a cancel was requested (the answer must
not be acted on, or if it is, the Outcome must say so).

    .venv/bin/python attacks/t5_temporal_group_halt_then_cancel.py
"""

import asyncio

from rollback_lessons import VirtualClock
from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.worlds import travel

OPTIONS = {"inject": {"charge": "fail", "room": "undo_fails_once"}, "policy": "halt",
           "completion": travel.TIMING}


async def scenario(runner, answer_after_cancel: bool):
    world = travel.state()
    handle = await runner.start_saga(travel.booking(), world, halt_wait=30, **OPTIONS)
    for _ in range(300):
        if await handle.pending():
            break
        await asyncio.sleep(0.05)
    await handle.cancel()
    if answer_after_cancel:
        await handle.resolve("retry")
    out = await handle.outcome()
    return out, world


async def main():
    local = travel.booking().run(travel.state(), clock=VirtualClock(), **OPTIONS)
    print(f"in process (no person): {local.status} pending {local.pending} compensated {local.compensated}")
    async with await TemporalRunner.start() as runner:
        for answer in (False, True):
            out, world = await scenario(runner, answer)
            print(f"Temporal, cancelled while halted{' + resolve(retry)' if answer else ''}: "
                  f"{out.status} pending {out.pending} compensated {out.compensated}; "
                  f"world still holds {travel.held(world)}")


asyncio.run(main())
