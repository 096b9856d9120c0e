"""The saga's remaining rules, decided once in the machine and obeyed by every driver:

- the pivot rule: a pivot whose failure may have come after its effect (a timeout after the
  email left, or a call cut short) halts for a person, and nothing before it is undone; one
  that refused cleanly, before any effect, is compensated across like any failed step. In
  process, on Step Functions (its Catch), as BPMN on SpiffWorkflow, on DBOS, in ``recover``.
- ``recover`` obeys the run's own undo policy and order, kept in the journal (schema 4): a
  retry retries, a halt halts; a policy a journal cannot keep is refused before the saga
  starts; a journal written before says which policy it falls back to.
- Step Functions retries what the machine retries: a subclass of a ``retry_on`` type too.
"""

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from functools import partial

import pytest
from conftest import dead_pid, full_to_the_end, same_outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollback_lessons import (
    Halt,
    Kind,
    Parallel,
    Retry,
    RetryPolicy,
    Saga,
    Status,
    Step,
    UndoPolicy,
    VirtualClock,
)
from rollback_lessons.durable.files import SCHEMA_VERSION
from rollback_lessons.durable.journal import Journal, UnjournaledPolicy
from rollback_lessons.durable.recovery import FALLBACK, recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.errors import InjectedTimeout
from rollback_lessons.events import EventKind
from rollback_lessons.faults import Fault
from rollback_lessons.machine import Machine, after_effect
from rollback_lessons.operations import StepSpec
from rollback_lessons.policies import type_name
from rollback_lessons.runners.bpmn import BpmnRunner, to_bpmn
from rollback_lessons.runners.owed import owed
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner, to_asl
from rollback_lessons.runners.stepfunctions.asl import HALTED_AT_PIVOT

QUICK = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.01)
PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def act(name, state):
    state[name] = "done"


def undo_of(name, state):
    if state.get(name) == "done":
        state[name] = "undone"


def booking(register="after"):
    """charge -> email (the pivot) -> ship, retried forward after it."""
    return Saga(
        [
            Step("reserve", partial(act, "reserve"), partial(undo_of, "reserve")),
            Step("charge", partial(act, "charge"), partial(undo_of, "charge"), register=register),
            Step("email", partial(act, "email"), kind=Kind.PIVOT),
            Step("ship", partial(act, "ship"), kind=Kind.RETRIABLE, retry=QUICK),
        ],
        name="booking",
    )


# -- the rule, in process --------------------------------------------------------------------


def test_a_pivot_that_fails_after_its_effect_halts_and_nothing_before_it_is_undone():
    state = {}
    outcome = booking().run(state, inject={"email": "fail_after_effect"}, clock=VirtualClock())
    assert outcome.status is Status.HALTED
    assert outcome.compensated == () and outcome.pending == ("charge", "reserve")
    assert state == {"reserve": "done", "charge": "done", "email": "done"}
    halted = [e for e in outcome.events if e.kind == EventKind.HALTED]
    assert "'email' failed after its effect, so it may have happened" in halted[0].details["reason"]


def test_a_pivot_that_refuses_cleanly_is_compensated_across():
    state = {}
    outcome = booking().run(state, inject={"email": "fail"}, clock=VirtualClock())
    assert outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == ("charge", "reserve")
    assert state == {"reserve": "undone", "charge": "undone"}


def test_a_pivot_cut_short_while_it_runs_halts_too():
    def interrupted(state):
        state["email"] = "done"
        raise KeyboardInterrupt  # Ctrl-C while the mail server answers

    saga = booking()
    saga = Saga([*saga.steps[:2], Step("email", interrupted, kind=Kind.PIVOT)], name="b")
    state = {}
    with pytest.raises(KeyboardInterrupt):
        saga.run(state)
    assert state == {"reserve": "done", "charge": "done", "email": "done"}  # nothing undone


@st.composite
def pivot_sagas(draw):
    """Steps before a pivot (undos logged before or after), perhaps steps after it; one
    fault at the pivot (before or after its effect) and perhaps an undo fault."""
    before = []
    for i in range(draw(st.integers(0, 3))):
        before.append(
            Step(f"s{i}", partial(act, f"s{i}"), partial(undo_of, f"s{i}"),
                 register=draw(st.sampled_from(["before", "after"])))
        )  # fmt: skip
    after = [Step("ship", partial(act, "ship"), kind=Kind.RETRIABLE, retry=QUICK)]
    steps = [*before, Step("email", partial(act, "email"), kind=Kind.PIVOT)]
    steps += after if draw(st.booleans()) else []
    inject = {"email": draw(st.sampled_from(["fail", "fail_after_effect"]))}
    if before and draw(st.booleans()):
        inject[draw(st.sampled_from([s.name for s in before]))] = "undo_fails"
    policy = draw(st.sampled_from(["continue", "halt", Retry(QUICK)]))
    return Saga(steps, name="drawn", policy=policy), inject


