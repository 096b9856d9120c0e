"""Temporal's history limit, on a real dev server started with a lowered limit
(``limit.historyCount.error``, the mechanism of the default 51,200): the count checked before
a saga starts (``worst_history``) bounds every run's real history; a saga the server
terminates is one clear error naming what is left in effect; and the runs no count can bound
(a policy deciding in code, a person answering "retry" again and again) stop retrying before
the limit, their record intact."""

import asyncio
import contextlib
import itertools
import re
import threading
import time

import pytest
from conftest import LOW_HISTORY_LIMIT, SOAK, OnALoop

from rollback_lessons import (
    Cancelled,
    InjectedTimeout,
    Kind,
    Parallel,
    Retry,
    RetryPolicy,
    Saga,
    Status,
    Step,
    UndoPolicy,
    VirtualClock,
    schedule,
)
from rollback_lessons.machine import Finished, Machine
from rollback_lessons.operations import RunUndo, StepSpec
from rollback_lessons.policies import POLICIES
from rollback_lessons.runners import hosted
from rollback_lessons.runners.temporal import AnswerRefused, SagaTerminated, TemporalRunner
from rollback_lessons.runners.temporal.limits import (
    HISTORY_EVENTS_LIMIT,
    TemporalLimitExceeded,
    worst_history,
)
from rollback_lessons.runners.temporal.runner import plan_for
from rollback_lessons.worlds import travel

pytestmark = pytest.mark.usefixtures("no_run_left_behind")
LIMIT = LOW_HISTORY_LIMIT  # the server's (conftest's temporal_with_a_low_history_limit)


@pytest.fixture(scope="module")
def on_temporal(temporal_with_a_low_history_limit):
    on = OnALoop(lambda: TemporalRunner.start(temporal_with_a_low_history_limit))
    try:
        yield on
    finally:
        on.close()


def _step(name: str, undo=None) -> Step:
    return Step(name, lambda s: s.update({name: 1}), undo or (lambda s: s.pop(name, None)))


def _fails(state: dict) -> None:
    raise ValueError("no")


async def _length(handle) -> int:
    info = (await handle.workflow.describe()).raw_description.workflow_execution_info
    return int(info.history_length)


def _worst(saga: Saga, **options) -> int:
    completion = options.get("completion")
    plan = plan_for(saga, **{k: v for k, v in options.items() if k != "inject"})
    hosted.release(plan.run_id)
    return worst_history(plan, completion is not None)


# -- the count bounds every run's real history ----------------------------------------------


def flaky_saga() -> Saga:
    tries = []

    def twice_then_ok(state: dict) -> None:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("not yet")

    retry = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.01)
    return Saga([_step("a"), Step("b", twice_then_ok, lambda s: None, retry=retry),
                 _step("c"), Step("d", _fails)], name="flaky")  # fmt: skip


def list_saga() -> Saga:
    return Saga([_step(f"s{i}") for i in range(4)], name="plain")


ONCE = RetryPolicy(max_attempts=1)
UNDO_RETRY = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.01))
CASES = {
    "a graph playing a timing (turn Updates)": (travel.booking, {
        "completion": travel.TIMING, "inject": {"charge": "fail"}}),
    "a list: step retries, then a rollback": (flaky_saga, {}),
    "a list: an undo retried": (list_saga, {
        "policy": UNDO_RETRY, "inject": {"s3": "fail", "s1": "undo_fails_once"}}),
    "a halt: a person answers retry": (list_saga, {
        "policy": "halt", "halt_wait": 30, "inject": {"s3": "fail", "s2": "undo_fails_once"}}),
}  # fmt: skip
SOAK_CASES = {
    "a graph playing a timing, an undo retried": (travel.booking, {
        "completion": travel.TIMING, "policy": UNDO_RETRY,
        "inject": {"charge": "fail", "room": "undo_fails_once"}}),
    "a graph, its undos retried to a dead letter": (travel.booking, {
        "policy": UNDO_RETRY, "inject": {"charge": "fail", "car": "undo_fails"}}),
    "a halt: a person answers fixed": (list_saga, {
        "policy": "halt", "halt_wait": 30, "inject": {"s3": "fail", "s1": "undo_fails"}}),
    "a list rolled back": (list_saga, {"inject": {"s3": "fail"}}),
}  # fmt: skip


