"""What an engineer copying the engine into a script found (attack47, s53)."""

from __future__ import annotations

import asyncio
import math

import pytest

from rollback_lessons import (
    InvalidPipelineError,
    Parallel,
    RetryPolicy,
    Rollback,
    Saga,
    Status,
    Step,
    UndoPolicy,
    VirtualClock,
)
from rollback_lessons import clock as clock_module
from rollback_lessons.explore import assert_every_failure_handled

BAD_ANSWERS = [math.inf, -math.inf, math.nan, -1.0, 10**400, None, "nope", True, "retry"]


class Answers(UndoPolicy):
    def __init__(self, answer: object) -> None:
        self.answer = answer

    def decide(self, attempt: int, error: BaseException) -> object:  # type: ignore[override]
        return self.answer


@pytest.mark.parametrize("answer", BAD_ANSWERS, ids=repr)
@pytest.mark.parametrize("driver", ["run", "arun", "rollback"])
def test_a_decide_answer_that_is_no_wait_halts_for_a_person(answer, driver):
    """attack47 F3: ``inf`` passed as a delay: time.sleep(inf) raised OverflowError in the
    middle of the rollback (a's undo never ran) and arun waited forever."""
    world: list[str] = []

    def fail_undo(state=None):
        world.append("undo b attempt")
        raise OSError("down")

    steps = [
        Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
        Step("b", lambda s: world.append("b"), fail_undo),
        Step("c", lambda s: (_ for _ in ()).throw(ValueError("c fails"))),
    ]
    policy = Answers(answer)
    if driver == "run":
        outcome = Saga(steps).run({}, policy=policy)
    elif driver == "arun":
        outcome = asyncio.run(asyncio.wait_for(Saga(steps).arun({}, policy=policy), 5))
    else:
        with pytest.raises(ValueError, match="block fails"):
            with Rollback(policy=policy) as rb:
                rb.do("a", lambda: world.append("a"), lambda: world.append("undo a"))
                rb.do("b", lambda: world.append("b"), fail_undo)
                raise ValueError("block fails")
        outcome = rb.outcome
    assert outcome.status is Status.HALTED
    assert outcome.pending == ("b", "a") and "undo a" not in world
    assert world.count("undo b attempt") == 1
    said = repr(answer)[:75]  # (a long one cut short)
    assert any(f"decided {said}" in note for note in outcome.notes), outcome.notes


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_an_int_too_big_for_a_float_is_a_refused_duration_not_an_overflow(value):
    with pytest.raises(InvalidPipelineError, match="finite number of seconds"):
        RetryPolicy(initial_delay=value)


def test_a_wait_longer_than_time_sleep_takes_is_waited_in_parts(monkeypatch):
    """time.sleep refuses about 30 years and more (OverflowError): a policy's long finite
    delay is waited, not raised in the middle of a rollback."""
    slept: list[float] = []
    monkeypatch.setattr(clock_module.time, "sleep", slept.append)
    clock_module.SystemClock().sleep(2.5e8 + 0.5)
    assert slept == [1e8, 1e8, pytest.approx(0.5e8 + 0.5)]
    assert all(part <= 1e8 for part in slept)


def _async_result(state):
    async def go() -> None:
        pass

    return go()


