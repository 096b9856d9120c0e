"""attack46 F6: DBOS's own stop (``handle.stop()``: ``DBOS.cancel_workflow``) landing while
a step's action runs. DBOS refuses to save that action's return (the workflow's owner is
cleared), yet the action returned here: the runner reports its real end, as Step Functions'
StopExecution at the same instant does (it asks only before a step starts) and as
Temporal's cancel does: the step done, the next not begun, every undo pending; the last
step done: committed, a note saying the stop stopped nothing. Before, the step was said
failed "perhaps after its effect" (leaked), and a saga whose steps all completed was
``halted`` "not known to be undone"."""

import logging
import threading
from functools import partial

import pytest
from conftest import refund_down
from trips import _undo

from rollback_lessons import Parallel, Saga, Status, Step


def _saga(held: str, running: threading.Event, go: threading.Event, graph: bool) -> Saga:
    """a, b, c, d (b's undo logged before it; ``graph``: b and c a parallel group); the
    action of ``held`` waits, once ``running`` is set, until ``go`` (set once the stop
    landed), then returns normally."""

    def act(name):
        def action(state):
            if name == held:
                running.set()
                assert go.wait(120)
            state[name] = "done"

        return action

    s = {n: Step(n, act(n), partial(_undo, n), register="before" if n == "b" else "after")
         for n in "abcd"}  # fmt: skip
    middle = [Parallel(s["b"], s["c"])] if graph else [s["b"], s["c"]]
    return Saga([s["a"], *middle, s["d"]], name="stop-mid")


def _stopped(handle, running: threading.Event, go: threading.Event):
    """``handle.stop()`` once ``running`` is set (returns once DBOS marked the run cancelled,
    the action still held), then ``go``: the run's outcome."""
    try:
        assert running.wait(60)
        handle.stop()
    finally:
        go.set()
    return handle.outcome()


def _held(running: threading.Event, go: threading.Event, key: str, value: str):
    """An action or undo that says it runs (``running``), waits for ``go`` (the stop landed
    meanwhile), then sets ``state[key] = value``."""

    def call(state):
        running.set()
        assert go.wait(120)
        state[key] = value

    return call


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("held", ["c", "d"])
def test_a_stop_while_an_action_runs_reports_the_actions_real_end(dbos_runner, held, graph):
    running, go = threading.Event(), threading.Event()
    state: dict = {}
    outcome = _stopped(dbos_runner.start_saga(_saga(held, running, go, graph), state), running, go)
    done = "abcd"[: "abcd".index(held) + 1]
    assert state == dict.fromkeys(done, "done")  # the stop: nothing after the held step
    assert outcome.completed == tuple(done) and outcome.leaked == ()
    assert outcome.failed_step is None and outcome.compensated == ()
    if held == "d":  # the last step ended: nothing was stopped
        assert outcome.status is Status.COMMITTED and outcome.pending == ()
        assert outcome.notes == (
            "DBOS.cancel_workflow came as the last step ran: it ran to its end, and the "
            "stop stopped nothing",
        )
    else:  # the next step never began; nothing undone, every undo pending for a person
        assert outcome.status is Status.HALTED and outcome.pending == ("c", "b", "a")
        assert "DBOS.cancel_workflow" in outcome.notes[0]
        assert "not known to be undone: c, b, a" in outcome.notes[0]


def test_a_stop_while_a_failing_action_runs_reports_its_failure(dbos_runner):
    """The action raised once the stop landed: its own failure is reported (not cut short,
    nothing leaked), and nothing is undone by the stop."""
    running, go = threading.Event(), threading.Event()

    def broken(state):
        running.set()
        assert go.wait(120)
        raise ValueError("no seats")

    saga = Saga([Step("a", lambda s: s.update(a="done"), partial(_undo, "a")),
                 Step("b", broken, partial(_undo, "b"))], name="stop-fail")  # fmt: skip
    state: dict = {}
    outcome = _stopped(dbos_runner.start_saga(saga, state), running, go)
    assert outcome.failed_step == "b" and outcome.leaked == ()
    assert "no seats" in repr(outcome.error)
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)
    assert state == {"a": "done"}


