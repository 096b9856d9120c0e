"""RetryPolicy.worst_wait: the waits in all of an outage that never ends, as the engine
sleeps them (learn73 F1: exercises 03.2 and 10.3 bound a policy by it)."""

import math

import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import RetryPolicy, UndoPolicy
from rollback_lessons.worlds.failures import ServiceUnavailable, try_booking

POLICIES = (
    RetryPolicy(max_attempts=1),
    RetryPolicy(),
    RetryPolicy(max_attempts=4, initial_delay=0.2, multiplier=2),
    RetryPolicy(max_attempts=10, initial_delay=0.1, multiplier=2),  # reaches max_delay
    RetryPolicy(max_attempts=30, initial_delay=0.001, multiplier=1.5, max_delay=0.7),
    RetryPolicy(max_attempts=50, initial_delay=0.3, multiplier=1),
    RetryPolicy(max_attempts=5, initial_delay=0.2, max_delay=0),
)


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
def test_it_is_what_a_booking_waits_when_the_gateway_stays_down(policy):
    down = [ServiceUnavailable("503")] * (policy.max_attempts + 1)
    tried = try_booking(down, policy)
    assert tried.calls == policy.max_attempts
    assert policy.worst_wait() == pytest.approx(sum(tried.waited), rel=1e-12)


def test_a_policy_of_a_billion_attempts_is_summed_without_a_billion_steps():
    flat = RetryPolicy(max_attempts=10**9, initial_delay=0.01, multiplier=1)
    assert flat.worst_wait() == pytest.approx(0.01 * (10**9 - 1))
    slow = RetryPolicy(max_attempts=10**9, initial_delay=1e-9, multiplier=1 + 1e-7, max_delay=5)
    assert slow.worst_wait() > 2  # (a closed form past 10,000 waits: no overflow, no hang)
    tiny = RetryPolicy(max_attempts=10**9, initial_delay=1e-300, multiplier=1 + 1e-12)
    assert tiny.worst_wait() < 1e-280
    growing = RetryPolicy(max_attempts=20_000, initial_delay=1e-6, multiplier=1.0001, max_delay=1)
    assert growing.worst_wait() == pytest.approx(
        sum(min(1e-6 * 1.0001 ** (a - 1), 1) for a in range(1, 20_000)), rel=1e-9
    )


class _Forever(RetryPolicy):
    def next_delay(self, attempt, error):  # ignores max_attempts (learn74 F1)
        return 0.2


class _Fewer(RetryPolicy):
    def next_delay(self, attempt, error):  # stops before max_attempts says
        return 0.2 if attempt < 3 else None


def test_the_exercises_bound_what_a_policy_does_not_its_fields():
    """patience.worst: a plain policy by worst_wait (any number of attempts, no walk), a
    subclass by walking its own next_delay until it stops or passes the budget."""
    from rollback_lessons.lab.exercises.patience import WALK, worst

    down = [ServiceUnavailable("down"), TimeoutError("down")]
    plain = worst(RetryPolicy(max_attempts=10**9, initial_delay=0.01, multiplier=1), down, 1.0)
    assert plain.stopped and plain.attempts == 10**9
    assert plain.waited == pytest.approx(0.01 * (10**9 - 1))
    forever = worst(_Forever(max_attempts=3), down, 1.0)
    assert not forever.stopped and forever.waits == (0.2,) * 6
    fewer = worst(_Fewer(max_attempts=100), down, 1.0)
    assert fewer.stopped and fewer.attempts == 3 and fewer.waited == pytest.approx(0.4)
    tiny = worst(_Forever(max_attempts=3, initial_delay=0), down, 10**9)
    assert not tiny.stopped and len(tiny.waits) == WALK  # (capped: no answer hangs a check)


class _Decides(UndoPolicy):
    def decide(self, attempt, error):  # the same as _Fewer, as an undo policy's own rule
        return 0.2 if attempt < 3 else "dead_letter"


class _DecidesForever(UndoPolicy):
    def decide(self, attempt, error):
        return 0.0


def test_a_policy_deciding_in_code_is_walked_as_a_retry_policy_is():
    """patience.worst_decided: the same walk and cap as a RetryPolicy subclass, its answers
    read as the machine reads them (a saga run capped at 1,000 waits measured it before)."""
    from rollback_lessons.lab.exercises.patience import WALK, worst, worst_decided

    down = [ServiceUnavailable("down")]
    assert worst_decided(_Decides(), down, 1.0) == worst(_Fewer(max_attempts=100), down, 1.0)
    tiny = worst_decided(_DecidesForever(), down, 10**9)
    assert not tiny.stopped and len(tiny.waits) == WALK


@settings(max_examples=examples(30), deadline=None)
@given(
    attempts=st.integers(10_001, 40_000),
    initial=st.floats(1e-3, 10),
    growth=st.floats(1e-5, 1e-3),
    cap=st.floats(1, 100),
)
def test_past_ten_thousand_attempts_it_is_the_sum_of_the_waits_to_the_cap(
    attempts, initial, growth, cap
):
    """attack202 F1 (8 of 150): past 10,000 attempts, a policy that reaches its cap slowly
    was bounded short of the waits a run sleeps, by up to ``max_delay`` (the last wait under
    the cap was cut to it in the closed form)."""
    policy = RetryPolicy(max_attempts=attempts, initial_delay=initial, multiplier=1 + growth,
                         max_delay=cap)  # fmt: skip
    waits = math.fsum(policy.delay(a) for a in range(1, attempts))
    assert policy.worst_wait() == pytest.approx(waits, rel=1e-9)