@settings(PROPERTY, max_examples=60)
@given(drawn=pivot_sagas())
def test_no_step_before_a_pivot_that_may_have_happened_is_ever_undone(drawn):
    saga, inject = drawn
    state = {}
    outcome = saga.run(state, inject=inject, clock=VirtualClock())
    if inject["email"] == "fail_after_effect":
        assert outcome.status is Status.HALTED
        assert not any(e.kind == EventKind.UNDO for e in outcome.events)
        assert set(outcome.pending) == {s.name for s in saga.steps if s.undo is not None}
    else:  # refused cleanly: every undo logged runs, as for any failed step
        assert outcome.status is not Status.HALTED or saga.policy.name == "halt"
        assert all(state.get(s.name) != "done" or s.undo is None for s in saga.steps
                   if s.name in outcome.compensated)  # fmt: skip


class ReadTimedOut(TimeoutError):
    """A mail client's own timeout: the message may have gone out."""


def timing_out(state):
    state["email"] = "done"
    raise ReadTimedOut("the mail server did not answer in time")


def refusing(state):
    raise ConnectionRefusedError("the mail server is down")


def with_email(action):
    return Saga([*booking().steps[:2], Step("email", action, kind=Kind.PIVOT)], name="booking")


def test_a_pivot_that_times_out_halts_and_one_that_is_refused_is_compensated_across():
    state = {}
    outcome = with_email(timing_out).run(state, clock=VirtualClock())
    assert outcome.status is Status.HALTED and outcome.compensated == ()
    assert "failed with a timeout" in outcome.events[-1].details["reason"]
    state = {}
    outcome = with_email(refusing).run(state, clock=VirtualClock())
    assert outcome.status is Status.ROLLED_BACK
    assert state == {"reserve": "undone", "charge": "undone"}


def test_a_pivot_in_doubt_is_leaked_as_one_that_failed_after_its_effect(tmp_path):
    """A pivot's timeout may have come after its effect (the README's "only the error
    tells"): like ``fail_after_effect`` it is leaked, in the Outcome, its failure's
    details and the journal; a clean refusal is not (harden17 found the timeout not_run)."""
    after = booking().run({}, inject={"email": "fail_after_effect"}, clock=VirtualClock())
    timed = with_email(timing_out).run({}, clock=VirtualClock())
    refused = with_email(refusing).run({}, clock=VirtualClock())
    assert after.leaked == timed.leaked == ("email",) and refused.leaked == ()
    failed = [e for e in timed.events if e.kind == EventKind.STEP_FAILED]
    assert failed[-1].details.get("after_effect") is True
    saga = journalled("doubt", n=2)
    saga = Saga([*saga.steps, Step("email", timing_out, kind=Kind.PIVOT)], name="doubt")
    with Journal(tmp_path / "j.db") as journal:
        outcome = saga.run({}, journal=journal, run_id="t", clock=VirtualClock())
        assert outcome.status is Status.HALTED and outcome.leaked == ("email",)
        assert journal.leaked("t") == ["email"]


# -- the writers ask the machine about both failures --------------------------------------


def test_owed_answers_a_failure_after_the_effect_too():
    found = {o.step: o for o in owed(booking().specs())}
    assert not found["email"].halts and found["email"].undos == ("charge", "reserve")
    assert found["email"].after is not None and found["email"].after.halts
    assert found["charge"].after is not None and not found["charge"].after.halts
    assert found["ship"].halts and found["ship"].after.halts  # retried forward, then a person


def _doubt_outlives_every_attempt(spec):
    """The question ``doubt_outlives_retry`` answers, asked of every attempt (as it was,
    attack29's F7: a loop per attempt)."""
    from rollback_lessons.errors import InjectedTimeout
    from rollback_lessons.faults import Fault
    from rollback_lessons.operations import Wait
    from rollback_lessons.policies import CONTINUE

    def asked(error):
        m = Machine(CONTINUE, plan=[spec._replace(has_undo=False)])
        m.start()
        op = m.step_failed(error)
        if type(op) is not Wait:
            return False
        while type(op) is Wait:
            m.resume()
            op = m.step_failed(RuntimeError("clean"))
        return m.halted

    late = InjectedTimeout(spec.name, Fault.FAIL_AFTER_EFFECT, "after")
    return asked(late) or asked(ExceptionGroup("g", [late]))  # (a group: retry_on apart)


ERROR_TYPES = (Exception, TimeoutError, RuntimeError, ConnectionError, ExceptionGroup)


@PROPERTY
@given(
    kind=st.sampled_from(list(Kind)),
    attempts=st.integers(1, 7),
    retry_on=st.lists(st.sampled_from(ERROR_TYPES), min_size=1, max_size=2, unique=True),
    no_retry_on=st.lists(st.sampled_from(ERROR_TYPES), max_size=1),
    has_undo=st.booleans(),
)
def test_doubt_outlives_retry_answers_as_the_machine_does_over_every_attempt(
    kind, attempts, retry_on, no_retry_on, has_undo
):
    """Asked of a few attempts (``ASKED_ATTEMPTS``), the answer is the one every attempt
    gives: later attempts meet the machine as the second did."""
    from rollback_lessons.runners.owed import doubt_outlives_retry

    retry = RetryPolicy(attempts, retry_on=tuple(retry_on), no_retry_on=tuple(no_retry_on))
    spec = StepSpec("s", kind, has_undo and kind == Kind.COMPENSABLE, retry=retry)
    assert doubt_outlives_retry(spec) == _doubt_outlives_every_attempt(spec)