@pytest.mark.parametrize("case", [*CASES, *(SOAK_CASES if SOAK else ())])
def test_a_runs_real_history_is_within_the_count_checked_before_it_starts(on_temporal, case):
    make, options = {**CASES, **SOAK_CASES}[case]
    state = travel.state() if make is travel.booking else {}

    async def scenario(runner):
        handle = await runner.start_saga(make(), state, step_timeout=10, **options)
        if options.get("policy") == "halt":
            for _ in range(400):  # the Query says when the saga waits for a person
                if asked := await handle.pending():
                    break
                await asyncio.sleep(0.05)
            await handle.resolve(asked, "retry" if "retry" in case else "fixed")
        outcome = await asyncio.wait_for(handle.outcome(), 60)
        return outcome, await _length(handle)

    outcome, length = on_temporal(scenario)
    assert outcome.status is not Status.COMMITTED and outcome.compensated
    assert length <= _worst(make(), **options), (case, length)


def test_a_cancelled_runs_real_history_is_within_the_count(on_temporal):
    from temporalio import activity

    def slow(state):
        while not activity.is_cancelled():
            activity.heartbeat()
            time.sleep(0.05)

    saga = Saga([_step("a"), Step("b", slow, lambda s: None, register="before"), _step("c")])

    async def scenario(runner):
        handle = await runner.start_saga(saga, {}, step_timeout=30)
        await asyncio.get_running_loop().run_in_executor(None, handle.started("b").wait, 20)
        await handle.cancel()
        await handle.cancel()  # twice: the server writes one request
        return await asyncio.wait_for(handle.outcome(), 60), await _length(handle)

    outcome, length = on_temporal(scenario)
    assert outcome.status is Status.CANCELLED and outcome.compensated == ("b", "a")
    assert length <= _worst(saga), length


# -- a saga the server terminates: one error, what is left in effect ------------------------


@pytest.mark.parametrize("lands", [False, True], ids=["c_never_ends", "c_ends_just_after"])
def test_a_saga_terminated_by_hand_says_what_is_left_in_effect(on_temporal, lands):
    """attack12's B3: terminated while c's action ran, the report said "still in effect:
    a, b", and c's effect landed a moment later, named nowhere. A call still running is
    waited for a moment (then counted done) or named with its end unknown: in effect,
    perhaps."""
    gate = threading.Event()
    saga = Saga([_step("a"), _step("b"), Step("c", lambda s: gate.wait(20))], name="cut")

    async def scenario(runner):
        handle = await runner.start_saga(saga, {}, step_timeout=30)
        await asyncio.get_running_loop().run_in_executor(None, handle.started("c").wait, 20)
        await handle.workflow.terminate(reason="an operator's")
        if lands:
            gate.set()  # c's effect lands after the server stopped waiting for it
        with pytest.raises(SagaTerminated) as raised:
            await asyncio.wait_for(handle.outcome(), 30)
        return raised.value

    try:
        error = on_temporal(scenario)
    finally:
        gate.set()
    assert error.undone == () and error.in_effect == ("a", "b", "c")
    assert set(error.done) | set(error.unknown) == {"a", "b", "c"}
    said = str(error)
    assert said.count("\n") == 0 and "terminated saga" in said and "an operator's" in said
    assert "still in effect, or perhaps, for someone to undo: a, b, c" in said


def test_a_saga_terminated_as_a_person_is_asked_asks_nothing_after(on_temporal):
    """attack180 F2: terminated by hand while a person was asked, ``pending()`` (a Query,
    which Temporal answers for a closed run by replaying its history up to the question) still
    gave the question, through a fresh handle too; an answer to it was refused ("over")."""

    async def scenario(runner):
        handle = await runner.start_saga(list_saga(), {}, policy="halt", halt_wait=30,
                                         inject={"s3": "fail", "s2": "undo_fails"})  # fmt: skip
        for _ in range(400):
            if await handle.pending():
                break
            await asyncio.sleep(0.05)
        await handle.workflow.terminate(reason="an operator's")
        with pytest.raises(SagaTerminated):
            await asyncio.wait_for(handle.outcome(), 30)
        again = await runner.handle_for(list_saga(), handle.run_id)
        return await handle.pending(), await again.pending()

    assert on_temporal(scenario) == (None, None)


