"""Lesson 01 exercise: write the rollback loop itself, as the first section does by hand.

The check runs the learner's loop on pipelines of 1 to 12 steps, any one failing (or none),
any of the undos before it failing too, each with its own kind of error, and a
``dead_letters`` list that sometimes already holds an earlier run's letters (they stay, and
the new ones follow, in the order the undos failed).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
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


class StepFailed(Exception):
    """The failure the world's step raises (the loop must re-raise this very object)."""


UNDO_ERRORS: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, PermissionError)


@dataclass(frozen=True)
class World:
    steps: int
    fail_at: int | None  # the step that raises (1-based), or None
    broken: frozenset[int]  # the steps whose undo raises
    error: type[Exception]  # what a broken undo raises
    earlier: int = 0  # dead letters of earlier runs already in the list passed in

    def __str__(self) -> str:
        where = f"with {self.steps} step{'s' * (self.steps != 1)}"
        if self.fail_at is None:
            return where + " and none failing"
        where += f" and step {self.fail_at} failing"
        if self.broken:
            which = " and ".join(map(str, sorted(self.broken, reverse=True)))
            undos, fail = ("undos", "fail") if len(self.broken) > 1 else ("undo", "fails")
            where += f" (the {undos} of {which} {fail} too, with {self.error.__name__})"
        if self.earlier:
            where += f", and {self.earlier} earlier dead letter{'s' * (self.earlier != 1)} "
            where += "already in dead_letters"
        return where


def worlds() -> list[World]:
    """Every pipeline of up to 4 steps (each failure, each set of failing undos), then
    pipelines of 5 to 12 steps drawn at random."""
    rng = generator("01.1")
    found = []
    for steps in range(1, 5):
        for fail_at in (None, *range(1, steps + 1)):
            done = range(1, fail_at) if fail_at else range(0)
            for mask in range(2 ** len(done)):
                broken = frozenset(i for i in done if mask >> (i - 1) & 1)
                error = UNDO_ERRORS[mask % 3]
                found.append(World(steps, fail_at, broken, error))
                if broken or steps == 1:  # a caller's list that already holds letters
                    found.append(World(steps, fail_at, broken, error, earlier=1 + mask % 2))
    for _ in range(150):
        steps = rng.randint(5, 12)
        fail_at = rng.choice([None, *range(1, steps + 1)])
        done = range(1, fail_at) if fail_at else range(0)
        broken = frozenset(i for i in done if rng.random() < 0.3)
        earlier = rng.choice((0, 0, 1, 2))
        found.append(World(steps, fail_at, broken, rng.choice(UNDO_ERRORS), earlier))
    return found


def size(world: World) -> tuple[int, ...]:
    return (world.steps, len(world.broken), world.fail_at or 0, world.earlier)


EARLIER = ("reserve: 503 (an earlier run)", "label: timeout (an earlier run)")


def _run(fn: Callable[..., Any], world: World) -> tuple[list[str], list[Any], Any, Any]:
    """The learner's loop on ``world``: what ran (in order), the dead letters, what
    escaped, and the step's own error, the undos' errors and the earlier letters."""
    ran: list[str] = []
    failure = StepFailed(f"step {world.fail_at} failed")
    undo_errors: dict[int, Exception] = {}

    def do(i: int) -> Callable[[], None]:
        def action() -> None:
            if i == world.fail_at:
                ran.append(f"do {i} (fails)")
                raise failure
            ran.append(f"do {i}")

        return action

    def undo(i: int) -> Callable[[], None]:
        def action() -> None:
            ran.append(f"undo {i}")
            if i in world.broken:
                undo_errors[i] = world.error(f"undo {i}: 503")
                raise undo_errors[i]

        return action

    pairs = [(do(i), undo(i)) for i in range(1, world.steps + 1)]
    earlier = [RuntimeError(EARLIER[n]) for n in range(world.earlier)]
    dead: list[Any] = list(earlier)
    escaped: BaseException | None = None
    try:
        fn(pairs, dead)
    except NotImplementedError:
        raise NotAttempted("not attempted yet: replace `raise NotImplementedError`.") from None
    except Exception as exc:
        escaped = exc
    return ran, dead, escaped, (failure, undo_errors, earlier)


def _shown(value: Any) -> str:
    """A value as feedback shows it: never with a memory address, which changes each run."""
    if isinstance(value, type):  # (learn73 F7: a class was called "a function")
        if issubclass(value, BaseException):
            return f"the class {value.__name__} (the error's type, not the error raised)"
        return f"the class {value.__name__}"
    if callable(value):
        undo = getattr(value, "__qualname__", "").startswith(f"{_run.__name__}.<locals>.undo.")
        return "an undo (the function itself)" if undo else "a function"
    if isinstance(value, str | int | float | bool | type(None)):
        return repr(value)
    return f"a {type(value).__name__}"