@pytest.mark.parametrize("at_once", [False, True], ids=["list", "at_once"])
def test_a_stop_once_the_pivot_started_says_the_stop_undid_nothing(dbos_runner, at_once):
    """attack152 F1: a stop while the pivot ran (or after it) ended ``halted`` with no note:
    nothing told that a person's stop, not the pivot's own failure, made the halt. Noted
    now, naming DBOS's stop, as Step Functions' StopExecution is."""
    running, go = threading.Event(), threading.Event()
    state: dict = {}

    first = [Step("a", lambda s: s.update(a="done"), partial(_undo, "a"))]
    if at_once:
        first = [Parallel(first[0], Step("b", lambda s: s.update(b="done"), partial(_undo, "b")))]
    saga = Saga([*first, Step("p", _held(running, go, "p", "sent"), None, kind="pivot"),
                 Step("r", lambda s: s.update(r="done"), None, kind="retriable")],
                name="stop-pivot")  # fmt: skip
    outcome = _stopped(dbos_runner.start_saga(saga, state, at_once=at_once), running, go)
    assert outcome.status is Status.HALTED and outcome.compensated == ()
    assert "r" not in state and all(state.get(s) != "undone" for s in "ab")
    assert any(
        note.startswith("DBOS.cancel_workflow stopped the workflow once the irreversible step "
                        "had started: nothing undone")
        for note in outcome.notes
    ), outcome.notes  # fmt: skip


@pytest.mark.parametrize("at_once", [False, True], ids=["list", "at_once"])
def test_a_stop_while_an_undo_runs_reports_the_undos_real_end(dbos_runner, at_once):
    """attack157 F1: a stop landed while b's undo ran; it ran to its end here, yet b was said
    pending, "not known to be undone" (a person would undo it again). Its real end is heard
    now, as an action's is: b undone, the rollback cut there, a pending."""
    running, go = threading.Event(), threading.Event()
    state: dict = {}

    def fails(s):
        raise ValueError("no seats")

    a = Step("a", lambda s: s.update(a="done"), partial(_undo, "a"))
    b = Step("b", lambda s: s.update(b="done"), _held(running, go, "b", "undone"))
    steps = [a, Parallel(b, Step("c", lambda s: None))] if at_once else [a, b]  # (b first)
    saga = Saga([*steps, Step("F", fails)], name="stop-undo")
    outcome = _stopped(dbos_runner.start_saga(saga, state, at_once=at_once), running, go)
    assert state == {"a": "done", "b": "undone"}
    assert outcome.status is Status.HALTED
    assert outcome.compensated == ("b",) and outcome.pending == ("a",)
    assert [(e.kind, e.step) for e in outcome.events][-3:] == [
        ("undo", "b"), ("undo_done", "b"), ("rollback_done", None)]  # fmt: skip
    assert outcome.notes == (
        "rollback interrupted by WorkflowCancelled after the undo of b returned "
        "(DBOS.cancel_workflow); not known to be undone: a",
    )


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_stop_while_an_undo_runs_and_fails_says_it_failed(dbos_runner, attempt):
    """attack185 F3: a stop landed while b's undo ran, and that attempt failed: noted "after
    the undo of b returned", which reads as done (b rightly pending). Said as it ended now."""
    from rollback_lessons import RetryPolicy, UndoPolicy

    running, go, tries = threading.Event(), threading.Event(), []

    def undo_b(s):
        tries.append(1)
        if len(tries) == attempt:
            running.set()
            assert go.wait(120)
        raise ConnectionError("the refund service is down")

    def fails(s):
        raise ValueError("no seats")

    steps = [Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None, undo_b),
             Step("F", fails)]  # fmt: skip
    retry = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.01), then="halt")
    handle = dbos_runner.start_saga(Saga(steps, name="stop-undo-fails"), {}, policy=retry)
    outcome = _stopped(handle, running, go)
    assert len(tries) == attempt and outcome.status is Status.HALTED
    assert outcome.pending == ("b", "a")
    tried = "attempt 2 of " if attempt == 2 else ""
    assert outcome.notes == (
        f"rollback interrupted by WorkflowCancelled after {tried}the undo of b failed "
        "(DBOS.cancel_workflow); not known to be undone: b, a",
    ), outcome.notes