@pytest.mark.parametrize("first", ["after_effect", "clean"])
def test_a_saga_terminated_in_a_wait_to_retry_names_an_earlier_attempts_effect(on_temporal, first):
    """attack13's N1: b's first attempt failed after its effect, and the saga was terminated
    while b waited to retry: b was named only under "failed", left out of ``in_effect``
    and of the "still in effect" list, though the machine counts it in effect. A clean
    refusal has no effect to name."""

    def b(state):
        if first == "after_effect":
            state["b"] = 1
            raise InjectedTimeout("b", "fail_after_effect", "timed out after its effect")
        raise ValueError("declined")

    retry = RetryPolicy(max_attempts=3, initial_delay=60.0)
    saga = Saga([_step("a"), Step("b", b, lambda s: s.pop("b", None), retry=retry)], name="tw")

    async def scenario(runner):
        state: dict = {}
        handle = await runner.start_saga(saga, state, policy="continue")
        while not any(row[-3:] == ("activity failed", "action", "b")
                      for row in (await handle.history()).rows):  # fmt: skip
            await asyncio.sleep(0.05)  # b's first attempt failed: now in its wait to retry
        await handle.workflow.terminate(reason="an operator's")
        with pytest.raises(SagaTerminated) as raised:
            await asyncio.wait_for(handle.outcome(), 30)
        return raised.value, state

    error, state = on_temporal(scenario)
    assert error.failed == ("b",) and error.undone == ()
    assert error.in_effect == tuple(sorted(state)), (error.in_effect, state)
    listed = str(error).split("for someone to undo: ")[1]
    assert listed == ", ".join(sorted(state)) + "."


def test_a_terminated_sagas_report_names_every_step_that_may_have_had_its_effect():
    """attack12's B3, from the history alone: an action timed out by the server, one
    scheduled and never ended, one cancelled (cut short) may each have had its effect;
    an undo timed out did not surely undo its step."""
    from rollback_lessons.outcome import Table

    rows = [("activity scheduled", "action", "a"), ("activity completed", "action", "a"),
            ("activity scheduled", "action", "b"), ("activity timed out", "action", "b"),
            ("activity scheduled", "action", "c"), ("activity cancelled", "action", "c"),
            ("activity scheduled", "action", "d"), ("activity failed", "action", "d"),
            ("activity scheduled", "undo", "a"), ("activity timed out", "undo", "a"),
            ("signal resolve", "leave", ""), ("activity scheduled", "action", "e")]  # fmt: skip
    history = Table(("event", "what happened", "activity", "step"),
                    tuple((str(n), *row) for n, row in enumerate(rows, 1)))  # fmt: skip
    error = SagaTerminated.of("run-x", "an operator's", history)
    assert (error.done, error.undone, error.failed) == (("a",), (), ("d",))
    assert error.unknown == ("b", "c", "e") and error.in_effect == ("a", "b", "c", "e")


@pytest.mark.skipif(not SOAK, reason="make soak: ~9 s of retries up to the server's limit")
def test_a_saga_past_the_servers_limit_is_terminated_and_says_so(on_temporal):
    """The runner told a higher limit than the server's (a misconfiguration): the server
    terminates the saga mid-rollback; the error names the undos done and the effects left
    (make test: the same error for a saga terminated by hand, above)."""
    forever = UndoPolicy(RetryPolicy(max_attempts=100, initial_delay=0.01, max_delay=0.01))
    saga = Saga([_step("a"), _step("b"), _step("c"), Step("d", _fails)], name="past")

    async def scenario(runner):
        runner.history_limit = 100 * LIMIT
        try:
            handle = await runner.start_saga(saga, {}, policy=forever, inject={"b": "undo_fails"})
            with pytest.raises(SagaTerminated) as raised:
                await asyncio.wait_for(handle.outcome(), 60)
            return raised.value
        finally:
            runner.history_limit = HISTORY_EVENTS_LIMIT

    error = on_temporal(scenario)
    assert error.done == ("a", "b", "c") and error.undone == ("c",)
    assert error.in_effect == ("a", "b")
    assert "still in effect, or perhaps, for someone to undo: a, b" in str(error)


