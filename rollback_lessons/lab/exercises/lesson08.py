"""Lesson 08 exercise: write the compensation part of a saga written for Temporal.

``check`` first runs the learner's ``compensate`` in this process on compensation lists it
draws (0 to 12 calls, names that sort differently from the order they were logged, any of
the undos failing with Temporal's ``ActivityError``, undos that take a while, the workflow
cancelled just as one ends: the cancel must get out), where a mistake is found in a moment
and explained. Then it puts ``compensate`` into the
hand-written booking workflow (``worlds.temporal_booking``) and runs it on Temporal's dev
server, for a failure at each step up to the email (the pivot: it has no compensation) and
for undos that fail, and reads the world's own record of what was undone.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import (
    Exercise,
    Incorrect,
    NotAttempted,
    forall,
    function,
    generator,
    left_unappended,
    raised,
    register,
)

NAMES = ("reserve_room", "charge_card", "hold_seat", "add_row", "book_taxi", "create_event")


@dataclass(frozen=True)
class World:
    steps: tuple[str, ...]  # the compensations, oldest first
    broken: frozenset[str]  # whose undo fails (ActivityError)
    slow: tuple[int, ...]  # how many turns of the event loop each undo takes
    cancel_at: str | None = None  # the workflow is cancelled just as this undo ends

    def __str__(self) -> str:
        if not self.steps:
            return "with no compensations"
        text = f"with compensations for {', '.join(self.steps)} (oldest first)"
        if self.broken:
            which = " and ".join(s for s in reversed(self.steps) if s in self.broken)
            text += f" and the undo of {which} failing"
        if self.cancel_at:
            text += f", the workflow cancelled just as the undo of {self.cancel_at} ends"
        return text


def worlds() -> list[World]:
    rng = generator("08.1")
    found = [World((), frozenset(), ())]
    for _ in range(200):
        count = rng.choice((1, 2, 3, rng.randint(4, 12)))
        if rng.random() < 0.5:
            steps = tuple(f"step{i}" for i in range(1, count + 1))
        else:
            steps = tuple(rng.sample(NAMES, min(count, len(NAMES))))
            steps += tuple(f"step{i}" for i in range(len(steps) + 1, count + 1))
        broken = frozenset(s for s in steps if rng.random() < 0.25)
        slow = tuple(rng.choice((0, 0, 1, 3)) for _ in steps)
        found.append(World(steps, broken, slow))
    return found + _cancelled(found)


def _cancelled(drawn: list[World]) -> list[World]:
    """Some of the drawn worlds again, the workflow cancelled just as one undo ends (the
    middle one, newest first). A cancel that comes in the same workflow task as the undo's
    end makes Temporal raise asyncio.CancelledError at that await, the end dropped
    (``_await_temporal_operation``, sdk-python#620; seen on the dev server, temporalio
    1.35). (A cancel while the undo still runs comes as its ActivityError, cause
    CancelledError: compensate cannot tell it from a failure without asking.)"""
    with_steps = [w for w in drawn if w.steps]
    return [World(w.steps, w.broken, w.slow, w.steps[len(w.steps) // 2]) for w in with_steps[::8]]


def size(world: World) -> tuple[int, ...]:  # the cancelled worlds after all the others
    return (world.cancel_at is not None, len(world.steps), len(world.broken), sum(world.slow))


class _Undo:
    """What ``await undo(call)`` does in this process: the undo takes ``turns`` turns of the
    event loop, then succeeds or raises Temporal's ActivityError. An awaitable, not a
    coroutine, so one never awaited is simply not run (and says nothing)."""

    def __init__(self, log: _Log, step: str, turns: int, fails: bool, cancel: bool) -> None:
        self.log, self.step, self.turns, self.fails = log, step, turns, fails
        self.cancel = cancel

    def __await__(self) -> Generator[Any, None, None]:
        log = self.log
        log.started.append(self.step)
        if log.running:
            log.overlaps.append((self.step, log.running[-1]))
        log.running.append(self.step)
        try:
            for _ in range(self.turns):
                yield from asyncio.sleep(0).__await__()
        finally:
            log.running.remove(self.step)
        if self.fails and not self.cancel:
            raise _activity_error(self.step)
        if not self.fails:
            log.undone.append(self.step)
        if self.cancel:  # the undo ended, and the cancel came with its end: that is dropped
            raise asyncio.CancelledError


@dataclass
class _Log:
    started: list[str]
    undone: list[str]
    running: list[str]
    overlaps: list[tuple[str, str]]
    called: list[str]  # undo(call) called, awaited or not
    cancel_out: bool = False  # the CancelledError got out of compensate


def _activity_error(step: str) -> Exception:
    from temporalio.exceptions import ActivityError, ApplicationError, RetryState

    error = ActivityError(
        "Activity task failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="worker",
        activity_type="booking.undo",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    error.__cause__ = ApplicationError(f"undo of {step} failed", type="UndoFailed")
    return error


def _call(world: World, step: str) -> Any:
    from ...worlds.temporal_booking.activities import StepInput

    return StepInput("world.db", "b1", step, undo_fails=step in world.broken)


async def _in_process(fn: Any, world: World) -> tuple[_Log, list[Any], BaseException | None, Any]:
    log = _Log([], [], [], [], [])
    slow = dict(zip(world.steps, world.slow, strict=True))

    def undo(call: Any) -> _Undo:  # awaitable: what the workflow's `undo` is to the learner
        step = getattr(call, "step", None)
        if step not in slow:
            raise TypeError(f"undo() takes one of the calls of compensations, got {call!r}")
        cancel = step == world.cancel_at and step not in log.called  # (a cancel comes once)
        log.called.append(step)
        return _Undo(log, step, slow[step], step in world.broken, cancel)

    dead: list[Any] = []
    escaped = returned = None
    try:
        returned = await fn([_call(world, s) for s in world.steps], undo, dead)
    except NotImplementedError:
        raise
    except asyncio.CancelledError:
        log.cancel_out = True
    except Exception as exc:
        escaped = exc
    return log, dead, escaped, returned


def _expected(world: World) -> tuple[list[str], list[str]]:
    newest_first = list(reversed(world.steps))
    return [s for s in newest_first if s not in world.broken], [
        s for s in newest_first if s in world.broken
    ]


def _check_world(fn: Any, world: World, loop: asyncio.AbstractEventLoop) -> None:
    log, dead, escaped, returned = loop.run_until_complete(_in_process(fn, world))
    if world.cancel_at is not None:
        _check_cancelled(world, world.cancel_at, log, dead, escaped)
        return
    undone, dead_wanted = _expected(world)
    newest_first = list(reversed(world.steps))
    if escaped is not None:
        if type(escaped).__name__ == "ActivityError" and (
            log.started == newest_first and dead == dead_wanted
        ):  # (it caught each, recorded it and went on: learn83 F6)
            raise Incorrect(
                f"{world}, your compensate ran every undo and recorded the dead letters, then "
                "raised the ActivityError of a failing undo after all: do not raise it again; "
                "a failed undo is a dead letter, and the workflow's result names it"
            )
        if type(escaped).__name__ == "ActivityError":
            raise Incorrect(
                f"{world}, the ActivityError of a failing undo got out of your compensate: "
                "catch it, record the step, and go on with the rest"
            )
        raise Incorrect(f"{world}, {raised(escaped, 'compensate')}")
    if log.overlaps:
        late, early = log.overlaps[0]
        raise Incorrect(
            f"{world}, the undo of {late} started while the undo of {early} was still "
            "running: await each undo before starting the next, newest first (a later "
            "step may depend on an earlier one)"
        )
    if log.started != newest_first:
        missing = [s for s in newest_first if s not in log.started]
        twice = sorted({s for s in log.started if log.started.count(s) > 1})
        why = "every compensation, once each, newest first, also past one that fails"
        failed = [s for s in twice if s in world.broken]
        if failed:  # (its first run failed, and it was run again)
            why = (
                f"the undo of {', '.join(failed)} ran more than once; Temporal has already "
                "retried it as its RetryPolicy says: a failing one is a dead letter"
            )
        elif twice:  # (nothing failed: learn83 F6)
            why = (
                f"the undo of {', '.join(twice)} ran more than once: await the undo of each "
                "compensation once"
            )
        elif [s for s in missing if s in log.called]:
            never = [s for s in missing if s in log.called]
            why = (
                f"undo() was called for {', '.join(never)} without await, so it did not run: "
                "`await undo(call)`"
            )
        elif missing and log.started and log.started[-1] in world.broken:
            why = (
                f"after the undo of {log.started[-1]} failed, no other undo ran: a failing "
                "undo is a dead letter, and the rest still run (also past one that fails)"
            )
        elif missing:
            why = f"your compensate never undid {', '.join(missing)}"
        raise Incorrect(
            f"{world}, the undos ran in the order {log.started}, expected {newest_first}: {why}"
        )
    if log.undone != undone:  # pragma: no cover - follows from the order above
        raise Incorrect(f"{world}, the undos that worked were {log.undone}, expected {undone}")
    if dead != dead_wanted:
        wrong_type = [d for d in dead if not isinstance(d, str)]
        if wrong_type:
            raise Incorrect(
                f"{world}, dead_letters held {wrong_type[0]!r}: append the step's name, "
                "call.step (a str), so the workflow's result can say which undo failed"
            )
        if not dead:  # (no ActivityError got out: each was caught)
            raise Incorrect(
                f"{world}, the dead letters were [], expected {dead_wanted}: your compensate "
                "caught the ActivityError of each failing undo, but "
                + left_unappended("dead_letters", "the call.step of each failing undo", returned)
            )
        raise Incorrect(
            f"{world}, the dead letters were {dead}, expected {dead_wanted}: catch the "
            "ActivityError of a failing undo, append its call.step, and go on"
        )


def _check_cancelled(world: World, step: str, log: _Log, dead: list[Any], escaped: Any) -> None:
    """The cancel must get out of compensate (at once, or once the rest are undone): the
    order and the dead letters were checked in the worlds without one."""
    if log.cancel_out:
        return
    if escaped is not None:
        raise Incorrect(f"{world}, {raised(escaped, 'compensate')}")
    newest_first = list(reversed(world.steps))
    rest = newest_first[newest_first.index(step) + 1 :]
    how = "carried on" if set(rest) & set(log.started) else "returned"
    if step in dead:
        how += f" as if that undo had failed ({step} in dead_letters)"
    status = "rollback_incomplete" if dead else "rolled_back"
    raise Incorrect(
        f"{world}, Temporal raises asyncio.CancelledError at that `await undo(call)` (the "
        "cancel came in the same workflow task as the undo's end, which is dropped), and "
        f"your compensate caught it and {how}: the workflow returns {status} instead of "
        "ending cancelled, and Temporal asks a workflow to cancel only once, so the cancel "
        "is lost; catch ActivityError alone (not BaseException), or re-raise the "
        "CancelledError (once the rest are undone, if you like)"
    )


# (the step that fails, the undos that fail); the lesson's case first
CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("send_email", ()),
    ("charge_card", ()),
    ("send_email", ("charge_card",)),
    ("send_email", ("reserve_room", "charge_card")),
)


def on_temporal_when(fail_at: str, broken: tuple[str, ...]) -> str:
    """A case of ``CASES`` as its feedback names it ("the undos of reserve_room and
    charge_card fail too": learn82 F1 found 01.1's "the undo of 2 and 1 fails too")."""
    if not broken:
        return f"on Temporal, when {fail_at} fails"
    undos, fail = ("undos", "fail") if len(broken) > 1 else ("undo", "fails")
    return f"on Temporal, when {fail_at} fails and the {undos} of {' and '.join(broken)} {fail} too"


def _on_temporal(fn: Any) -> list[tuple[str, tuple[str, ...], Any, Any]]:
    """The booking workflow with the learner's compensate, on Temporal's dev server."""
    from temporalio.client import WorkflowFailureError

    from ...runners.temporal import TemporalRunner
    from ...worlds.crashlab import world_report
    from ...worlds.temporal_booking.demo import run_bookings
    from ...worlds.temporal_booking.workflows import BookingInput

    async def main(tmp: str) -> list[Any]:
        bookings = [
            BookingInput(str(Path(tmp) / f"world{n}.db"), f"b{n}", fail_at, list(broken))
            for n, (fail_at, broken) in enumerate(CASES)
        ]
        async with await TemporalRunner.start() as runner:
            try:
                results = await run_bookings(runner, bookings, compensate=fn)
            except WorkflowFailureError as exc:
                inner = getattr(exc.cause, "cause", None)
                cause = inner if inner is not None else exc.cause
                raise Incorrect(f"on Temporal, your compensate raised {cause}") from None
        return [
            (fail_at, broken, result, world_report(b.world))
            for (fail_at, broken), result, b in zip(CASES, results, bookings, strict=True)
        ]

    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main(tmp))).result()


