"""Rollback, the with-block form: undo in reverse on any exception, re-raise the original."""

import asyncio
import warnings

import pytest

from rollback_lessons import (
    DuplicateStepError,
    InjectedFault,
    InjectedTimeout,
    Retry,
    RetryPolicy,
    Rollback,
    Status,
    UnknownFaultError,
    UnknownPolicyError,
    UnknownStepError,
)


def test_seed_parity_with_the_lesson_example():
    state = {"x": 0, "y": 0, "z": 0}
    undone = []
    error = RuntimeError("step 3 failed")

    def step3():
        raise error

    with pytest.raises(RuntimeError) as info:
        with Rollback() as rb:
            rb.do("step1", lambda: state.update(x=1), lambda: (undone.append(1), state.update(x=0)))
            rb.do("step2", lambda: state.update(y=2), lambda: (undone.append(2), state.update(y=0)))
            rb.do("step3", step3, lambda: state.update(z=0))

    assert info.value is error
    assert str(info.value) == "step 3 failed"
    assert state == {"x": 0, "y": 0, "z": 0}
    assert undone == [2, 1]
    assert rb.outcome.status is Status.ROLLED_BACK
    assert rb.outcome.compensated == ("step2", "step1")
    assert rb.outcome.failed_step == "step3"
    assert not getattr(error, "__notes__", None)  # a clean rollback adds nothing


def test_commit_undoes_nothing():
    undone = []
    with Rollback() as rb:
        assert rb.do("a", lambda: 41 + 1, lambda: undone.append("a")) == 42
    assert undone == []
    assert rb.outcome.status is Status.COMMITTED
    assert rb.outcome.completed == ("a",)
    assert [e.kind for e in rb.events][-1] == "committed"


def test_keyboard_interrupt_is_rolled_back_and_reraised():
    undone = []
    with pytest.raises(KeyboardInterrupt):
        with Rollback() as rb:
            rb.do("a", lambda: None, lambda: undone.append("a"))
            raise KeyboardInterrupt
    assert undone == ["a"]


def test_register_before_covers_a_failure_after_the_effect():
    charged = []

    def charge():
        charged.append("ch_1")
        raise TimeoutError("gateway timed out")  # the card was charged anyway

    with pytest.raises(TimeoutError):
        with Rollback() as rb:
            rb.register("charge", lambda: charged.remove("ch_1") if charged else None)
            charge()
    assert charged == []
    assert rb.outcome.failed_step == "charge"
    assert rb.outcome.compensated == ("charge",)


def test_register_by_hand_step_is_completed_when_the_next_step_starts():
    with Rollback() as rb:
        rb.register("a", lambda: None)
        rb.do("b", lambda: None)
    assert rb.outcome.completed == ("a", "b")
    kinds = [(e.kind, e.step) for e in rb.events]
    assert kinds.index(("step_done", "a")) < kinds.index(("step_start", "b"))


@pytest.mark.parametrize("register", ["before", "after"])
def test_fail_after_effect_leaks_only_with_register_after(register):
    state = {"paid": 0}
    with pytest.raises(InjectedTimeout):
        with Rollback(inject={"charge": "fail_after_effect"}) as rb:
            rb.do(
                "charge",
                lambda: state.update(paid=5),
                lambda: state.update(paid=0),
                register=register,
            )
    if register == "before":
        assert state == {"paid": 0}
        assert rb.outcome.status is Status.ROLLED_BACK
    else:
        assert state == {"paid": 5}  # the charge happened and nothing undoes it
        assert rb.outcome.status is Status.ROLLBACK_INCOMPLETE
        assert rb.outcome.leaked == ("charge",)


