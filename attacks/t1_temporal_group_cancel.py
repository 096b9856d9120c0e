"""Item 1: a group saga on Temporal's dev server, cancelled at a random moment (during the
steps, a branch's retry wait, or the undos), in each undo order. Judged on the world's own
record (effects and undo calls kept by the steps themselves, not the Outcome):

- committed: every effect there, nothing undone; cancelled: every effect undone exactly once;
- no undo of an effect that never happened; the undo calls in the declared order (for the
  completion / start order the Outcome's own events say);
- the Outcome's completed / compensated agree with the world.

    .venv/bin/python attacks/t1_temporal_group_cancel.py [trials] [seed]
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time

from rollback_lessons import Parallel, RetryPolicy, Saga, Status, Step
from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.schedule import dependants, undo_order

TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 1


class World:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.effects: list[str] = []
        self.undos: list[str] = []
        self.attempts: dict[str, int] = {}


def make(world: World, rng: random.Random) -> Saga:
    delays = {n: rng.uniform(0, 0.15) for n in "ABCDE"}

    def action(name: str, flaky: int = 0):
        def act(state):
            with world.lock:
                world.attempts[name] = world.attempts.get(name, 0) + 1
                n = world.attempts[name]
            time.sleep(delays[name])
            if n <= flaky:
                raise ConnectionError(f"{name} flaky {n}")
            with world.lock:
                world.effects.append(name)
        return act

    def undo(name: str):
        def und(state):
            time.sleep(0.02)
            with world.lock:
                world.undos.append(name)
        return und

    def step(name, flaky=0):
        retry = RetryPolicy(max_attempts=3, initial_delay=0.2, max_delay=0.2) if flaky else None
        return Step(name, action(name, flaky), undo(name), retry=retry)

    return Saga([Parallel(step("A"), [step("B", flaky=1), step("C")], step("D")), step("E")],
                name="grp")


async def trial(runner, n: int, rng: random.Random) -> list[str]:
    world = World()
    saga = make(world, rng)
    order = rng.choice(["reverse", "reverse_start", "by_dependency"])
    when = rng.uniform(0, 2.5)
    handle = await runner.start_saga(saga, {}, undo_order=order)
    await asyncio.sleep(when)
    await handle.cancel()
    out = await handle.outcome()
    await asyncio.sleep(0.1)
    problems = []
    eff, und = list(world.effects), list(world.undos)
    if out.status is Status.COMMITTED:
        if und or sorted(eff) != sorted("ABCDE"):
            problems.append(f"committed but world effects={eff} undos={und}")
    elif out.status is Status.CANCELLED:
        if sorted(eff) != sorted(und):
            problems.append(f"cancelled but effects={eff} undos={und}")
    else:
        problems.append(f"status {out.status}")
    for s in set(und):
        if und.count(s) > 1:
            problems.append(f"{s} undone {und.count(s)} times")
    if sorted(out.completed) != sorted(eff):
        problems.append(f"Outcome completed {out.completed} but world effects {eff}")
    if list(out.compensated) != und:
        problems.append(f"Outcome compensated {out.compensated} but world undo calls {und}")
    started = [e.step for e in out.events if e.kind == "step_start"]
    ended = [e.step for e in out.events if e.kind in ("step_done", "step_failed")]
    want = undo_order(order, und, started=list(dict.fromkeys(started)), ended=ended,
                      definition=list(saga.names), below=dependants(saga.dependencies))
    if und != want:
        problems.append(f"{order}: undos {und}, the rule says {want} (started {started}, ended {ended})")
    tag = f"trial {n} {order} cancel@{when:.2f}s: {out.status}"
    print(tag, "; ".join(problems) if problems else "ok", flush=True)
    return problems


async def main() -> None:
    rng = random.Random(SEED)
    bad = 0
    async with await TemporalRunner.start() as runner:
        for n in range(TRIALS):
            bad += bool(await trial(runner, n, rng))
    print(f"{TRIALS} trials, {bad} with a problem")


asyncio.run(main())
