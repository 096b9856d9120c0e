"""Sagas with parallel groups on a real Temporal server (issue 27): the workflow drives the
graph machine as ``saga.arun`` does, a group's branches run as concurrent activities.

Lesson 12's travel booking, for every single fault and a fixed sample of two-fault cases,
under each undo order: the Outcome (status, undos in order, dead letters, the world's own
record, every event) equals the in-process engine's for the same completion order
(``completion``: the timing ``saga.run`` plays for ``arun``; on Temporal, the activities
start at once and their actions are called in that order). Run free, the branches overlap
on the server and the order Temporal completed them in, read from its outcome, played in
process, ends the same. A cancel mid-group compensates what finished and says
``cancelled``; a person answers a halt by Signal; the histories replay deterministically.
One dev server for the module."""

import asyncio
import logging
import random
import threading
from dataclasses import replace

import pytest
from conftest import OnALoop, a_part, same_outcome

from rollback_lessons import (
    Cancelled,
    Kind,
    Parallel,
    Retry,
    RetryPolicy,
    Saga,
    Status,
    Step,
    VirtualClock,
)
from rollback_lessons.events import describe
from rollback_lessons.explore import combinations, inject_of
from rollback_lessons.faults import UNDO_FAULTS, fault_space
from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.worlds import travel

pytestmark = pytest.mark.usefixtures("no_run_left_behind")

QUICK = Retry(RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01))
POLICIES = {"continue": "continue", "retry": QUICK, "halt": "halt"}

_SHARED: list[OnALoop] = []


@pytest.fixture(scope="module", autouse=True)
def _one_server_for_the_module():
    yield
    while _SHARED:
        _SHARED.pop().close()


@pytest.fixture(autouse=True)
def _no_timing_left_behind():
    """A run that played a timing forgets it once its outcome is read."""
    from rollback_lessons.runners.temporal.activities import GATES

    yield
    assert not GATES, f"timings left behind: {sorted(GATES)}"


def on_temporal(scenario):
    """``await scenario(runner)`` on the module's one dev server (started when first needed)."""
    if not _SHARED:
        _SHARED.append(OnALoop(TemporalRunner.start))
    return _SHARED[0](scenario)


CANCEL_REQUESTED = "workflow_execution_cancel_requested_event_attributes"


async def cancel_heard(handle) -> None:
    """Cancel the workflow and wait until it has heard it: a workflow task completed after
    the request, in its history (however loaded the machine). The request itself shows in
    the history only once the workflow task under way (if any) has completed: the server
    buffers it till then, so it is waited for too (never looked up at once: a drawn step
    whose action calls this must not fail after its effect)."""
    await handle.cancel()
    for _ in range(3000):
        kinds = [e.WhichOneof("attributes") async for e in handle.workflow.fetch_history_events()]
        asked = kinds.index(CANCEL_REQUESTED) if CANCEL_REQUESTED in kinds else len(kinds)
        if "workflow_task_completed_event_attributes" in kinds[asked:]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the workflow never heard the cancel")


def single_faults(saga) -> list[dict]:
    """No fault, each action fault of each step, each undo fault with the last step failing
    (so that the undo runs)."""
    last = saga.names[-1]
    cases: list[dict] = [{}]
    for step, fault in fault_space((s.name, s.undo is not None) for s in saga.steps):
        if fault in UNDO_FAULTS and step == last:
            continue
        cases.append({step: fault, last: "fail"} if fault in UNDO_FAULTS else {step: fault})
    return cases


def two_faults(saga, n: int = 12) -> list[dict]:
    """A fixed sample of the two-fault cases (the same every run)."""
    every = [c for c in combinations(saga, max_faults=2) if len(c) == 2]
    return [inject_of(c) for c in random.Random(27).sample(every, n)]