def _check_compensate(compensate: Any) -> str:
    from ...worlds.temporal_booking.workflows import COMPENSABLE

    fn = function(compensate, "compensate(compensations, undo, dead_letters)", asynchronous=True)

    def in_a_thread() -> int:  # a notebook already runs an event loop here
        loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(fn([], _never, []))
            except NotImplementedError:
                raise NotAttempted(
                    "not attempted yet: replace `raise NotImplementedError`."
                ) from None
            except Exception:
                pass  # the worlds will say where
            return forall(worlds(), lambda w: _check_world(fn, w, loop), size=size)
        finally:
            loop.close()

    with ThreadPoolExecutor(1) as pool:
        tried = pool.submit(in_a_thread).result()
    for fail_at, broken, result, report in _on_temporal(fn):
        logged = (
            COMPENSABLE[: COMPENSABLE.index(fail_at) + 1] if fail_at in COMPENSABLE else COMPENSABLE
        )
        undone = [s for s in reversed(logged) if s not in broken]
        dead = [s for s in reversed(logged) if s in broken]
        where = on_temporal_when(fail_at, broken)
        if (result.undone, result.dead_letters) != (undone, dead):
            raise Incorrect(
                f"{where}, the workflow undid {result.undone} (dead letters "
                f"{result.dead_letters}); expected {undone} (dead letters {dead})"
            )
        effects = {step: flag for _, step, flag in report["effects"]}
        for step in logged:
            if step in effects and effects[step] != (step not in broken):
                state = "undone" if effects[step] else "still done"
                raise Incorrect(f"{where}, the world shows {step} {state}")
    return (
        f"in {tried} compensation lists in this process and {len(CASES)} bookings on "
        "Temporal, every compensation runs once, newest first, a failing one is a dead "
        "letter, and a cancel of the workflow gets out of it."
    )


