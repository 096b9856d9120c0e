"""Sagas as DBOS workflows (DBOS Transact on a SQLite system database, in this process):
every single fault of the lesson worlds ends as in process; a policy of one's own decides
in the workflow; a process killed in the middle of the compensation and launched again
finishes the saga, each undo applied once (checked on the world's own record). Sagas with
parallel groups drive the graph machine: every single fault of lesson 12's booking ends as
in process, in each undo order and timing; a cancel compensates, DBOS's own
``cancel_workflow`` does not; a graph saga killed mid-compensation finishes, each undo
applied once."""

import contextlib
import logging
import subprocess
import sys
import threading
import time
from functools import partial

import pytest
from conftest import HaltOnAnythingButTimeouts, every_single_fault_ends_the_same, same_outcome
from dbos import DBOS
from heard import heard_as_in_process
from trips import BIG, _act, _boom, _step, _undo, big_error_saga, trip

from rollback_lessons import (
    Kind,
    Parallel,
    Retry,
    RetryPolicy,
    Saga,
    Status,
    Step,
    VirtualClock,
)
from rollback_lessons.errors import InvalidNameError, InvalidPipelineError
from rollback_lessons.events import describe
from rollback_lessons.faults import UNDO_FAULTS, fault_space
from rollback_lessons.runners import Runner, hosted
from rollback_lessons.runners.dbos import DBOSRunner, DBOSUnavailable
from rollback_lessons.stopping import stopped_past
from rollback_lessons.worlds import travel
from rollback_lessons.worlds.crashlab import (
    NotPaused,
    compare_worlds,
    crash_on_dbos,
    world_report,
)
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


def test_every_single_fault_of_the_lesson_sagas_ends_the_same_on_dbos(dbos_runner):
    before = set(hosted.RUNS)  # another module's runs in this worker are not this test's
    seen = every_single_fault_ends_the_same(dbos_runner.run)
    assert {Status.COMMITTED, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE} <= seen
    assert set(hosted.RUNS) <= before  # each run released when it ended
    assert isinstance(dbos_runner, Runner)


def test_a_policy_of_ones_own_decides_in_the_workflow(dbos_runner):
    faults = {"step3": "fail", "step2": "undo_fails"}
    policy = HaltOnAnythingButTimeouts()
    remote = dbos_runner.run(xyz_saga(), xyz_state(), inject=faults, policy=policy)
    same_outcome(xyz_saga().run(xyz_state(), inject=faults, policy=policy), remote)
    assert remote.status is Status.HALTED and remote.pending == ("step2", "step1")


def test_a_halted_saga_waits_for_a_persons_answer(dbos_runner):
    inject = {"step3": "fail", "step1": "undo_fails_once"}
    handle = dbos_runner.start_saga(xyz_saga(), xyz_state(), inject=inject, policy="halt",
                                    halt_wait=30)  # fmt: skip
    waited = threading.Event()
    for _ in range(600):
        if (asked := handle.pending()) is not None and asked.undos == ("step1",):
            waited.set()
            break
        waited.wait(0.05)
    assert waited.is_set()
    with pytest.raises(InvalidPipelineError, match="not one of: retry, fixed, leave"):
        handle.resolve(asked, "shrug")
    handle.resolve(asked, "retry")
    outcome = handle.outcome()
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("step2", "step1")


def test_dbos_is_one_per_process_and_quiet(dbos_runner, caplog):
    with pytest.raises(DBOSUnavailable, match="already runs in this process"):
        DBOSRunner.start()
    assert logging.getLogger("dbos").getEffectiveLevel() >= logging.WARNING


def test_a_run_id_that_would_share_an_undos_key_is_refused_before_anything_runs(dbos_runner):
    """An undo's idempotency key is '<run id>:<step>': run 'order:card' with step 'refund'
    and run 'order' with step 'card:refund' would share one (attack22's M4: a refund service
    honouring keys skipped the second), as the journal refuses such a run id."""
    state = xyz_state()
    for bad, error in (("order:card", InvalidNameError), (7, TypeError), ("", InvalidNameError)):
        with pytest.raises(error, match="run_id"):
            dbos_runner.run(xyz_saga(), state, run_id=bad, inject={"step3": "fail"})
        assert state == xyz_state()  # nothing ran
        assert DBOS.get_workflow_status(str(bad)) is None


def test_a_saga_whose_name_holds_a_colon_or_a_line_break_runs_under_a_run_id_it_reads_back(
    dbos_runner,
):
    """attack223 F1: run without a run_id, the saga 'order:card' ran as 'order:card-<hex>',
    an id ``check_run_id`` refuses: ``record`` and ``handle_for`` took it for a branch of a
    saga 'order' and refused it (UnknownRun), its undo keys ambiguous; 'multi\nline' gave a
    run id of two lines."""
    from rollback_lessons.rules import check_run_id

    for name in ("order:card", "multi\nline"):
        saga = Saga(xyz_saga().steps, name=name)
        outcome = dbos_runner.run(saga, xyz_state(), inject={"step3": "fail"})
        check_run_id(outcome.run_id)
        assert outcome.run_id.startswith(name.replace(":", "-").replace("\n", "-") + "-")
        record = dbos_runner.record(outcome.run_id)
        assert record.status is outcome.status and record.compensated == ("step2", "step1")
        assert dbos_runner.handle_for(saga, outcome.run_id).outcome().status is outcome.status


def test_a_state_that_is_not_a_mapping_is_refused_before_anything_runs(dbos_runner):
    """As ``saga.run`` refuses it (``rules.check_state``; attack22's L4: a raw
    AttributeError), before the workflow starts."""
    with pytest.raises(TypeError, match="state must be a mutable mapping, got list"):
        dbos_runner.run(xyz_saga(), [1, 2], run_id="listed")
    assert DBOS.get_workflow_status("listed") is None