@pytest.mark.parametrize("kind", [Kind.COMPENSABLE, Kind.PIVOT, Kind.RETRIABLE])
def test_the_state_machine_of_a_step_with_huge_max_attempts_is_written_at_once(monkeypatch, kind):
    """attack29's F7: ``to_asl`` drove the machine through every attempt a step's policy
    allows (10**8, within AWS's MaxAttempts: hours). Now a few, whatever the count."""
    from rollback_lessons.runners import owed as owed_module

    asked = []

    class Counted(Machine):
        def step_failed(self, error):
            asked.append(1)
            assert len(asked) < 100, "the machine is driven once per allowed attempt"
            return super().step_failed(error)

    monkeypatch.setattr(owed_module, "Machine", Counted)
    huge = RetryPolicy(max_attempts=10**8, retry_on=(Exception,))
    saga = Saga([Step("a", partial(act, "a"), partial(undo_of, "a")),
                 Step("b", partial(act, "b"), retry=huge, kind=kind)])  # fmt: skip
    if kind == Kind.PIVOT:  # retried after a timeout, then a person however cleanly it fails
        with pytest.raises(Exception, match="irreversible and retried after a failure"):
            to_asl(saga)
    else:
        retry = next(v for k, v in to_asl(saga)["States"].items() if k.startswith("Do b"))
        assert retry["Retry"][-1]["MaxAttempts"] == 10**8 - 1


def test_after_effect_is_what_the_error_says():
    from rollback_lessons.faults import Fault, action_error

    assert after_effect(action_error("x", Fault.FAIL_AFTER_EFFECT))
    assert not after_effect(action_error("x", Fault.FAIL))
    assert not after_effect(ValueError("x"))


def test_the_state_machine_routes_a_pivots_failure_after_its_effect_to_a_person():
    asl = to_asl(booking())
    email = next(v for k, v in asl["States"].items() if k.startswith("Do email"))
    catches = email["Catch"]
    assert catches[0]["Next"] == HALTED_AT_PIVOT
    late = catches[0]["ErrorEquals"]
    read = type_name(ReadTimedOut)  # (a class not Python's own: by module.qualname)
    assert {"States.Timeout", "TimeoutError", "InjectedTimeout", read} <= {*late}
    assert "InjectedFault" not in late and "States.ALL" not in late
    assert catches[1]["ErrorEquals"] == ["States.ALL"] and catches[1]["Next"].startswith("Undo")
    charge = next(v for k, v in asl["States"].items() if k.startswith("Do charge"))
    assert len(charge["Catch"]) == 1  # a compensable step: the same undos either way


@pytest.fixture(scope="module")
def step_functions():
    with StepFunctionsRunner.start() as runner:
        yield runner


@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("fault", ["fail", "fail_after_effect"])
def test_every_engine_ends_a_pivots_failure_as_in_process(
    fault, register, step_functions, dbos_runner
):
    inject = {"email": fault, "charge": "undo_fails_once"}
    local = booking(register).run({}, inject=inject, policy=Retry(QUICK), clock=VirtualClock())
    assert local.status is (Status.HALTED if fault == "fail_after_effect" else Status.ROLLED_BACK)
    same_outcome(local, step_functions.run(booking(register), {}, inject=inject,
                                           policy=Retry(QUICK)))  # fmt: skip
    same_outcome(local, dbos_runner.run(booking(register), {}, inject=inject,
                                        policy=Retry(QUICK)))  # fmt: skip
    for action in (timing_out, refusing):  # a real error, as the engine reports it
        local = with_email(action).run({}, clock=VirtualClock())
        same_outcome(local, step_functions.run(with_email(action), {}))
        same_outcome(local, dbos_runner.run(with_email(action), {}))
    plain = {"email": fault}
    saga = Saga(booking(register).steps[:3], name="booking")  # (BPMN here: no retries)
    local = saga.run({}, inject=plain, clock=VirtualClock())
    same_outcome(local, BpmnRunner.start().run(saga, {}, inject=plain))


def timing_out_in_a_group(state):
    """``asyncio.TaskGroup``'s way to fail: a group, here holding a group holding the timeout."""
    state["email"] = "done"
    inner = ExceptionGroup("retrying", [ReadTimedOut("the mail server did not answer")])
    raise ExceptionGroup("sending", [ValueError("bad cc address"), inner])


def refusing_in_a_group(state):
    raise ExceptionGroup("sending", [ConnectionRefusedError("the mail server is down")])


class NoClass(Exception):
    """An error that cannot say its class (``isinstance`` asks ``__class__``)."""

    @property  # type: ignore[misc]
    def __class__(self):
        raise ValueError("no class")


def unreadable_group(state):
    state["email"] = "done"
    raise ExceptionGroup("sending", [NoClass("w"), ReadTimedOut("no answer")])


def unreadable_alone(state):
    state["email"] = "done"
    raise NoClass("no answer")


def deep_group(state):
    state["email"] = "done"
    error: Exception = ReadTimedOut("no answer")
    for n in range(400):
        error = ExceptionGroup(f"level {n}", [error])
    raise error