def played(saga, cases, options):
    """Each case with ``options`` in process (the timing played) and on Temporal."""

    async def scenario(runner):
        return [await runner.run(saga(), travel.state(), inject=c, **o)
                for c, o in zip(cases, options, strict=True)]  # fmt: skip

    remote = on_temporal(scenario)
    for inject, o, there in zip(cases, options, remote, strict=True):
        here = saga().run(travel.state(), inject=inject, clock=VirtualClock(), **o)
        same_outcome(here, there)
    return remote


def test_every_single_fault_of_the_travel_booking_ends_as_in_process_in_every_undo_order():
    """45 runs (15 faults, 3 undo orders): make test runs the charge failing in each order
    and a third of the rest, a different third each run (conftest's a_part; each holds
    every status below); make soak all of them."""
    every = [(order, inject) for order in travel.ORDERS
             for inject in single_faults(travel.booking())]  # fmt: skip
    lesson = [c for c in every if c[1] == {"charge": "fail"}]
    rest = a_part([c for c in every if c not in lesson], 3, name="temporal's travel faults")
    chosen = sorted(lesson + rest, key=every.index)
    cases = [inject for _, inject in chosen]
    options = [{"undo_order": order, "completion": travel.TIMING} for order, _ in chosen]
    remote = played(travel.booking, cases, options)
    statuses = {o.status for o in remote}
    assert statuses >= {Status.COMMITTED, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE}
    # the lesson's point, on Temporal: the car finished after the room, so only reverse
    # completion undoes both (the hotel refuses the room while the car is delivered there)
    charge = [o for o, c in zip(remote, cases, strict=True) if c == {"charge": "fail"}]
    assert [o.status for o in charge] == [Status.ROLLED_BACK, *[Status.ROLLBACK_INCOMPLETE] * 2]
    assert charge[0].state_after == travel.state()
    assert all([d.step for d in o.dead_letters] == ["room"] for o in charge[1:])


def test_a_fixed_sample_of_two_faults_ends_as_in_process_under_each_policy():
    cases = two_faults(travel.booking())
    options = [
        {"policy": POLICIES[p], "undo_order": travel.ORDERS[i % 3], "completion": travel.TIMING}
        for i, p in enumerate(list(POLICIES) * 4)
    ]
    remote = played(travel.booking, cases, options)
    assert len({o.status for o in remote}) >= 3


def test_run_free_the_branches_overlap_and_temporals_order_played_in_process_ends_the_same():
    """No timing given: the room, the car and the flight are three activities at once
    (scheduled before any completes); the order Temporal completed them in (its outcome's
    events, taken from its history) played in process gives the same Outcome. The declared
    booking: the car after the room, so no action reads what a sibling wrote."""
    saga = travel.booking(declared=True)
    cases = single_faults(saga)

    async def scenario(runner):
        found = []
        for inject in cases:
            handle = await runner.start_saga(saga, travel.state(), inject=inject)
            found.append((await handle.outcome(), await handle.history(ids=False)))
        return found

    for inject, (remote, history) in zip(cases, on_temporal(scenario), strict=True):
        ended = [e.step for e in remote.events if e.kind in ("step_done", "step_failed")]
        here = saga.run(travel.state(), inject=inject, clock=VirtualClock(), completion=ended)
        same_outcome(here, remote)
        rows = [(what, step) for what, call, step in history.rows if call == "action"]
        first_end = next(i for i, (what, _) in enumerate(rows) if what != "activity scheduled")
        assert {s for _, s in rows[:first_end]} >= {"room", "flight"}, rows  # at once


