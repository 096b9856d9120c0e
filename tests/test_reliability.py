"""The engine keeps its promise when things around the undos go wrong (issue: reliability).

Each test names the defect it pins: a KeyboardInterrupt in an undo, a state that cannot be
copied, a journal that cannot be written, a hung undo, a generator as an action, and a
saga's cost growing with the square of its steps.
"""

import asyncio
import threading
import time

import pytest
from conftest import full_to_the_end

from rollback_lessons import AsyncRollback, Retry, RetryPolicy, Rollback, Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation


def _xyz(undo_b):
    return Saga(
        [
            Step("a", lambda s: s.update(a=1), lambda s: s.update(a=0)),
            Step("b", lambda s: s.update(b=1), undo_b),
            Step("c", lambda s: s.update(c=1), lambda s: s.update(c=0)),
            Step("boom", lambda s: 1 / 0),
        ]
    )


# -- 4. a BaseException raised by an undo ----------------------------------------------


def test_keyboard_interrupt_in_an_undo_is_re_raised_and_the_rest_is_pending():
    def undo_b(state):
        raise KeyboardInterrupt

    state = {"a": 0, "b": 0, "c": 0}
    with pytest.raises(KeyboardInterrupt) as info:
        _xyz(undo_b).run(state)
    assert state == {"a": 1, "b": 1, "c": 0}  # c was undone, b was cut short, a never ran
    notes = "\n".join(info.value.__notes__)
    assert "interrupted by KeyboardInterrupt during the undo of b" in notes
    assert "not known to be undone: b, a" in notes


def test_rollback_outcome_never_says_rolled_back_when_an_undo_did_not_run():
    def undo_b():
        raise SystemExit(3)

    state = {"a": 1}
    with pytest.raises(SystemExit):
        with Rollback() as rb:
            rb.do("a", lambda: None, lambda: state.update(a=0))
            rb.do("b", lambda: None, undo_b)
            rb.do("c", lambda: None, lambda: None)
            raise ValueError("boom")
    outcome = rb.outcome
    assert outcome.status is not Status.ROLLED_BACK
    assert outcome.status is Status.HALTED
    assert outcome.compensated == ("c",)
    assert outcome.pending == ("b", "a")
    assert state == {"a": 1}
    assert any("SystemExit" in n for n in outcome.notes)
    done = [e for e in outcome.events if e.kind == "rollback_done"]
    assert done[-1].details["interrupted"] == "SystemExit"


def test_an_interrupted_rollback_stays_unfinished_in_the_journal_for_recover(tmp_path):
    registry = Registry()
    calls = []

    @compensation("t.undo", registry)
    def undo(step, idempotency_key=None):
        if step == "b" and not calls:
            calls.append("interrupt")
            raise KeyboardInterrupt
        calls.append(step)

    saga = Saga(
        [
            Step("a", lambda s: None, undo.bind(step="a")),
            Step("b", lambda s: None, undo.bind(step="b")),
            Step("boom", lambda s: 1 / 0),
        ]
    )
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(KeyboardInterrupt):
            saga.run({}, journal=journal, run_id="s1")
        assert [s.id for s in journal.unfinished()] == ["s1"]  # not ended: recover finishes it
        assert [u.state for u in journal.undos("s1")] == ["pending", "pending"]


# -- 5. a state that cannot be deep-copied ---------------------------------------------


def test_trace_state_with_an_uncopyable_value_still_rolls_back():
    saga = Saga(
        [
            Step("lock", lambda s: s.update(lock=threading.Lock()), lambda s: s.pop("lock")),
            Step("x", lambda s: s.update(x=1), lambda s: s.update(x=0)),
            Step("boom", lambda s: 1 / 0),
        ]
    )
    state = {"x": 0}
    outcome = saga.run(state, trace_state=True)
    assert outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == ("x", "lock")
    assert state == {"x": 0}
    assert [e.kind for e in outcome.events].count("trace_failed") == 1
    assert any("state tracing stopped" in n for n in outcome.notes)
    assert outcome.states == ()  # no half-traced replay


def test_a_final_state_that_cannot_be_copied_is_shown_not_raised():
    saga = Saga([Step("lock", lambda s: s.update(lock=threading.Lock()))])
    outcome = saga.run({"x": 0})
    assert outcome.status is Status.COMMITTED
    assert outcome.state_after == {"x": 0, "lock": "<uncopyable lock>"}


# -- 6. a journal write that fails mid-rollback ---------------------------------------


class _FailingJournal:
    """A real journal whose writes start failing (a full disk) after the forward steps."""

    def __init__(self, path):
        self.journal = Journal(path)
        self.broken = False

    def start(self, name, saga_id=None, **options):
        run = self.journal.start(name, saga_id, **options)
        original = run.flush

        def flush():
            if self.broken:
                raise OSError(28, "No space left on device")
            original()

        run.flush = flush
        return run