@pytest.mark.parametrize("action", [unreadable_group, deep_group, unreadable_alone])
def test_a_pivots_group_that_cannot_be_read_whole_is_in_doubt(action, step_functions, dbos_runner):
    """attack33 F1: reading a pivot's group raised (an error whose ``__class__`` raises;
    350+ levels: RecursionError), the timeout it held was forgotten, the step before it
    undone across it (rolled_back). What cannot be read cannot tell the pivot refused: in
    doubt, halted, nothing undone (``verdicts._told``), sync and async alike, and on every
    engine (harden49: Step Functions ran the undo across the pivot then raised
    HistoryDiverged, BPMN and DBOS a raw ValueError or RecursionError; such an error alone
    too): their records carry it cut (``error_record._held``), so a stand-in
    (``start_saga``) is in doubt too."""
    state: dict = {}
    local = with_email(action).run(state, clock=VirtualClock())
    assert local.status is Status.HALTED and local.compensated == ()
    assert local.leaked == ("email",) and "reserve" in state and "charge" in state
    kinds = [e.kind for e in local.events]  # (not same_outcome: the deep group's repr recurses)
    assert kinds[-1] == EventKind.HALTED
    for other in (
        asyncio.run(with_email(action).arun({}, clock=VirtualClock())),
        step_functions.run(with_email(action), {}),
        dbos_runner.run(with_email(action), {}),
        dbos_runner.start_saga(with_email(action), {}).outcome(),
        BpmnRunner.start().run(with_email(action), {}),
    ):
        assert [e.kind for e in other.events] == kinds
        for field in ("status", "completed", "compensated", "pending", "leaked"):
            assert getattr(other, field) == getattr(local, field), field


def test_a_groups_stand_in_is_as_unreadable_as_the_group():
    """What the pivot rule cannot read of a group (a member that cannot say its class, a
    group nested deeper than ``DEEPEST``) its record's stand-in cannot read either (so a
    refusal beside such a member is in doubt on every engine, as in process); one just
    readable stays readable, and a brief of 400 levels is made without recursion."""
    from rollback_lessons.runners.error_record import ErrorRecord
    from rollback_lessons.verdicts import DEEPEST, timed_out

    def nested(levels, inner):
        for n in range(levels):
            inner = ExceptionGroup(f"level {n}", [inner])
        return inner

    refused = ConnectionRefusedError("down")
    cases = {
        ExceptionGroup("g", [NoClass("w"), refused]): True,
        NoClass("alone"): True,
        nested(3, ExceptionGroup("g", [refused, NoClass("w")])): True,
        nested(400, refused): True,
        nested(DEEPEST, refused): False,  # (the deepest group it reads holds a refusal)
        nested(DEEPEST, ReadTimedOut("t")): True,
        nested(DEEPEST + 1, refused): True,
    }
    for error, doubt in cases.items():
        data = json.loads(json.dumps(dataclasses.asdict(ErrorRecord.of(error))))
        assert timed_out(ErrorRecord(**data).to_exception()) is timed_out(error) is doubt


@pytest.mark.parametrize("action", [timing_out_in_a_group, refusing_in_a_group])
def test_a_pivots_group_holding_a_timeout_is_in_doubt_on_every_engine(
    action, step_functions, dbos_runner, tmp_path
):
    """attack30 F4: a group holding a timeout (nested too) was a clean refusal, compensated
    across (rolled_back). It is in doubt (``verdicts.timed_out``) on every engine, a stand-in
    too (DBOS's ``start_saga`` read alone: ``RemoteError.held``), and in the journal."""
    doubt = action is timing_out_in_a_group
    local = with_email(action).run({}, clock=VirtualClock())
    assert local.status is (Status.HALTED if doubt else Status.ROLLED_BACK)
    assert local.leaked == (("email",) if doubt else ())
    same_outcome(local, asyncio.run(with_email(action).arun({}, clock=VirtualClock())))
    same_outcome(local, step_functions.run(with_email(action), {}))
    same_outcome(local, dbos_runner.run(with_email(action), {}))
    same_outcome(local, dbos_runner.start_saga(with_email(action), {}).outcome())
    same_outcome(local, BpmnRunner.start().run(with_email(action), {}))
    saga = journalled("grouped", n=2)
    saga = Saga([*saga.steps, Step("email", action, kind=Kind.PIVOT)], name="grouped")
    with Journal(tmp_path / "j.db") as journal:
        saga.run({}, journal=journal, run_id="g", clock=VirtualClock())
        assert journal.saga("g").pivot_state == ("started" if doubt else "refused")