def test_a_cancel_mid_group_compensates_what_finished_and_says_cancelled():
    """The car's booking is slow; the room and the flight are booked; the workflow is
    cancelled: the car's booking finishes, the charge never starts, all three are undone
    (reverse completion), and the outcome says cancelled, as the async engine's does."""
    release = threading.Event()

    def slow_car(state):
        release.wait(20)
        travel.book_car(state)

    def saga():
        return Saga([Parallel(Step("car", slow_car, travel.cancel_car),
                              Step("room", travel.book_room, travel.cancel_room),
                              Step("flight", travel.book_flight, travel.cancel_flight)),
                     Step("charge", travel.charge)], name="travel")  # fmt: skip

    async def scenario(runner):
        world = travel.state()
        handle = await runner.start_saga(saga(), world)
        for _ in range(400):  # the room and the flight heard done: only the car runs
            if await handle.workflow.query("running") == ["car"]:
                break
            await asyncio.sleep(0.02)
        await cancel_heard(handle)  # while the car's booking runs
        release.set()
        outcome = await handle.outcome()
        return outcome, world, await replay_failures([await handle.workflow.fetch_history()])

    remote, world, replayed = on_temporal(scenario)
    assert replayed == [None]  # the cancel's place in the history replays the same path
    local = asyncio.run(travel.cancelled_midway())
    assert remote.status is local.status is Status.CANCELLED
    # the room and the flight run side by side: either may be heard done first; the car,
    # held, finishes last, and the undos run in reverse completion
    assert remote.completed[-1] == local.completed[-1] == "car"
    assert sorted(remote.completed) == sorted(local.completed) == ["car", "flight", "room"]
    assert remote.compensated == tuple(reversed(remote.completed))
    assert local.compensated == tuple(reversed(local.completed))
    assert "charge" not in [e.step for e in remote.events if e.kind == "step_start"]
    assert world == remote.state_after == local.state_after == travel.state()
    # its error is the engine's own for a caller's cancel (issue 27, groupcheck attack 6)
    assert repr(remote.error) == repr(Cancelled.by_caller())
    [failed] = [e for e in remote.events if e.kind == "pipeline_failed"]
    assert failed.details["error"] == describe(Cancelled.by_caller())


def _retried_branches(calls: list, gate, aio: bool) -> Saga:
    """``a``, then four branches, each failing its first attempt; the second waits on
    ``gate`` (an asyncio.Event in process, where the actions are awaited on the loop; a
    threading.Event on Temporal, where each runs on a thread of its own)."""

    def flaky(name):
        def act(state):
            calls.append(name)
            if calls.count(name) == 1:
                raise ConnectionError("not yet")
            return gate.wait() if aio else gate.wait(20)

        return Step(name, act, None, retry=RetryPolicy(max_attempts=3, initial_delay=0.1))

    undo_a = lambda s: calls.append("undo a")  # noqa: E731
    return Saga([Step("a", lambda s: calls.append("a"), undo_a),
                 Parallel(*(flaky(f"p{i}") for i in range(4)))], name="branches")  # fmt: skip


SECOND_ATTEMPTS = ["a", *[f"p{i}" for i in range(4)] * 2]


def test_branches_retried_then_cancelled_run_as_in_process():
    """attack10's observation (only p0 was ever called) came from ``Parallel([p0, ..., p3])``,
    one branch of four steps in order, which both engines run one after the other. As four
    branches, each failing its first attempt and cancelled while the second attempts run:
    on Temporal as in ``saga.arun``, every branch is tried twice, their second attempts
    finish, ``a`` is undone, and the outcome says cancelled."""

    async def in_process():
        calls: list = []
        gate = asyncio.Event()
        task = asyncio.ensure_future(_retried_branches(calls, gate, aio=True).arun({}))
        while sorted(calls) != sorted(SECOND_ATTEMPTS):
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0)
        gate.set()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await task
        return cancelled.value.outcome, calls

    async def scenario(runner):
        calls: list = []
        gate = threading.Event()
        handle = await runner.start_saga(_retried_branches(calls, gate, aio=False), {})
        try:
            while sorted(calls) != sorted(SECOND_ATTEMPTS):
                await asyncio.sleep(0.01)
            await cancel_heard(handle)  # while the four second attempts run
        finally:
            gate.set()
        return await handle.outcome(), calls

    local, local_calls = asyncio.run(in_process())
    remote, remote_calls = on_temporal(scenario)
    for outcome, calls in ((local, local_calls), (remote, remote_calls)):
        assert outcome.status is Status.CANCELLED, outcome
        assert sorted(calls) == sorted([*SECOND_ATTEMPTS, "undo a"]), calls
        assert outcome.compensated == ("a",)
        assert sorted(outcome.completed) == ["a", "p0", "p1", "p2", "p3"]
    retries = sorted(e.step for e in remote.events if e.kind == "step_retry")
    assert retries == sorted(e.step for e in local.events if e.kind == "step_retry")
    assert retries == ["p0", "p1", "p2", "p3"]