@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("caught", ["fail_after_effect", "fail"])
def test_a_step_failed_after_its_effect_caught_in_a_committed_block_is_leaked(register, caught):
    """attack32 F6: the block catches a step's error and commits. One that failed after its
    effect is leaked whether its undo was logged before it (never run now: the commit
    drops it) or not; one refused with nothing done is named nowhere, either way. Its line
    says which (attack90 F11: "no undo logged for it" of an undo logged before it)."""
    state = {"paid": 0}
    with Rollback(inject={"charge": caught}) as rb:
        with pytest.raises(InjectedTimeout if caught == "fail_after_effect" else InjectedFault):
            rb.do("charge", lambda: state.update(paid=5), lambda: state.update(paid=0),
                  register=register)  # fmt: skip
        rb.do("ship", lambda: None, lambda: None)
    outcome = rb.outcome
    assert outcome.status is Status.COMMITTED and outcome.completed == ("ship",)
    assert outcome.leaked == (("charge",) if caught == "fail_after_effect" else ())
    assert state == {"paid": 5 if caught == "fail_after_effect" else 0}
    why = {"before": "its undo, logged before it, dropped by the commit",
           "after": "no undo logged for it"}[register]  # fmt: skip
    assert (f"leaked        charge  ({why})" in str(outcome)) is bool(outcome.leaked)


def test_a_step_cut_short_by_wait_for_caught_in_a_committed_async_block_says_its_undo_dropped():
    """attack90 F11's repro: ``asyncio.wait_for`` cuts a step short, its undo logged before
    it; the block catches the TimeoutError and commits: leaked, its undo dropped, not "no
    undo logged for it"."""
    from rollback_lessons import AsyncRollback

    async def charge() -> None:
        await asyncio.sleep(5)

    async def main():
        async with AsyncRollback() as rb:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(rb.do("charge", charge, lambda: None, register="before"),
                                       0.05)  # fmt: skip
            await rb.do("ship", lambda: None, lambda: None)
        return rb.outcome

    outcome = asyncio.run(main())
    assert outcome.status is Status.COMMITTED and outcome.leaked == ("charge",)
    assert "leaked        charge  (its undo, logged before it, dropped by the commit)" in str(
        outcome
    )
    assert "no undo logged" not in str(outcome)


@pytest.mark.parametrize("then", ["a step", "the end"])
def test_a_ctrl_c_after_a_steps_call_returned_caught_in_the_block_leaves_it_done(then):
    """A Ctrl-C heard after m's call returned, before the machine was told (at its done
    stamp), caught by the block: m is done (it returned: attack60 F3, it was said leaked),
    told before the next step begins (not a MachineError "while step 'm' still runs") or at
    the block's end, never named nowhere."""
    world: list[str] = []
    rb = Rollback()
    stamps, real = [0], rb._run.monotonic

    def monotonic() -> float:  # (s1 begun, s1 done, m begun, m done: the Ctrl-C)
        stamps[0] += 1
        if stamps[0] == 4:
            raise KeyboardInterrupt
        return real()

    rb._run.monotonic = monotonic  # type: ignore[method-assign]
    with rb:
        rb.do("s1", lambda: world.append("s1"), lambda: world.append("undo s1"))
        with pytest.raises(KeyboardInterrupt):
            rb.do("m", lambda: world.append("m"), lambda: world.append("undo m"))
        if then == "a step":
            rb.do("n", lambda: world.append("n"), lambda: world.append("undo n"))
    outcome = rb.outcome
    assert outcome.status is Status.COMMITTED and outcome.leaked == ()
    assert outcome.completed == (("s1", "m", "n") if then == "a step" else ("s1", "m"))
    assert world == (["s1", "m", "n"] if then == "a step" else ["s1", "m"])


def test_undo_failure_is_a_dead_letter_and_a_note_on_the_original_error():
    undone = []
    with pytest.raises(ValueError) as info:
        with Rollback(inject={"a": "undo_fails"}) as rb:
            rb.do("a", lambda: None, lambda: undone.append("a"))
            rb.do("b", lambda: None, lambda: undone.append("b"))
            raise ValueError("boom")
    assert undone == ["b"]  # a's undo failed, the rest still ran
    [dead] = rb.dead_letters
    assert dead.step == "a" and dead.attempts == 1
    assert isinstance(dead.error, InjectedFault)
    assert any("undo of a" in note for note in info.value.__notes__)
    assert rb.outcome.status is Status.ROLLBACK_INCOMPLETE


def test_real_undo_exception_is_kept_in_the_dead_letter():
    oops = OSError("disk gone")

    def bad_undo():
        raise oops

    with pytest.raises(ValueError):
        with Rollback() as rb:
            rb.do("a", lambda: None, bad_undo)
            raise ValueError
    assert rb.dead_letters[0].error is oops