def test_a_stop_once_the_saga_returned_says_it_stopped_nothing(dbos_runner):
    """attack157 F2: ``handle.stop()`` after the workflow returned: committed, no note (the
    README's "came after the saga ended" was given only as it ended). Noted now."""
    state: dict = {}
    handle = dbos_runner.start_saga(Saga([Step("a", lambda s: s.update(a="done"))]), state)
    first = handle.outcome()
    assert first.status is Status.COMMITTED and first.notes == ()
    handle.stop()
    again = handle.outcome()
    assert again.status is Status.COMMITTED and state == {"a": "done"}
    late = ("DBOS.cancel_workflow came after the saga ended: it stopped nothing",)
    assert again.notes == late
    assert dbos_runner.record(handle.run_id).notes == late  # (whoever reads it: 158 F2)


def test_a_stop_the_saga_ends_within_says_it_stopped_nothing(dbos_runner, monkeypatch):
    """attack164 F1: ``stop()`` read the run's status, then cancelled: a saga that ended
    (DBOS saved its end) in between had no note at all (3-6 of 10 trials). The instant made
    certain: the saga ends, saved, inside ``stop()``, before DBOS's cancel."""
    import time

    from dbos import DBOS

    from rollback_lessons.runners.dbos import stops

    running, go, state = threading.Event(), threading.Event(), {}
    saga = Saga([Step("a", _held(running, go, "a", "done"))], name="ends-within")
    handle = dbos_runner.start_saga(saga, state)
    real = stops.stop_run

    def ends_first(run_id: str) -> None:
        go.set()
        while DBOS.get_workflow_status(run_id).status != "SUCCESS":
            time.sleep(0.02)
        real(run_id)

    monkeypatch.setattr(stops, "stop_run", ends_first)
    assert running.wait(60)
    handle.stop()
    outcome = handle.outcome()
    assert outcome.status is Status.COMMITTED and state == {"a": "done"}
    assert outcome.notes == ("DBOS.cancel_workflow came after the saga ended: it stopped nothing",)


def test_a_stop_between_the_sagas_end_and_its_save_is_read_by_a_later_launch(
    dbos_runner, monkeypatch
):
    """attack164 F2: a stop that lands once the workflow returned, before DBOS saved its
    result, leaves the run CANCELLED on the file (DBOS keeps no result): read here, noted
    "came after the saga ended"; read by a later launch, ``StoppedUnrecorded``, "its undos
    may still be pending", though all was done (3 of 20). The workflow's last step saves its
    record (an event): a later launch (nothing kept in memory) reads it, noted the same."""
    from dbos import DBOS

    from rollback_lessons.runners.dbos import stops

    real, told = stops.ended, _dbos_tells(monkeypatch)

    def then_stopped(run_id: str, data: dict) -> dict:
        kept = real(run_id, data)
        stop = threading.Thread(target=DBOS.cancel_workflow, args=(run_id,))
        stop.start()
        stop.join()
        return kept

    monkeypatch.setattr(stops, "ended", then_stopped)
    state: dict = {}
    steps = [Step("a", lambda s: s.update(a="done"), partial(_undo, "a")),
             Step("b", lambda s: 1 / 0)]  # fmt: skip
    handle = dbos_runner.start_saga(Saga(steps, name="stopped-as-saved"), state)
    late = ("DBOS.cancel_workflow came after the saga ended: it stopped nothing",)
    here = handle.outcome()
    assert (here.status, here.compensated, here.notes) == (Status.ROLLED_BACK, ("a",), late)
    assert state == {"a": "undone"}
    assert DBOS.get_workflow_status(handle.run_id).status == "CANCELLED"
    heard = _told_of(told, handle.run_id)  # (attack187 F1: its traceback on stderr, 11 of 20)
    assert heard == [False], "DBOS's telling of the cancel the outcome says reached stderr"
    stops.forget(handle.run_id)  # (a later launch keeps nothing of it in memory)
    later = dbos_runner.record(handle.run_id)
    assert (later.status, later.compensated, later.notes) == (Status.ROLLED_BACK, ("a",), late)


