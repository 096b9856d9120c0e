"""Errors come back as they were raised, on every engine (issue 25, attack29's F1-F4).

A step or an undo raises a real error (a KeyError, an OSError with its errno, one of many
args, one with an attribute, one whose ``__str__`` raises): on Step Functions, BPMN, DBOS and
Temporal the outcome, the events, the error's repr and its class are those of ``saga.run``,
and ``Outcome.error`` is the very exception raised (the engines run their workers in this
process: ``runners.error_record.keeping``, per run: a run ``start_saga`` started reads a
stand-in whatever else runs, attack30's F2). A policy of one's own that tests the error with
``isinstance`` decides as in process; two classes of one name are told apart in a retry
policy; a policy's class DBOS cannot pickle runs (or, in code, is refused in one line).
Only injected faults were compared before (their records are rebuilt exactly)."""

import asyncio
import json
import threading

import pytest
from conftest import SOAK, a_part, same_outcome

from rollback_lessons import Retry, RetryPolicy, Saga, Step, UndoPolicy, VirtualClock
from rollback_lessons.errors import RemoteError
from rollback_lessons.policies import UnsupportedPolicy, matches, type_name
from rollback_lessons.runners import error_record
from rollback_lessons.runners.bpmn import BpmnRunner
from rollback_lessons.runners.error_record import ErrorRecord, adopt, exception_type, keeping
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner


class Weird(Exception):
    """Many args, one not a string: its repr is not ``Weird(str(e))``."""


class WithCode(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words")


ERRORS = {
    "KeyError": lambda: KeyError("k"),
    "OSError": lambda: OSError(28, "No space left on device"),
    "many args": lambda: Weird(7, "seven"),
    "an attribute": lambda: WithCode("refused", 42),
    "a __str__ that raises": lambda: BadStr("x"),
}


def _saga(kind: str, raised: list, where: str) -> Saga:
    """``a`` then ``b``: ``b``'s action raises (``where="step"``), or ``b`` fails and ``a``'s
    undo raises once (``"undo"``, a dead letter: ``continue``). ``raised``: what was raised."""

    def fail(state):
        raised.append(ERRORS[kind]())
        raise raised[-1]

    def undo_a(state):
        if where == "undo":
            fail(state)
        state.pop("a")

    def b(state):
        if where == "step":
            fail(state)
        raise RuntimeError("b failed")

    return Saga([Step("a", lambda s: s.__setitem__("a", 1), undo_a), Step("b", b)], name="raised")


def _error(outcome, where):
    return outcome.error if where == "step" else outcome.dead_letters[0].error


def _as_raised(local, remote, raised, where) -> None:
    """``remote`` ended as ``local`` (every field, the events), and its error is the very
    exception the run raised: class, args, attributes and all."""
    same_outcome(local, remote)
    error = _error(remote, where)
    assert error is raised[-1]
    assert type(error) is type(_error(local, where))
    assert error.args == _error(local, where).args


@pytest.fixture(scope="module")
def step_functions():
    with StepFunctionsRunner.start() as runner:
        yield runner


def _run_on(engine, request, saga, wait: float | None = None):
    """``saga`` run on ``engine`` (on Temporal, given up after ``wait`` seconds if told)."""
    if engine == "temporal":
        run = request.getfixturevalue("on_temporal")
        return run(lambda runner: asyncio.wait_for(runner.run(saga, {}), wait))
    if engine == "dbos":
        return request.getfixturevalue("dbos_runner").run(saga, {})
    if engine == "bpmn":
        return BpmnRunner.start().run(saga, {})
    return request.getfixturevalue("step_functions").run(saga, {})


CASES = [
    (engine, kind, where)
    for kind in ERRORS
    for where in ("step", "undo")
    for engine in ("step_functions", "bpmn", "dbos", "temporal")
]


@pytest.mark.parametrize(("engine", "kind", "where"), a_part(CASES, 5, name="raised errors"))
def test_a_raised_error_comes_back_as_raised_on_every_engine(engine, kind, where, request):
    local = _saga(kind, [], where).run({}, clock=VirtualClock())
    raised: list = []
    remote = _run_on(engine, request, _saga(kind, raised, where))
    _as_raised(local, remote, raised, where)
    kept = error_record._KEPT.values()  # (a call elsewhere that raised may have left its own)
    assert all(e is not raised[-1] for e in kept)  # (kept while the run was under way, not after)


SEEN: list = []  # what RetryConnectionErrors.decide was given


class RetryConnectionErrors(UndoPolicy):
    """A policy of one's own that tests the error's class (attack29's F2)."""

    def decide(self, attempt, error):
        SEEN.append(error)
        return 0.0 if isinstance(error, ConnectionError) and attempt < 3 else "halt"


def _flaky_undo_saga(raise_, policy) -> Saga:
    def undo_a(state):
        state["tries"] = state.get("tries", 0) + 1
        if state["tries"] == 1:
            raise raise_("throttled")
        state.pop("a")

    return Saga([Step("a", lambda s: s.__setitem__("a", 1), undo_a), Step("b", lambda s: 1 / 0)],
                name="flaky", policy=policy)  # fmt: skip


@pytest.mark.parametrize("engine", ["dbos", "temporal"])
def test_a_policy_that_tests_isinstance_decides_as_in_process(engine, request):
    local = _flaky_undo_saga(ConnectionError, RetryConnectionErrors()).run({}, clock=VirtualClock())
    assert local.status == "rolled_back"
    SEEN.clear()
    remote = _run_on(engine, request, _flaky_undo_saga(ConnectionError, RetryConnectionErrors()))
    same_outcome(local, remote)
    assert [type(e) for e in SEEN] == [ConnectionError]


def _same_named():
    return type("ServiceError", (Exception,), {"__module__": __name__})


Retried, Other = _same_named(), _same_named()  # one name, two classes (botocore's factory)


@pytest.mark.parametrize("engine", ["dbos", "temporal"])
@pytest.mark.parametrize("raised", [Retried, Other], ids=["the class retried", "its namesake"])
def test_two_classes_of_one_name_are_retried_as_in_process(engine, raised, request):
    def saga():
        retry = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0, retry_on=(Retried,))
        return _flaky_undo_saga(raised, Retry(retry))

    local = saga().run({}, clock=VirtualClock())
    assert local.status == ("rolled_back" if raised is Retried else "rollback_incomplete")
    same_outcome(local, _run_on(engine, request, saga()))