# -- what no count bounds stops retrying before the limit -------------------------------------


class Forever(UndoPolicy):
    """A policy of one's own that always retries: no count can bound it."""

    def decide(self, attempt, error):
        return 0.01


def test_a_policy_that_retries_for_ever_stops_before_the_limit_with_a_dead_letter(on_temporal):
    saga = Saga([_step("a"), _step("b"), _step("c"), Step("d", _fails)], name="forever")
    world: dict = {}

    async def scenario(runner):
        runner.history_limit = LIMIT
        try:
            handle = await runner.start_saga(saga, world, policy=Forever(),
                                             inject={"b": "undo_fails"})  # fmt: skip
            outcome = await asyncio.wait_for(handle.outcome(), 60)
            return outcome, await _length(handle)
        finally:
            runner.history_limit = HISTORY_EVENTS_LIMIT

    outcome, length = on_temporal(scenario)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and length <= LIMIT
    assert outcome.compensated == ("c", "a") and world == {"b": 1}
    [dead] = outcome.dead_letters
    assert dead.step == "b" and dead.attempts > 2  # it was retried until the room ran out
    assert any(f"Temporal's limit of {LIMIT} events" in n for n in outcome.notes)
    failed = [e for e in outcome.events if e.kind == "undo_failed"]
    assert failed[-1].details["then"] == "dead_letter" and "limit" in failed[-1].details


def test_a_person_answering_retry_again_and_again_is_not_waited_for_near_the_limit(on_temporal):
    saga = Saga([_step("a"), _step("b"), Step("c", _fails)], name="again")

    async def scenario(runner):
        runner.history_limit = LIMIT
        try:
            handle = await runner.start_saga(saga, {}, policy="halt", halt_wait=30,
                                             inject={"b": "undo_fails"})  # fmt: skip
            answers = 0
            result = asyncio.ensure_future(handle.outcome())
            while not result.done():
                if asked := await handle.pending():
                    with contextlib.suppress(AnswerRefused):  # (given up on meanwhile)
                        await handle.resolve(asked, "retry")
                        answers += 1
                await asyncio.sleep(0.02)
            return await result, await _length(handle), answers
        finally:
            runner.history_limit = HISTORY_EVENTS_LIMIT

    outcome, length, answers = on_temporal(scenario)
    assert outcome.status is Status.HALTED and length <= LIMIT and answers > 2
    assert outcome.pending == ("b", "a") and not outcome.compensated
    assert any(f"Temporal's limit of {LIMIT} events" in n for n in outcome.notes)


def test_the_machine_turns_a_retry_into_a_dead_letter_and_a_halt_into_pending_at_a_limit():
    """The rule, in process: ``undo_failed(error, limit)``; without a limit, the policy's."""
    plan = [StepSpec("a", has_undo=True), StepSpec("b", has_undo=True), StepSpec("c")]
    for policy, status in [("retry", Status.ROLLBACK_INCOMPLETE), ("halt", Status.HALTED)]:
        m = Machine(POLICIES[policy], plan=plan)
        m.start()
        m.step_ok()
        m.step_ok()
        op = m.step_failed(ValueError("c"))
        assert isinstance(op, RunUndo) and op.step == "b"
        assert type(m.undo_failed(ValueError("x"))) is not Finished  # the policy's answer
        if policy == "retry":
            m.resume()
        else:
            m.answer("retry")
        op = m.undo_failed(ValueError("x"), "no room")
        if policy == "retry":
            assert isinstance(op, RunUndo) and op.step == "a"  # b dead, a still undone
            op = m.undo_ok()
        assert isinstance(op, Finished) and m.status() is status
        assert m.notes == ["the undo of b: no room"]


