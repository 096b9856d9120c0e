"""The travel booking as a graph (lesson 12, issue 27): the room, the car and the flight at
once, then the charge.

One world where the undo order matters: the car company delivers the car to the hotel room
when the room is booked by the time the car's booking is made (else to the airport), and
the hotel will not cancel a room a car is delivered to. Nothing in the saga's definition says
the car depends on the room: it depends on timing. The car's booking starts first and
finishes after the room's, so

- reverse *completion* undoes the car, then the room: right;
- reverse *start* undoes the room first: the hotel refuses (a dead letter);
- *by dependency* knows no dependency between them, so it undoes them in reverse definition
  order: the room first, refused too.

Declared (``declared=True``: the car after the room, in one branch), every order the engine
may pick is right; the car's booking then waits for the room.

The charge is refunded like any booking is cancelled: a Stop while it runs (it finishes, then
is undone) leaves the world as it was, as a ``cancelled`` outcome says (learn80 F1: with no
undo, it stayed charged, ``kept``, under ``cancelled``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from ..outcome import Outcome, Table, compare_table
from ..saga import Parallel, Saga, State, Step
from ..schedule import dependants

ROOM, CAR, FLIGHT = "room-12", "car-7", "LH-400"
ORDERS = ("reverse", "reverse_start", "by_dependency")
TIMING = ("room", "car", "flight", "charge")
"""The order the steps finish in, as ``saga.run(completion=...)`` plays it: the car's
booking, started first, finishes after the room's."""


class HotelRefuses(Exception):
    """The hotel will not cancel a room a car is still delivered to."""


def state() -> dict[str, Any]:
    return {"hotel": {}, "cars": {}, "flights": {}, "charged": 0}


def book_room(state: State) -> None:
    state["hotel"][ROOM] = "booked"


def cancel_room(state: State) -> None:
    cars = [car for car, where in state["cars"].items() if where == ROOM]
    if cars:
        raise HotelRefuses(f"{ROOM} has {', '.join(cars)} delivered to it: cancel the car first")
    state["hotel"].pop(ROOM, None)


def book_car(state: State) -> None:
    state["cars"][CAR] = ROOM if ROOM in state["hotel"] else "airport"


def cancel_car(state: State) -> None:
    state["cars"].pop(CAR, None)


def book_flight(state: State) -> None:
    state["flights"][FLIGHT] = "booked"


def cancel_flight(state: State) -> None:
    state["flights"].pop(FLIGHT, None)


def charge(state: State) -> None:
    state["charged"] += 600


def refund(state: State) -> None:
    state["charged"] -= 600


def booking(*, declared: bool = False) -> Saga:
    """Car, room and flight at once (the car's booking listed, so started, first), then the
    charge; ``declared``: the car after the room, in one branch."""
    room = Step("room", book_room, cancel_room, label="book the hotel room")
    car = Step("car", book_car, cancel_car, label="rent a car, delivered to the room")
    flight = Step("flight", book_flight, cancel_flight, label="book the flight")
    group = Parallel([room, car], flight) if declared else Parallel(car, room, flight)
    return Saga([group, Step("charge", charge, refund, label="charge the card")], name="travel")


def orders_side_by_side(*, declared: bool = False) -> tuple[Table, dict[str, Outcome]]:
    """The charge fails; each undo order, played with the car finishing after the room."""
    saga = booking(declared=declared)
    outcomes = {
        order: saga.run(state(), inject={"charge": "fail"}, undo_order=order, completion=TIMING)  # type: ignore[arg-type]
        for order in ORDERS
    }
    return compare_table(outcomes), outcomes


def in_flight(seconds: float = 0.05) -> Saga:
    """The booking with the car's booking taking ``seconds`` (a slow rental company), for a
    cancel while it runs (``await saga.arun``)."""

    async def slow_car(state: State) -> None:
        await asyncio.sleep(seconds)
        book_car(state)

    car = Step("car", lambda s: slow_car(s), cancel_car, label="rent a car (slow)")
    room = Step("room", book_room, cancel_room)
    flight = Step("flight", book_flight, cancel_flight)
    return Saga([Parallel(car, room, flight), Step("charge", charge, refund)], name="travel")


async def cancelled_midway(world: dict[str, Any] | None = None) -> Outcome:
    """Start the booking, cancel its task while the car's booking runs (the room and the
    flight booked): the car's booking finishes, nothing more starts, everything is undone."""
    world = state() if world is None else world
    task = asyncio.ensure_future(in_flight().arun(world))
    while not (world["hotel"] and world["flights"]):
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError as cancelled:
        return cancelled.outcome  # type: ignore[attr-defined, no-any-return]
    raise AssertionError("the booking was not cancelled")  # pragma: no cover


def stopped_on_step_functions(
    runner: Any, *, stop_execution: bool
) -> tuple[Outcome, dict[str, Any]]:
    """The booking on Step Functions (``runner``: a started ``StepFunctionsRunner``), stopped
    once the flight is booked, before the charge: by Step Functions' own ``StopExecution``
    (the execution ends, nothing is undone: the bookings stay held) or by the runner's cancel
    (the saga machine compensates: ``cancelled``, everything released). The outcome and the
    world after it."""
    stop = threading.Event()

    def flight_then_stop(world: State) -> None:
        book_flight(world)
        stop.set()

    room = Step("room", book_room, cancel_room, label="book the hotel room")
    car = Step("car", book_car, cancel_car, label="rent a car, delivered to the room")
    flight = Step("flight", flight_then_stop, cancel_flight, label="book the flight")
    stopped = Saga([Parallel(car, room, flight), Step("charge", charge, refund)], name="travel")
    world = state()
    outcome = runner.run(stopped, world, cancel=stop, stop_execution=stop_execution)
    return outcome, world