def test_a_policy_naming_a_class_dbos_cannot_pickle_runs_as_in_process(dbos_runner, capfd):
    def saga():
        class Local(Exception):  # (no pickle finds it)
            pass

        retry = RetryPolicy(max_attempts=2, initial_delay=0.0, max_delay=0.0, retry_on=(Local,))
        return _flaky_undo_saga(Local, Retry(retry))

    local = saga().run({}, clock=VirtualClock())
    assert local.status == "rolled_back"
    same_outcome(local, dbos_runner.run(saga(), {}))
    assert "Error serializing" not in capfd.readouterr().err


def test_a_policy_of_ones_own_dbos_cannot_pickle_is_refused_in_one_line(dbos_runner, capfd):
    class Local(RetryConnectionErrors):  # (its decide: code DBOS could not resume)
        pass

    state: dict = {}
    with pytest.raises(UnsupportedPolicy, match="cannot pickle this one") as refused:
        dbos_runner.run(_flaky_undo_saga(ConnectionError, Local()), state)
    assert "\n" not in str(refused.value)
    assert state == {}
    assert capfd.readouterr().err == ""


# -- a record read where its error is not kept (another process: a relaunch) ---------------


@pytest.mark.parametrize("kind", list(ERRORS))
def test_a_record_read_elsewhere_gives_a_stand_in_with_the_originals_repr(kind):
    raised = ERRORS[kind]()
    data = json.loads(json.dumps(vars(ErrorRecord.of(raised, "b"))))  # (as an engine keeps it)
    error = ErrorRecord(**data).to_exception()
    assert isinstance(error, RemoteError)
    assert repr(error) == repr(raised)
    assert matches(error, (type(raised),)) and not matches(error, (ConnectionError,))
    assert matches(raised, (exception_type(type_name(type(raised))),))


