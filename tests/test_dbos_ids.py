"""A DBOS run id is its run's identity, as the journal's (attack26's F1, F2): a saga started
under an id DBOS or this process holds is refused in one line before anything is hosted or
run, whichever saga it is, whether the first run ended or still runs; of two starts of one
id at once exactly one runs; and DBOS's own check, in the insert that takes the id, refuses
a start whose look at the id came before another start took it."""

import threading

import pytest
from dbos import DBOS
from trips import _step, trip

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners import hosted
from rollback_lessons.runners.dbos import RunIdInUse, ids


def _logged(log, name="logged"):
    """a, b, c, d: each call written to ``log``."""

    def step(n):
        return Step(n, lambda s: log.append(f"do {n}"), lambda s: log.append(f"undo {n}"))

    return Saga([step(n) for n in "abcd"], name=name)


def _refused(run_id):
    return pytest.raises(RunIdInUse, match=rf"run id '{run_id}' is taken: .*ids must be unique"
                         rf".*nothing ran; runner\.handle_for\(saga, '{run_id}'\)")  # fmt: skip


def test_a_run_id_dbos_holds_is_refused_whatever_the_saga_nothing_run(
    dbos_runner, no_run_left_behind
):
    """F1: the first run's Outcome came back, nothing run: 'committed' for the same saga with
    a fault, 'rolled_back' for one run again without, another saga's steps for another
    saga, and DBOS's raw DBOSConflictingWorkflowError for a list under a graph's id."""
    log: list[str] = []
    assert dbos_runner.run(_logged(log), {}, run_id="ids-ok").status is Status.COMMITTED
    failed = dbos_runner.run(_logged(log), {}, run_id="ids-failed", inject={"d": "fail"})
    assert failed.status is Status.ROLLED_BACK
    assert dbos_runner.run(trip(), {}, run_id="ids-graph").status is Status.COMMITTED
    log.clear()
    again = (
        ("ids-ok", _logged(log), {"inject": {"d": "fail"}}),
        ("ids-ok", Saga([_step("x"), _step("y")], name="other"), {}),
        ("ids-failed", _logged(log), {}),
        ("ids-graph", _logged(log), {}),  # (a list under a graph's id)
        ("ids-ok", trip(), {"at_once": True}),
    )
    for run_id, saga, options in again:
        state: dict[str, str] = {}
        with _refused(run_id):
            dbos_runner.run(saga, state, run_id=run_id, **options)
        with _refused(run_id):
            dbos_runner.start_saga(saga, state, run_id=run_id, **options)
        assert log == [] and state == {}  # nothing ran
    assert {"ids-ok", "ids-failed", "ids-graph"}.isdisjoint(hosted.RUNS)
    assert dbos_runner.record("ids-ok").status is Status.COMMITTED  # the first run, as it was
    assert dbos_runner.handle_for(_logged(log), "ids-failed").outcome().status is Status.ROLLED_BACK


def test_an_id_started_again_while_its_run_runs_is_refused_and_the_run_keeps_its_state(
    dbos_runner, no_run_left_behind
):
    """F2: the second start hosted its state and faults over the running run's, whose
    remaining steps then acted on the second caller's state (both told committed)."""
    going, go = threading.Event(), threading.Event()

    def slow(state):
        going.set()
        assert go.wait(10)
        state["b"] = "done"

    saga = Saga([_step("a"), Step("b", slow), _step("c")], name="live")
    first: dict[str, str] = {"who": "first"}
    handle = dbos_runner.start_saga(saga, first, run_id="ids-live")
    try:
        assert going.wait(30)
        second: dict[str, str] = {"who": "second"}
        with _refused("ids-live"):
            dbos_runner.run(saga, second, run_id="ids-live", inject={"c": "fail"})
        assert hosted.RUNS["ids-live"].state is first
    finally:
        go.set()
    assert handle.outcome().status is Status.COMMITTED
    assert first == {"who": "first", "a": "done", "b": "done", "c": "done"}
    assert second == {"who": "second"}


