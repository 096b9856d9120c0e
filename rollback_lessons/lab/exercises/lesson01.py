"""Lesson 01 exercise: write the rollback loop itself, as the first section does by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import Exercise, Incorrect, NotAttempted, function, register


class _StepFailed(Exception):
    """The failure the checker's step raises (the learner must re-raise this very object)."""


def _case(
    fn: Callable[..., Any], steps: int, fail_at: int | None, broken_undos: set[int]
) -> tuple[list[str], list[Any], BaseException | None, _StepFailed | None]:
    """Run the learner's loop on ``steps`` steps; step ``fail_at`` raises, the undos in
    ``broken_undos`` raise. Returns what ran (in order), the dead letters, what escaped."""
    ran: list[str] = []
    failure = _StepFailed(f"step {fail_at} failed") if fail_at is not None else None

    def do(i: int) -> Callable[[], None]:
        def action() -> None:
            if i == fail_at:
                raise failure  # type: ignore[misc]
            ran.append(f"do {i}")

        return action

    def undo(i: int) -> Callable[[], None]:
        def action() -> None:
            ran.append(f"undo {i}")
            if i in broken_undos:
                raise ConnectionError(f"undo {i}: 503")

        return action

    pairs = [(do(i), undo(i)) for i in range(1, steps + 1)]
    dead: list[Any] = []
    escaped: BaseException | None = None
    try:
        fn(pairs, dead)
    except NotImplementedError:
        raise NotAttempted("not attempted yet: replace `raise NotImplementedError`.") from None
    except Exception as exc:
        escaped = exc
    return ran, dead, escaped, failure


def _check_loop(run_with_rollback: Any) -> str:
    fn = function(run_with_rollback, "run_with_rollback", params=2)
    # (steps, failing step, undos that fail): the lesson's case first, then others
    cases = [(3, 3, set()), (3, None, set()), (5, 4, set()), (4, 1, set()), (5, 5, {2}),
             (6, 6, {5, 3})]  # fmt: skip
    for steps, fail_at, broken in cases:
        ran, dead, escaped, failure = _case(fn, steps, fail_at, broken)
        done = list(range(1, fail_at if fail_at is not None else steps + 1))
        want = [f"do {i}" for i in done] + [f"undo {i}" for i in reversed(done)]
        where = f"with {steps} steps" + (f" and step {fail_at} failing" if fail_at else "")
        if broken:
            where += f" (the undo of {', '.join(map(str, sorted(broken)))} fails)"
        if fail_at is None:
            want = [f"do {i}" for i in done]
            if escaped is not None:
                raise Incorrect(f"{where}, your loop raised {escaped!r}; nothing failed")
            if ran != want:
                raise Incorrect(f"{where}, nothing failed, so nothing is undone; ran {ran}")
            continue
        if ran != want:
            raise Incorrect(
                f"{where}, the calls were {ran}; expected {want}: undo only the steps that "
                "succeeded, newest first, and go on past an undo that fails"
            )
        if escaped is not failure:
            raise Incorrect(
                f"{where}, your loop "
                + ("raised nothing" if escaped is None else f"raised {escaped!r}")
                + ": re-raise the step's own error (the same object), after the undos"
            )
        errors = [d for d in dead if isinstance(d, ConnectionError)]
        if len(dead) != len(broken) or len(errors) != len(broken):
            raise Incorrect(
                f"{where}, dead_letters is {dead!r}; append each failed undo's exception "
                "(and nothing else)"
            )
    return "newest first, past every failed undo (a dead letter each), then the original error."


q1 = Exercise(
    id="01.1",
    title="Write the rollback loop",
    checker=_check_loop,
    answer_names=("run_with_rollback",),
    hints=(
        "Keep a list of the undos of the steps that succeeded, as the first cell does.",
        "When a step raises, go through that list backwards: reversed(undos).",
        "Wrap each undo in try/except Exception: append the error to dead_letters, go on.",
        "After the loop, a bare `raise` inside the except block re-raises the step's error.",
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
    wrong_answers=(
        # forward order
        "def run_with_rollback(steps, dead_letters):\n"
        "    done = []\n"
        "    try:\n"
        "        for do, undo in steps:\n"
        "            do()\n"
        "            done.append(undo)\n"
        "    except Exception:\n"
        "        for undo in done:\n"
        "            try:\n"
        "                undo()\n"
        "            except Exception as error:\n"
        "                dead_letters.append(error)\n"
        "        raise",
        # stops at the first failed undo
        "def run_with_rollback(steps, dead_letters):\n"
        "    done = []\n"
        "    try:\n"
        "        for do, undo in steps:\n"
        "            do()\n"
        "            done.append(undo)\n"
        "    except Exception:\n"
        "        for undo in reversed(done):\n"
        "            undo()\n"
        "        raise",
        # swallows the error
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
        "                dead_letters.append(error)",
        # also undoes the step that failed
        "def run_with_rollback(steps, dead_letters):\n"
        "    done = []\n"
        "    try:\n"
        "        for do, undo in steps:\n"
        "            done.append(undo)\n"
        "            do()\n"
        "    except Exception:\n"
        "        for undo in reversed(done):\n"
        "            try:\n"
        "                undo()\n"
        "            except Exception as error:\n"
        "                dead_letters.append(error)\n"
        "        raise",
        # fits the lesson's three steps only
        "def run_with_rollback(steps, dead_letters):\n"
        "    (do1, undo1), (do2, undo2), (do3, undo3) = steps\n"
        "    do1()\n"
        "    do2()\n"
        "    try:\n"
        "        do3()\n"
        "    except Exception:\n"
        "        undo2()\n"
        "        undo1()\n"
        "        raise",
    ),
    right_answers=(
        # a stack, popped
        "def run_with_rollback(steps, dead_letters):\n"
        "    stack = []\n"
        "    for do, undo in steps:\n"
        "        try:\n"
        "            do()\n"
        "        except Exception as failure:\n"
        "            while stack:\n"
        "                try:\n"
        "                    stack.pop()()\n"
        "                except Exception as error:\n"
        "                    dead_letters.append(error)\n"
        "            raise failure\n"
        "        stack.append(undo)",
        # indexes, and the error re-raised by name
        "def run_with_rollback(steps, dead_letters):\n"
        "    count = 0\n"
        "    try:\n"
        "        for step in steps:\n"
        "            step[0]()\n"
        "            count += 1\n"
        "    except BaseException as failure:\n"
        "        for index in range(count - 1, -1, -1):\n"
        "            try:\n"
        "                steps[index][1]()\n"
        "            except Exception as error:\n"
        "                dead_letters.append(error)\n"
        "        raise failure",
    ),
)

register(q1)