def test_a_record_read_while_its_run_is_under_way_gives_the_very_exception():
    raised = OSError(28, "No space left on device")
    with keeping():
        adopt("r1")  # (as ``wire.plan_of`` does for the run ``runner.run`` starts)
        data = json.loads(json.dumps(vars(ErrorRecord.of(raised, "b", "r1"))))
        assert ErrorRecord(**data).to_exception() is raised
    assert isinstance(ErrorRecord(**data).to_exception(), RemoteError)  # (the run ended)


def test_runs_that_overlap_without_end_keep_at_most_kept_most_errors(monkeypatch):
    """A process that always has a run under way never empties the table: it is bounded,
    the oldest error read then as after a relaunch (a stand-in with its repr)."""
    monkeypatch.setattr(error_record, "KEPT_MOST", 3)
    left = {f"left:{n}": KeyError(n) for n in range(5)}  # runs whose call raised: over the
    monkeypatch.setattr(error_record, "_KEPT", left)  # bound, all but 3 go at the next keep
    monkeypatch.setattr(error_record, "_RUNS", {})
    with keeping():
        adopt("r1")
        records = [ErrorRecord.of(KeyError(n), "b", "r1") for n in range(5)]
        assert len(error_record._KEPT) == 3
        stand_ins = [isinstance(r.to_exception(), RemoteError) for r in records]
        assert stand_ins == [True, True, False, False, False]
        assert repr(records[0].to_exception()) == repr(KeyError(0))


# -- one rule per run: whatever else runs in the process (attack30's F2) --------------------


def _read_started(engine, request, saga):
    """``saga`` started with ``start_saga`` and its outcome read, in this process."""
    if engine == "dbos":
        return request.getfixturevalue("dbos_runner").start_saga(saga, {}).outcome()

    async def read(runner):
        return await (await runner.start_saga(saga, {})).outcome()

    return request.getfixturevalue("on_temporal")(read)


@pytest.mark.parametrize("engine", ["dbos", "temporal"])
def test_a_run_start_saga_started_reads_its_errors_alike_whatever_else_runs(engine, request):
    """A run ``start_saga`` started keeps no error here, whether or not another thread's
    ``runner.run`` is under way: its ``decide`` is given the stand-in both times, and decides
    alike (before, beside a run it got the very ConnectionError and rolled back; alone, a
    RemoteError and halted). So a replay of it decides as its first execution did."""

    def started():
        SEEN.clear()
        outcome = _read_started(
            engine, request, _flaky_undo_saga(ConnectionError, RetryConnectionErrors())
        )
        return outcome.status, [type(e) for e in SEEN], type(outcome.error)

    before = set(error_record._KEPT)
    alone = started()
    begun, hold = threading.Event(), threading.Event()
    beside = Saga([Step("slow", lambda s: begun.set() or hold.wait(60), None)], name="beside")
    other = threading.Thread(target=_run_on, args=(engine, request, beside))
    other.start()
    try:
        assert begun.wait(60)
        assert started() == alone == ("halted", [RemoteError], RemoteError)
    finally:
        hold.set()
        other.join(60)
    assert set(error_record._KEPT) <= before  # (nothing of theirs kept after)


def test_only_the_runs_a_keeping_call_started_keep_their_errors():
    """``keeping`` is per call (its thread, or its task): another thread's call makes no
    run of this one keep, and a run keeps only while the call that started it lasts."""
    adopted, hold, done = threading.Event(), threading.Event(), threading.Event()

    def run_elsewhere():
        with keeping():
            adopt("theirs")
            adopted.set()
            hold.wait(60)
        done.set()

    threading.Thread(target=run_elsewhere).start()
    try:
        assert adopted.wait(60)
        raised = KeyError("k")
        adopt("mine")  # (no call under way here: it does not keep)
        assert isinstance(ErrorRecord.of(raised, "b", "mine").to_exception(), RemoteError)
        assert isinstance(ErrorRecord.of(raised, "b").to_exception(), RemoteError)
        theirs = ErrorRecord.of(raised, "b", "theirs")
        assert theirs.to_exception() is raised
    finally:
        hold.set()
    assert done.wait(60)
    assert isinstance(theirs.to_exception(), RemoteError) and theirs.live not in error_record._KEPT


