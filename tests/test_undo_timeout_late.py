"""An undo past its timeout under a retrying policy (attack47 F5): the synchronous call goes
on in its helper thread, so the next attempt waits for it rather than call again (two
refunds at once), and its late end is that attempt's: a slow (not hung) undo that ends
during the retry is a success, not a dead letter; one still running when the attempts are
spent is a dead letter saying it may still complete."""

import asyncio
import threading
import time

import pytest

from rollback_lessons import AsyncRollback, Retry, RetryPolicy, Rollback, Saga, Status, Step


class Refund:
    """A slow undo (``seconds`` per call, or per call in turn) counting its calls and how
    many ran at once; one given ``fails`` raises at the end of its first call."""

    def __init__(self, *seconds, fails=False):
        self.seconds, self.fails = list(seconds), fails
        self.calls = self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, state=None):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
            n = self.calls
        time.sleep(self.seconds[min(n, len(self.seconds)) - 1])
        with self.lock:
            self.running -= 1
        if self.fails and n == 1:
            raise ConnectionError("refund refused")


def boom(state=None):
    raise ValueError("ship fails")


def saga_run(refund, policy="retry"):
    saga = Saga([Step("charge", lambda s: None, refund, undo_timeout=0.1), Step("ship", boom)])
    return saga.run({}, policy=policy)


def with_block(refund, policy="retry"):
    with pytest.raises(ValueError):
        with Rollback(policy=policy) as rb:
            rb.do("charge", lambda: None, refund, undo_timeout=0.1)
            boom()
    return rb.outcome


ENGINES = {"saga.run": saga_run, "Rollback": with_block}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_slow_undo_is_waited_for_by_the_retry_never_called_twice_at_once(engine):
    refund = Refund(0.3)
    outcome = ENGINES[engine](refund)
    assert (refund.calls, refund.most) == (1, 1)
    assert outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == ("charge",) and outcome.dead_letters == ()


def test_a_slow_sync_undo_in_an_async_rollback_is_waited_for_too():
    refund = Refund(0.3)
    seen = {}

    async def main():
        try:
            async with AsyncRollback(policy="retry") as rb:
                await rb.do("charge", lambda: None, refund, undo_timeout=0.1)
                boom()
        except ValueError:
            seen["outcome"] = rb.outcome

    asyncio.run(main())
    assert (refund.calls, refund.most) == (1, 1)
    assert seen["outcome"].status is Status.ROLLED_BACK
    assert seen["outcome"].compensated == ("charge",)


def test_one_still_running_when_the_attempts_are_spent_is_a_dead_letter_that_may_complete():
    refund = Refund(1.0)
    policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0))
    outcome = saga_run(refund, policy)
    assert (refund.calls, refund.most) == (1, 1)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE
    [dead] = outcome.dead_letters
    assert isinstance(dead.error, TimeoutError) and dead.attempts == 3
    assert "not called again while it runs; it may still complete" in str(dead.error)


def test_a_dead_letter_at_the_first_timeout_says_the_call_goes_on():
    refund = Refund(0.3)
    outcome = saga_run(refund, "continue")
    [dead] = outcome.dead_letters
    assert "the call goes on in a helper thread and may still complete" in str(dead.error)
    assert refund.calls == 1


def test_a_late_call_that_failed_is_followed_by_a_fresh_call_never_an_overlap():
    refund = Refund(0.15, 0.0, fails=True)
    policy = Retry(RetryPolicy(max_attempts=4, initial_delay=0.1))
    outcome = saga_run(refund, policy)
    assert (refund.calls, refund.most) == (2, 1)
    assert outcome.status is Status.ROLLED_BACK