@pytest.mark.parametrize("shape", ["list", "graph", "list, s0 retriable"])
def test_signals_nobody_asked_for_stop_the_run_forward_while_it_can_still_be_undone(
    on_temporal, shape
):
    """The server writes every Signal (and the workflow task it wakes) whatever the workflow
    does with it, so no count bounds them. Sent while a step runs until the history is near
    the limit: the run stops going forward as the step returns and is undone while there is
    room, a note naming the limit. (Before: it went on, and the server terminated it
    mid-run, s0 and s1 held: SagaTerminated.) In a graph, s0 runs beside s1 and ends
    first."""
    gate, asked = threading.Event(), threading.Event()  # (asked: in process, as s1 runs)
    s1 = Step("s1", lambda s: asked.set() or gate.wait(30), lambda s: None)
    s0 = _step("s0")
    if "retriable" in shape:  # done, no pivot: stopped, as a cancel would stop it
        s0 = Step("s0", lambda s: s.update(s0=1), kind=Kind.RETRIABLE, retry=ONCE)
    first = [Parallel(s0, s1)] if shape == "graph" else [s0, s1]
    rest = [_step(f"s{n}") for n in range(2, 6)]  # (a retriable s0 first: an unsafe order)
    saga = Saga([*first, *rest], name="signals", allow_unsafe_order="retriable" in shape)
    world: dict = {}
    target = LIMIT - 28  # the forward run's rest (30 events) would not fit; its rollback would

    async def scenario(runner):
        runner.history_limit = LIMIT
        try:
            handle = await runner.start_saga(saga, world, step_timeout=30)
            await asyncio.get_running_loop().run_in_executor(None, handle.started("s1").wait, 20)
            signals = 0
            while await _length(handle) < target:
                await handle.workflow.signal("resolve", "retry")  # nobody asked
                signals += 1
            gate.set()
            outcome = await asyncio.wait_for(handle.outcome(), 60)
            return outcome, await _length(handle), signals
        finally:
            gate.set()
            runner.history_limit = HISTORY_EVENTS_LIMIT

    assert _worst(saga) <= LIMIT  # the count alone lets it start
    outcome, length, signals = on_temporal(scenario)
    assert signals > 10 and length <= LIMIT
    if "retriable" in shape:  # as in process a cancel asked there (the one rule): s0 stays
        asked.clear()
        local = saga.run({}, cancel=asked, clock=VirtualClock())
        assert (outcome.completed, outcome.compensated) == (local.completed, local.compensated)
        assert outcome.leaked == local.leaked == ("s0",) and world == local.state_after
        assert outcome.status is local.status is Status.ROLLBACK_INCOMPLETE
    else:
        assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("s1", "s0")
        assert world == {}
    assert any(f"Temporal's limit of {LIMIT} events" in n for n in outcome.notes)
    [failed] = [e for e in outcome.events if e.kind == "pipeline_failed"]
    assert "stopped going forward" in str(failed.details["error"])


KINDS = (Kind.GATE, Kind.COMPENSABLE, Kind.PIVOT, Kind.RETRIABLE)


def _running(shape: str, kinds: tuple[Kind, ...], upto: int) -> Machine:
    """A machine of steps of ``kinds`` (a list, or a graph: a chain), the steps before
    ``upto`` done and ``upto`` running."""
    specs = [StepSpec(f"s{n}", k, has_undo=k != Kind.GATE) for n, k in enumerate(kinds)]
    if shape == "list":
        m = Machine(plan=specs)
        m.start()
        for _ in range(upto):
            m.step_ok()
        return m
    after = {s.name: ((f"s{n - 1}",) if n else ()) for n, s in enumerate(specs)}
    gm = schedule.GraphMachine(POLICIES["continue"], plan=specs, after=after)
    gm.start()
    for n in range(upto + 1):
        gm.launch(f"s{n}")
        if n < upto:
            gm.step_done(f"s{n}")
    return gm


def _told_done(m: Machine, step: str) -> Finished:
    """``step`` done, then every step after it (declined: the run goes on), every undo."""
    graph = isinstance(m, schedule.GraphMachine)
    op = m.step_done(step) if graph else m.step_ok()
    while not isinstance(op, Finished):
        if isinstance(op, schedule.Ready):
            [step] = op.steps
            m.launch(step)
            op = m.step_done(step)
        else:
            op = m.undo_ok() if isinstance(op, RunUndo) else m.step_ok()
    return op