def test_step_functions_retries_a_group_as_the_machine_does_or_refuses_to_write_it(
    step_functions,
):
    """A group holding a timeout is sent by a late name only where no Retry then differs
    from ``isinstance`` (a compensable step retried on TimeoutError: the group is not one);
    a pivot whose policy retries the group (``retry_on=ExceptionGroup``) is retried after a
    timeout: refused before it runs, as one retried on TimeoutError is (a Retry forgets)."""
    quick = {"initial_delay": 0.01, "max_delay": 0.01, "max_attempts": 3}

    def saga(kind, retry_on):
        b = Step("b", timing_out_in_a_group, None if kind == Kind.PIVOT else undo_of,
                 kind=kind, retry=RetryPolicy(retry_on=retry_on, **quick))  # fmt: skip
        after = [] if kind == Kind.PIVOT else [booking().steps[1]]  # (nothing undone after it)
        return Saga([booking().steps[0], b, *after], name="grouped")

    compensable = partial(saga, Kind.COMPENSABLE, (TimeoutError,))
    local = compensable().run({}, clock=VirtualClock())
    assert local.status is Status.ROLLED_BACK  # (tried once: the group is no TimeoutError)
    same_outcome(local, step_functions.run(compensable(), {}))
    with pytest.raises(Exception, match="irreversible and retried after a failure"):
        to_asl(saga(Kind.PIVOT, (ExceptionGroup,)))


def test_a_groups_stand_in_holds_what_it_held():
    """An engine's record of a group (as JSON) comes back in doubt as the group was."""
    from rollback_lessons.runners.error_record import ErrorRecord
    from rollback_lessons.verdicts import timed_out

    for action, doubt in ((timing_out_in_a_group, True), (refusing_in_a_group, False)):
        with pytest.raises(ExceptionGroup) as caught:
            action({})
        data = json.loads(json.dumps(dataclasses.asdict(ErrorRecord.of(caught.value))))
        stand_in = ErrorRecord(**data).to_exception()
        assert repr(stand_in) == repr(caught.value)
        assert timed_out(stand_in) is timed_out(caught.value) is doubt
        for error in (stand_in, caught.value):  # a policy matches the group itself (README)
            assert not RetryPolicy(retry_on=(TimeoutError, ConnectionError)).retries(error)
            assert RetryPolicy(retry_on=(ExceptionGroup,)).retries(error)
    late = InjectedTimeout("email", Fault.FAIL_AFTER_EFFECT, "after its effect")
    data = json.loads(json.dumps(vars(ErrorRecord.of(ExceptionGroup("g", [late])))))
    assert after_effect(ErrorRecord(**data).to_exception())


def test_the_compensation_form_writes_the_policys_then():
    halt, cont = to_bpmn(booking(), policy=Halt()), to_bpmn(booking(), policy="continue")
    assert halt != cont
    assert '<zeebe:header key="on-failure" value="halt"/>' in halt
    assert '<zeebe:header key="on-failure" value="dead_letter"/>' in cont
    assert 'errorCode="StepInDoubt"' in halt  # the pivot's failure after its effect


def test_bpmn_runner_takes_a_policy_and_refuses_one_it_cannot_run_before_anything_runs():
    from rollback_lessons.runners.bpmn import UnsupportedInBPMN

    state = {}
    with pytest.raises(UnsupportedInBPMN):
        BpmnRunner.start().run(booking(), state, policy="halt")
    assert state == {}
    saga = Saga(booking().steps[:3], name="booking")
    assert BpmnRunner.start().run(saga, {}, policy="continue").status is Status.COMMITTED


# -- Step Functions retries what the machine retries ----------------------------------------


class FlakyGateway:
    def __init__(self):
        self.calls = 0

    def charge(self, state):
        self.calls += 1
        if self.calls == 1:
            raise ConnectionResetError("reset by peer")  # a subclass of the policy's type
        state["charged"] = True


def test_a_subclass_of_a_retry_on_type_is_retried_on_step_functions_as_in_process(
    step_functions,
):
    def saga(gateway):
        retry = RetryPolicy(max_attempts=2, initial_delay=0.01, retry_on=(ConnectionError,))
        return Saga([Step("charge", gateway.charge, lambda s: None, retry=retry)], name="pay")

    local = saga(FlakyGateway()).run({}, clock=VirtualClock())
    assert local.status is Status.COMMITTED
    same_outcome(local, step_functions.run(saga(FlakyGateway()), {}))
    asl = to_asl(saga(FlakyGateway()))
    [task] = [v for k, v in asl["States"].items() if k.startswith("Do charge")]
    [retrier] = [r for r in task["Retry"] if r["MaxAttempts"] > 0]
    assert "ConnectionResetError" in retrier["ErrorEquals"]


# -- recover: the pivot, the run's policy and order ------------------------------------------

registry = Registry()
WORLD: dict[str, dict] = {}


@compensation("rules.undo", registry)
def journal_undo(world, step, idempotency_key=None):
    w = WORLD[world]
    w["calls"].append(step)
    fails = w["fails"].get(step, 0)
    if fails:
        w["fails"][step] = fails - 1
        raise ConnectionError(f"undo of {step}: down")
    w["undone"].append(step)


def journalled(world, n=3, pivot_at=None):
    WORLD[world] = {"calls": [], "undone": [], "fails": {}}
    steps = [Step(f"s{i}", partial(act, f"s{i}"), journal_undo.bind(world=world, step=f"s{i}"),
                  register="before") for i in range(n)]  # fmt: skip
    if pivot_at is not None:
        steps.insert(pivot_at, Step("email", partial(act, "email"), kind=Kind.PIVOT))
    return Saga(steps, name=world)


