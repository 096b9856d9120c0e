"""Lesson 08 exercise: write the compensation part of a saga written for Temporal.

``check`` puts the learner's ``compensate`` into the hand-written booking workflow
(``worlds.temporal_booking``) and runs it on Temporal's dev server, for failures at each
step and undos that fail, and reads the world's own record of what was undone.
"""

from __future__ import annotations

import asyncio
import inspect
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import Exercise, Incorrect, NotAttempted, function, register

# (the step that fails, the undos that fail); the lesson shows the first
CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("send_email", ()),
    ("charge_card", ()),
    ("reserve_room", ()),
    ("send_email", ("charge_card",)),
    ("send_email", ("reserve_room", "send_email")),
)
ORDER = ("reserve_room", "charge_card", "send_email")


def _expected(fail_at: str, broken: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(undone, dead letters), newest first: every step up to the failing one is undone."""
    logged = list(ORDER[: ORDER.index(fail_at) + 1])  # undos are logged before their step
    undone = [s for s in reversed(logged) if s not in broken]
    dead = [s for s in reversed(logged) if s in broken]
    return undone, dead


async def _run_on_temporal(compensate: Any) -> list[tuple[str, tuple[str, ...], Any, Any]]:
    from temporalio.client import WorkflowFailureError

    from ...runners.temporal import TemporalRunner
    from ...worlds.crashlab import world_report
    from ...worlds.temporal_booking.demo import run_bookings
    from ...worlds.temporal_booking.workflows import BookingInput

    with tempfile.TemporaryDirectory() as tmp:
        worlds = [str(Path(tmp) / f"world{n}.db") for n in range(len(CASES))]
        bookings = [
            BookingInput(world, f"b{n}", fail_at, list(broken))
            for n, (world, (fail_at, broken)) in enumerate(zip(worlds, CASES, strict=True))
        ]
        async with await TemporalRunner.start() as runner:
            try:
                results = await run_bookings(runner, bookings, compensate=compensate)
            except WorkflowFailureError as exc:
                inner = getattr(exc.cause, "cause", None)
                cause = inner if inner is not None else exc.cause
                raise Incorrect(f"your compensate raised {cause} inside the workflow") from None
        return [
            (fail_at, broken, result, world_report(world))
            for (fail_at, broken), result, world in zip(CASES, results, worlds, strict=True)
        ]


def _check_compensate(compensate: Any) -> str:
    fn = function(compensate, "compensate", params=3)
    if not inspect.iscoroutinefunction(fn):
        raise Incorrect("compensate must be `async def`: it awaits undo(call) for each step")

    async def nothing(call: Any) -> None:
        return None

    with ThreadPoolExecutor(1) as pool:  # a notebook already runs an event loop: a thread
        try:
            pool.submit(lambda: asyncio.run(fn([], nothing, []))).result()
        except NotImplementedError:
            raise NotAttempted("not attempted yet: replace `raise NotImplementedError`.") from None
        results = pool.submit(lambda: asyncio.run(_run_on_temporal(fn))).result()
    for fail_at, broken, result, report in results:
        undone, dead = _expected(fail_at, broken)
        where = f"when {fail_at} fails" + (
            f" and the undo of {' and '.join(broken)} fails too" if broken else ""
        )
        if result.undone != undone:
            raise Incorrect(
                f"{where}, Temporal ran the undos {result.undone}, expected {undone}: every "
                "compensation, newest first, also past one that fails"
            )
        if result.dead_letters != dead:
            raise Incorrect(
                f"{where}, the dead letters were {result.dead_letters}, expected {dead}: catch "
                "the ActivityError of a failing undo, record its step, and go on"
            )
        effects = {step: undone_flag for _, step, undone_flag in report["effects"]}
        for step, flag in effects.items():
            if flag != (step not in broken):
                raise Incorrect(f"{where}, the world shows {step} {'un' if flag else ''}done")
    return "every compensation runs on Temporal, newest first, and a failing one is a dead letter."


q1 = Exercise(
    id="08.1",
    title="Write the compensation of a Temporal saga",
    checker=_check_compensate,
    answer_names=("compensate",),
    hints=(
        "`compensations` lists what to undo, oldest first; `reversed(...)` gives newest first.",
        "Each undo is `await undo(call)`: Temporal runs it as an activity.",
        "A failing undo raises temporalio.exceptions.ActivityError: catch it, append "
        "call.step to dead_letters, and go on with the rest.",
    ),
    solution_code=(
        "# exercise: 08.1\n"
        "async def compensate(compensations, undo, dead_letters):\n"
        "    for call in reversed(compensations):\n"
        "        try:\n"
        "            await undo(call)\n"
        "        except ActivityError:\n"
        "            dead_letters.append(call.step)"
    ),
    setup="from temporalio.exceptions import ActivityError",
    wrong_answers=(
        # a name that does not exist: an error inside the workflow, reported, no hang
        "async def compensate(compensations, undo, dead_letters):\n"
        "    for call in reversed(compensations):\n"
        "        await undo(call)\n"
        "        note_it(call)",
        # forward order
        "async def compensate(compensations, undo, dead_letters):\n"
        "    for call in compensations:\n"
        "        try:\n"
        "            await undo(call)\n"
        "        except ActivityError:\n"
        "            dead_letters.append(call.step)",
        # stops at the first undo that fails
        "async def compensate(compensations, undo, dead_letters):\n"
        "    for call in reversed(compensations):\n"
        "        try:\n"
        "            await undo(call)\n"
        "        except ActivityError:\n"
        "            dead_letters.append(call.step)\n"
        "            break",
        # not async
        "def compensate(compensations, undo, dead_letters):\n"
        "    for call in reversed(compensations):\n"
        "        undo(call)",
    ),
    right_answers=(
        "async def compensate(compensations, undo, dead_letters):\n"
        "    while compensations:\n"
        "        call = compensations.pop()\n"
        "        try:\n"
        "            await undo(call)\n"
        "        except Exception:\n"
        "            dead_letters.append(call.step)",
    ),
)

register(q1)