@pytest.mark.parametrize("shape", ["list", "graph"])
def test_a_stop_for_want_of_room_is_declined_exactly_where_a_cancel_is(shape):
    """One rule for stopping the forward run (``schedule.stop_forward``, what Temporal's
    workflow calls when its history has no room to go on): declined exactly where a cancel
    is (past the pivot: ``past_pivot``); where taken, the run ends as the cancelled one
    does, but for its error (its own, not the caller's cancel). Every run of three
    steps of any kinds, asked as each step returns (a retriable step done with no pivot is
    stopped: the steps before it are undone, it is reported left in effect)."""
    for kinds in itertools.product(KINDS, repeat=3):
        for upto in range(len(kinds)):
            step = f"s{upto}"
            cancelled, stopped = _running(shape, kinds, upto), _running(shape, kinds, upto)
            schedule.cancel(cancelled, Cancelled.by_caller())
            error = TemporalLimitExceeded("no room")
            taken = schedule.stop_forward(stopped, error)
            assert taken is (cancelled.stopping is not None), (kinds, upto)
            assert taken is not (Kind.PIVOT in kinds[: upto + 1]), (kinds, upto)
            a, b = _told_done(cancelled, step).record, _told_done(stopped, step).record
            assert (b.completed, b.compensated, b.leaked) == (a.completed, a.compensated, a.leaked)
            if taken:
                assert b.error is error and stopped.notes == ["no room"]
                cancelled_says = Status.ROLLED_BACK if a.status is Status.CANCELLED else a.status
                assert b.status is cancelled_says  # (a step left in effect: incomplete, both)


def test_signals_nobody_asked_for_while_a_person_is_asked_end_the_wait_not_the_run(on_temporal):
    """attack12's B7: Signals nobody asked for, sent while a halted saga waited for a
    person, filled the history and the server terminated the run mid-rollback (the wait
    had no room check). The wait obeys the rule of every other round now: where another
    round would not fit, the person is no longer waited for, the undos are left pending
    (``halted``) with a note naming the limit, and a late answer is refused."""
    from temporalio.service import RPCError

    saga = Saga([_step("a"), _step("b"), Step("c", _fails)], name="flood")

    async def scenario(runner):
        state: dict = {}
        runner.history_limit = LIMIT
        try:
            handle = await runner.start_saga(saga, state, policy="halt", halt_wait=60,
                                             inject={"b": "undo_fails_once"})  # fmt: skip
        finally:
            runner.history_limit = HISTORY_EVENTS_LIMIT
        while (asked := await handle.pending()) is None:
            await asyncio.sleep(0.02)
        sent = 0
        with contextlib.suppress(RPCError):  # (the run is over: no more Signals)
            while sent < 2 * LIMIT:
                await handle.workflow.signal("resolve", args=["leave", 0, "nobody"])
                sent += 1
        outcome = await asyncio.wait_for(handle.outcome(), 60)
        with pytest.raises(AnswerRefused):
            await handle.resolve(asked, "retry")
        return outcome, state, sent

    outcome, state, sent = on_temporal(scenario)
    assert sent < 2 * LIMIT  # the run ended while they came
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
    assert state == {"a": 1, "b": 1}
    assert any("a person no longer waited for" in n and f"limit of {LIMIT}" in n
               for n in outcome.notes)  # fmt: skip


@pytest.mark.parametrize("after_effect", [True, False])
def test_a_lost_server_names_a_step_that_failed_after_its_effect_as_perhaps_in_effect(
    after_effect,
):
    """attack13's N1 on ServerLost: the server died while b waited to retry after an attempt
    that failed after its effect; the message said "failed: b; so still in effect: a"."""
    from rollback_lessons.runners.temporal.lost import ServerLost

    calls = [("action", "a", True), ("action", "b", False)]
    run = hosted.Hosted(None, {}, {}, calls=calls, effected={"b"} if after_effect else set())
    hosted.RUNS["lost-x"] = run
    try:
        said = str(ServerLost.of("lost-x", RuntimeError("connection refused")))
    finally:
        del hosted.RUNS["lost-x"]
    left = said.split("so still in effect: ")[1]
    assert left.startswith(
        "a, b (perhaps: failed after its effect: b)." if after_effect else "a."
    ), said