@pytest.mark.parametrize(
    "make, raised, said",
    [
        # L1: no policy runs nothing, and passed
        (lambda: assert_every_failure_handled(
            Saga([Step("a", lambda s: None, lambda s: None)]), {}, policies=()),
         ValueError, "policies must name one policy or more"),
        # L2: a function as a branch ("'function' object is not iterable")
        (lambda: Parallel(print), TypeError,
         "a Parallel branch holds Step objects or Parallel groups, got <built-in function"),
        # L3: the clock's class ("run_id() missing 1 required positional argument")
        (lambda: Saga([Step("a", lambda s: None)]).run(
            {}, clock=VirtualClock),
         TypeError, "got the class VirtualClock: call it"),
        # L5: a bare ValueError where every other bad policy field is typed
        (lambda: UndoPolicy(then="panic"), InvalidPipelineError,
         "then must be 'dead_letter' or 'halt'"),
        # L7: a step's retry timeout was silently ignored for its action; what limits
        # its undo said whole (learn82 F3: it ended on "undo_timeout=")
        (lambda: Step("a", lambda s: None, retry=RetryPolicy(
            timeout=0.05)), InvalidPipelineError,
         "which times undos only (an action, once called, cannot be stopped); a limit on "
         "its undo is set by Step(..., undo_timeout=seconds)"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_typed_error_before_anything(make, raised, said):
    """attack47 L1-L3, L5, L7."""
    with pytest.raises(raised) as caught:
        make()
    assert said in str(caught.value)


def test_a_with_block_step_retry_with_a_timeout_is_refused_before_it_runs():
    ran: list[str] = []
    with Rollback() as rb:
        with pytest.raises(InvalidPipelineError, match="which times undos only") as refused:
            rb.do("a", lambda: ran.append("a"), retry=RetryPolicy(timeout=0.05))
    assert ran == [] and rb.outcome.completed == ()
    assert str(refused.value).endswith(  # (learn82 F3: it ended on "undo_timeout=")
        "a limit on its undo is set by undo_timeout=seconds, beside retry= in the same call"
    )


def test_an_awaitable_from_saga_run_names_arun():
    """attack47 L4: it said 'the synchronous Rollback cannot await it' of a Saga."""
    outcome = Saga([Step("a", _async_result)]).run({})
    assert "await saga.arun(state)" in str(outcome.error)


@pytest.mark.parametrize("retry", [None, (BaseException,)])
def test_a_cancelled_error_an_action_raises_is_its_failure_on_run_and_arun_alike(retry):
    """attack48 F6: saga.run took it as an interrupt (raised, the step in doubt), arun as
    the step's own failure (rolled back; retried when retry_on named it)."""
    import asyncio

    def make() -> tuple[Saga, list[str]]:
        calls: list[str] = []

        def flaky(state):
            calls.append("try")
            if calls.count("try") == 1:
                raise asyncio.CancelledError("a future it awaited")

        policy = RetryPolicy(max_attempts=2, initial_delay=0.01, retry_on=retry) if retry else None
        steps = [Step("a", lambda s: calls.append("a"), lambda s: calls.append("undo a")),
                 Step("b", flaky, retry=policy)]  # fmt: skip
        return Saga(steps), calls

    saga, calls = make()
    ran = saga.run({}, clock=VirtualClock())
    asaga, acalls = make()
    aran = asyncio.run(asaga.arun({}, clock=VirtualClock()))
    assert (ran.status, ran.leaked, calls) == (aran.status, aran.leaked, acalls)
    assert ran.status is (Status.COMMITTED if retry else Status.ROLLED_BACK)


class _Raising:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing me")

    __hash__ = object.__hash__


class _BadFloat(float):
    def __float__(self) -> float:
        raise RuntimeError("no float")


class _Raises(UndoPolicy):
    def decide(self, attempt: int, error: BaseException) -> object:  # type: ignore[override]
        raise ValueError("decide broke")


@pytest.mark.parametrize(
    "policy, said",
    [(Answers(_Raising()), "decided <"), (Answers(_BadFloat(1.0)), "decided "),
     (Answers(2**1024), "decided 1797693"), (_Raises(), "decided nothing (it raised ValueError")],
)  # fmt: skip
def test_a_decide_answer_no_comparison_trusts_halts_for_a_person_saying_so(policy, said):
    """attack48 L2: the note blamed the undo ('rollback interrupted by RuntimeError during
    the undo of a'), which had failed and was known not done; a 309-digit number in full."""
    world: list[str] = []

    def fail_undo(state=None):
        world.append("undo b attempt")
        raise OSError("down")

    steps = [Step("a", lambda s: None, lambda s: world.append("undo a")),
             Step("b", lambda s: None, fail_undo), Step("c", lambda s: 1 / 0)]  # fmt: skip
    outcome = Saga(steps).run({}, policy=policy)
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
    [note] = [n for n in outcome.notes if "decided" in n]
    assert said in note and "interrupted" not in note and len(note) < 250, note