def test_a_journal_write_failure_mid_rollback_does_not_stop_the_undos(tmp_path):
    registry = Registry()
    undone = []
    undo = compensation("t.undo2", registry)(lambda step, idempotency_key=None: undone.append(step))
    failing = _FailingJournal(tmp_path / "j.db")

    def break_the_disk(state):
        failing.broken = True
        raise RuntimeError("step failed")

    saga = Saga(
        [
            Step("a", lambda s: None, undo.bind(step="a")),
            Step("b", lambda s: None, undo.bind(step="b")),
            Step("c", break_the_disk),
        ]
    )
    outcome = saga.run({}, journal=failing, run_id="s1")
    assert undone == ["b", "a"]  # every undo ran
    assert outcome.compensated == ("b", "a")
    failed = [e.details["note"] for e in outcome.events if e.kind == "journal_failed"]
    assert len(failed) == 2, failed  # the rollback's first (its writes kept for the next),
    assert "went on in memory" in failed[0] and "3 attempts" in failed[1]  # the end's last
    assert failing.journal.saga("s1").status == "running"  # still unfinished: recover can see it
    full_to_the_end(failing.journal)  # (its disk full to the end: no line at the process's)


# -- 8. a hung undo --------------------------------------------------------------------


def test_a_hung_sync_undo_times_out_and_becomes_a_dead_letter():
    release = threading.Event()
    with pytest.raises(ValueError) as info:
        with Rollback() as rb:
            rb.do("a", lambda: None, lambda: release.wait(30), undo_timeout=0.05)
            raise ValueError("boom")
    release.set()
    assert rb.outcome.status is Status.ROLLBACK_INCOMPLETE
    [dead] = rb.outcome.dead_letters
    assert isinstance(dead.error, TimeoutError)
    assert "took longer than its timeout of 0.05 s" in str(dead.error)
    assert any("dead letter" in n for n in info.value.__notes__)


def test_a_timeout_on_the_retry_policy_turns_a_hang_into_a_dead_letter_never_a_second_call():
    """attack47 F5: the hung call goes on in its helper thread, so it is not called again
    beside it (two refunds at once): the retries fail at once, the undo a dead letter
    saying the call may still complete."""
    attempts = []

    def undo():
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            time.sleep(1)  # hangs (longer than its timeout) on the first attempt only

    policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0, timeout=0.05))
    with pytest.raises(ValueError):
        with Rollback(policy=policy) as rb:
            rb.do("a", lambda: None, undo)
            raise ValueError("boom")
    assert rb.outcome.status is Status.ROLLBACK_INCOMPLETE
    assert len(attempts) == 1
    [dead] = rb.outcome.dead_letters
    assert dead.attempts == 3 and "may still complete" in str(dead.error)


def test_a_hung_async_undo_is_cancelled_at_its_timeout():
    cancelled = []

    async def hang():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        async with AsyncRollback() as rb:
            await rb.do("a", lambda: None, hang, undo_timeout=0.05)
            raise ValueError("boom")

    with pytest.raises(ValueError):
        asyncio.run(main())
    assert cancelled == [True]


def test_bad_timeouts_are_refused_before_anything_runs():
    ran = []
    with pytest.raises(ValueError, match="undo_timeout of step 'a' must be a finite number"):
        with Rollback() as rb:
            rb.do("a", lambda: ran.append(1), lambda: None, undo_timeout=-1)
    assert ran == []
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0"):
        RetryPolicy(timeout=0)


# -- 9. smaller ----------------------------------------------------------------------


def test_generator_functions_are_refused_as_actions_and_undos():
    def gen(state):
        state["ran"] = True
        yield

    async def agen(state):
        yield

    for fn in (gen, agen):
        with pytest.raises(TypeError, match="generator function"):
            Step("a", fn)
    with pytest.raises(TypeError, match="generator function"):
        Step("a", lambda s: None, gen)
    with pytest.raises(TypeError, match="returned a generator: its body never ran"):
        with Rollback() as rb:
            rb.do("a", lambda: gen({}))  # a lambda that returns a generator
    assert rb.outcome.status is Status.ROLLED_BACK


class _Name(str):
    """A step name whose comparisons are Python calls, so the profiler counts every one
    (a search through a tuple of names compares with each)."""

    def __eq__(self, other):
        return str.__eq__(self, other)

    def __hash__(self):
        return str.__hash__(self)