def crash_at_undo(k):
    """An on_event that kills the run (as a crash would) at its ``k``-th undo attempt."""
    seen = []

    def on_event(event):
        if event.kind == EventKind.UNDO:
            seen.append(event)
            if len(seen) == k:
                raise KeyboardInterrupt

    return on_event


def orphan(journal):
    journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])


def test_recover_goes_on_with_the_rollback_when_the_pivot_refused_before_its_effect(tmp_path):
    saga = journalled("refused", n=2, pivot_at=2)
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(KeyboardInterrupt):
            saga.run({}, inject={"email": "fail"}, journal=journal, run_id="r",
                     on_event=crash_at_undo(1))  # fmt: skip
        assert journal.saga("r").pivot_state == "refused"
        orphan(journal)
        [done] = recover(journal, registry)
    assert done.status is Status.ROLLED_BACK and "s0" in done.undone
    assert sorted(WORLD["refused"]["undone"]) == ["s0", "s1"]


def test_recover_halts_when_the_pivot_failed_after_its_effect_and_the_run_was_cut(tmp_path):
    saga = journalled("doubt", n=2, pivot_at=2)
    with Journal(tmp_path / "j.db") as journal:
        outcome = saga.run({}, inject={"email": "fail_after_effect"}, journal=journal,
                           run_id="d")  # fmt: skip
        assert outcome.status is Status.HALTED
        assert journal.saga("d").status == "halted" and journal.saga("d").pivot_state == "started"
    assert WORLD["doubt"]["calls"] == []


def uninterrupted_and_recovered(tmp_path, name, policy, order, fails, crash):
    """The same saga, with the same failing undos: run straight through, and crashed at
    its ``crash``-th undo attempt then recovered. Both records, and both worlds."""
    saga = journalled(f"{name}-straight")
    WORLD[f"{name}-straight"]["fails"] = dict(fails)
    kw = {"inject": {"s2": "fail"}, "policy": policy, "undo_order": order}
    with Journal(tmp_path / f"{name}-a.db") as journal:
        straight = saga.run({}, journal=journal, run_id="a", clock=VirtualClock(), **kw)
    saga = journalled(f"{name}-crashed")
    WORLD[f"{name}-crashed"]["fails"] = dict(fails)
    with Journal(tmp_path / f"{name}-b.db") as journal:
        with contextlib.suppress(KeyboardInterrupt):
            saga.run({}, journal=journal, run_id="b", on_event=crash_at_undo(crash),
                     clock=VirtualClock(), **kw)  # fmt: skip
        orphan(journal)
        report = recover(journal, registry)
        final = journal.saga("b")
    return straight, report, final


POLICIES = {
    "continue": "continue",
    "halt": "halt",
    "retry": Retry(RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.001)),
    "retry, then halt": Retry(
        RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.001), then="halt"
    ),
}


@settings(PROPERTY, max_examples=40)
@given(
    policy=st.sampled_from(sorted(POLICIES)),
    order=st.sampled_from(["reverse", "forward"]),
    fails=st.dictionaries(st.sampled_from(["s0", "s1", "s2"]), st.integers(0, 3), max_size=2),
    crash=st.integers(1, 3),
)
def test_recover_with_policy_p_ends_as_an_uninterrupted_run_with_policy_p(
    tmp_path_factory, policy, order, fails, crash
):
    tmp = tmp_path_factory.mktemp("p")
    name = f"{policy}-{order}-{sorted(fails.items())}-{crash}"
    straight, report, final = uninterrupted_and_recovered(
        tmp, name, POLICIES[policy], order, fails, crash
    )
    assert final.status == str(straight.status)
    if report.recovered:  # (else the crash came after the rollback was over)
        [recovered] = report.recovered
        assert recovered.status == straight.status
        assert [d.step for d in recovered.dead_letters] == [d.step for d in straight.dead_letters]
        assert [d.attempts for d in recovered.dead_letters] == [
            d.attempts for d in straight.dead_letters
        ]
        assert recovered.pending == straight.pending
    # the same undo calls, in the same order, and the same world
    assert WORLD[f"{name}-crashed"]["calls"] == WORLD[f"{name}-straight"]["calls"]
    assert WORLD[f"{name}-crashed"]["undone"] == WORLD[f"{name}-straight"]["undone"]


def test_a_halting_policy_halts_in_recover_too(tmp_path):
    straight, report, final = uninterrupted_and_recovered(
        tmp_path, "halt", "halt", "reverse", {"s0": 1}, 1
    )
    assert straight.status is Status.HALTED and straight.pending == ("s0",)
    [recovered] = report.recovered
    assert recovered.status is Status.HALTED and recovered.pending == ("s0",)
    assert final.status == "halted"


def test_a_retry_policy_retries_in_recover(tmp_path):
    straight, report, _ = uninterrupted_and_recovered(
        tmp_path, "retry", POLICIES["retry"], "reverse", {"s0": 2}, 1
    )
    [recovered] = report.recovered
    assert straight.status is recovered.status is Status.ROLLED_BACK
    assert recovered.dead_letters == ()
    assert WORLD["retry-crashed"]["calls"].count("s0") == 3  # two failures, then done