def test_retry_policy_retries_with_backoff_on_the_injected_clock(clock):
    with pytest.raises(ValueError):
        with Rollback(
            policy=Retry(RetryPolicy(max_attempts=4, initial_delay=1, multiplier=3, max_delay=5)),
            inject={"a": "undo_fails"},
            clock=clock,
        ) as rb:
            rb.do("a", lambda: None, lambda: None)
            raise ValueError
    assert clock.sleeps == [1, 3, 5]
    assert rb.dead_letters[0].attempts == 4


def test_undo_fails_once_succeeds_on_retry(clock):
    undone = []
    with pytest.raises(ValueError):
        with Rollback(policy="retry", inject={"a": "undo_fails_once"}, clock=clock) as rb:
            rb.do("a", lambda: None, lambda: undone.append("a"))
            raise ValueError
    assert undone == ["a"]
    assert rb.outcome.status is Status.ROLLED_BACK
    assert len(clock.sleeps) == 1


def test_halt_stops_and_lists_pending():
    undone = []
    with pytest.raises(ValueError) as info:
        with Rollback(policy="halt", inject={"b": "undo_fails"}) as rb:
            for name in "abc":
                rb.do(name, lambda: None, lambda n=name: undone.append(n))
            raise ValueError
    assert undone == ["c"]
    assert rb.outcome.status is Status.HALTED
    assert rb.outcome.pending == ("b", "a")
    assert any("left for a person: b, a" in n for n in info.value.__notes__)


def test_action_retry_then_success(clock):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    with Rollback(clock=clock) as rb:
        assert rb.do("a", flaky, retry=RetryPolicy(max_attempts=5, initial_delay=0.5)) == "ok"
    assert clock.sleeps == [0.5, 1.0]
    assert [e.kind for e in rb.events].count("step_retry") == 2


def test_non_retryable_error_is_not_retried(clock):
    calls = []

    def declined():
        calls.append(1)
        raise PermissionError("card declined")

    policy = RetryPolicy(max_attempts=5, no_retry_on=(PermissionError,))
    with pytest.raises(PermissionError):
        with Rollback(clock=clock) as rb:
            rb.do("charge", declined, retry=policy)
    assert calls == [1]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"policy": "retyr"}, UnknownPolicyError, "continue, retry, halt"),
        ({"inject": {"a": "explode"}}, UnknownFaultError, "fail, fail_after_effect"),
        ({"inject": {"zz": "fail"}, "steps": ["a"]}, UnknownStepError, "the steps are: a"),
    ],
)
def test_bad_options_fail_at_construction(kwargs, error, words):
    with pytest.raises(error, match=words):
        Rollback(**kwargs)


def test_bad_input_is_refused_before_anything_runs():
    ran = []
    with Rollback() as rb:
        with pytest.raises(TypeError, match="action of step 'a' must be callable"):
            rb.do("a", "not callable")
        with pytest.raises(TypeError, match="undo of step 'b' must be callable"):
            rb.do("b", lambda: ran.append("b"), undo=42)
        rb.do("c", lambda: ran.append("c"))
        with pytest.raises(DuplicateStepError):
            rb.do("c", lambda: ran.append("c again"))
    assert ran == ["c"]


def test_async_undo_in_sync_rollback_is_refused_not_dropped():
    async def undo():
        pass

    with Rollback() as rb:
        with pytest.raises(TypeError, match="use AsyncRollback"):
            rb.do("a", lambda: None, undo)
        with pytest.raises(TypeError, match="use AsyncRollback"):
            rb.register("b", undo)


def test_undo_returning_a_coroutine_becomes_a_dead_letter_with_a_clear_reason():
    async def later():
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" must not happen
        with pytest.raises(ValueError):
            with Rollback() as rb:
                rb.do("a", lambda: None, lambda: later())
                raise ValueError
    assert "returned an awaitable" in str(rb.dead_letters[0].error)


def test_unused_injection_warns_on_commit():
    with pytest.warns(RuntimeWarning, match="never ran: stpe1"):
        with Rollback(inject={"stpe1": "fail"}) as rb:
            rb.do("step1", lambda: None)