async def cancelled_on_temporal(runner: Any) -> tuple[Outcome, dict[str, Any]]:
    """The booking on Temporal (``runner``: a started ``TemporalRunner``; the room's, the
    flight's, then the slow car's booking finishing), its workflow cancelled with Temporal's
    own ``handle.cancel()`` once the room and the flight are booked, while the car's
    booking runs: the car's activity finishes, the charge never starts, and the saga machine
    in the workflow undoes everything, shielded from the cancel: ``cancelled``. The outcome
    and the world after it."""
    release = threading.Event()

    def slow_car(world: State) -> None:
        release.wait(60)
        book_car(world)

    slow = Saga([Parallel(Step("car", slow_car, cancel_car), Step("room", book_room, cancel_room),
                          Step("flight", book_flight, cancel_flight)),
                 Step("charge", charge, refund)], name="travel")  # fmt: skip
    world = state()
    handle = await runner.start_saga(slow, world, completion=("room", "flight", "car"))
    try:
        while await handle.workflow.query("running") != ["car"]:
            await asyncio.sleep(0.02)
        await handle.cancel()
        while not await _heard(handle.workflow):  # the workflow took the cancel in
            await asyncio.sleep(0.02)
    finally:
        release.set()
    return await handle.outcome(), world


async def _heard(workflow: Any) -> bool:
    """Has the workflow heard its cancel: a workflow task completed after the request?"""
    kinds = [e.WhichOneof("attributes") async for e in workflow.fetch_history_events()]
    asked = "workflow_execution_cancel_requested_event_attributes"
    return asked in kinds and "workflow_task_completed_event_attributes" in kinds[
        kinds.index(asked):]  # fmt: skip


def held(world: dict[str, Any]) -> list[str]:
    """What the traveller still holds in ``world``: bookings and the charge."""
    kinds = {"hotel": "room", "cars": "car", "flights": "flight"}
    return [kinds[k] for k, booked in world.items() if k in kinds and booked] + (
        ["charge"] if world["charged"] else [])  # fmt: skip


UNDOS = {"room": cancel_room, "car": cancel_car, "flight": cancel_flight}


def booked() -> dict[str, Any]:
    """The world once the three bookings are made, the room's before the car's (the car is
    delivered to the room), before the charge."""
    world = state()
    for book in (book_room, book_car, book_flight):
        book(world)
    return world


def undo_in(order: tuple[str, ...], world: dict[str, Any]) -> list[str]:
    """Run the bookings' undos on ``world`` in ``order``, going on past a refusal (as the
    ``continue`` policy does); the steps whose undo was refused."""
    refused = []
    for step in order:
        try:
            UNDOS[step](world)
        except HotelRefuses:
            refused.append(step)
    return refused


def allowed(order: tuple[str, ...], saga: Saga) -> bool:
    """May a by-dependency engine pick ``order`` for ``saga``: does every undo run after the
    undos of every step that depended on it?"""
    below = dependants(saga.dependencies)
    return all(not (below[step] & set(order[i + 1 :])) for i, step in enumerate(order))


def every_undo_order() -> tuple[Table, int]:
    """Each of the 6 orders an engine that runs every undo at once might end up in, on the
    booked world: what it leaves, and whether the declared dependency allows it. Also how
    many orders leave something booked."""
    declared = booking(declared=True)
    rows, wrong = [], 0
    for order in itertools.permutations(UNDOS):
        world = booked()
        refused = undo_in(order, world)
        wrong += bool(refused)
        left = "the hotel refuses: the room stays booked" if refused else "all undone"
        rows.append((" → ".join(order), left, "yes" if allowed(order, declared) else "no"))
    header = ("undo order", "what it leaves", "allowed, car declared after room")
    return Table(header=header, rows=tuple(rows)), wrong


def engines_say() -> list[str]:
    """What this project's engines say when given the booking with its parallel group,
    before anything runs: Temporal's runner plans it (the plan its workflow is given, made
    without a server: the branches as concurrent activities); the two writers take it (ASL:
    a Parallel state; BPMN: parallel gateways), and their runners (Step Functions,
    SpiffWorkflow) run it, as DBOS's does."""
    from ..runners.bpmn import to_bpmn
    from ..runners.stepfunctions import to_asl
    from ..runners.temporal import plan_for, plan_text

    said = ["Temporal's plan:", *(f"  {line}" for line in plan_text(plan_for(booking())))]
    states = to_asl(booking())["States"].values()
    parallel = sum(1 for state in states if state["Type"] == "Parallel")
    said.append(f"to_asl: written, with {parallel} Parallel state")
    gateways = to_bpmn(booking()).count("<bpmn:parallelGateway ")
    said.append(f"to_bpmn: written, with {gateways} parallel gateways (a split and a join)")
    return said
