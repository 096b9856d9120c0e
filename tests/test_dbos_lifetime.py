"""Issue #25: operators run many sagas in one long-lived process. What this process keeps
of a DBOS run by its id (its saga and state, its policy in code, its machine, its cancel
token, a stop asked of it) went only when a handle read the outcome: a run started with
``start_saga`` whose result nobody read stayed for the life of the process (2,000 small
sagas: 2,000 entries in each table). They go when the run ends; a handle read later still
tells the whole story (``Hosted.left``); what ``record`` reads with no handle is bounded."""

import threading
import time

import pytest
from conftest import HaltOnAnythingButTimeouts
from dbos import DBOS
from trips import _step

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners import heard, hosted
from rollback_lessons.runners.dbos import StoppedUnrecorded, stops, waits, workflow


def _boom(state):
    raise ValueError("no room")


def _tables():
    return {"RUNS": hosted.RUNS, "POLICIES": hosted.POLICIES, "MADE": heard.MADE,
            "STOPS": waits.STOPS, "LIVE": getattr(waits, "LIVE", set()),
            "CANCELS": workflow.CANCELS, "HEARD": workflow.HEARD,
            "ENDED": stops.ENDED, "RETURNED": stops.RETURNED}  # fmt: skip


def _kept(run_ids):
    """The tables (by name) that still hold any of ``run_ids``."""
    return {
        name: sorted(set(t) & set(run_ids))
        for name, t in _tables().items()
        if set(t) & set(run_ids)
    }


def _settled(run_ids, seconds=5.0):
    """What the tables still hold of ``run_ids`` once they let go of them, or after
    ``seconds``: a started run's saved result is let go by the done callback of its
    execution, which DBOS may call just after the status says the run ended (ci166)."""
    deadline = time.monotonic() + seconds
    while (kept := _kept(run_ids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return kept


def _until_over(run_id, seconds=60.0):
    """Wait (without reading its result) until DBOS says the run ended and its workflow
    left this process."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = DBOS.get_workflow_status(run_id)
        if status.status not in ("PENDING", "ENQUEUED") and run_id not in getattr(
            waits, "LIVE", ()
        ):
            return status.status
        time.sleep(0.01)
    raise AssertionError(f"{run_id} did not end in {seconds} s")


def test_runs_whose_result_is_never_read_leave_nothing_kept_here(dbos_runner):
    """Committed, rolled back, with a policy in code, with a cancel token, stopped: once
    each ended, no table here holds it (each held every one); their handles, read after
    that, tell what they did (the stopped one's record kept by its handle)."""
    sagas = {
        "commits": (Saga([_step("a"), _step("b")], name="commits"), {}),
        "fails": (Saga([_step("a"), Step("b", _boom)], name="fails"), {}),
        "halts": (Saga([_step("a"), Step("b", _boom)], name="halts"),
                  {"policy": HaltOnAnythingButTimeouts()}),
        "cancel": (Saga([_step("a"), _step("b")], name="cancel"),
                   {"cancel": lambda: False}),
    }  # fmt: skip
    handles = {}
    for i in range(3):
        for name, (saga, options) in sagas.items():
            run_id = f"lifetime-{name}-{i}"
            handles[run_id] = dbos_runner.start_saga(saga, {}, run_id=run_id, **options)
            _until_over(run_id)
    assert _settled(handles) == {}
    for run_id, handle in handles.items():
        outcome = handle.outcome()
        name = run_id.split("-")[1]
        assert outcome.status is {"commits": Status.COMMITTED, "fails": Status.ROLLED_BACK,
                                  "halts": Status.ROLLED_BACK,
                                  "cancel": Status.COMMITTED}[name]  # fmt: skip
        assert outcome.state_after == ({"a": "done", "b": "done"} if name in ("commits", "cancel")
                                       else {"a": "undone"})  # fmt: skip


def test_a_stopped_run_never_read_leaves_nothing_and_its_handle_still_reads_it(dbos_runner):
    """``handle.stop()`` as a step runs: once the run ended, nothing of it is kept by run id
    here (``waits.STOPS`` held it, and ``hosted.RUNS``, ``heard.MADE``); its handle, read
    later, says halted with what was done (the charge returned here: attack46 F6), from
    the record it holds itself, even once ``record`` read it and dropped it (``record``
    then says it keeps none, in one line)."""
    charging, go = threading.Event(), threading.Event()

    def charge(state):
        charging.set()
        go.wait(60)
        state["charge"] = "done"

    saga = Saga([_step("a"), Step("charge", charge, lambda s: None), _step("receipt")],
                allow_unsafe_order=True)  # fmt: skip
    handle = dbos_runner.start_saga(saga, {}, run_id="lifetime-stopped")
    assert charging.wait(30)
    try:
        handle.stop()
    finally:
        go.set()
    assert _until_over("lifetime-stopped") == "CANCELLED"
    assert _settled(["lifetime-stopped"]) == {}
    handle.stop()  # (again, once over: nothing kept for it either)
    assert "lifetime-stopped" not in waits.STOPS
    record = dbos_runner.record("lifetime-stopped")  # (read with no handle: then dropped)
    with pytest.raises(StoppedUnrecorded):
        dbos_runner.record("lifetime-stopped")
    outcome = handle.outcome()  # (from the record its handle holds)
    assert outcome.status is record.status is Status.HALTED
    assert outcome.completed == ("a", "charge") and outcome.leaked == ()
    assert (outcome.pending, outcome.notes) == (record.pending, record.notes)


def test_what_record_reads_without_a_handle_is_bounded(monkeypatch):
    """``stops.ENDED`` (a run's record, for a stop landing after it returned, until DBOS
    saved it) and ``STOPPED`` (a stopped run's, until read) keep the latest ``KEPT_MOST``
    (a run resumed at launch has no handle here to say when DBOS saved it)."""
    monkeypatch.setattr(stops, "KEPT_MOST", 3, raising=False)
    monkeypatch.setattr(stops, "ENDED", {})
    monkeypatch.setattr(stops, "_save_ended", lambda data: None)  # (no workflow runs here)
    for i in range(6):
        stops.ended(f"resumed-{i}", {"status": "committed", "notes": []})
    assert list(stops.ENDED) == ["resumed-3", "resumed-4", "resumed-5"]


def test_handles_for_runs_over_keep_nothing_here(dbos_runner):
    """``handle_for`` reads the plan a run was started with (to refuse another saga): for a
    run over, that read was cached for the life of the launch, one plan per call."""
    from rollback_lessons.runners.dbos import hosting

    saga = Saga([_step("a")], name="over")
    dbos_runner.start_saga(saga, {}, run_id="over-1", wait=True).outcome()
    outcome = dbos_runner.handle_for(saga, "over-1").outcome()
    assert outcome.status is Status.COMMITTED
    assert "over-1" not in hosting.PLANS and _kept(["over-1"]) == {}