async def _never(call: Any) -> None:
    return None


LESSON_IMPORTS = (
    "from rollback_lessons.runners.temporal import TemporalRunner\n"
    "from rollback_lessons.outcome import compare_table\n"
    "from rollback_lessons.worlds.demo import xyz_saga, xyz_state\n"
    "from rollback_lessons import Retry, RetryPolicy\n"
    "import asyncio\n"
    "from IPython.display import Markdown\n"
    "import inspect\n"
    "from rollback_lessons.worlds.temporal_booking import workflows\n"
    "import tempfile\n"
    "from pathlib import Path\n"
    "from rollback_lessons.worlds.temporal_booking.demo import kill_a_worker_mid_rollback\n"
    "from rollback_lessons.worlds.temporal_booking.demo import email_in_doubt\n"
    "from temporalio.exceptions import ActivityError\n"
    "import urllib.request\n"
    "from rollback_lessons.lab.exercises import lesson08\n"
)
"""What lesson 08 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="08.1",
    setup=LESSON_IMPORTS,
    title="Write the compensation",
    checker=_check_compensate,
    answer_names=("compensate",),
    hints=(
        "`compensations` lists what to undo, oldest first: which one must go first?",
        "Each undo is `await undo(call)`: Temporal runs it as an activity, one after the "
        "other when each is awaited before the next.",
        "A failing undo raises temporalio.exceptions.ActivityError: catch it around that "
        "one undo, note which step it was in dead_letters, and carry on with the rest.",
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
)

register(q1)