def _steps(numbers: list[int]) -> str:
    """``[2, 1]`` as "steps 2 and 1", ``[1]`` as "step 1"."""
    if len(numbers) == 1:
        return f"step {numbers[0]}"
    return "steps " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"


def _undoes(fn: Callable[..., Any]) -> bool:
    """Does the loop undo anything at all, with 4 steps and the 4th failing? (Told apart: a
    loop the step's error gets out of uncaught, and one that catches it but skips an undo:
    learn82 F1.)"""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # (not what it printed in the world)
            ran = _run(fn, World(4, 4, frozenset(), ConnectionError))[0]
    except NotAttempted:
        return True  # (no claim that it never undoes)
    return any(call.startswith("undo ") for call in ran)


SUCCEEDED = " that succeeded, newest first, and go on past an undo that fails"


def _slip(
    fn: Callable[..., Any],
    world: World,
    ran: list[str],
    escaped: Any,
    failure: Exception,
    undo_errors: dict[int, Exception],
) -> str:
    """What the loop's calls (``ran``, not the ones wanted) got wrong, as its feedback says
    it: the undo of the failed step, an undo run twice, the undos out of order, undos
    skipped, or none after one that failed (learn82 F1: a skipped undo was blamed on the
    except clause)."""
    fail = world.fail_at or 0
    steps_ran = [f"do {i}" for i in range(1, fail)] + [f"do {fail} (fails)"]
    after = ran[len(steps_ran) :]
    dos = [c.split()[1] for c in ran if c.startswith("do ")]
    again = next((i for i in dos if dos.count(i) > 1), None)
    if again is not None:  # (a step retried: learn83 F6)
        return (
            f"do {again} ran {dos.count(again)} times: run each step once, and when one "
            "fails, undo only the steps" + SUCCEEDED
        )
    later = next((c for c in after if c.startswith("do ")), None)
    if ran[: len(steps_ran)] == steps_ran and later is not None:
        return (
            f"{later.split()[0]} {later.split()[1]} ran after step {fail} failed: stop at the "
            "step that fails, and undo only the steps" + SUCCEEDED
        )
    if ran[: len(steps_ran)] != steps_ran:
        return "undo only the steps" + SUCCEEDED  # the steps themselves ran otherwise
    undos = [int(call.split()[1]) for call in after]
    wanted = list(range(fail - 1, 0, -1))
    if fail in undos:
        return f"undo {fail} ran, but step {fail} failed: undo only the steps" + SUCCEEDED
    never = [i for i in undos if i > fail]
    if never:
        return f"undo {never[0]} ran, but step {never[0]} never ran: undo only the steps" + (
            SUCCEEDED
        )
    twice = [i for i in wanted if undos.count(i) > 1]
    if twice:
        again = " (it failed the first time: its error is a dead letter)" * (
            twice[0] in world.broken
        )
        return (
            f"undo {twice[0]} ran {undos.count(twice[0])} times{again}: call the undo of "
            "each step that succeeded once, newest first"
        )
    if sorted(undos) == sorted(wanted):
        return f"the undos ran in the order {undos}: undo newest first, the reverse of the steps"
    skipped = "the undo of " + _steps([i for i in wanted if i not in undos]) + " never ran"
    from_undo = any(escaped is e for e in undo_errors.values())
    if undos and undos == wanted[: len(undos)] and undos[-1] in world.broken:
        how = f"its {escaped!r} got out of your loop" if from_undo else "your loop stopped"
        return (
            f"after the undo of step {undos[-1]} failed, {how}: {skipped}. A failed undo "
            "is a dead letter (catch its exception), and the loop goes on to the next undo"
        )
    if escaped is not None and escaped is not failure and not from_undo:  # the loop's own
        return f"{raised(escaped, 'loop')}, and {skipped}; undo the steps" + SUCCEEDED
    if not undos and escaped is failure and not _undoes(fn):  # (it never undoes: learn74 F3)
        return (
            f"the step's {escaped!r} got out of your loop, and no undo ran (is "
            f"{type(escaped).__name__} among the exceptions it catches?); catch every "
            "exception, then undo the steps" + SUCCEEDED
        )
    newest = ", newest first" * (len(wanted) > 1)
    return f"{skipped}: undo every step that succeeded (here {_steps(wanted)}{newest})"


