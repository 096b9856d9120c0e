"""A step's retry is read as an undo policy's decide is (fixex's note, s61): a ``next_delay``
of a RetryPolicy subclass that answers no finite wait >= 0 (negative, NaN, infinite, a text,
a bool, an int too big for a float) or raises never reaches the clock: the step is not
retried, it fails for good with its own error, and a note says what the policy decided.
It reached ``sleep`` before (-1 waited -1 s; ``inf`` waited forever in ``arun``; a text
broke ``run`` with a TypeError of the clock's). One wording for both paths."""

from __future__ import annotations

import asyncio

import pytest
from test_engineer_attacks import BAD_ANSWERS, Answers

from rollback_lessons import Parallel, RetryPolicy, Rollback, Saga, Status, Step, VirtualClock

RAISES = ValueError("no delay today")
STEP_ANSWERS = [a for a in BAD_ANSWERS if a is not None] + [RAISES]


class Waits(RetryPolicy):
    """Retries with the wait it was given (``answer``), or raises it."""

    def __init__(self, answer: object) -> None:
        super().__init__(max_attempts=3)
        object.__setattr__(self, "answer", answer)

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer if attempt < self.max_attempts else None  # type: ignore[return-value]


def _run(driver: str, retry: RetryPolicy, clock: VirtualClock) -> tuple[object, list[str]]:
    world: list[str] = []

    def flaky(state: object = None) -> None:
        world.append("b tried")
        raise OSError("down")

    b = Step("b", flaky, retry=retry)
    steps = [Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")), b]
    if driver == "run":
        outcome = Saga(steps, clock=clock).run({})
    elif driver == "arun":
        outcome = asyncio.run(asyncio.wait_for(Saga(steps, clock=clock).arun({}), 5))
    elif driver == "graph":  # (a parallel group's step: the graph machine's path)
        group = Parallel(b, Step("c", lambda s: world.append("c")))
        outcome = asyncio.run(asyncio.wait_for(Saga([steps[0], group], clock=clock).arun({}), 5))
    else:
        with pytest.raises(OSError, match="down"), Rollback(clock=clock) as rb:
            rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
            rb.do("b", flaky, retry=retry)
        outcome = rb.outcome
    return outcome, world


@pytest.mark.parametrize("answer", STEP_ANSWERS, ids=repr)
@pytest.mark.parametrize("driver", ["run", "arun", "graph", "rollback"])
def test_a_step_retry_answer_that_is_no_wait_is_no_retry_and_says_so(answer, driver):
    clock = VirtualClock()
    outcome, world = _run(driver, Waits(answer), clock)
    assert clock.sleeps == []  # (nothing reached the clock)
    assert world.count("b tried") == 1 and "undo a" in world
    assert outcome.status is Status.ROLLED_BACK  # type: ignore[attr-defined]
    assert str(outcome.error) == "down"  # type: ignore[attr-defined]  # the step's own error
    said = "nothing (it raised ValueError: no delay today)" if answer is RAISES else repr(answer)
    [note] = outcome.notes  # type: ignore[attr-defined]
    assert note.startswith(f"the retry policy of step b decided {said[:75]}"), note
    assert "which is none of: a finite delay (seconds >= 0), None; b was not retried" in note


@pytest.mark.parametrize("driver", ["run", "arun", "graph", "rollback"])
def test_a_step_retry_that_waits_is_still_retried(driver):
    clock = VirtualClock()
    outcome, world = _run(driver, Waits(0.5), clock)
    assert clock.sleeps == [0.5, 0.5] and world.count("b tried") == 3
    assert outcome.notes == ()  # type: ignore[attr-defined]


def test_an_undo_policy_answer_that_is_no_wait_still_halts_in_the_same_words():
    """The undo path's rule is unchanged (test_engineer_attacks holds it on every driver):
    it halts for a person; its note is worded by the same function as a step's."""
    world: list[str] = []

    def fail_undo(state: object = None) -> None:
        raise OSError("undo down")

    steps = [Step("a", lambda s: None, fail_undo), Step("b", lambda s: 1 / 0)]
    outcome = Saga(steps).run({}, policy=Answers(-1.0))
    assert outcome.status is Status.HALTED and world == []
    assert outcome.notes == (
        "the undo policy Answers decided -1.0, which is none of: a finite delay "
        "(seconds >= 0), 'dead_letter', 'halt'; the rollback halted for a person",
    )