def test_single_use_and_only_inside_the_block():
    rb = Rollback()
    with rb:
        pass
    with pytest.raises(RuntimeError, match="single-use"):
        with rb:
            pass
    with pytest.raises(RuntimeError, match="inside its with block"):
        rb.do("x", lambda: None)


def test_events_tell_the_whole_story_in_order():
    seen = []
    with pytest.raises(ValueError):
        with Rollback(on_event=seen.append) as rb:
            rb.do("a", lambda: None, lambda: None)
            rb.do("b", lambda: None, lambda: None)
            raise ValueError
    kinds = [(e.kind, e.step) for e in rb.events]
    assert kinds == [
        ("step_start", "a"),
        ("step_done", "a"),
        ("undo_registered", "a"),
        ("step_start", "b"),
        ("step_done", "b"),
        ("undo_registered", "b"),
        ("pipeline_failed", None),
        ("rollback_start", None),
        ("undo", "b"),
        ("undo_done", "b"),
        ("undo", "a"),
        ("undo_done", "a"),
        ("rollback_done", None),
    ]
    assert [e.seq for e in rb.events] == list(range(1, 14))
    assert seen == rb.events


def test_a_broken_observer_does_not_stop_the_rollback():
    undone = []

    def observer(event):
        raise RuntimeError("observer bug")

    with pytest.raises(ValueError):
        with Rollback(on_event=observer) as rb:
            rb.do("a", lambda: None, lambda: undone.append("a"))
            raise ValueError
    assert undone == ["a"]


def test_events_reach_the_logging_module(caplog):
    caplog.set_level("INFO", logger="rollback_lessons")
    with pytest.raises(ValueError):
        with Rollback() as rb:
            rb.do("a", lambda: None, lambda: None)
            raise ValueError
    records = [r for r in caplog.records if r.name == "rollback_lessons"]
    assert [r.event for r in records] == [e.kind for e in rb.events]
    failed = next(r for r in records if r.event == "pipeline_failed")
    assert failed.levelname == "WARNING"  # the rollback takes care of it: nobody is paged
    assert failed.details == {"error": "ValueError()"}
    done = next(r for r in records if r.event == "rollback_done")
    assert done.levelname == "INFO" and done.run_id == rb.outcome.run_id


@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("second", ["do", "register", "caught_then_fail"])
def test_a_refused_duplicate_name_leaves_the_first_steps_undo(tmp_path, second, journalled):
    """attack47 F1: the refused second 'charge' had replaced the first one's undo, so the
    rollback refunded a charge never made and left the real one standing."""
    from rollback_lessons import AsyncRollback
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.registry import Registry, compensation

    world: list[str] = []
    mine = Registry()
    refund = compensation("refund", mine)(lambda what: world.append(what))
    refund2 = compensation("refund2", mine)(lambda what: world.append(what))
    journal = Journal(tmp_path / "j.db") if journalled else None

    def block(rb) -> None:
        rb.do("charge", lambda: world.append("charge"), refund.bind(what="refund 1"))
        with pytest.raises(DuplicateStepError):
            if second == "register":
                rb.register("charge", refund2.bind(what="refund 2"))
            else:
                rb.do("charge", lambda: world.append("charge 2"), refund2.bind(what="refund 2"))
        if second == "caught_then_fail":
            rb.do("ship", lambda: world.append("ship"))
        raise RuntimeError("later")

    with pytest.raises(RuntimeError, match="later"):
        with Rollback(journal=journal) as rb:
            block(rb)
    assert world[-1] == "refund 1" and "refund 2" not in world
    assert rb.outcome.status is Status.ROLLED_BACK and rb.outcome.compensated[-1] == "charge"

    async def main() -> AsyncRollback:
        async with AsyncRollback(journal=journal) as arb:
            await arb.do("a", lambda: world.append("a"), refund.bind(what="undo a"))
            with pytest.raises(DuplicateStepError):
                await arb.do("a", lambda: world.append("a 2"), refund2.bind(what="undo a 2"))
            raise RuntimeError("later")
        return arb

    world.clear()
    with pytest.raises(RuntimeError, match="later"):
        asyncio.run(main())
    assert world == ["a", "undo a"]