def test_killed_mid_compensation_and_launched_again_it_finishes_each_undo_once(tmp_path):
    """Two sagas in a process of their own; the second fails at step 3 and is killed
    (SIGKILL) after the undo of step 2, before it was checkpointed. DBOS, launched again on
    the same file, runs that undo again (harmless: it changes nothing the second time),
    then the undo of step 1."""
    crash = crash_on_dbos(tmp_path, sagas=2, fail_every=2, pause_at="after undo step2",
                          prefix="next")  # fmt: skip
    assert crash.killed == "after undo step2"
    assert crash.statuses == ("committed", "rolled_back")
    report = world_report(crash.world)
    assert report["undo_applied"] == [("next-2", "step1"), ("next-2", "step2")]  # once each
    assert report["undo_calls"] == [
        ("next-2", "step3", 0),  # logged before step 3, which failed first: nothing to undo
        ("next-2", "step2", 1),
        ("next-2", "step2", 0),  # [killed] run again on relaunch: changes nothing
        ("next-2", "step1", 1),
    ]
    assert [e for e in report["effects"] if e[0] == "next-1"] == [
        ("next-1", "step1", 0), ("next-1", "step2", 0), ("next-1", "step3", 0),
    ]  # fmt: skip
    assert "undone, 2 undo calls" in compare_worlds({"DBOS": crash.world})
    system = tmp_path / "dbos.sqlite"  # (attack19's S1: a saga never begun was a traceback)
    more = subprocess.run([sys.executable, "-m", "rollback_lessons.worlds.crashlab", "--dbos",
                           str(system), "--world", str(crash.world), "--prefix", "next",
                           "--sagas", "3", "--resume"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (more.returncode, more.stdout) == (2, ""), more.stderr[-2000:]
    assert more.stderr == (f"crashlab: DBOS has no saga 'next-3' in {system}: it never began "
                           "there (a process killed before it, or another --prefix or "
                           "--sagas); resumed before it: committed rolled_back\n")  # fmt: skip
    assert world_report(crash.world) == report


# -- parallel groups and cancellation: the graph machine, driven in a DBOS workflow ----------


def travel_faults():
    """Every single fault of lesson 12's booking: each action fault of each step, each undo
    fault with the charge (the last step) failing, and none."""
    saga = travel.booking()
    cases = [{}]
    for step, fault in fault_space((s.name, s.undo is not None) for s in saga.steps):
        cases.append({step: fault, "charge": "fail"} if fault in UNDO_FAULTS else {step: fault})
    return cases


@pytest.mark.parametrize("order", ["reverse", "reverse_start", "by_dependency"])
def test_every_single_fault_of_the_travel_graph_ends_as_in_process_on_dbos(dbos_runner, order):
    """Lesson 12's booking (the car, the room and the flight at once, then the charge), one
    step at a time and in the lesson's timing: status, undos in order, dead letters, pending,
    every event and the world, as ``saga.run``."""
    seen = set()
    for inject in travel_faults():
        for timing in ({}, {"completion": travel.TIMING}):
            options = {"inject": inject, "undo_order": order, **timing}
            local = travel.booking().run(travel.state(), clock=VirtualClock(), **options)
            remote = dbos_runner.run(travel.booking(), travel.state(), **options)
            same_outcome(local, remote)
            seen.add(remote.status)
    assert {Status.COMMITTED, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE} <= seen


@pytest.mark.parametrize("completion", [None, ("flight", "gps", "room")])
@pytest.mark.parametrize("inject", [{"car": "fail"}, {"flight": "fail_after_effect"},
                                    {"charge": "fail", "room": "undo_fails"}])  # fmt: skip
def test_a_failing_branch_leaves_the_others_to_finish_then_all_is_undone(
    dbos_runner, inject, completion
):
    options = {"inject": inject} if completion is None else {"inject": inject,
                                                             "completion": completion}  # fmt: skip
    local = trip().run({}, clock=VirtualClock(), **options)
    same_outcome(local, dbos_runner.run(trip(), {}, **options))


def test_undo_policies_a_person_a_policy_of_ones_own_and_retried_steps_on_a_graph(dbos_runner):
    retry = Retry(RetryPolicy(max_attempts=2, initial_delay=0.01))
    cases = (({"charge": "fail", "car": "undo_fails_once"}, retry),
             ({"charge": "fail", "car": "undo_fails"}, "halt"),
             ({"charge": "fail", "gps": "undo_fails"}, HaltOnAnythingButTimeouts()))  # fmt: skip
    for inject, policy in cases:
        local = trip().run({}, inject=inject, policy=policy, clock=VirtualClock())
        same_outcome(local, dbos_runner.run(trip(), {}, inject=inject, policy=policy))
    flaky = {"n": 0}

    def room(state):  # fails once, then books: retried by its own policy
        flaky["n"] += 1
        if flaky["n"] % 2:
            raise ConnectionError("the hotel did not answer")
        state["room"] = "done"

    def saga():
        quick = RetryPolicy(max_attempts=2, initial_delay=0.01)
        return Saga([Parallel(_step("car"), Step("room", room, partial(_undo, "room"),
                                                 retry=quick)), _step("charge")])  # fmt: skip

    local = saga().run({}, clock=VirtualClock())
    remote = dbos_runner.run(saga(), {})
    same_outcome(local, remote)
    assert remote.status is Status.COMMITTED and "step_retry" in [e.kind for e in remote.events]


def test_the_pivot_after_a_group_is_never_compensated_across(dbos_runner):
    def saga():
        email = Step("email", partial(_act, "email"), kind=Kind.PIVOT)
        return Saga([*trip().definition, email], name="trip")

    for inject in ({"email": "fail_after_effect"}, {"email": "fail"}):
        local = saga().run({}, inject=inject, clock=VirtualClock())
        same_outcome(local, dbos_runner.run(saga(), {}, inject=inject))


@pytest.mark.parametrize("completion", [None, ("flight", "room", "car")])
def test_a_cancel_mid_run_compensates_everything_done_and_says_cancelled(dbos_runner, completion):
    """The cancel comes when the car's booking returns: nothing more starts, the rest of the
    group finishes, everything done is undone, as ``saga.run(..., cancel=...)`` does."""
    options = {} if completion is None else {"completion": completion}
    local_cancel, cancel = threading.Event(), threading.Event()
    local = trip(cancel_at=("car", local_cancel)).run({}, cancel=local_cancel,
                                                      clock=VirtualClock(), **options)  # fmt: skip
    state = {}
    remote = dbos_runner.run(trip(cancel_at=("car", cancel)), state, cancel=cancel, **options)
    same_outcome(local, remote)
    assert remote.status is Status.CANCELLED and "car" in remote.compensated
    assert set(state.values()) == {"undone"} and "charge" not in state


def _stop_when(handle, ready: threading.Event, release: threading.Event, wait: float) -> None:
    """``handle.stop()`` once ``ready`` (a step is where the stop must land), then
    ``release`` let go whatever happens (the step waits on it)."""
    try:
        assert ready.wait(wait)
        handle.stop()
    finally:
        release.set()


def _read_within(handle, seconds: float, why: str):
    """``handle.outcome()``, read in a thread: a hang fails the test (``why``), never it."""
    box: list = []
    reader = threading.Thread(target=lambda: box.append(handle.outcome()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert box, why
    return box[0]


def test_a_cancelled_list_saga_and_a_cancel_function_that_raises_end_as_in_process(dbos_runner):
    def saga(event):
        return Saga([_step("x"), Step("y", lambda s: (_act("y", s), event.set()),
                                      partial(_undo, "y")), _step("z")])  # fmt: skip

    local_cancel, cancel = threading.Event(), threading.Event()
    local = saga(local_cancel).run({}, cancel=local_cancel, clock=VirtualClock())
    same_outcome(local, dbos_runner.run(saga(cancel), {}, cancel=cancel))
    assert local.status is Status.CANCELLED

    def down(state={}):  # noqa: B006 (the cancel's source goes down once y is done)
        if state.get("y"):
            raise ConnectionError("the cancel service is down")
        return False

    here, there = {}, {}
    local = saga(threading.Event()).run(here, cancel=lambda: down(here), clock=VirtualClock())
    remote = dbos_runner.run(saga(threading.Event()), there, cancel=lambda: down(there))
    same_outcome(local, remote)
    assert remote.status is Status.ROLLED_BACK and "ConnectionError" in repr(remote.error)


def test_dbos_cancel_workflow_stops_the_saga_and_undoes_nothing(dbos_runner):
    """DBOS's own ``cancel_workflow`` (``handle.stop()``) while the charge runs: the
    workflow stops (DBOS never saves the charge's result, yet it returned here: done, the
    receipt never begun, attack46 F6) and nothing is undone: the outcome says ``halted``,
    every undo pending, and names it (Step Functions' StopExecution does the same). The
    runner's own cancel, heard as the charge returns, undoes everything, the charge too."""
    charging, stopped, released = threading.Event(), threading.Event(), []

    def charge(state):
        charging.set()  # until the workflow was cancelled (a stall under load: not 10 s)
        released.append(stopped.wait(120))
        state["charge"] = "done"

    def saga():
        return Saga(
            [
                _step("a"),
                Parallel(_step("room"), _step("car")),
                Step("charge", charge, partial(_undo, "charge")),
                _step("receipt"),
            ]
        )

    state = {}
    handle = dbos_runner.start_saga(saga(), state)
    _stop_when(handle, charging, stopped, 10)
    outcome = handle.outcome()
    assert released == [True]  # the stop, not the wait's bound, let the charge return
    assert outcome.status is Status.HALTED and outcome.compensated == ()
    assert outcome.pending == ("charge", "car", "room", "a") and outcome.leaked == ()
    assert "DBOS.cancel_workflow" in outcome.notes[0] and outcome.failed_step is None
    assert state == dict.fromkeys(["a", "room", "car", "charge"], "done")
    cancel, state = threading.Event(), {}
    stopped.set()
    charging = cancel  # the runner's own cancel, set as the charge runs: heard as it returns
    outcome = dbos_runner.run(saga(), state, cancel=cancel)
    assert outcome.status is Status.CANCELLED and outcome.compensated[0] == "charge"
    assert state == dict.fromkeys(["a", "room", "car", "charge"], "undone")


@pytest.mark.parametrize("parallel", [True, False], ids=["graph", "list"])
def test_dbos_cancel_after_the_saga_ended_says_what_it_did(dbos_runner, monkeypatch, parallel):
    """``handle.stop()`` landing after the workflow returned its record and before DBOS
    saved it (held there): DBOS refuses the save (the row is CANCELLED) and keeps no
    result; the outcome is the saga's own (committed), and says the cancel stopped
    nothing, never DBOS's raw error (diag15: the load flake of the test above)."""
    import dbos._dbos

    sys_db = dbos._dbos._dbos_global_instance._sys_db
    save, ending, cancelled = sys_db.update_workflow_outcome, threading.Event(), threading.Event()
    run_id = f"late-cancel-{parallel}"

    def held(workflow_id, *args, **kwargs):
        if workflow_id == run_id:
            ending.set()
            cancelled.wait(10)
        return save(workflow_id, *args, **kwargs)

    monkeypatch.setattr(sys_db, "update_workflow_outcome", held)
    steps = [_step("a"), Parallel(_step("b"), _step("c"))] if parallel else [_step("a")]
    state = {}
    handle = dbos_runner.start_saga(Saga(steps), state, run_id=run_id)
    _stop_when(handle, ending, cancelled, 10)
    outcome = handle.outcome()
    assert DBOS.get_workflow_status(run_id).status == "CANCELLED"
    assert outcome.status is Status.COMMITTED and outcome.leaked == outcome.pending == ()
    assert outcome.notes[-1] == "DBOS.cancel_workflow came after the saga ended: it stopped nothing"
    assert set(state.values()) == {"done"}


class _Said(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def _stopped_as_it_charges(dbos_runner, kind=Kind.COMPENSABLE, heard=None, linger=0.0, **options):
    """a, charge (running until ``handle.stop()`` landed, then ``linger`` seconds more; of
    ``kind``), receipt: DBOS's stop as the charge runs (``heard``: a list its ``on_event``
    fills); the handle, the world, and whether the stop released the charge."""
    charging, stopped, released = threading.Event(), threading.Event(), []

    def charge(state):
        charging.set()  # (a stall under load: not a bound of 10 s)
        released.append(stopped.wait(120))
        time.sleep(linger)
        state["charge"] = "done"

    undo = partial(_undo, "charge") if kind is Kind.COMPENSABLE else None
    steps = [_step("a"), Step("charge", charge, undo, kind=kind), _step("receipt")]
    saga = Saga(
        steps, allow_unsafe_order=True, on_event=heard.append if heard is not None else None
    )
    state = {}
    handle = dbos_runner.start_saga(saga, state, **options)
    _stop_when(handle, charging, stopped, 10)
    return handle, state, released


@pytest.mark.parametrize("kind", [Kind.COMPENSABLE, Kind.PIVOT])
def test_dbos_cancel_workflow_stops_a_list_saga_as_it_stops_a_graph(dbos_runner, kind):
    """``handle.stop()`` on a list saga (``saga_workflow``) as the charge runs: halted, the
    charge done (it returned here, though DBOS never saved its result: attack46 F6), the
    receipt never begun, nothing undone, every undo pending, the stop named; the same
    outcome as the graph form's (a timing drives the graph machine), never DBOS's raw
    DBOSAwaitedWorkflowCancelledError (diag15); once read, nothing of them is kept;
    on_event hears its events (it heard none); stderr has no traceback of DBOS's (it had
    one for each stop). The charge a pivot: halted for a person past it, and no note says
    the run went on (a caller's cancel past the pivot does; this stop ends it): one says the
    stop undid nothing, naming it."""
    outcomes, said = [], _Said()
    logging.getLogger("dbos").addHandler(said)  # (what DBOS says on stderr)
    for options in ({}, {"completion": ["a", "charge", "receipt"]}):
        heard = []  # (what on_event hears: every event, once the outcome is read)
        handle, state, released = _stopped_as_it_charges(dbos_runner, kind, heard, **options)
        outcomes.append(handle.outcome())
        assert heard == list(outcomes[-1].events) and len(heard) > 5
        assert released == [True]  # the stop, not the wait's bound, let the charge return
        assert state == dict.fromkeys(["a", "charge"], "done")
    logging.getLogger("dbos").removeHandler(said)
    assert said.records == []  # (DBOS's traceback and warning for each stop asked: none)
    listed, graphed = outcomes
    same_outcome(graphed, listed, events=False)
    assert [(e.kind, e.step) for e in listed.events] == [(e.kind, e.step) for e in graphed.events]
    assert listed.notes == graphed.notes
    assert listed.status is Status.HALTED and listed.compensated == ()
    undos = ("a",) if kind is Kind.PIVOT else ("charge", "a")
    assert listed.pending == undos and listed.leaked == ()
    assert listed.completed == ("a", "charge") and listed.failed_step is None
    if kind is Kind.PIVOT:  # (a note names the stop, that it undid nothing: attack152 F1)
        assert listed.notes == (stopped_past("DBOS.cancel_workflow stopped the workflow"),)
        assert "irreversible step 'charge'" in listed.events[-1].details["reason"]
    else:
        assert len(listed.notes) == 1 and "DBOS.cancel_workflow" in listed.notes[0]
    from rollback_lessons.runners.dbos import stops

    assert stops.STOPPED == stops.ENDED == {}  # read: kept no longer


@pytest.mark.parametrize(
    "options",
    [{}, {"completion": ["charge", "receipt"]}, {"at_once": True}],
    ids=["list", "graph", "at_once"],
)
def test_dbos_stop_in_the_first_step_says_no_undo_was_logged(dbos_runner, options):
    """attack27 F1: a stop as the saga's FIRST step runs (its undo logged after it) said
    "rollback interrupted ... before any undo ran ...; every undo had run": none had been
    logged, none ran. Cut short (``at_once``: the branch still runs as the saga stops), the
    step is leaked (it may happen), and the machine's note says no undo had been logged;
    its action returned here (one step at a time: attack46 F6), it is done, its undo
    pending. Nothing undone, never "every undo had run"."""
    charging, stopped = threading.Event(), threading.Event()
    at_once = options.get("at_once", False)

    def charge(state):
        charging.set()
        stopped.wait(120)
        state["charge"] = "done"

    saga = Saga([Step("charge", charge, partial(_undo, "charge")), _step("receipt")])
    state: dict = {}
    handle = dbos_runner.start_saga(saga, state, **options)
    assert charging.wait(10)
    try:
        handle.stop()
        if at_once:  # (read while the charge still runs)
            outcome = _read_within(handle, 90, "outcome() did not return")
    finally:
        stopped.set()
    if not at_once:
        outcome = handle.outcome()
        assert state == {"charge": "done"}
    assert outcome.compensated == () and "receipt" not in state
    assert not any("every undo had run" in n for n in outcome.notes), outcome.notes
    if at_once:
        assert outcome.leaked == ("charge",) and outcome.pending == ()
        assert any("no undo had been logged" in n for n in outcome.notes), outcome.notes
    else:
        assert outcome.leaked == () and outcome.pending == ("charge",)
        assert outcome.completed == ("charge",) and outcome.status is Status.HALTED


@pytest.mark.parametrize("options", [{}, {"undo_order": "reverse_start"}], ids=["list", "graph"])
def test_dbos_stop_in_a_clean_failures_wait_to_retry_leaks_nothing(dbos_runner, options):
    """attack27 F5: b raised before any effect and waits to retry; ``handle.stop()`` there
    (heard as its next attempt begins, its action never called) said b leaked ("may have
    happened"). It failed for good, cleanly: nothing leaked, a pending, nothing undone, b
    tried once, list and graph alike. The stop is heard at once (harden41's leftover: the
    wait to retry was not woken; ``outcome()`` waited out the whole backoff, here 10 min)."""
    world: list[str] = []

    def b(state):
        world.append("try b")
        raise ConnectionError("b down")

    retry = RetryPolicy(max_attempts=3, initial_delay=600, max_delay=600,
                        retry_on=(ConnectionError,))  # fmt: skip
    saga = Saga([_step("a"), Step("b", b, partial(_undo, "b"), retry=retry), _step("c")])
    state: dict = {}
    handle = dbos_runner.start_saga(saga, state, **options)
    slept, look = False, threading.Event()
    for _ in range(1200):  # (until the wait to retry is saved: at most 60 s)
        steps = DBOS.list_workflow_steps(handle.run_id)
        if slept := any(s["function_name"] == "DBOS.sleep" for s in steps):
            break
        look.wait(0.05)
    assert slept
    handle.stop()
    outcome = _read_within(handle, 60, "outcome() did not return")
    assert world == ["try b"] and state == {"a": "done"}
    assert outcome.leaked == () and outcome.compensated == ()
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)
    assert outcome.failed_step == "b"


@pytest.mark.parametrize("held", ["a", "b"])
@pytest.mark.parametrize("options", [{}, {"completion": ["a", "b", "c"]}], ids=["list", "graph"])
def test_dbos_stop_as_a_step_begins_says_it_was_not_run(dbos_runner, monkeypatch, options, held):
    """A stop landing as a step begins (before its intent is saved: DBOS raises at ``began``,
    the action never called) said the step was cut short, perhaps after its effect: leaked
    (harden38). It was not run, and the outcome says so: nothing leaked; the steps before it
    pending (halted), or, stopped in the first, ``cancelled`` with nothing done."""
    from rollback_lessons.runners.dbos import workflow

    beginning, stopped = threading.Event(), threading.Event()

    def hold(step):
        if step == held:
            beginning.set()
            stopped.wait(120)

    monkeypatch.setattr(workflow, "STARTING", [hold])
    saga = Saga([_step("a"), _step("b"), _step("c")])
    state: dict = {}
    handle = dbos_runner.start_saga(saga, state, **options)
    _stop_when(handle, beginning, stopped, 30)
    outcome = _read_within(handle, 60, "outcome() did not return")
    before = {"a": ()}.get(held, ("a",))
    assert state == dict.fromkeys(before, "done") and outcome.leaked == ()
    assert outcome.pending == before and outcome.compensated == ()
    assert outcome.status is (Status.HALTED if before else Status.CANCELLED)
    assert f"{held} was not run: DBOS.cancel_workflow came as it began" in " ".join(outcome.notes)


@pytest.mark.parametrize("held", ["a", "b"])
def test_dbos_stop_of_an_at_once_run_returns_whatever_step_it_lands_in(dbos_runner, held):
    """attack27 F3: ``at_once`` and a stop while the first step (or a branch) ran: the run's
    wait for its branches' messages never returned (a cancelled branch never says it ended),
    and ``outcome()`` hung. The run's wait is woken (``stops.NUDGE``): halted or incomplete,
    nothing undone by the stop, in seconds; the held step leaked (still running as the saga
    stopped) or done, its undo pending (it returned first: attack46 F6)."""
    running, go = threading.Event(), threading.Event()

    def act(name):
        def action(state):
            if name == held:
                running.set()
                go.wait(120)
            state[name] = "done"

        return action

    steps = {n: Step(n, act(n), partial(_undo, n)) for n in "abcd"}
    saga = Saga([steps["a"], Parallel(steps["b"], steps["c"]), steps["d"]])
    state: dict = {}
    handle = dbos_runner.start_saga(saga, state, at_once=True)
    _stop_when(handle, running, go, 30)
    outcome = _read_within(handle, 90, "outcome() did not return")
    done = held in outcome.completed and held in outcome.pending
    assert (held in outcome.leaked or done) and outcome.compensated == ()
    assert outcome.status in (Status.HALTED, Status.ROLLBACK_INCOMPLETE)


@pytest.mark.parametrize("at_once", [False, True])
def test_dbos_stop_while_a_person_is_asked_ends_the_wait(dbos_runner, at_once):
    """attack27 F4: a stop while the saga asked a person (policy halt) was heard only when
    ``halt_wait`` ran out (an hour here): the wait for the answer is woken too; halted, the
    undo asked about still pending, nothing undone after the stop."""
    steps = [_step("a"), _step("b"), Step("c", lambda s: 1 / 0)]
    saga = Saga(steps if not at_once else [steps[0], Parallel(steps[1]), steps[2]])
    options = {"at_once": True} if at_once else {}
    handle = dbos_runner.start_saga(saga, {}, policy="halt", halt_wait=3600,
                                    inject={"b": "undo_fails"}, **options)  # fmt: skip
    waited = threading.Event()
    for _ in range(1200):  # (until it asks: at most 60 s)
        if handle.pending() is not None:
            break
        waited.wait(0.05)
    assert handle.pending() is not None
    handle.stop()
    outcome = _read_within(handle, 120, "outcome() waited for the person after the stop")
    assert outcome.status is Status.HALTED and "b" in outcome.pending
    assert outcome.compensated == ()


@pytest.mark.parametrize(
    "said",
    [
        "Workflow {} outcome was not recorded: the workflow is no longer owned by this "
        "execution. Waiting for the recorded outcome",
        "Workflow {} is no longer owned by this execution. Waiting for the owner's recorded "
        "outcome",
        "Workflow {} was cancelled during execution. Waiting for the recorded outcome",
    ],
)
def test_dbos_says_nothing_of_a_stop_asked_here_and_all_else(monkeypatch, said):
    """DBOS's three warnings as it waits for a cancelled run's outcome (dbos/_core.py), and
    its error with a traceback, are dropped for a run ``stop()`` stopped here (and its
    branches' child workflows ``<run id>-<n>``), kept for any other run (a stop landing as
    the workflow starts said the third one on stderr)."""
    from dbos._error import DBOSAwaitedWorkflowCancelledError

    from rollback_lessons.runners.dbos import launch, stops

    monkeypatch.setattr(stops, "ASKED", {"stopped-1"})

    def record(run_id, exc=None):
        message = said.format(run_id) if exc is None else "Exception encountered"
        return logging.LogRecord("dbos", logging.WARNING, "", 0, message, (),
                                 (type(exc), exc, None) if exc else None)  # fmt: skip

    for run_id, dropped in [
        ("stopped-1", True),
        ("stopped-1:3", True),
        ("stopped-1-3", False),
        ("other", False),
    ]:
        assert launch.STOPPED.filter(record(run_id)) is not dropped
        raised = DBOSAwaitedWorkflowCancelledError(run_id)
        assert launch.STOPPED.filter(record(run_id, raised)) is not dropped


def test_a_stopped_runs_record_is_its_outcomes_and_is_kept_until_read(dbos_runner):
    """``record(run_id)`` of a run ``handle.stop()`` stopped gives the record ``outcome()``
    gives, not DBOS's raw error (diag15); once the outcome is read, nothing of the run is
    kept here (DBOS keeps no result either: a record asked then is one line). A run no
    handle here reads (one a relaunch resumed, say) is kept no longer once ``record()``
    read it: such runs do not grow the process. Read at once after the stop, while the
    charge still runs (DBOS says CANCELLED from the stop on; the workflow here has not yet
    reached it): waited for, not ``StoppedUnrecorded`` (it was, under a CI's load)."""
    handle, _, _ = _stopped_as_it_charges(dbos_runner, linger=0.5, run_id="stopped-record")
    record = dbos_runner.record("stopped-record")
    assert record.status is Status.HALTED and record.pending == ("charge", "a")
    outcome = handle.outcome()  # (read through record() first: its handle still reads it)
    assert (outcome.status, outcome.pending, outcome.notes) == (
        record.status, record.pending, record.notes)  # fmt: skip
    from rollback_lessons.runners.dbos import stops

    assert "stopped-record" not in {**stops.STOPPED, **stops.ENDED}  # (others' may be)
    with pytest.raises(stops.StoppedUnrecorded, match=r"nor does this process .* its outcome"):
        dbos_runner.record("stopped-record")
    dbos_runner.start_saga(Saga([_step("a")]), {}, run_id="unread", wait=True)
    assert "unread" not in stops.ENDED  # (its result saved: no stop can land late now)
    stops.ENDED["unread"] = {"kept": "as for a run resumed here: no handle of it"}
    assert dbos_runner.record("unread").status is Status.COMMITTED
    assert "unread" not in stops.ENDED


def test_the_record_of_a_run_ending_here_is_waited_for_not_refused(dbos_runner, monkeypatch):
    """Between a run's workflow ending here (what is kept of it by run id gone) and DBOS
    saving its result, DBOS still says PENDING: ``record`` read then waits for the result;
    it said the run waits for steps this process does not know (NotHosted, under a CI's
    load: test_dbos_loop_ctrl_c)."""
    from rollback_lessons.runners.dbos import lifetime

    real, over = lifetime.over, threading.Event()

    def slow_over(run_id: str) -> None:
        real(run_id)
        over.set()
        time.sleep(1.0)  # (DBOS saves the result once the workflow returns: later)

    monkeypatch.setattr(lifetime, "over", slow_over)
    dbos_runner.start_saga(Saga([_step("a")]), {}, run_id="ending")
    assert over.wait(60)
    assert dbos_runner.record("ending").status is Status.COMMITTED


def test_a_graph_saga_killed_mid_compensation_and_launched_again_undoes_each_step_once(tmp_path):
    """step1, then step2 and step3 (one after the other), step4 failing; the process is
    killed (SIGKILL) after the undo of step3 (the last to finish, undone first), before DBOS
    checkpointed it. DBOS, launched again on the same file, runs that undo again (it changes
    nothing), then the undos of step2 and step1."""
    crash = crash_on_dbos(tmp_path, sagas=2, fail_every=2, pause_at="after undo step3",
                          prefix="graph", graph=True)  # fmt: skip
    assert crash.killed == "after undo step3"
    assert crash.statuses == ("committed", "rolled_back")
    report = world_report(crash.world)
    assert report["undo_applied"] == [("graph-2", s) for s in ("step1", "step2", "step3")]
    assert report["undo_calls"] == [
        ("graph-2", "step3", 1),
        ("graph-2", "step3", 0),  # [killed] run again on relaunch: changes nothing
        ("graph-2", "step2", 1),
        ("graph-2", "step1", 1),
    ]
    assert [e for e in report["effects"] if e[0] == "graph-1"] == [
        ("graph-1", f"step{i}", 0) for i in range(1, 5)
    ]


def _timed_trip(log, slow="car", waits_for=()):
    """``trip`` whose steps log their start and end; ``slow`` takes 0.3 s and ends only once
    the steps ``waits_for`` have started (at most 30 s more: on a loaded machine a child
    workflow can take longer to start than any fixed sleep)."""
    import time

    def step(name):
        def act(state):
            log.append(f"start {name}")
            if name == slow:
                time.sleep(0.3)  # (time for a failing sibling to be heard before it ends)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not all(
                    f"start {other}" in log for other in waits_for
                ):
                    time.sleep(0.01)
            state[name] = "done"
            log.append(f"end {name}")

        return Step(name, act, partial(_undo, name))

    return Saga([step("a"), Parallel(step("room"), [step("car"), step("gps")], step("flight")),
                 step("charge")], name="trip")  # fmt: skip


@pytest.mark.parametrize("inject", [{"charge": "fail"}, {"room": "fail"},
                                    {"charge": "fail", "flight": "undo_fails"}])  # fmt: skip
def test_at_once_the_branches_run_at_the_same_time_and_end_as_that_timing_in_process(
    dbos_runner, inject
):
    """``at_once``: each attempt a child workflow, the machine told as each ends. The room
    and the flight start while the slow car is booked; the Outcome is ``saga.run``'s for the
    order the steps finished in (a failing branch leaves the car to finish, then undoes)."""
    log, state = [], {}
    started = (
        ("flight",) if "room" in inject else ("room", "flight")
    )  # (an injected fail never starts)
    remote = dbos_runner.run(
        _timed_trip(log, waits_for=started), state, inject=inject, at_once=True
    )
    assert log.index("start flight") < log.index("end car")  # (an injected fail never starts)
    assert "room" in inject or log.index("start room") < log.index("end car")
    finished = [e.step for e in remote.events if e.kind in ("step_done", "step_failed")]
    local = _timed_trip([]).run({}, inject=inject, completion=finished, clock=VirtualClock())
    same_outcome(local, remote)
    if "room" in inject:  # the car and the flight, already running, finished; gps never ran
        assert "gps" not in state and state["car"] == state["flight"] == "undone"


def test_at_once_a_retried_step_waits_in_its_own_branch_and_a_cancel_compensates(dbos_runner):
    flaky = {"n": 0}

    def room(state):  # fails once, then books: retried by its own policy
        flaky["n"] += 1
        if flaky["n"] == 1:
            raise ConnectionError("the hotel did not answer")
        state["room"] = "done"

    quick = RetryPolicy(max_attempts=2, initial_delay=0.05)
    saga = Saga([Parallel(_step("car"), Step("room", room, partial(_undo, "room"), retry=quick)),
                 _step("charge")])  # fmt: skip
    outcome = dbos_runner.run(saga, {}, at_once=True)
    assert outcome.status is Status.COMMITTED and outcome.completed[-1] == "charge"
    assert [e.kind for e in outcome.events].count("step_retry") == 1
    cancel, state = threading.Event(), {}
    outcome = dbos_runner.run(trip(cancel_at=("car", cancel)), state, cancel=cancel,
                              at_once=True)  # fmt: skip
    assert outcome.status is Status.CANCELLED and "car" in outcome.compensated
    assert set(state.values()) == {"undone"} and "charge" not in state and "gps" not in state
    with pytest.raises(InvalidPipelineError, match="at_once"):
        dbos_runner.run(trip(), {}, at_once=True, completion=["a"])


def test_run_at_once_killed_mid_compensation_and_launched_again_undoes_each_step_once(tmp_path):
    """The same saga with step2 and step3 run at once (a child workflow each), killed after
    the undo of step1 (the last); the relaunched workflow hears its children's messages
    again, in the order they came, and finishes: the undo of step1 runs again (it changes
    nothing), nothing else is repeated."""
    crash = crash_on_dbos(tmp_path, sagas=2, fail_every=2, pause_at="after undo step1",
                          prefix="once", graph=True, at_once=True)  # fmt: skip
    assert crash.killed == "after undo step1"
    assert crash.statuses == ("committed", "rolled_back")
    report = world_report(crash.world)
    assert report["undo_applied"] == [("once-2", s) for s in ("step1", "step2", "step3")]
    calls = report["undo_calls"]
    assert sorted(calls[:2]) == [("once-2", "step2", 1), ("once-2", "step3", 1)]
    assert calls[2:] == [("once-2", "step1", 1), ("once-2", "step1", 0)]
    assert [e for e in report["effects"] if e[0] == "once-1"] == [
        ("once-1", f"step{i}", 0) for i in range(1, 5)
    ]


def test_a_halted_graph_saga_waits_for_a_persons_answer(dbos_runner):
    handle = dbos_runner.start_saga(trip(), {}, inject={"charge": "fail", "car": "undo_fails_once"},
                                    policy="halt", halt_wait=30)  # fmt: skip
    waited = threading.Event()
    for _ in range(600):
        if (asked := handle.pending()) is not None and asked.undos == ("car", "room", "a"):
            waited.set()
            break
        waited.wait(0.05)
    assert waited.is_set()
    handle.resolve(asked, "retry")
    outcome = handle.outcome()
    assert outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == ("flight", "gps", "car", "room", "a")


# -- what saga.run refuses, and a step in doubt after a crash (issue 27, groupcheck) --------


async def _later(state):
    state["car"] = "booked"


def _a_generator(state):
    return (state.pop("room", None) for _ in range(1))


def awaiting_saga():
    """The car's action returns a coroutine (its body never runs unawaited); the room's
    undo returns a generator."""
    return Saga([Step("room", lambda s: s.update(room="booked"), _a_generator),
                 Step("car", lambda s: _later(s), lambda s: s.pop("car", None))])  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_awaitable_or_a_generator_returned_fails_as_in_process_never_done(dbos_runner):
    here, state = awaiting_saga().run({}), {}
    remote = dbos_runner.run(awaiting_saga(), state)
    same_outcome(here, remote)
    assert remote.status is Status.ROLLBACK_INCOMPLETE and remote.failed_step == "car"
    assert "its body never ran" in str(remote.dead_letters[0])
    assert state == {"room": "booked"}  # the truth: no car, the room never undone


def test_a_step_whose_end_dbos_never_saved_is_in_doubt_never_run_again(tmp_path):
    """Killed after step1's effect, before DBOS saved its end: the relaunch runs it not
    again; its undo (logged after it) never ran, so it leaked: never rolled_back over it."""
    crash = crash_on_dbos(tmp_path, pause_at="after step1", prefix="doubt", graph=True)
    assert crash.killed == "after step1"
    assert crash.statuses == ("rollback_incomplete",)
    assert world_report(crash.world)["effects"] == [("doubt-1", "step1", 0)]


def test_a_step_in_doubt_whose_undo_was_logged_before_is_undone(tmp_path):
    crash = crash_on_dbos(tmp_path, pause_at="after step2", prefix="doubt")
    assert crash.statuses == ("rolled_back",)
    report = world_report(crash.world)
    assert report["effects"] == [("doubt-1", "step1", 1), ("doubt-1", "step2", 1)]
    assert report["undo_applied"] == [("doubt-1", "step1"), ("doubt-1", "step2")]
    # the same again, same prefix, same folder: its run id is taken, so it never pauses: one
    # line saying so (was: killed "" and the first run's statuses, as if it had resumed)
    with pytest.raises(NotPaused) as raised:
        crash_on_dbos(tmp_path, pause_at="after step2", prefix="doubt")
    assert str(raised.value).startswith("its first process never paused at 'after step2': ")
    assert "run id 'doubt-1' is taken" in str(raised.value) and "\n" not in str(raised.value)
    assert world_report(crash.world) == report  # nothing ran again


def test_at_once_the_undo_order_is_the_order_the_actions_ended_not_their_messages(
    dbos_runner, monkeypatch
):
    """room ends first, but its message is slow to go out (a busy system database): the
    car's, sent later, must not be heard first. Reverse completion undoes the car first."""
    import time

    from dbos import DBOS

    send = DBOS.send

    def slow_for_room(to, message, topic=None, **options):
        if isinstance(message, dict) and message.get("step") == "room":
            time.sleep(0.6)
        return send(to, message, topic, **options)

    monkeypatch.setattr(DBOS, "send", staticmethod(slow_for_room))

    def car(state):
        time.sleep(0.2)
        state["car"] = "done"

    saga = Saga([Parallel(_step("room"), Step("car", car, partial(_undo, "car"))),
                 _step("charge")])  # fmt: skip
    remote = dbos_runner.run(saga, {}, inject={"charge": "fail"}, at_once=True)
    assert remote.completed == ("room", "car") and remote.compensated == ("car", "room")


def test_a_list_sagas_cancel_is_asked_exactly_where_saga_run_asks_it(dbos_runner):
    def token(answer_true_at):
        asked = []

        def cancel():
            asked.append(1)
            return len(asked) >= answer_true_at

        return cancel, asked

    retried = RetryPolicy(max_attempts=2, initial_delay=0.01)
    for at in range(1, 7):
        for inject in ({}, {"step2": "fail"}):
            saga = lambda: Saga([*xyz_saga().steps[:1], Step(  # noqa: E731
                "step2", lambda s: s.update(b=1), lambda s: s.pop("b", None), retry=retried,
            ), *xyz_saga().steps[2:]])  # fmt: skip
            here_cancel, here_asked = token(at)
            remote_cancel, remote_asked = token(at)
            here = saga().run(xyz_state(), inject=inject, cancel=here_cancel, clock=VirtualClock())
            remote = dbos_runner.run(saga(), xyz_state(), inject=inject, cancel=remote_cancel)
            same_outcome(here, remote, events=False)
            assert len(remote_asked) == len(here_asked), (at, inject)


def test_at_once_a_branch_waiting_to_retry_is_cancelled_with_its_saga(dbos_runner):
    from dbos import DBOS

    slow = RetryPolicy(max_attempts=3, initial_delay=60)
    saga = Saga(
        [
            Parallel(
                Step("room", lambda s: 1 / 0, None, retry=slow),
                Step("car", lambda s: __import__("time").sleep(0.3) or 1 / 0),
            )
        ]
    )
    outcome = dbos_runner.run(saga, {}, at_once=True, run_id="waiting-child")
    assert outcome.status is Status.ROLLED_BACK
    for _ in range(50):  # (an attempt's child sends its end, then DBOS saves it SUCCESS: a
        children = DBOS.list_workflows(parent_workflow_id="waiting-child")  # moment, under
        if {c.status for c in children} <= {"SUCCESS", "CANCELLED"}:  # load; the wait of
            break  # 60 s, were it left, stays PENDING)
        __import__("time").sleep(0.1)
    assert children and {c.status for c in children} <= {"SUCCESS", "CANCELLED"}


def test_an_answer_is_taken_only_for_the_question_it_names(dbos_runner):
    """attack11's B4: answers were queued messages on one topic, so a double click, or an
    answer sent before the halt, answered the next question (a's undo settled "by hand",
    ``rolled_back``, a's effect in place). Each question has a topic of its own now; the
    caller is refused an answer to a question not asked now (before the halt, after the
    end); a message for another question, or on the old topic, answers nothing."""
    from dbos import DBOS

    from rollback_lessons.runners.dbos import AnswerRefused, Question

    gate = threading.Event()
    world: list[str] = []

    def act(name):
        return lambda state: (gate.wait(30) if name == "a" else None, world.append(f"do {name}"))

    steps = [Step(n, act(n), lambda s, n=n: world.append(f"undo {n}")) for n in "ab"]
    saga = Saga([*steps, Step("c", lambda s: 1 / 0)], name="asked")
    handle = dbos_runner.start_saga(saga, {}, policy="halt", halt_wait=30,
                                    inject={"a": "undo_fails", "b": "undo_fails"})  # fmt: skip
    try:
        with pytest.raises(AnswerRefused, match="asks nothing now"):  # before the halt
            handle.resolve(Question(1, ("b", "a")), "fixed")
        DBOS.send(handle.run_id, "fixed", "answer")  # the old topic: answers nothing
    finally:
        gate.set()

    def until_asked(number):
        waited = threading.Event()
        while (asked := handle.pending()) is None or asked.number != number:
            waited.wait(0.05)
        return asked

    first = until_asked(1)
    handle.resolve(first, "fixed")  # b fixed by hand
    with pytest.raises(AnswerRefused):  # the double click: question 1 took the first
        handle.resolve(first, "fixed")
    second = until_asked(2)
    with pytest.raises(AnswerRefused, match="asks question 2, about a"):
        handle.resolve(first, "fixed")
    DBOS.send(handle.run_id, {"step": "b", "answer": "fixed"}, "answer-2")  # names b: ignored
    handle.resolve(second, "leave")
    outcome = handle.outcome()
    with pytest.raises(AnswerRefused, match="is over"):
        handle.resolve(second, "retry")
    assert (first.undos, second.undos) == (("b", "a"), ("a",))
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)
    assert outcome.compensated == ("b",) and "undo a" not in world


@pytest.mark.parametrize("shape", ["list", "graph", "at_once"])
@pytest.mark.parametrize("together", [False, True], ids=["one_after_the_other", "two_threads"])
def test_of_two_answers_to_one_question_exactly_one_is_taken_the_other_refused(
    dbos_runner, shape, together
):
    """attack12's B4: ``resolve`` looked at the question, then sent; the workflow took the
    first answer and the second call returned too, its answer dropped unheard (10 of 10,
    one after the other and from two threads). The workflow now says which answer it
    took: the other is refused, and the outcome is the taken one's."""
    from rollback_lessons.runners.dbos import AnswerRefused

    add = lambda k: lambda s: s.__setitem__(k, 1)  # noqa: E731
    rm = lambda k: lambda s: s.pop(k, None)  # noqa: E731
    a, b = Step("a", add("a"), rm("a")), Step("b", add("b"), rm("b"))
    first = [Parallel(a, b)] if shape != "list" else [a, b]
    saga = Saga([*first, Step("c", add("c"))], name="twice")
    state: dict = {}
    inject = {"c": "fail", "b": "undo_fails_once"}
    handle = dbos_runner.start_saga(saga, state, inject=inject, policy="halt", halt_wait=30,
                                    at_once=shape == "at_once")  # fmt: skip
    waited = threading.Event()
    while (asked := handle.pending()) is None:
        waited.wait(0.02)
    said: dict[str, str] = {}

    def answer(word):
        try:
            handle.resolve(asked, word)
            said[word] = "taken"
        except AnswerRefused:
            said[word] = "refused"

    if together:
        threads = [threading.Thread(target=answer, args=(w,)) for w in ("retry", "leave")]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
    else:
        answer("retry")
        answer("leave")
    outcome = handle.outcome()
    assert sorted(said.values()) == ["refused", "taken"], said
    if said["retry"] == "taken":
        assert outcome.status is Status.ROLLED_BACK and state == {}
    else:
        assert outcome.status is Status.HALTED and "b" in outcome.pending and "b" in state


def _asking_saga(cancel=None):
    """a, b, then c fails; b's undo fails once, and the saga halts for a person. ``cancel``:
    set by b's action (the run is cancelled going forward, before c)."""
    add = lambda k: lambda s: (s.__setitem__(k, 1), k == "b" and cancel and cancel.set())  # noqa: E731
    rm = lambda k: lambda s: s.pop(k, None)  # noqa: E731
    steps = [Step(k, add(k), rm(k)) for k in "ab"]
    return Saga([*steps, Step("c", add("c"))], name="asking")


ASKING = {"inject": {"c": "fail", "b": "undo_fails_once"}, "policy": "halt", "halt_wait": 60}


@pytest.mark.parametrize("shape", ["list", "graph"])
def test_a_cancel_while_a_person_is_asked_ends_the_wait_undos_left_pending(dbos_runner, shape):
    """attack13 N3: the run's cancel token was never asked while a halted saga waited for a
    person (the answer taken afterwards, ``rolled_back``). A cancelled run waits for no one,
    as on Temporal: the wait ends, no answer is taken (a later one is refused), and the undo
    asked about and those after it are left pending: ``halted`` (never ``cancelled``, which
    promises the world as it was), with a note saying why."""
    from rollback_lessons.runners.dbos import AnswerRefused

    cancel, state = threading.Event(), {}
    options = {**ASKING, "undo_order": "reverse_start"} if shape == "graph" else ASKING
    handle = dbos_runner.start_saga(_asking_saga(), state, cancel=cancel, **options)
    waited = threading.Event()
    while (asked := handle.pending()) is None:
        waited.wait(0.02)
    cancel.set()
    while handle.pending() is not None:  # the wait ends (no answer taken)
        waited.wait(0.02)
    with pytest.raises(AnswerRefused):
        handle.resolve(asked, "retry")
    outcome = handle.outcome()
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
    assert outcome.compensated == () and state == {"a": 1, "b": 1}
    assert "the undo of b: a person no longer waited for: its caller cancelled the run" in (
        outcome.notes
    )


@pytest.mark.parametrize("shape", ["list", "graph", "at_once"])
def test_a_stop_while_a_person_is_asked_says_so_and_the_question_goes(dbos_runner, shape):
    """attack178: ``handle.stop()`` as a person was asked noted "rollback interrupted by
    WorkflowCancelled during the undo of b" (b's undo had failed; none ran, and the stop was
    not named), and ``pending()`` gave the question for good (the workflow, cancelled,
    could not clear it): an answer to it was then refused, "the saga is over"."""
    state: dict[str, int] = {}
    options = {**ASKING, "undo_order": "reverse_start"} if shape == "graph" else ASKING
    at_once = {"at_once": True} if shape == "at_once" else {}
    handle = dbos_runner.start_saga(_asking_saga(), state, **options, **at_once)
    waited = threading.Event()
    while handle.pending() is None:
        waited.wait(0.02)
    handle.stop()
    outcome = handle.outcome()
    assert handle.pending() is None
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a"), outcome
    assert outcome.compensated == () and state == {"a": 1, "b": 1}
    assert outcome.notes == (
        "rollback interrupted by WorkflowCancelled as a person was asked about the undo of b "
        "(DBOS.cancel_workflow); not known to be undone: b, a",
    ), outcome.notes


@pytest.mark.parametrize("how", ["raises", "true-once"])
def test_a_cancel_function_while_a_person_is_asked_raises_or_says_true_once(dbos_runner, how):
    """attack14 F4: a cancel function that raised while a person was waited for was asked
    again and again (hundreds of calls), its error swallowed, the whole ``halt_wait``
    waited out; one that said True once was not heard (asked again as a DBOS step, it said
    False). The README's rules: a cancel function that raises fails the run with its error
    (the wait ends, its error in the note); a True heard counts, and it is asked no more."""
    asking, calls = threading.Event(), []

    def cancel():
        calls.append(asking.is_set())
        if not asking.is_set():
            return False
        if how == "raises":
            raise RuntimeError("the cancel service is down")
        return calls.count(True) == 1  # True at its first call once asked, then False

    state = {}
    handle = dbos_runner.start_saga(_asking_saga(), state, cancel=cancel, **ASKING)
    waited = threading.Event()
    while handle.pending() is None:
        waited.wait(0.02)
    asking.set()
    outcome = handle.outcome()  # (not the 60 s of halt_wait)
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
    assert state == {"a": 1, "b": 1}
    why = (
        "its cancel function raised RuntimeError('the cancel service is down')"
        if how == "raises"
        else "its caller cancelled the run"
    )
    assert f"the undo of b: a person no longer waited for: {why}" in outcome.notes
    assert calls.count(True) == 1  # heard once, asked no more


def test_a_run_cancelled_going_forward_asks_no_one_when_an_undo_fails(dbos_runner):
    """Cancelled as b returns: a and b are undone, b's undo fails once, and the saga halts.
    Nobody is waited for (``halt_wait`` is not waited out): halted at once, noted."""
    cancel, state = threading.Event(), {}
    outcome = dbos_runner.run(_asking_saga(cancel), state, cancel=cancel, **ASKING)
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
    assert any("its caller cancelled the run" in note for note in outcome.notes)
    local_cancel, in_process = threading.Event(), dict(ASKING)
    del in_process["halt_wait"]  # (in process nobody is waited for)
    local = _asking_saga(local_cancel).run({}, cancel=local_cancel, clock=VirtualClock(),
                                           **in_process)  # fmt: skip
    assert (local.status, local.pending) == (outcome.status, outcome.pending)


# The prelude of the subprocess scripts below, their world a database (``_undone_once``).
_WORLD = r"""
import os, signal, sqlite3, sys

WORLD, SYSTEM, MODE = sys.argv[1], sys.argv[2], sys.argv[3]


def db():  # the world outside the process: each effect a row, each undo's call a row
    con = sqlite3.connect(WORLD, timeout=30, isolation_level=None)
    con.execute("CREATE TABLE IF NOT EXISTS fx (k TEXT PRIMARY KEY)")
    con.execute("CREATE TABLE IF NOT EXISTS calls (k TEXT)")
    return con


def act(k):
    return lambda s: db().execute("INSERT OR IGNORE INTO fx VALUES (?)", (k,))
"""

_RELAUNCHED = (
    _WORLD
    + r"""
import threading
from rollback_lessons import Saga, Step
from rollback_lessons.runners.dbos import DBOSRunner, UnknownRun, hosting


def undo(k):
    def call(s):
        con = db()
        con.execute("INSERT INTO calls VALUES (?)", (k,))
        if k == "b" and con.execute("SELECT count(*) FROM calls WHERE k = 'b'").fetchone()[0] == 1:
            raise RuntimeError("b's undo fails once")
        con.execute("DELETE FROM fx WHERE k = ?", (k,))
    return call


def make(run_id=None):
    steps = [Step(k, act(k), undo(k)) for k in "ab"]
    return Saga([*steps, Step("c", lambda s: 1 / 0)], name="relaunched")


CALLS = []


def flaky(run_id):  # a service it reads is down (attack19's F3): at start, in the run
    CALLS.append(run_id)
    if MODE == "flaky" or len(CALLS) <= 3:  # "recovers": back for the 4th call
        raise ConnectionError("the saga service is down")
    return make(run_id)


hosting.TRIES, hosting.BACKOFF = 3, 0.05  # (tried again after 0.05 s, then 0.1 s)
waited = threading.Event()
BARE = sys.argv[4:] == ["bare"]  # launched as the README's relaunch: no sagas=
SAGAS = None if BARE else {"relaunched": flaky if MODE in ("flaky", "recovers") else make}
with DBOSRunner.start(SYSTEM, sagas=SAGAS) as runner:
    if MODE == "recovers":  # made on the run's 3rd try: record waits for it, undone once
        record = runner.record("r1")
        print("record:", record.status, ",".join(record.compensated))
        sys.exit(0)
    if MODE == "flaky":  # its undo waits, unfinished, and the runner says why
        from dbos import DBOS

        unfinished = ("PENDING", "ENQUEUED")  # (failed for good, it waits no more)
        while "r1" not in hosting.WAITING and DBOS.get_workflow_status("r1").status in unfinished:
            waited.wait(0.02)
        print("waiting():", runner.waiting())
        try:
            runner.record("r1")
        except Exception as exc:
            print(type(exc).__name__, exc)
        sys.exit(0)
    if MODE == "leave":  # the answer sent (DBOS's own send), closed while its undo waits
        from dbos import DBOS

        while DBOS.get_event("r1", "pending", timeout_seconds=0) is None:
            waited.wait(0.02)
        DBOS.send("r1", {"step": "b", "answer": "retry", "id": "by hand"}, "answer-1")
        while "r1" not in hosting.WAITING:  # its undo waits for a process to host it
            waited.wait(0.02)
        print("waiting:", hosting.WAITING["r1"], DBOS.get_workflow_status("r1").status)
        print("waiting():", runner.waiting())
        try:
            runner.record("r1")
        except Exception as exc:
            print(type(exc).__name__, exc)
        sys.exit(0)
    if MODE == "finish":
        outcome = runner.handle_for(make(), "r1").outcome()
        print("outcome:", outcome.status, ",".join(outcome.compensated))
        sys.exit(0)
    if MODE == "ask":
        handle = runner.start_saga(make(), None, policy="halt", halt_wait=120, run_id="r1")
        while handle.pending() is None:
            waited.wait(0.02)
        os.kill(os.getpid(), signal.SIGKILL)  # killed while a person is asked
    try:
        runner.handle_for(make(), "nobody")
    except UnknownRun as exc:
        print("refused:", exc)
    handle = runner.handle_for(make(), "r1")
    while (asked := handle.pending()) is None:  # the resumed saga asks again
        waited.wait(0.02)
    handle.resolve(asked, "retry")
    outcome = handle.outcome()
    print("asked:", asked.number, ",".join(asked.undos))
    print("outcome:", outcome.status, ",".join(outcome.compensated))
"""
)


def test_a_saga_resumed_after_a_relaunch_is_answered_through_handle_for(tmp_path):
    """attack13: a saga waiting for a person whose process died resumes at the relaunch
    and asks again, but nothing public could answer it (``DBOSRunner`` had no
    ``handle_for``; a ``DBOSHandle`` had to be built by hand), so it halted after
    ``halt_wait``. ``runner.handle_for(saga, run_id)`` answers it; a run id DBOS does not
    know is refused."""
    import subprocess
    import sys

    script = tmp_path / "relaunched.py"
    script.write_text(_RELAUNCHED)
    world, system = str(tmp_path / "world.db"), str(tmp_path / "dbos.sqlite")
    first = subprocess.run([sys.executable, str(script), world, system, "ask"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == -9, first.stderr[-2000:]  # SIGKILLed while asking
    again = subprocess.run([sys.executable, str(script), world, system, "answer", "bare"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    lines = again.stdout.splitlines()
    assert lines[0].startswith("refused: DBOS has no saga 'nobody'")
    assert lines[1:] == ["asked: 1 b,a", "outcome: rolled_back b,a"]
    _undone_once(world)


def _undone_once(world):
    import sqlite3

    con = sqlite3.connect(world)
    try:
        assert con.execute("SELECT k FROM fx").fetchall() == []  # a and b undone
        assert [k for (k,) in con.execute("SELECT k FROM calls")] == ["b", "b", "a"]
    finally:
        con.close()


_UPGRADED = r"""
import os, signal, sys, threading
from dbos import DBOS
from rollback_lessons import Saga, Step
from rollback_lessons.runners.dbos import DBOSRunner, ReplayRefused, workflow

SYSTEM, MODE = sys.argv[1], sys.argv[2]
UNDONE = []


def undo(k):
    def call(s):
        if k == "b" and MODE == "old":
            raise RuntimeError("b's undo fails (a person is asked)")
        UNDONE.append(k)
    return call


def make(run_id=None):
    steps = [Step(k, lambda s: None, undo(k)) for k in "ab"]
    return Saga([*steps, Step("c", lambda s: 1 / 0)], name="upgraded")


if MODE == "old":  # an earlier version: a cancel told to a person's wait asked the token
    @DBOS.step(name="rollback_lessons.asked")  # again, saved under this name
    def asked_again(run_id):
        return workflow._token(run_id)

    @DBOS.step(name="rollback_lessons.someday")  # a version this one knows nothing of
    def someday(run_id):
        return False

    def heard(run_id):
        return (asked_again if run_id == "r1" else someday)(run_id)

    workflow.heard_cancel = heard

waited = threading.Event()
with DBOSRunner.start(SYSTEM, sagas={"upgraded": make}) as runner:
    if MODE == "old":
        for run_id in ("r1", "r2", "r3"):
            handle = runner.start_saga(make(), None, policy="halt", halt_wait=300, run_id=run_id)
            while (asked := handle.pending()) is None:
                waited.wait(0.02)
            if run_id != "r3":  # (told by anyone; no token here: it says no)
                DBOS.send(run_id, workflow.CANCEL_MESSAGE, f"answer-{asked.number}")
        names = lambda r: {s["function_name"] for s in DBOS.list_workflow_steps(r)}
        while not ("rollback_lessons.asked" in names("r1")
                   and "rollback_lessons.someday" in names("r2")):
            waited.wait(0.02)
        os.kill(os.getpid(), signal.SIGKILL)  # upgraded while a person is asked
    print("stranded:", runner.stranded)
    handle = runner.handle_for(make(), "r1")
    while (asked := handle.pending()) is None:  # the resumed saga asks again
        waited.wait(0.02)
    handle.resolve(asked, "retry")
    outcome = handle.outcome()
    print("r1:", outcome.status, ",".join(outcome.compensated), ",".join(UNDONE))
    for run_id in ("r2", "r3"):
        try:
            runner.handle_for(make(), run_id).outcome()
        except ReplayRefused as exc:
            print(f"{run_id}:", exc)
    print("waiting:", runner.waiting())  # (r3 is another version's: no saga resumes it here)
    try:
        runner.record("r3")  # (it waited forever, or advised sagas= in vain: attack17's G4)
    except ReplayRefused as exc:
        print("record r3:", exc)
"""


def test_a_saga_an_earlier_version_left_waiting_for_a_person_resumes_after_an_upgrade(tmp_path):
    """Sagas left waiting for a person by an earlier version (SIGKILL: an upgrade), resumed
    by this one. r1: its wait was told a cancel (the token said no), which that version saved
    as a step ``rollback_lessons.asked`` and this one saves as ``rollback_lessons.heard``:
    DBOS refused the replay (``DBOSUnexpectedStepError``), the saga failed and the person's
    answer was refused ("it is over"); it now replays under the name it was saved under, is
    answered and undone. r2: a step saved under a name no version here knows: one line
    (``ReplayRefused``). r3: started on another DBOS application version (DBOS's default
    was a hash of the code, so any version that added a step): DBOS never resumes it here,
    and a person's answer waited forever; ``handle_for`` now refuses it in one line."""
    import sqlite3
    import subprocess
    import sys

    script = tmp_path / "upgraded.py"
    script.write_text(_UPGRADED)
    system = str(tmp_path / "dbos.sqlite")
    first = subprocess.run([sys.executable, str(script), system, "old"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == -9, first.stderr[-2000:]  # SIGKILLed while asking
    con = sqlite3.connect(system)
    with con:
        con.execute("UPDATE workflow_status SET application_version = '0ld'"
                    " WHERE workflow_uuid = 'r3'")  # fmt: skip
    con.close()
    again = subprocess.run([sys.executable, str(script), system, "new"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    stranded, r1, r2, r3, waiting, record = again.stdout.splitlines()
    assert waiting == "waiting: {}" and record == f"record {r3}"
    assert stranded == "stranded: {'r3': '0ld'}"
    assert r1 == "r1: rolled_back b,a b,a"
    assert r2.startswith("r2: saga 'r2' cannot be resumed by this version of rollback-lessons")
    assert "saved its step" in r2 and "'rollback_lessons.someday'" in r2
    assert "'rollback_lessons.heard'" in r2 and "launch the version that started it" in r2
    assert r3.startswith("r3: saga 'r3' was left unfinished by another version")
    assert "application version '0ld'" in r3 and "launch that version on" in r3


_UNDO_WAIT = (
    _WORLD
    + r"""
from dbos import DBOS
from rollback_lessons import Saga, Step
from rollback_lessons.policies import RetryPolicy, UndoPolicy
from rollback_lessons.runners.dbos import DBOSRunner, workflow


def undo(k):
    def call(s):
        con = db()
        con.execute("INSERT INTO calls VALUES (?)", (k,))
        tried = con.execute("SELECT count(*) FROM calls WHERE k = 'b'").fetchone()[0]
        if k == "b" and tried == 1:
            raise RuntimeError("b's undo fails once")
        if k == "b" and MODE == "old":  # killed in its second attempt: an upgrade
            os.kill(os.getpid(), signal.SIGKILL)
        con.execute("DELETE FROM fx WHERE k = ?", (k,))
    return call


def make(run_id=None):
    steps = [Step(k, act(k), undo(k)) for k in "ab"]
    return Saga([*steps, Step("c", lambda s: 1 / 0)], name="waited")


if MODE == "old":  # before attack16's F8 fix, a list's cancel was asked after an undo's wait
    workflow.asks_cancel = lambda m: True
with DBOSRunner.start(SYSTEM, sagas={"waited": make}) as runner:
    if MODE == "old":
        policy = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.05))
        runner.run(make(), None, policy=policy, run_id="r1", cancel=lambda: False)
    saved = [s["function_name"].rsplit(".", 1)[-1] for s in DBOS.list_workflow_steps("r1")]
    print("saved:", ",".join(saved))
    outcome = runner.handle_for(make(), "r1").outcome()
    print("outcome:", outcome.status, ",".join(outcome.compensated))
"""
)


def test_a_list_saga_an_earlier_version_left_in_an_undos_wait_resumes_after_an_upgrade(
    tmp_path,
):
    """Versions before attack16's F8 fix (main c758d83, on the same ``REPLAY_VERSION``)
    asked a list's cancel token after an undo's wait to retry too, saved as a step
    ``rollback_lessons.asked``; this one asks none there, so a saga such a version left in
    that wait (killed in b's second undo attempt: an upgrade) was ``ReplayRefused``, its
    undos pending (b's effect and a's left). It now replays that step as saved: b's second
    attempt runs again (never saved: undos are idempotent), then a's, each effect undone."""
    import sqlite3
    import subprocess
    import sys

    script = tmp_path / "undo_wait.py"
    script.write_text(_UNDO_WAIT)
    world, system = str(tmp_path / "world.db"), str(tmp_path / "dbos.sqlite")
    first = subprocess.run([sys.executable, str(script), world, system, "old"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == -9, first.stderr[-2000:]  # SIGKILLed in b's 2nd undo attempt
    again = subprocess.run([sys.executable, str(script), world, system, "new"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.splitlines() == [
        "saved: asked,began,action,asked,began,action,asked,began,action,undo,sleep,asked",
        "outcome: rolled_back b,a",
    ]
    con = sqlite3.connect(world)
    try:
        assert con.execute("SELECT k FROM fx").fetchall() == []  # a and b undone
        assert [k for (k,) in con.execute("SELECT k FROM calls")] == ["b", "b", "b", "a"]
    finally:
        con.close()


def test_a_relaunch_that_hosts_no_saga_leaves_the_run_waiting_never_failed(tmp_path):
    """attack16's F11: relaunched as the README said (``DBOSRunner.start(file)``, no
    ``sagas=``), the resumed saga's undo found no saga known to the process, failed with
    NotHosted, and DBOS saved that failure for good (a later launch with ``sagas=`` got the
    same): the saga stopped half done, a's effect left, no record saying so. Now a resumed
    run whose saga is not hosted waits for it: a runner closed meanwhile leaves it
    ``PENDING``, and a later launch's ``handle_for(saga, run_id)`` finishes it. (The test
    above answers through such a launch, the README's path.) attack19's F3: a ``sagas=``
    factory raising in the resumed run (its undo's step) failed it for good the same way (a's
    undo never ran, every later launch raised the factory's error), and raising in
    ``start``'s own check it escaped ``start`` raw; the launch now goes on and the run waits
    the same, ``record`` saying why in one line, and a later launch finishes it. attack19's
    S4/harden21's leftover: a factory that fails a few times, then works (a service back
    seconds later), was never called again in that process: it is tried again (``TRIES``,
    with a doubling wait), ``record`` waits for those tries and gets the record."""
    import subprocess
    import sys

    script = tmp_path / "relaunched.py"
    script.write_text(_RELAUNCHED)
    world, system = str(tmp_path / "world.db"), str(tmp_path / "dbos.sqlite")

    def launch(*mode):
        return subprocess.run([sys.executable, str(script), world, system, *mode],
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    first = launch("ask")
    assert first.returncode == -9, first.stderr[-2000:]  # SIGKILLed while asking
    left = launch("leave", "bare")
    assert left.returncode == 0, left.stderr
    assert left.stdout.splitlines() == [
        "waiting: relaunched PENDING", "waiting(): {'r1': 'relaunched'}",
        "NotHosted saga 'r1' ('relaunched') waits for its steps, which this process does not "
        "know: launch with sagas={'relaunched': ...}, or use handle_for(saga, run_id)",
    ]  # fmt: skip
    flaky = launch("flaky")  # attack19's F3: sagas= raising in the resumed run
    assert flaky.returncode == 0 and flaky.stderr == "", flaky.stderr[-2000:]
    assert flaky.stdout.splitlines() == [
        "waiting(): {'r1': 'relaunched'}",
        "NotHosted saga 'r1' ('relaunched') waits for its steps: sagas={'relaunched': ...} "
        "raised ConnectionError('the saga service is down') making the saga of run 'r1' (3 "
        "tries): it waits, unfinished; handle_for(saga, run_id) hosts it, or a later launch "
        "whose sagas= makes it",
    ]  # fmt: skip
    done = launch("recovers")  # its factory back on the run's 3rd try: it goes on
    assert (done.returncode, done.stdout) == (0, "record: rolled_back b,a\n"), done.stderr
    _undone_once(world)


def test_an_unknown_run_is_one_error_type_on_every_engine():
    """An operator's ``except UnknownRun`` catches a typo'd run id on DBOS and on Temporal
    alike (attack20's N5: Temporal raised the SDK's RPCError, DBOS a class of its own)."""
    from rollback_lessons.runners import dbos, hosted, temporal

    assert dbos.UnknownRun is temporal.UnknownRun is hosted.UnknownRun
    assert issubclass(hosted.UnknownRun, LookupError)


def test_on_event_and_the_logger_hear_every_event_once_as_in_process_on_dbos(dbos_runner):
    """The workflow may resume in another process: the process that reads the outcome tells
    its events, once (attack25's F6: they heard nothing; F8: an error whose repr raises said
    alike)."""

    def run(saga):
        handle = dbos_runner.start_saga(saga, {})
        outcome = handle.outcome()
        assert handle.outcome().events == outcome.events  # read again: not told again
        return outcome

    heard_as_in_process(run)


def _saved_bytes(path, run_id) -> int:
    """What DBOS's SQLite file holds for run ``run_id`` (and its children), in bytes."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        total = 0
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            key = next((c for c in ("workflow_uuid", "destination_uuid") if c in columns), None)
            if key is not None:
                size = " + ".join(f"IFNULL(LENGTH({c}), 0)" for c in columns)
                total += db.execute(
                    f"SELECT IFNULL(SUM({size}), 0) FROM {table} WHERE {key} = ? OR {key} LIKE ?",
                    (run_id, f"{run_id}-%"),
                ).fetchone()[0]
        return total


@pytest.mark.parametrize("retried", [False, True], ids=["once", "retried"])
def test_an_error_of_megabytes_is_saved_cut_and_ends_as_in_process_on_dbos(dbos_runner, retried):
    """Issue #25: DBOS saved a step's error whole (its message and its repr), once per
    attempt, and again in the run's record: b's and a's undo's errors of 3 MB wrote some
    20 MB into the file for one run (30 MB retried). Each text is cut to ``TEXT_LIMIT``
    with the note every engine writes, as Temporal and Step Functions cut what they carry;
    the story is in-process's apart from the cut (run here, or read alone)."""
    from rollback_lessons.runners.dbos.bounded import TEXT_LIMIT

    def saga():
        if not retried:
            return big_error_saga()
        again = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.01)
        return Saga([Step("a", lambda s: s.update(a=1), partial(_boom, "undo")),
                     Step("b", partial(_boom, "step"), retry=again)], name="big-error")  # fmt: skip

    local = saga().run({}, clock=VirtualClock())
    assert local.status is Status.ROLLBACK_INCOMPLETE
    note = f"characters, DBOS carries {TEXT_LIMIT}]"
    alone = dbos_runner.start_saga(saga(), {}, run_id=f"big-{retried}")
    for there, here in ((dbos_runner.run(saga(), {}), True), (alone.outcome(), False)):
        assert there.status == local.status and there.failed_step == local.failed_step == "b"
        assert (there.completed, there.compensated, there.pending, there.leaked) == (
            local.completed, local.compensated, local.pending, local.leaked)  # fmt: skip
        assert [(d.step, d.attempts) for d in there.dead_letters] == [
            (d.step, d.attempts) for d in local.dead_letters]  # fmt: skip
        assert [(e.kind, e.step) for e in there.events] == [(e.kind, e.step) for e in local.events]
        told = [e.details["error"] for e in there.events if "error" in e.details]
        assert told and all(len(t) == TEXT_LIMIT and t.endswith(note) for t in told)
        for error, letter in ((there.error, "s"), (there.dead_letters[0].error, "u")):
            if here:  # (raised in ``run``'s process: the very exception, attack308 F2)
                assert type(error) is RuntimeError and str(error) == letter * BIG
                continue
            told = str(error)
            assert describe(error).startswith(f"RuntimeError('{letter * 1000}")
            assert len(told) == TEXT_LIMIT and told.startswith(letter * 1000)
            assert told.endswith(f"[... cut: {BIG} {note}")  # the text's own length
            assert describe(error).endswith(f"[... cut: {BIG + 16} {note}")  # (its repr's)
    assert _saved_bytes(dbos_runner.path, f"big-{retried}") < 40 * TEXT_LIMIT


def test_pending_never_gives_a_question_resolve_saw_answered(dbos_runner, monkeypatch):
    """attack46 F3: right after ``resolve(q, ...)`` returned (the saga took the answer),
    ``pending()`` gave ``q`` again (1 in 30): the workflow said which answer it took
    before it cleared the question. Now the question is cleared first. The window between
    the two is widened here (each ``taken-<n>`` event is followed by a pause), so the old
    order fails every trial."""
    set_event = DBOS.set_event.__func__

    def slowed(cls, key, value):
        set_event(cls, key, value)
        if key.startswith("taken-"):  # (the window a reader fell into, held open)
            threading.Event().wait(0.3)

    monkeypatch.setattr(DBOS, "set_event", classmethod(slowed))
    for trial in range(3):
        inject = {"step3": "fail", "step2": "undo_fails", "step1": "undo_fails"}
        handle = dbos_runner.start_saga(xyz_saga(), xyz_state(), inject=inject, policy="halt",
                                        halt_wait=30)  # fmt: skip
        seen = []
        for number, answer in ((1, "retry"), (2, "leave")):  # (retried, step2's undo fails again)
            for _ in range(1500):
                if (asked := handle.pending()) is not None and asked.number == number:
                    break
                threading.Event().wait(0.02)
            handle.resolve(asked, answer)
            seen.append(handle.pending())  # right after: never the question just answered
        outcome = handle.outcome()
        assert outcome.status is Status.HALTED, trial
        assert (seen[0] is None or seen[0].number == 2) and seen[1] is None, (trial, seen)


@pytest.mark.parametrize("order", ["others first", "at_once first"])
def test_at_once_child_workflows_never_take_a_run_id_a_caller_may_choose(dbos_runner, order):
    """attack87 F8: DBOS names a child workflow ``<run id>-<n>``: a run ``r1-4`` on the file
    made run ``r1``'s fourth branch fail (``WorkflowFailed``, a step left to a person), and
    in the other order a caller's own ``r1-4`` was refused as held. Children are
    ``<run id>:<n>`` now, which no run id holds."""
    prefix = f"ids-{order[0]}"
    others = [f"{prefix}-{n}" for n in range(1, 9)]

    def other():
        return Saga([_step("o")], name="other")

    if order == "others first":
        assert {dbos_runner.run(other(), {}, run_id=r).status for r in others} == {Status.COMMITTED}
    state: dict = {}
    outcome = dbos_runner.run(trip(), state, run_id=prefix, at_once=True)
    assert outcome.status is Status.COMMITTED, outcome
    if order == "at_once first":
        assert {dbos_runner.run(other(), {}, run_id=r).status for r in others} == {Status.COMMITTED}
    from rollback_lessons.runners.dbos import UnknownRun

    with pytest.raises(UnknownRun, match="is not a saga: it is a branch's child workflow"):
        dbos_runner.record(f"{prefix}:1")  # (attack89 F2: a bare TypeError)
    with pytest.raises(UnknownRun, match="is not a saga"):
        dbos_runner.handle_for(trip(), f"{prefix}:1")