def test_a_terminated_sagas_events_reach_its_observers_before_the_error(on_temporal):
    """harden38: ``outcome()`` raised ``SagaTerminated`` and ``on_event`` and the logger
    heard nothing of what the machine had told: on Temporal the events are told from the
    run's result, which a terminated run has none of. They hear them now, before the raise
    (asked of the run, a Query its worker answers by replaying it), once, in order."""
    import logging

    from heard import Records

    heard: list = []
    retry = RetryPolicy(max_attempts=3, initial_delay=60.0)
    saga = Saga([_step("a"), Step("b", _fails, retry=retry)], name="told", on_event=heard.append)

    async def scenario(runner):
        handle = await runner.start_saga(saga, {})
        while not any(row[-3:] == ("activity failed", "action", "b")
                      for row in (await handle.history()).rows):  # fmt: skip
            await asyncio.sleep(0.05)  # b's first attempt failed: now in its wait to retry
        await handle.workflow.terminate(reason="an operator's")
        with pytest.raises(SagaTerminated):
            await asyncio.wait_for(handle.outcome(), 30)
        with pytest.raises(SagaTerminated):  # (read again: told once)
            await asyncio.wait_for(handle.outcome(), 30)

    records, log = Records(), logging.getLogger("rollback_lessons")
    level = log.level
    log.addHandler(records)
    log.setLevel(logging.DEBUG)
    try:
        on_temporal(scenario)
    finally:
        log.removeHandler(records)
        log.setLevel(level)
    told = [(e.kind, e.step) for e in heard]
    assert told[:4] == [("step_start", "a"), ("step_done", "a"), ("undo_registered", "a"),
                        ("step_start", "b")]  # fmt: skip
    assert [e.seq for e in heard] == list(range(1, len(heard) + 1))
    mine = [r for r in records.records if getattr(r, "run_id", None) == heard[0].run_id]
    assert [(r.seq, r.event, r.step) for r in mine] == [(e.seq, e.kind, e.step) for e in heard]


def _names(n: int, length: int, retry: RetryPolicy | None = None) -> Saga:
    return Saga([Step(f"{i:02d}" + "n" * (length - 2), lambda s: None, lambda s: None,
                      retry=retry) for i in range(n)])  # fmt: skip


def test_the_record_of_the_worst_run_the_policies_allow_is_counted_before_the_start():
    """attack76 F2: only a run whose every undo succeeds once was sized: 20 steps of
    11,000-character names, each retried 4 times, passed, committed on Temporal, then raised
    "it ran, but its Outcome cannot be returned"; so did 9,000-character names with undos
    retried. The record of the worst run the policies allow (each error's text as short as
    a record is ever cut, ``FLOOR``) is counted: refused before the start, the limit named."""
    from rollback_lessons.runners.temporal.limits import check_plan

    retried = RetryPolicy(max_attempts=5, initial_delay=0.01, retry_on=(ConnectionError,))
    undo_retried = Retry(RetryPolicy(max_attempts=3, initial_delay=0.01))
    for saga, policy in ((_names(20, 11_000, retried), None), (_names(20, 9_000), undo_retried)):
        with pytest.raises(TemporalLimitExceeded) as refused:
            check_plan(plan_for(saga, policy=policy), 0)
        told = str(refused.value)
        assert told.startswith("the record of its worst run (every retry and undo attempt its ")
        assert "over Temporal's payload limit of 2.0 MB" in told and "max_attempts" in told
    check_plan(plan_for(_names(20, 2_000, retried), policy=undo_retried), 0)  # (it fits)


def test_a_refusal_says_its_counts_inflected_and_no_fewer_steps_to_a_1_step_saga():
    """attack87's F3: a 1-step saga whose retries overflow the history was told "a run of
    its 1 steps ... fewer max_attempts, or fewer steps": "1 step", and only "fewer
    max_attempts"; a 2-step saga is still told both."""
    from rollback_lessons.runners.temporal.limits import check_plan

    retried = RetryPolicy(max_attempts=100_000, initial_delay=0.01)
    one = Saga([Step("a", lambda s: s, lambda s: s, retry=retried)], name="one")
    with pytest.raises(TemporalLimitExceeded) as refused:
        check_plan(plan_for(one), 0)
    told = str(refused.value)
    assert told.startswith("a run of its 1 step can write ")
    assert told.endswith("nothing undone): fewer max_attempts")
    two = Saga([Step(k, lambda s: s, lambda s: s, retry=retried) for k in "ab"], name="two")
    with pytest.raises(TemporalLimitExceeded) as refused:
        check_plan(plan_for(two), 0)
    told = str(refused.value)
    assert told.startswith("a run of its 2 steps can write ")
    assert told.endswith("nothing undone): fewer max_attempts, or fewer steps")