@pytest.mark.skipif(not SOAK, reason="a Temporal server of its own, 1.7 CPU s: make soak")
def test_a_workflow_replayed_from_its_start_decides_as_its_first_execution(monkeypatch):
    """Temporal with no workflow cache replays a run's history from its start at each of
    its workflow tasks (as after a cache eviction, or a worker restart): the run
    ``runner.run`` started is given the very ConnectionError (kept while the call lasts), the
    run ``start_saga`` started a stand-in; the policy is asked once, in a local activity, its
    answer recorded, so no replay decides otherwise than the first execution (a
    nondeterminism would fail the task) nor asks it again."""
    import asyncio
    import functools

    import rollback_lessons.runners.temporal.runner as temporal

    monkeypatch.setattr(
        temporal, "Worker", functools.partial(temporal.Worker, max_cached_workflows=0)
    )

    async def scenario():
        async with await temporal.TemporalRunner.start() as runner:
            SEEN.clear()
            run = await runner.run(_flaky_undo_saga(ConnectionError, RetryConnectionErrors()), {})
            seen_by_run = [type(e) for e in SEEN]
            SEEN.clear()
            handle = await runner.start_saga(
                _flaky_undo_saga(ConnectionError, RetryConnectionErrors()), {}
            )
            started = await handle.outcome()
            return (run.status, seen_by_run), (started.status, [type(e) for e in SEEN])

    (ran, seen_by_run), started = asyncio.run(scenario())
    assert ran == "rolled_back"  # (asked once, in a local activity, its answer recorded: a
    assert seen_by_run == [ConnectionError]  # replay never asks again, f4e16f19)
    assert started[0] == "halted" and set(started[1]) == {RemoteError}


# -- an error however odd: its str raises anything, a class's module not UTF-8 (attack32) ---


class StrExits(Exception):
    def __str__(self) -> str:
        raise SystemExit(3)


class StrInterrupts(TimeoutError):
    def __str__(self) -> str:
        raise KeyboardInterrupt


OddModule = type("Late", (TimeoutError,), {"__module__": "m\udcff"})  # (``os.fsdecode``'s)

ODD = {  # (the error ``b`` raises; is ``b`` a pivot)
    "a __str__ that raises SystemExit": (lambda: StrExits("x"), False),
    "a pivot's __str__ that raises KeyboardInterrupt": (lambda: StrInterrupts("x"), True),
    "a pivot's class of a module with a lone surrogate": (lambda: OddModule("late"), True),
}


def _odd_saga(kind: str) -> Saga:
    make, pivot = ODD[kind]

    def b(state):
        raise make()

    return Saga([Step("a", lambda s: s.__setitem__("a", 1), lambda s: s.pop("a")),
                 Step("b", b, kind="pivot" if pivot else "compensable")], name="odd")  # fmt: skip


ODD_CASES = [(e, k) for k in ODD for e in ("step_functions", "bpmn", "dbos", "temporal")]


@pytest.mark.parametrize(("engine", "kind"), a_part(ODD_CASES, 3, name="odd errors"))
def test_an_odd_error_is_told_as_saga_run_tells_it_and_the_runner_goes_on(engine, kind, request):
    """attack32 F3, F4: a ``__str__`` that raises SystemExit (or KeyboardInterrupt) made
    Temporal's ``runner.run`` raise it, and every later saga on that runner never returned;
    a pivot's class whose ``__module__`` has a lone surrogate never returned there, and on
    Step Functions was not caught as the timeout it is (``HistoryDiverged``). Each ends as
    in process (``saga.run`` never calls ``str``), and the same runner runs the next saga."""
    local = _odd_saga(kind).run({}, clock=VirtualClock())
    assert local.status == ("halted" if ODD[kind][1] else "rolled_back")
    same_outcome(local, _run_on(engine, request, _odd_saga(kind), wait=60))
    plain = _saga("KeyError", [], "step")
    same_outcome(plain.run({}, clock=VirtualClock()), _run_on(engine, request, plain, wait=60))


@pytest.mark.parametrize("odd", [StrExits("x"), StrInterrupts("x")], ids=["exit", "interrupt"])
def test_a_record_whose_str_raises_anything_is_made(odd):
    """``events.said``, the message's one rule: told by its type as ``describe`` tells one
    whose ``repr`` fails."""
    record = ErrorRecord.of(odd, "b")
    assert record.message == f"<{type(odd).__qualname__} (its message failed)>"
    assert record.text == repr(odd)
