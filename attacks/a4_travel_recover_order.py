"""Item 3: lesson 12's travel booking, journalled, killed (SIGKILL) at its first undo, then
`recover`: in process the default order (reverse *completion*) undoes the car before the
room and everything is released; recover undoes in reverse *start* order (the room before
the car), the hotel refuses, and the room stays booked (a dead letter) -- the very failure
lesson 12 shows for reverse_start.

    .venv/bin/python attacks/a4_travel_recover_order.py
    ARUN=1 .venv/bin/python attacks/a4_travel_recover_order.py   # the same with saga.arun

The world is a JSON file (hotel, cars, flights), the undos registered compensations that
follow travel.py's rules (the hotel refuses a room a car is delivered to).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from rollback_lessons import Parallel, Saga, Step  # noqa: E402
from rollback_lessons.durable.journal import Journal  # noqa: E402
from rollback_lessons.durable.recovery import recover  # noqa: E402
from rollback_lessons.durable.registry import Registry, compensation  # noqa: E402
from rollback_lessons.worlds import travel  # noqa: E402

registry = Registry()
UNDONE: list[str] = []


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, world):
    with open(path, "w") as f:
        json.dump(world, f)


def change(path, fn):
    world = load(path)
    fn(world)
    save(path, world)


@compensation("travel.undo", registry)
def undo(world: str, step: str, idempotency_key: str | None = None) -> None:
    if os.environ.get("KILL_AT_FIRST_UNDO"):
        os.kill(os.getpid(), signal.SIGKILL)
    UNDONE.append(step)
    change(world, travel.UNDOS[step])  # cancel_room raises HotelRefuses: a dead letter


def booking(world: str) -> Saga:
    def step(name, book):
        if os.environ.get("ARUN") and name == "car":  # a slow rental company: the room first
            async def slow(s):
                import asyncio
                await asyncio.sleep(0.1)
                change(world, book)
            return Step(name, lambda s: slow(s), undo.bind(world=world, step=name))
        return Step(name, lambda s: change(world, book), undo.bind(world=world, step=name))

    return Saga([Parallel(step("car", travel.book_car), step("room", travel.book_room),
                          step("flight", travel.book_flight)),
                 Step("charge", travel.charge)], name="travel")


def run(world: str, journal: str) -> str:
    with Journal(journal) as j:
        if os.environ.get("ARUN"):  # at once, for real: asyncio
            import asyncio
            o = asyncio.run(booking(world).arun({}, inject={"charge": "fail"}, journal=j,
                                                run_id="t1"))
        else:
            o = booking(world).run({}, inject={"charge": "fail"}, completion=travel.TIMING,
                                   journal=j, run_id="t1")
    return f"{o.status} compensated={list(o.compensated)} dead={[d.step for d in o.dead_letters]}"


if __name__ == "__main__" and len(sys.argv) == 3:  # the child: run it (and die at the undo)
    print(run(sys.argv[1], sys.argv[2]))
    sys.exit(0)

def main() -> None:
    d = tempfile.mkdtemp()
    for label, kill in (("in process, no crash", False), ("killed at first undo + recover", True)):
        world, journal = os.path.join(d, f"w{kill}.json"), os.path.join(d, f"j{kill}.db")
        save(world, travel.state())
        env = dict(os.environ, KILL_AT_FIRST_UNDO="1" if kill else "")
        p = subprocess.run([sys.executable, __file__, world, journal], env=env,
                           capture_output=True, text=True)
        said = p.stdout.strip() or f"(killed, rc={p.returncode})"
        if kill:
            with Journal(journal) as j:
                report = recover(j, registry)
            [r] = report.recovered
            said += f"; recover: {r.status}, undo calls in order {UNDONE}"
        w = load(world)
        held = travel.held(w)
        print(f"{label:32} {said}\n{'':32} world after: {w}  still held: {held}")


if __name__ == "__main__":
    main()