def test_a_person_answers_a_halted_group_by_signal():
    """The room's undo fails once; the policy halts for a person, who answers "retry" by
    Signal: the undos the in-process halt leaves pending are asked about, then done."""
    inject = {"charge": "fail", "room": "undo_fails_once"}
    options = {"inject": inject, "policy": "halt", "completion": travel.TIMING}

    async def scenario(runner):
        handle = await runner.start_saga(travel.booking(), travel.state(), halt_wait=30, **options)
        for _ in range(200):
            pending = await handle.pending()
            if pending:
                break
            await asyncio.sleep(0.05)
        await handle.resolve(pending, "retry")
        return list(pending.undos), await handle.outcome()

    pending, outcome = on_temporal(scenario)
    halted = travel.booking().run(travel.state(), clock=VirtualClock(), **options)
    assert halted.status is Status.HALTED and pending == list(halted.pending) == ["room"]
    assert outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == (*halted.compensated, "room")
    assert outcome.state_after == travel.state()


def test_the_histories_replay_deterministically():
    """Temporal replays the workflow's code against its history (a worker restarted, a
    cache evicted): the order the steps are told to the machine must come from the
    history, and the replay must take exactly the same path."""
    runs = [
        (travel.booking(), {"charge": "fail"}, {"policy": QUICK}),
        (travel.booking(), {"room": "fail", "car": "undo_fails"}, {"undo_order": "reverse_start"}),
        (travel.booking(), {"charge": "fail"}, {"completion": travel.TIMING}),  # Updates
        (travel.booking(declared=True), {"flight": "fail_after_effect"}, {}),
    ]

    async def scenario(runner):
        histories = []
        for saga, inject, options in runs:
            handle = await runner.start_saga(saga, travel.state(), inject=inject, **options)
            await handle.outcome()
            histories.append(await handle.workflow.fetch_history())
        return await replay_failures(histories)

    assert on_temporal(scenario) == [None] * len(runs)


async def replay_failures(histories) -> list:
    """Replay each history with the workflow's code, as a worker does after a restart:
    what failed (a nondeterminism error), None for each that took the same path."""
    from temporalio.worker import Replayer
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from rollback_lessons.runners.temporal.workflow import SagaWorkflow

    replayer = Replayer(
        workflows=[SagaWorkflow],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("rollback_lessons")
        ),
    )
    return [(await replayer.replay_workflow(h, raise_on_replay_failure=False)).replay_failure
            for h in histories]  # fmt: skip


def test_a_list_in_a_graphs_undo_order_runs_as_a_chain():
    """A list saga with ``reverse_start`` or a timing runs on the graph machine (a chain), as
    in process; without them it is the list machine, unchanged."""
    from rollback_lessons.worlds.demo import xyz_saga, xyz_state

    async def scenario(runner):
        return [await runner.run(xyz_saga(), xyz_state(), inject={"step3": "fail"}, **o)
                for o in ({"undo_order": "reverse_start"}, {"completion": ["step1"]})]  # fmt: skip

    for o, remote in zip(({"undo_order": "reverse_start"}, {"completion": ["step1"]}),
                         on_temporal(scenario), strict=True):  # fmt: skip
        local = xyz_saga().run(xyz_state(), inject={"step3": "fail"}, clock=VirtualClock(), **o)
        same_outcome(local, remote)