def _check_loop(run_with_rollback: Any) -> str:
    fn = function(run_with_rollback, "run_with_rollback(steps, dead_letters)")

    def holds(world: World) -> None:
        ran, dead, escaped, (failure, undo_errors, earlier) = _run(fn, world)
        if world.fail_at is None:
            want = [f"do {i}" for i in range(1, world.steps + 1)]
            if escaped is not None:
                raise Incorrect(f"{world}, {raised(escaped, 'loop')}; nothing failed")
            if ran != want:
                raise Incorrect(f"{world}, the calls were {ran}; nothing failed, so {want}")
            if list(map(id, dead)) != list(map(id, earlier)):
                raise Incorrect(
                    f"{world}, dead_letters is {dead!r}; nothing failed, so it should still "
                    f"be {earlier!r}"
                )
            return
        done = range(1, world.fail_at)
        want = [f"do {i}" for i in done] + [f"do {world.fail_at} (fails)"]
        want += [f"undo {i}" for i in reversed(done)]
        if ran != want:  # (learn74 F3, learn82 F1: say what went wrong)
            slip = _slip(fn, world, ran, escaped, failure, undo_errors)
            raise Incorrect(f"{world}, the calls were {ran}; expected {want}: {slip}")
        if escaped is None:
            raise Incorrect(
                f"{world}, your loop returned normally: re-raise the step's own error after "
                "the undos, so the caller knows the pipeline failed"
            )
        if escaped is not failure:
            if any(escaped is e for e in undo_errors.values()):
                what = f"let the undo's {escaped!r} out"
            else:
                what = raised(escaped, "loop").removeprefix("your loop ")
            raise Incorrect(
                f"{world}, your loop {what}: re-raise the step's own error (the same "
                "object), after the undos"
            )
        expected = [undo_errors[i] for i in sorted(undo_errors, reverse=True)]
        new = dead[world.earlier :]
        strange = [d for d in new if not isinstance(d, BaseException)]
        if strange:
            raise Incorrect(
                f"{world}, dead_letters got {_shown(strange[0])}, not an exception: "
                "append the exception each failed undo raised (`except Exception as error:`)"
            )
        if list(map(id, dead[: world.earlier])) != list(map(id, earlier)):
            raise Incorrect(
                f"{world}, dead_letters is {dead!r}: the earlier letters "
                f"{earlier!r} must stay, first; append the new ones after them"
            )
        if not new and expected:  # (every undo ran: each failed one's error was caught)
            said = f"{world}, dead_letters is {dead!r}; expected {[*earlier, *expected]!r}: your "
            if world.earlier:  # (learn226 F1: one appending only to an empty list was told
                raise Incorrect(  # of "a new list" it never made)
                    f"{said}loop caught the error of each failed undo, but the dead_letters "
                    f"list it was given, holding {world.earlier} earlier, got nothing new: "
                    "append the exception of each failed undo to it whatever it already "
                    "holds (and to that very list: a new one is not the one the caller reads)"
                )
            raise Incorrect(
                f"{said}loop caught the error of each failed undo, but "
                + left_unappended("dead_letters", "the exception of each failed undo")
            )
        if sorted(map(id, new)) != sorted(map(id, expected)):
            raise Incorrect(
                f"{world}, dead_letters is {dead!r}; expected {[*earlier, *expected]!r}: "
                "append the exception of each undo that failed (and nothing else)"
            )
        if list(map(id, new)) != list(map(id, expected)):
            raise Incorrect(
                f"{world}, the new dead letters are {new!r}; expected {expected!r}: append "
                "each in the order the undos failed (newest step first), at the end"
            )

    forall(worlds(), holds, size=size)
    return "newest first, past every failed undo (a dead letter each), then the original error."


LESSON_IMPORTS = (
    "from rollback_lessons import Rollback\nfrom rollback_lessons.lab.exercises import lesson01\n"
)
"""What lesson 01 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="01.1",
    setup=LESSON_IMPORTS,
    title="Write the rollback loop",
    checker=_check_loop,
    answer_names=("run_with_rollback",),
    hints=(
        "Keep a list of the undos of the steps that succeeded, as the first cell does.",
        "When a step raises, go through that list backwards, newest first.",
        "Give each undo its own try/except: a failing undo becomes a dead letter and the "
        "loop goes on; the step's error is re-raised only after the last undo.",
    ),
    solution_code=(
        "# exercise: 01.1\n"
        "def run_with_rollback(steps, dead_letters):\n"
        "    done = []\n"
        "    try:\n"
        "        for do, undo in steps:\n"
        "            do()\n"
        "            done.append(undo)\n"
        "    except Exception:\n"
        "        for undo in reversed(done):\n"
        "            try:\n"
        "                undo()\n"
        "            except Exception as error:\n"
        "                dead_letters.append(error)\n"
        "        raise"
    ),
)

register(q1)