def test_of_two_threads_starting_one_id_at_once_exactly_one_runs(dbos_runner, no_run_left_behind):
    for n in range(4):
        run_id, meet = f"ids-race-{n}", threading.Barrier(2)
        states: list[dict[str, str]] = [{}, {}]
        ended: list[object] = [None, None]

        def start(k, run_id=run_id, meet=meet, states=states, ended=ended):
            meet.wait(10)
            try:
                ended[k] = dbos_runner.run(trip(), states[k], run_id=run_id).status
            except RunIdInUse as exc:
                ended[k] = exc

        threads = [threading.Thread(target=start, args=(k,)) for k in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(map(type, ended), key=str) == sorted([Status, RunIdInUse], key=str)
        ran = ended.index(Status.COMMITTED)
        assert states[ran]["charge"] == "done" and states[1 - ran] == {}


def test_dbos_refuses_an_id_taken_after_this_start_looked_and_nothing_stays_hosted(
    dbos_runner, monkeypatch, no_run_left_behind
):
    """A start racing another one in the same instant (another process on the file, say):
    its look at the id found it free (made so here), and DBOS took it for the other first.
    DBOS's insert, with ``workflow_id_reuse_policy="reject"``, tells its row from the other's:
    refused, un-hosted, nothing run, the other run as it was."""
    log: list[str] = []
    dbos_runner.run(_logged(log), {}, run_id="ids-raced")
    monkeypatch.setattr(ids, "_holder", lambda run_id: None)
    log.clear()
    for wait in (True, False):
        state: dict[str, str] = {}
        with _refused("ids-raced"):
            dbos_runner.start_saga(_logged(log), state, run_id="ids-raced", wait=wait,
                                   inject={"d": "fail"}, cancel=threading.Event())  # fmt: skip
        assert log == [] and state == {} and "ids-raced" not in hosted.RUNS
    assert dbos_runner.record("ids-raced").status is Status.COMMITTED


def test_a_start_that_failed_before_dbos_took_the_id_leaves_it_free(
    dbos_runner, monkeypatch, no_run_left_behind
):
    """Refusing held ids must not refuse an id whose first start never reached DBOS."""

    def down(*args, **kwargs):
        raise ConnectionError("down")

    monkeypatch.setattr(DBOS, "start_workflow", down)
    with pytest.raises(ConnectionError):
        dbos_runner.start_saga(trip(), {}, run_id="ids-retried")
    assert "ids-retried" not in hosted.RUNS
    monkeypatch.undo()
    again = dbos_runner.start_saga(trip(), {}, run_id="ids-retried")
    assert again.outcome().status is Status.COMMITTED


def test_a_run_id_of_spaces_only_is_the_runners_one_line_as_the_journals(
    dbos_runner, no_run_left_behind, tmp_path
):
    """attack46 F2: ``run_id=" "`` passed the runner's check and was refused inside DBOS,
    in DBOS's words (its raw DBOSException). Now the runner refuses it first, as the
    journal does, with its own ``InvalidNameError``; nothing runs, the runner goes on."""
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.errors import InvalidNameError

    log: list[str] = []
    for run_id in (" ", "   "):
        for call in (dbos_runner.run, dbos_runner.start_saga):
            with pytest.raises(InvalidNameError, match=r"a run_id must not be only spaces"):
                call(_logged(log), {}, run_id=run_id)
        with (
            Journal(tmp_path / "j.db") as journal,
            pytest.raises(InvalidNameError, match=r"run_id must not be only spaces"),
        ):
            Saga([Step("x", lambda s: log.append("do x"))], name="j").run(
                {}, journal=journal, run_id=run_id
            )
    assert log == [] and run_id not in hosted.RUNS
    assert dbos_runner.run(_logged(log), {}, run_id=" a b ").status is Status.COMMITTED