def test_bad_timings_are_refused_before_a_workflow_starts():
    from rollback_lessons.runners import hosted

    async def scenario(runner):
        before = set(hosted.RUNS)  # (other modules' runs in this xdist worker)
        with pytest.raises(ValueError, match="unknown steps 'boat'"):
            await runner.start_saga(travel.booking(), travel.state(), completion=["boat"])
        with pytest.raises(TypeError, match="a list of step names"):
            await runner.start_saga(travel.booking(), travel.state(), completion="room")
        return set(hosted.RUNS) - before

    assert on_temporal(scenario) == set()


def test_the_plan_keeps_the_groups_dependencies():
    """What the workflow is given: each step's dependencies, as the saga declares them."""
    from rollback_lessons.runners.wire import plan_of

    plan = plan_of(travel.booking(), "x", graphs=True)
    assert plan.after == {"car": [], "room": [], "flight": [], "charge": ["car", "room", "flight"]}
    assert replace(plan, after=None).after is None


def test_the_plan_in_words_says_what_starts_at_once_and_what_waits():
    from rollback_lessons.runners.temporal import plan_for, plan_text

    def step(name):
        return Step(name, lambda s: None, lambda s: None)

    nested = Saga([step("first"), Parallel(step("room"), [step("car"), step("gps")],
                                           step("flight")), step("charge")])  # fmt: skip
    assert plan_text(plan_for(nested)) == [
        "first: starts first",
        "room, car, flight: start at once after first, as concurrent activities",
        "gps: starts after car",
        "charge: starts after room, gps, flight",
    ]
    listed = Saga([step("a"), step("b")])
    assert plan_text(plan_for(listed)) == ["a, b: one after the other, each an activity"]
    assert plan_text(plan_for(listed, undo_order="by_dependency")) == [
        "a: starts first", "b: starts after a",
    ]  # fmt: skip


def test_a_branch_waiting_to_retry_is_not_tried_again_once_a_sibling_failed():
    """A branch fails and waits an hour (a durable timer) to try again; its sibling fails for
    good meanwhile: the wait ends then, the branch is not tried again (its last error is
    its failure), and what was done is undone, as ``saga.arun`` does. The car fails once the
    room's first failure is in the run's history (a barrier, not a time: under load a fixed
    second once let the room's attempt start late, and the run's wall time passed a bound)."""
    go = threading.Event()

    def car_fails(state):
        assert go.wait(60)  # (until the room waits to retry)
        raise RuntimeError("the car company is down")

    patient = RetryPolicy(max_attempts=3, initial_delay=3600.0, max_delay=3600.0)
    saga = Saga([Step("first", lambda s: s.update(first=1), lambda s: s.update(first=0)),
                 Parallel(Step("room", travel.book_room, travel.cancel_room, retry=patient),
                          Step("car", car_fails, travel.cancel_car))], name="travel")  # fmt: skip

    async def scenario(runner):
        handle = await runner.start_saga(saga, travel.state(), inject={"room": "fail"})
        for _ in range(1200):  # (a bound, not a timing: 60 s)
            rows = (await handle.history()).rows
            if any(row[-3:] == ("activity failed", "action", "room") for row in rows):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"room's first attempt never failed: {rows}")
        go.set()
        return await asyncio.wait_for(handle.outcome(), 300)  # (never the hour's timer)

    try:
        outcome = on_temporal(scenario)
    finally:
        go.set()
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("first",)
    kinds = [(e.kind, e.step) for e in outcome.events if e.step in ("room", "car")]
    assert kinds.count(("step_retry", "room")) == 1 and ("step_failed", "room") in kinds
    assert kinds.index(("step_failed", "car")) < kinds.index(("step_failed", "room"))
    assert [d for d in outcome.notes if "also failed" in d]


