"""An undo past its timeout under a retrying policy (attack47 F5): the synchronous call goes
on in its helper thread, and the next attempt used to call again beside it (two refunds at
once), all three calls completing while the outcome said dead letter. Now a call that
outlived its timeout is never made again in the run: the further attempts fail at once,
whatever the timing (so every engine agrees), and the dead letter says the call went on
and may still complete."""

import asyncio
import threading
import time

import pytest

from rollback_lessons import AsyncRollback, Retry, RetryPolicy, Rollback, Saga, Status, Step

MAY_COMPLETE = "not called again: its call that took longer than its timeout of 0.1 s went on"


class Refund:
    """A slow (not hung) undo counting its calls and how many ran at once."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.calls = self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, state=None):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1


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


def async_block(refund, policy="retry"):
    seen = {}

    async def main():
        try:
            async with AsyncRollback(policy=policy) as rb:
                await rb.do("charge", lambda: None, refund, undo_timeout=0.1)
                boom()
        except ValueError:
            seen["outcome"] = rb.outcome

    asyncio.run(main())
    return seen["outcome"]


ENGINES = {"saga.run": saga_run, "Rollback": with_block, "AsyncRollback": async_block}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_slow_undo_is_never_called_again_beside_its_late_call(engine):
    refund = Refund(0.3)
    outcome = ENGINES[engine](refund)
    time.sleep(0.4)  # its late call ends meanwhile: no other call was started
    assert (refund.calls, refund.most) == (1, 1)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.compensated == ()
    [dead] = outcome.dead_letters
    assert dead.attempts == 3 and isinstance(dead.error, TimeoutError)
    assert MAY_COMPLETE in str(dead.error) and "may still complete" in str(dead.error)


def test_a_dead_letter_at_the_first_timeout_says_the_call_goes_on():
    refund = Refund(0.3)
    outcome = saga_run(refund, "continue")
    [dead] = outcome.dead_letters
    assert "the call goes on in a helper thread and may still complete" in str(dead.error)
    assert refund.calls == 1


def test_the_same_whether_the_late_call_ended_before_the_next_attempt_or_not():
    """The outcome does not hang on timing: a late call ended during the wait to retry
    (0.6 s, the wait 1.2 s) gives the dead letter a late call still running gives. (0.15 s
    against the timeout's 0.1 s was too close under load, ci63: the run's thread, woken
    late, found the call ended and took it as done.)"""
    quick, slow = Refund(0.6), Refund(2.5)
    policy = Retry(RetryPolicy(max_attempts=2, initial_delay=1.2))
    ended, running = saga_run(quick, policy), saga_run(slow, policy)
    assert (quick.calls, slow.calls) == (1, 1)
    assert [str(d.error) for d in ended.dead_letters] == [
        str(d.error) for d in running.dead_letters
    ]


def test_a_fast_undo_under_a_timeout_is_retried_as_before():
    calls = []

    def flaky(state):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("refund refused")

    saga = Saga([Step("charge", lambda s: None, flaky, undo_timeout=0.5), Step("ship", boom)])
    outcome = saga.run({}, policy="retry")
    assert outcome.status is Status.ROLLED_BACK and len(calls) == 2


@pytest.mark.parametrize("where", ["undo_timeout", "retry"])
def test_a_timeout_past_the_platforms_longest_wait_is_a_long_wait_not_a_failure(where):
    """attack50 F5: an undo timeout above ``threading.TIMEOUT_MAX`` (~292 years: 1e10 s, "no
    real limit") made the wait for the undo's thread raise OverflowError after the undo had
    run: a dead letter for an undo that was done, and a retry policy called it three times."""
    import threading

    calls: list[str] = []
    huge = threading.TIMEOUT_MAX * 2
    kw, policy = {"undo_timeout": huge}, Retry(RetryPolicy(max_attempts=3))
    if where == "retry":
        kw, policy = {}, Retry(RetryPolicy(max_attempts=3, timeout=huge))
    steps = [Step("a", lambda s: None, lambda s: calls.append("a"), **kw), Step("b", boom)]
    outcome = Saga(steps, policy=policy).run({})
    assert outcome.status is Status.ROLLED_BACK, outcome.summary_lines()
    assert calls == ["a"]


def _loops_undo(shape, world):
    """A plain ``def`` undo that hands back work of the running loop."""

    def refund():
        world.append("refunded")

    def undo(*_):
        if shape == "executor":
            return asyncio.get_running_loop().run_in_executor(None, refund)
        done = asyncio.Future()  # (this loop's: asyncio.get_event_loop() asked for it)
        done.add_done_callback(lambda _: refund())
        done.set_result(None)
        return done

    return undo


@pytest.mark.parametrize("shape", ["executor", "future"])
@pytest.mark.parametrize("driver", ["AsyncRollback", "arun"])
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_plain_undo_using_the_loop_given_a_timeout_says_why_it_cannot(driver, shape, timeout):
    """attack90 F15: with a timeout, the async engines call a plain ``def`` undo in a
    helper thread, where no loop runs: it failed with asyncio's "no running event loop"
    (or "no current event loop in thread 'rollback-lessons undo of ...'"), a thread the user
    never made. Its dead letter now says why, in one line, and what to do; without a
    timeout the same undo is waited for and undoes."""
    world: list[str] = []
    undo = _loops_undo(shape, world)

    def fail(*_):
        raise RuntimeError("ship failed")

    async def main():
        if driver == "arun":
            steps = [Step("charge", lambda s: world.append("charged"), undo, undo_timeout=timeout),
                     Step("ship", fail)]  # fmt: skip
            return await Saga(steps).arun({})
        with pytest.raises(RuntimeError, match="ship failed"):
            async with AsyncRollback() as rb:
                await rb.do("charge", lambda: world.append("charged"), undo,
                            undo_timeout=timeout)  # fmt: skip
                fail()
        return rb.outcome

    o = asyncio.run(main())
    if timeout is None:
        assert o.status is Status.ROLLED_BACK and world == ["charged", "refunded"]
        return
    assert o.status is Status.ROLLBACK_INCOMPLETE and world == ["charged"]
    (dead,) = o.dead_letters
    assert type(dead.error) is RuntimeError and str(dead.error) == (
        "undo of step 'charge' ran in a helper thread (it has a timeout), where no event loop "
        "runs: to use the event loop, make it a coroutine (an `async def` in AsyncRollback's "
        "do; in a Step, a plain function returning one: `lambda state: refund()`)"
    )
    assert "no" in str(dead.error.__cause__) and "event loop" in str(dead.error.__cause__)
    assert [e.details["error"] for e in o.events if e.kind == "undo_failed"] == [repr(dead.error)]


def test_no_running_event_loop_raised_by_an_undo_itself_is_its_own():
    """Only the helper thread's is said again: an undo that raises it itself (no timeout,
    so called on the loop) keeps its own error."""

    def undo():
        raise RuntimeError("no running event loop")

    async def main():
        with pytest.raises(ZeroDivisionError):
            async with AsyncRollback() as rb:
                await rb.do("charge", lambda: None, undo)
                raise ZeroDivisionError
        return rb.outcome

    (dead,) = asyncio.run(main()).dead_letters
    assert str(dead.error) == "no running event loop"