def test_a_record_over_a_payload_has_its_error_texts_cut_alike_to_fit_with_a_note():
    """attack76 F1: three undos failing with 32,000-character texts, 25 attempts each: a
    record of 2.5 MB, raised as a limit, its three dead letters named nowhere. Its texts are
    cut, each to one bound (the longest that fits), a note saying so; the rest (status, dead
    letters, events) is whole. A record that fits is left as it is."""
    from rollback_lessons.outcome import RECORD_FIELDS, RunRecord
    from rollback_lessons.runners.record_fit import FLOOR, fit, size
    from rollback_lessons.runners.temporal.limits import PAYLOAD_LIMIT, result
    from rollback_lessons.runners.wire import record_data, record_of

    def bad(state):
        raise RuntimeError("e" * 32_000)

    saga = Saga([Step(f"charge{i}", lambda s: None, bad) for i in range(3)]
                + [Step("last", lambda s: None)],
                policy=Retry(RetryPolicy(max_attempts=25, initial_delay=0)))  # fmt: skip
    local = saga.run({}, inject={"last": "fail"}, clock=VirtualClock())
    record = RunRecord.build(**{name: getattr(local, name) for name in RECORD_FIELDS})
    whole = record_data(record)
    assert size(whole) > PAYLOAD_LIMIT
    data = result(record)  # (what the workflow returns)
    assert size(data) <= PAYLOAD_LIMIT and size(whole) > PAYLOAD_LIMIT  # (its own: a copy)
    back = record_of(data)
    assert back.status is Status.ROLLBACK_INCOMPLETE
    assert [d.step for d in back.dead_letters] == ["charge2", "charge1", "charge0"]
    assert [(e.kind, e.step) for e in back.events] == [(e.kind, e.step) for e in local.events]
    [note] = back.notes
    keep = int(note.split("cut to ")[1].split(" ")[0])
    assert note == (
        f"its error texts are cut to {keep} characters each: the record was "
        f"{size(whole) / 1024 / 1024:.1f} MB, over Temporal's payload limit of 2.0 MB"
    )
    assert FLOOR < keep < 32_000
    texts = [e.details["error"] for e in back.events if e.kind == "undo_failed"]
    assert all(len(t) == keep and t.endswith(f"Temporal carries {keep}]") for t in texts)
    small = record_data(Saga([Step("a", lambda s: None)]).run({}))
    assert fit(small, PAYLOAD_LIMIT, "Temporal") is small


@pytest.mark.parametrize(
    "options, error, said",
    [
        ({"port": 70000}, ValueError, "port must be a port number, 1 to 65535, got 70000"),
        ({"port": -1}, ValueError, "1 to 65535, got -1"),
        ({"port": "7233"}, ValueError, "got '7233'"),
        ({"task_queue": "q" * 1001}, TemporalLimitExceeded, "1001 bytes in UTF-8"),
        ({"task_queue": "\N{GRINNING FACE}" * 251}, TemporalLimitExceeded, "1004 bytes"),
        ({"task_queue": ""}, TypeError, "non-empty str"),
    ],
)
def test_a_port_or_task_queue_it_cannot_use_is_refused_before_a_server_starts(options, error, said):
    """attack206 F2, F3: a task queue over Temporal's 1000 bytes was taken, and every run
    then said the server "did not start it in time ... Try again"; port 70000 gave the
    probe's raw OverflowError."""
    from rollback_lessons.runners.temporal import TemporalRunner

    async def start():
        return await TemporalRunner.start(**options)

    with pytest.raises(error, match=re.escape(said)):
        asyncio.run(start())