def booking_with_an_email(send=None):
    """The group, the charge, then the email (the pivot) and a notice retried forward."""
    made = travel.booking()
    email = Step("email", send or (lambda s: s.update(email="sent")), kind=Kind.PIVOT)
    quick = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)
    notify = Step("notify", lambda s: s.update(notified=True), kind=Kind.RETRIABLE, retry=quick)
    return Saga([*made.definition, email, notify], name="travel")


def test_the_pivot_rule_after_a_group_is_the_machines():
    """The email refused before its effect: everything is undone; timed out after it: a
    person decides, nothing undone; the notice after it fails: retried forward, then a
    halt. As in process, in each undo order."""
    cases = [{"email": "fail"}, {"email": "fail_after_effect"}, {"notify": "fail"},
             {"email": "fail", "room": "undo_fails"}]  # fmt: skip
    options = [{"undo_order": o, "completion": travel.TIMING} for o in ("reverse", "by_dependency")]
    cases, options = [c for c in cases for _ in options], options * len(cases)
    remote = played(booking_with_an_email, cases, options)
    assert {o.status for o in remote} == {
        Status.ROLLED_BACK, Status.HALTED, Status.ROLLBACK_INCOMPLETE,
    }  # fmt: skip


def test_a_cancel_once_the_email_started_is_declined_and_the_run_goes_on():
    release = threading.Event()

    def slow_email(state):
        release.wait(20)
        state["email"] = "sent"

    async def scenario(runner):
        handle = await runner.start_saga(booking_with_an_email(slow_email), travel.state())
        await asyncio.get_running_loop().run_in_executor(None, handle.started("email").wait, 20)
        await cancel_heard(handle)
        release.set()
        return await handle.outcome()

    outcome = on_temporal(scenario)
    assert outcome.status is Status.COMMITTED and outcome.compensated == ()
    assert outcome.state_after["email"] == "sent" and outcome.state_after["notified"]
    assert any("declined" in note for note in outcome.notes)


def test_a_cancel_during_the_undos_does_not_cut_them_short():
    """The charge fails; while the room's undo runs, the workflow is cancelled: the undos
    are shielded from it, every one runs, and the rollback ends as it would have."""
    release, undoing = threading.Event(), threading.Event()

    def slow_cancel_room(state):
        undoing.set()
        release.wait(20)
        travel.cancel_room(state)

    def saga():
        return Saga([Parallel(Step("car", travel.book_car, travel.cancel_car),
                              Step("room", travel.book_room, slow_cancel_room),
                              Step("flight", travel.book_flight, travel.cancel_flight)),
                     Step("charge", travel.charge)], name="travel")  # fmt: skip

    options = {"inject": {"charge": "fail"}, "completion": ("car", "room", "flight")}

    async def scenario(runner):
        handle = await runner.start_saga(saga(), travel.state(), **options)
        await asyncio.get_running_loop().run_in_executor(None, undoing.wait, 20)
        await cancel_heard(handle)
        release.set()
        return await handle.outcome()

    remote = on_temporal(scenario)
    release.set()
    local = saga().run(travel.state(), clock=VirtualClock(), **options)
    same_outcome(local, remote)
    assert remote.status is Status.ROLLED_BACK
    assert remote.compensated == ("flight", "room", "car")


def test_a_policy_of_ones_own_decides_in_the_workflow_for_a_group():
    """A policy whose ``decide`` is code (one more attempt, then a person) runs in the
    workflow, as in process, for the undos of a group."""
    from rollback_lessons import UndoPolicy

    class OnceMoreThenHalt(UndoPolicy):
        def decide(self, attempt, error):
            return 0.01 if attempt < 2 else "halt"

    cases = [{"charge": "fail", "room": "undo_fails"}, {"charge": "fail", "car": "undo_fails_once"}]
    options = [{"policy": OnceMoreThenHalt(), "completion": travel.TIMING}] * 2
    remote = played(travel.booking, cases, options)
    assert [o.status for o in remote] == [Status.HALTED, Status.ROLLED_BACK]