def test_recover_keeps_the_undo_order_of_the_run(tmp_path):
    _, report, _ = uninterrupted_and_recovered(tmp_path, "fwd", "continue", "forward", {}, 1)
    [recovered] = report.recovered  # cut at its first undo: recover runs them all, oldest first
    assert recovered.undone == ("s0", "s1", "s2") == tuple(WORLD["fwd-crashed"]["calls"])


def test_dead_letters_recorded_before_the_crash_come_back_as_records(tmp_path):
    _, report, _ = uninterrupted_and_recovered(tmp_path, "dead", "continue", "reverse",
                                               {"s1": 9}, 3)  # fmt: skip
    [recovered] = report.recovered
    [dead] = recovered.dead_letters
    assert dead.step == "s1" and dead.attempts == 1
    assert type(dead.error).__name__ == "RemoteError" and repr(dead.error) == (
        "ConnectionError('undo of s1: down')"
    )
    assert recovered.status is Status.ROLLBACK_INCOMPLETE


def test_a_policy_a_journal_cannot_keep_is_refused_before_the_saga_starts(tmp_path):
    class Mine(UndoPolicy):
        def decide(self, attempt, error):
            return "halt"

    saga = journalled("mine")
    state = {}
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(UnjournaledPolicy, match="recover could not obey it"):
            saga.run(state, journal=journal, policy=Mine())
        assert journal.sagas() == [] and state == {}

        class Own(Exception):
            pass

        foreign = Retry(RetryPolicy(retry_on=(Own,)))
        with pytest.raises(UnjournaledPolicy, match=r"exception types \S*\.Own:"):  # (qualified)
            saga.run(state, journal=journal, policy=foreign)
        assert journal.sagas() == [] and state == {}


def test_a_journal_written_before_policies_were_kept_says_what_recover_used(tmp_path):
    path = tmp_path / "old.db"
    saga = journalled("old")
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt):
            saga.run({}, inject={"s2": "fail"}, journal=journal, run_id="o", policy="halt",
                     on_event=crash_at_undo(1))  # fmt: skip
        orphan(journal)
    con = sqlite3.connect(path)  # as schema 3 wrote it: no policy, no order, no undo timeout
    con.execute("ALTER TABLE sagas DROP COLUMN policy")
    con.execute("ALTER TABLE sagas DROP COLUMN undo_order")
    con.execute("ALTER TABLE undos DROP COLUMN timeout")
    con.execute("ALTER TABLE sagas DROP COLUMN graph")  # (schema 6)
    con.execute("ALTER TABLE sagas DROP COLUMN owner_space")  # (schema 7)
    con.execute("ALTER TABLE sagas DROP COLUMN claim_space")
    con.execute("ALTER TABLE sagas DROP COLUMN writer")  # (schema 8)
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with Journal(path) as journal:  # (its owner's PID namespace unrecorded: --force)
        [recovered] = recover(journal, registry, force=True)
    assert FALLBACK in recovered.notes and "continue" in FALLBACK
    assert SCHEMA_VERSION == 8


def test_the_machine_resumes_with_the_policy_it_is_given():
    m, op = Machine.resume_rollback([("a", 0), ("b", 0)], policy=Halt(), undo_order="forward")
    assert op.step == "a"
    op = m.undo_failed(ValueError("no"))
    assert type(op).__name__ == "Ask"
    assert type(m.answer("leave")).__name__ == "Finished"
    assert m.record().status is Status.HALTED and m.record().pending == ("a", "b")
    spec = StepSpec("email", Kind.PIVOT)
    assert spec.kind == Kind.PIVOT


# -- attack91 F3: halted past the pivot with every step done: nothing left forward ---------

_DONE_ALL = Registry()
_UNDONE: list[str] = []


@compensation("pivot_rule.f3", _DONE_ALL)
def _f3_undo(step, idempotency_key=None):
    _UNDONE.append(step)


def _all_done(graph: bool = False) -> Saga:
    """s1, s2 (undos logged), email (the pivot), ship (retriable): every step succeeds."""
    s1 = Step("s1", lambda s: None, _f3_undo.bind(step="s1"), register="before")
    s2 = Step("s2", lambda s: None, _f3_undo.bind(step="s2"))
    forward = [Step("email", lambda s: None, kind="pivot"),
               Step("ship", lambda s: None, kind="retriable")]  # fmt: skip
    return Saga([Parallel(s1, s2) if graph else s1, *([] if graph else [s2]), *forward])


def _commit_fails(monkeypatch, error: BaseException) -> None:
    from rollback_lessons.durable.records import JournalRun

    def commit(self, *args, **kw):
        raise error

    monkeypatch.setattr(JournalRun, "commit", commit)


WAITS = (
    "r1 (saga): halted earlier (its irreversible step 'email' happened before its commit was "
    "recorded, every step done (nothing left forward): undoing the steps before it would not "
    "take it back, so the saga is left for a person; undos left, not to run (its pivot "
    "happened) s2, s1); waits for a person"
)