def _ops(n):
    """How many Python-level calls (name comparisons included) a saga of n steps costs to
    build and run: a measure of work that does not depend on the machine's speed."""
    import cProfile
    import pstats

    names = [_Name(f"s{i}") for i in range(n)]
    profile = cProfile.Profile()
    profile.enable()
    saga = Saga([Step(name, lambda s: None, lambda s: None) for name in names])
    saga.run({}, inject={names[-1]: "fail"})
    profile.disable()
    stats = pstats.Stats(profile)
    return stats.total_calls  # type: ignore[attr-defined]


def test_building_and_running_a_saga_grows_linearly_with_its_steps():
    small, large = _ops(500), _ops(5000)
    assert large / small < 12  # linear: ~10x; the quadratic version was ~100x


# -- issue 25: smaller -----------------------------------------------------------------


def test_a_state_that_cannot_be_copied_does_not_stop_the_run_before_any_step():
    ran = []
    saga = Saga(
        [
            Step("a", lambda s: ran.append("a"), lambda s: ran.append("undo a")),
            Step("boom", lambda s: 1 / 0),
        ]
    )
    outcome = saga.run({"lock": threading.Lock(), "x": 1})
    assert ran == ["a", "undo a"] and outcome.status is Status.ROLLED_BACK
    assert outcome.state_before == {"lock": "<uncopyable lock>", "x": 1}
    assert any("state before the run could not be copied" in n for n in outcome.notes)


def _build_lines(n):
    """Lines of saga.py run to build a saga of one step and n retriable ones (a measure of
    work that does not depend on the machine's speed; comprehensions' iterations count)."""
    import sys

    from rollback_lessons import saga as saga_module

    steps = [Step("first", lambda s: None, lambda s: None)]
    steps += [Step(f"r{i}", lambda s: None, kind="retriable") for i in range(n)]
    count = [0]

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != saga_module.__file__:
            return None
        if event == "line":
            count[0] += 1
        return tracer

    sys.settrace(tracer)
    try:
        Saga(steps)
    finally:
        sys.settrace(None)
    return count[0]


def test_many_retriable_steps_build_in_linear_time():
    small, large = _build_lines(200), _build_lines(2000)
    assert large / small < 12  # linear: ~10x; the quadratic check_order was ~100x


def test_an_async_undo_that_swallows_a_cancellation_is_not_waited_for_to_its_end():
    finished = []

    async def stubborn():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # swallowed once: it goes on "cleaning up" for 30 s
            await asyncio.sleep(30)
            finished.append(True)

    async def main():
        with pytest.raises(ValueError):
            async with AsyncRollback() as rb:
                await rb.do("a", lambda: None, stubborn, undo_timeout=0.05)
                raise ValueError("boom")
        return rb.outcome

    outcome = asyncio.run(main())
    assert finished == []  # the rollback ended without waiting for it
    [dead] = outcome.dead_letters
    assert isinstance(dead.error, TimeoutError) and "timeout of 0.05 s" in str(dead.error)


@pytest.mark.parametrize("driver", ["AsyncRollback", "arun", "recover"])
def test_an_async_undo_left_running_is_never_called_again_in_that_run(tmp_path, driver):
    """attack84 F4: an awaited undo that swallows its cancellation was left running, and the
    policy's retries called it again meanwhile: three refunds in flight at once. As a
    blocking undo left in its helper thread, it is never made again in that run (or that
    recover): the further attempts fail at once, and the dead letter says where it went on."""
    from conftest import crash_at_first_undo

    from rollback_lessons import UndoPolicy
    from rollback_lessons.durable.recovery import recover

    begun: list[float] = []

    async def stubborn(idempotency_key=None):
        begun.append(time.monotonic())
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:  # swallowed: it goes on "cleaning up"
            await asyncio.sleep(0.3)

    policy = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0, timeout=0.05), "dead_letter")
    reg = Registry()
    refund = reg.add("refund", stubborn).bind()
    if driver == "AsyncRollback":

        async def block():
            with pytest.raises(ValueError):
                async with AsyncRollback(policy=policy) as rb:
                    await rb.do("a", lambda: None, stubborn)
                    raise ValueError("boom")
            return rb.outcome

        outcome = asyncio.run(block())
    else:
        saga = Saga([Step("a", lambda s: None, refund), Step("b", lambda s: 1 / 0)], policy=policy)
        if driver == "arun":
            outcome = asyncio.run(saga.arun({}))
        else:
            crash_at_first_undo(tmp_path / "j.db", saga)
            with Journal(tmp_path / "j.db") as journal:
                [outcome] = recover(journal, reg).recovered
    assert len(begun) == 1, begun  # one call, never overlapped by a retry
    [dead] = outcome.dead_letters
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and dead.attempts == 3
    assert str(dead.error).endswith(
        "not called again: its call that took longer than its timeout of 0.05 s was left "
        "running on the event loop or in a pool's thread (it would not stop when cancelled), and "
        "may still complete (or has)"
    )