def test_a_real_step_failure_is_data_for_the_machine_logged_without_a_traceback(caplog):
    """A step's own error (not injected) fails its activity as BENIGN: Temporal's SDK logs
    no WARNING with a traceback for it; the Outcome still says what failed and why."""

    def hotel_down(state):
        raise ConnectionError("the hotel did not answer")

    def saga():
        return Saga([Parallel(Step("room", hotel_down, travel.cancel_room),
                              Step("flight", travel.book_flight, travel.cancel_flight))],
                    name="travel")  # fmt: skip

    async def scenario(runner):
        return await runner.run(saga(), travel.state(), completion=["flight", "room"])

    with caplog.at_level(logging.WARNING, logger="temporalio"):
        remote = on_temporal(scenario)
    here = saga().run(travel.state(), completion=["flight", "room"], clock=VirtualClock())
    same_outcome(here, remote)
    assert repr(remote.error) == "ConnectionError('the hotel did not answer')"
    assert [r.getMessage() for r in caplog.records if "activity as failed" in r.getMessage()] == []


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_awaitable_or_a_generator_returned_fails_as_in_process_never_done():
    """The car's action returns a coroutine, the room's undo a generator: neither body runs,
    so the car failed and the room's undo is a dead letter, as ``saga.run`` says."""

    async def later(state):
        travel.book_car(state)

    def saga():
        room = Step("room", travel.book_room, lambda s: (travel.cancel_room(s) for _ in "x"))
        return Saga([Parallel(room, Step("car", lambda s: later(s), travel.cancel_car))],
                    name="travel")  # fmt: skip

    async def scenario(runner):
        world = travel.state()
        return await runner.run(saga(), world, completion=["room", "car"]), world

    remote, world = on_temporal(scenario)
    here = saga().run(travel.state(), completion=["room", "car"], clock=VirtualClock())
    assert (remote.status, remote.failed_step, [str(d) for d in remote.dead_letters]) == (
        here.status, here.failed_step, [str(d) for d in here.dead_letters],
    )  # fmt: skip
    assert remote.status is Status.ROLLBACK_INCOMPLETE and not world["cars"] and world["hotel"]


def test_a_turn_asked_for_a_step_not_running_is_refused_never_left_waiting():
    """``turn`` is asked by a running step's activity (``completion``). Asked for any other
    step (a list's, which plays no timing; one not started), it is refused at once: before,
    it waited for ever, and the run ended with the Update unfinished (temporalio's
    UnfinishedUpdateHandlersWarning). The runs end as they would have."""
    import warnings

    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.workflow import UnfinishedUpdateHandlersWarning

    gate = threading.Event()
    a = Step("a", lambda s: gate.wait(30) and s.update(a=1), lambda s: s.pop("a"))
    b = Step("b", lambda s: s.update(b=1), lambda s: s.pop("b"))
    shapes = {"a list": ([a, b], {}), "a group": ([Parallel(a, b)], {"completion": ["a", "b"]})}

    async def scenario(runner):
        said = {}
        for shape, (steps, options) in shapes.items():
            gate.clear()
            handle = await runner.start_saga(Saga(steps, name="turns"), {}, **options)
            await asyncio.get_running_loop().run_in_executor(None, handle.started("a").wait, 30)
            asks = ["a", "c"] if shape == "a list" else ["c"]  # (a group's b waits its turn)
            for step in asks:
                with pytest.raises(WorkflowUpdateFailedError) as refused:
                    await asyncio.wait_for(
                        handle.workflow.execute_update("turn", args=[step, []]), 30
                    )
                assert "no turn to give" in str(refused.value.cause)
            gate.set()
            said[shape] = (await handle.outcome()).status
        return said

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        said = on_temporal(scenario)
    assert said == {"a list": Status.COMMITTED, "a group": Status.COMMITTED}
    assert not [w for w in seen if issubclass(w.category, UnfinishedUpdateHandlersWarning)]