def test_a_commit_not_recorded_past_the_pivot_says_every_step_was_done(tmp_path, monkeypatch):
    """A full disk as the commit is written (``CommitNotRecorded``): halted past the pivot.
    Without the fix, recover's line said "happened before the run failed", no word that
    ship and every other step finished: nothing left forward."""
    _commit_fails(monkeypatch, sqlite3.OperationalError("database or disk is full"))
    with Journal(tmp_path / "j.db") as journal:
        outcome = _all_done().run({}, journal=journal, run_id="r1")
        assert outcome.status is Status.HALTED and outcome.completed == (
            "s1",
            "s2",
            "email",
            "ship",
        )
        monkeypatch.undo()
        orphan(journal)
        report = recover(journal, _DONE_ALL)
    assert [str(w) for w in report.waiting] == [WAITS] and _UNDONE == []


def test_a_disk_full_to_the_end_past_the_pivot_notes_every_step_was_done(tmp_path, monkeypatch):
    """attack201 F1 (3 of 3): the disk full from the commit until the process ended: the
    halt, which keeps "every step done" for recover, was never written, and recover (every
    time) asks a person to finish the steps after the pivot by hand; the note said only that
    the journal shows the saga unfinished. It says there are none left now."""
    from rollback_lessons.durable.journal import Journal as Written
    from rollback_lessons.durable.records import JournalRun

    full = sqlite3.OperationalError("database or disk is full")
    write = Written.write

    def commit(self, *args, **kw):
        monkeypatch.setattr(Written, "write", lambda *a, **k: (_ for _ in ()).throw(full))
        raise full

    monkeypatch.setattr(JournalRun, "commit", commit)
    with Journal(tmp_path / "j.db") as journal:
        outcome = _all_done().run({}, journal=journal, run_id="r1")
        monkeypatch.setattr(Written, "write", write)
        monkeypatch.undo()
        full_to_the_end(journal)  # (until the process ended)
        assert outcome.status is Status.HALTED, outcome
        assert (
            "every step was done, which no record of the journal says: recover will ask a "
            "person to finish the steps after 'email' forward by hand: there are none; "
        ) in outcome.notes[-1], outcome.notes
        orphan(journal)
        report = recover(journal, _DONE_ALL)
    assert "finish the steps after it not yet done" in str(report) and _UNDONE == []


def test_a_ctrl_c_as_the_commit_is_written_past_the_pivot_notes_every_step_was_done(
    tmp_path, monkeypatch
):
    """attack91 F3: a KeyboardInterrupt as the end is written. Without the fix its only note
    was "rollback halted; left for a person: s2, s1", which by the pivot rule invites running
    those undos by hand, though the email went and ship is done too."""
    _commit_fails(monkeypatch, KeyboardInterrupt())
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(KeyboardInterrupt) as cut:
            _all_done().run({}, journal=journal, run_id="r1")
        assert cut.value.__notes__ == [
            "rollback halted: every step was done (nothing left forward), its irreversible "
            "step too, but the run failed before its commit was recorded; undos not to run "
            "(its pivot happened): s2, s1"
        ]
        monkeypatch.undo()
        orphan(journal)
        report = recover(journal, _DONE_ALL)
    assert [str(w) for w in report.waiting] == [WAITS] and _UNDONE == []


def test_a_graph_killed_as_its_commit_is_written_past_the_pivot_has_nothing_left_forward(
    tmp_path,
):
    """A graph's every step is in its journal: killed as its commit was written (the file as
    before that one write: no commit, no committed event), recover halts it and says nothing
    is left forward, never "finish the steps after it not yet done"."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        assert _all_done(graph=True).run({}, journal=journal, run_id="r1").status is (
            Status.COMMITTED
        )
        journal.write([
            ("UPDATE sagas SET status = 'running', ended = NULL", ()),
            ("DELETE FROM events WHERE kind = 'committed'", ()),
        ])  # fmt: skip
        orphan(journal)
        [done] = recover(journal, _DONE_ALL)
    assert done.status is Status.HALTED and _UNDONE == []
    assert "nothing is left forward (every step after it was done: ship), leave its undos " in (
        str(done)
    ), str(done)
    assert "finish the steps after it" not in str(done)


def test_every_step_after_the_pivot_that_failed_for_good_is_pending():
    """attack295 F2: two steps after the pivot in one group (arun runs them at once) both
    failed for good; ``pending``, "the steps to finish forward", named only the first."""
    import asyncio

    from rollback_lessons import Parallel, Saga, Step

    saga = Saga([
        Step("reserve", lambda s: s.update(reserve=1), lambda s: s.pop("reserve")),
        Step("email", lambda s: s.update(email=1), kind="pivot"),
        Parallel(Step("ship", lambda s: s.update(ship=1), kind="retriable"),
                 Step("invoice", lambda s: s.update(invoice=1), kind="retriable")),
    ])  # fmt: skip
    faults = {"ship": "fail", "invoice": "fail"}
    for out in (asyncio.run(saga.arun({}, inject=faults)),
                saga.run({}, inject=faults, completion=["ship", "invoice"])):  # fmt: skip
        assert str(out.status) == "halted" and out.pending == ("ship", "invoice"), out
        assert out.forward == ("ship", "invoice")