def _dbos_tells(monkeypatch) -> list[tuple[logging.LogRecord, bool]]:
    """Each record DBOS logs, and whether the runner's filter lets it reach stderr."""
    from rollback_lessons.runners.dbos import launch

    told: list[tuple[logging.LogRecord, bool]] = []
    real = launch.STOPPED.filter

    def filter(record: logging.LogRecord) -> bool:
        kept = real(record)
        told.append((record, kept))
        return kept

    monkeypatch.setattr(launch.STOPPED, "filter", filter)
    return told


def _told_of(told: list, run_id: str) -> list[bool]:
    """Whether DBOS's telling of the end of ``run_id``'s workflow (its background thread's
    error: ``launch.BACKGROUND``) was let through, once DBOS has told it."""
    import time

    from dbos._error import DBOSAwaitedWorkflowCancelledError

    def mine() -> list[bool]:
        return [kept for record, kept in list(told)
                if record.exc_info and isinstance(record.exc_info[1],
                                                  DBOSAwaitedWorkflowCancelledError)
                and record.exc_info[1].workflow_id == run_id]  # fmt: skip

    end = time.monotonic() + 30
    while not mine() and time.monotonic() < end:
        time.sleep(0.02)
    return mine()


def test_a_stop_as_an_undo_waits_to_retry_tells_no_attempt_never_called(dbos_runner):
    """attack158 F1: a stop in b's undo's wait to retry told an ``undo b`` for the second
    attempt, never called (the machine told it as it asked for it, and DBOS's stop came as
    its step began). Told once its call came back now: none told; the note says where it was,
    "as the undo of b waited to retry", as saga.run's for a Ctrl-C in that wait (attack180 F1:
    "during the undo of b", heard as the retry began), naming the stop (attack178 F1)."""
    import time

    from rollback_lessons import RetryPolicy, UndoPolicy

    failed, calls = threading.Event(), []
    steps = refund_down(calls, failed, Step("a", lambda s: s.update(a="done"), partial(_undo, "a")))
    retry = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=1, max_delay=1))
    handle = dbos_runner.start_saga(Saga(steps, name="stop-wait"), {}, policy=retry)
    assert failed.wait(60)
    time.sleep(0.2)  # (in the wait to retry it)
    handle.stop()
    outcome = handle.outcome()
    assert calls == ["undo b tried"] and outcome.status is Status.HALTED
    assert outcome.pending == ("b", "a")
    assert [(e.kind, e.step) for e in outcome.events][-3:] == [
        ("undo", "b"), ("undo_failed", "b"), ("rollback_done", None)]  # fmt: skip
    assert outcome.notes[-1].endswith(
        "as the undo of b waited to retry (DBOS.cancel_workflow); not known to be undone: b, a"
    )


def test_a_stop_through_another_handle_reads_the_record_its_workflow_keeps(dbos_runner):
    """attack158 F3: ``handle_for``'s handle stopped the run as an undo ran here and read it
    at once: ``StoppedUnrecorded`` ("stopped in another process"), the workflow still on its
    way to the stop (the undo held). It waits for what the workflow keeps now."""
    running, go = threading.Event(), threading.Event()

    steps = [Step("a", lambda s: s.update(a="done"), partial(_undo, "a")),
             Step("b", lambda s: s.update(b="done"), _held(running, go, "b", "undone")),
             Step("c", lambda s: (_ for _ in ()).throw(ValueError("no seats")))]  # fmt: skip
    saga, state = Saga(steps, name="stop-other"), {}
    handle = dbos_runner.start_saga(saga, state)
    other = dbos_runner.handle_for(saga, handle.run_id)
    assert running.wait(60)
    other.stop()
    threading.Timer(0.5, go.set).start()  # (b's undo ends after the read began)
    outcome = other.outcome()
    assert state == {"a": "done", "b": "undone"}
    assert outcome.status is Status.HALTED and outcome.compensated == ("b",)
    assert outcome.pending == ("a",)
