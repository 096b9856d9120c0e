"""Step Functions and BPMN under an interrupt, a timeout and bad input (issue 25, attack22
M5, M6, L3, L4): a Ctrl-C or ``sys.exit`` in a step's action is that step's failure for
good, undone then re-raised, as ``saga.run`` does; one while the runner serves stops the
execution, and so does the timeout, each naming what is left in effect; bad input is
refused before anything starts; an interrupted ``start()`` leaves no moto mock on."""

import math
import sys
import time
import types
from functools import partial

import pytest

from rollback_lessons import RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.clock import SystemClock
from rollback_lessons.errors import InvalidPipelineError
from rollback_lessons.runners.bpmn import run_explicit
from rollback_lessons.runners.stepfunctions import StepFunctionsError, StepFunctionsRunner
from rollback_lessons.runners.stepfunctions.live import TimedOut


@pytest.fixture(scope="module")
def runner():
    with StepFunctionsRunner.start() as runner:
        yield runner


def _abc(world, cut=None, slow=None, retried=False):
    """a, b, c, each appending to ``world``; ``cut``: b raises it; ``slow``: b sleeps."""

    def act(name):
        def action(state):
            world.append(f"do {name}")
            if name == "b" and slow is not None:
                time.sleep(slow)
            if name == "b" and cut is not None:
                raise cut()

        return action

    def undo(name):
        return lambda state: world.append(f"undo {name}")

    retry = RetryPolicy(max_attempts=2, initial_delay=1) if retried else None
    steps = [Step(n, act(n), undo(n), retry=retry if n == "b" else None) for n in "abc"]
    return Saga(steps, name="kx")


def _exit():
    return SystemExit(3)


ENGINES = {
    "bpmn list": lambda runner, saga: run_explicit(saga, {}),
    "bpmn graph": lambda runner, saga: run_explicit(saga, {}, undo_order="reverse_start"),
    "sf list": lambda runner, saga: runner.run(saga, {}, timeout=30),
    "sf graph": lambda runner, saga: runner.run(saga, {}, undo_order="reverse_start", timeout=30),
}


def _raised(run):
    try:
        run()
    except BaseException as exc:  # (the point: what is raised, and its notes)
        return exc
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cut", [KeyboardInterrupt, _exit], ids=["ctrl-c", "sys.exit"])
def test_a_ctrl_c_or_exit_in_an_action_is_undone_then_raised_as_in_process(runner, engine, cut):
    local, remote = [], []
    expected = _raised(lambda: _abc(local, cut).run({}))
    got = _raised(lambda: ENGINES[engine](runner, _abc(remote, cut)))
    assert type(got) is type(expected)
    assert remote == local == ["do a", "do b", "undo a"]  # a undone, b cut short: leaked
    said = ["rollback: not undone (no undo logged for it): b"]
    assert got.__notes__ == expected.__notes__ == said
    if engine.startswith("sf"):  # the execution ended (the undos ran there)
        status = runner.sfn.describe_execution(executionArn=_execution(runner, remote))
        assert status["status"] == "FAILED"


@pytest.mark.parametrize("engine", ["sf list", "sf graph"])
def test_a_ctrl_c_in_a_retried_action_is_never_tried_again(runner, engine):
    local, remote = [], []
    expected = _raised(lambda: _abc(local, KeyboardInterrupt, retried=True).run({}))
    got = _raised(lambda: ENGINES[engine](runner, _abc(remote, KeyboardInterrupt, retried=True)))
    assert type(got) is type(expected) is KeyboardInterrupt
    assert remote == local == ["do a", "do b", "undo a"]


STOPPED = ("was stopped", "was told to stop (it still says RUNNING)")
"""How the runner finds the execution once it stopped it (moto 5.2.5 does not always end an
execution stopped between two states; AWS's stop is final)."""


def _execution(runner, world):
    """The newest execution of the runner's state machines (the run just made)."""
    listed = [runner.sfn.list_executions(stateMachineArn=arn) for arn in runner._machines.values()]
    executions = [e for page in listed for e in page["executions"]]
    return max(executions, key=lambda e: e["startDate"])["executionArn"]


def _stopped_when(runner, monkeypatch, when, saga, graph=False):
    """``saga`` run on ``runner`` (the graph form with ``graph``), a Ctrl-C landing in the
    worker's wait for a task once ``when()`` holds: what it raised."""
    receive = runner.receive

    def interrupted(wait=0):
        if when():
            raise KeyboardInterrupt
        return receive(wait)

    monkeypatch.setattr(runner, "receive", interrupted)
    options = {"undo_order": "reverse_start"} if graph else {}
    try:
        return _raised(lambda: runner.run(saga, {}, timeout=30, **options))
    finally:
        monkeypatch.setattr(runner, "receive", receive)


@pytest.fixture
def stops(runner, monkeypatch):
    """The executions the runner asks to stop (moto 5.2.5 cannot stop a graph form's
    execution between two states: it still says RUNNING; AWS's stop is final)."""
    asked = []
    stop = runner.sfn.stop_execution

    def stopping(**kwargs):
        asked.append(kwargs["executionArn"])
        return stop(**kwargs)

    monkeypatch.setattr(runner.sfn, "stop_execution", stopping)
    return asked


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_a_ctrl_c_while_the_worker_waits_stops_the_execution_and_says_what_is_in_effect(
    runner, graph, monkeypatch, stops
):
    world = []
    # (the Ctrl-C: b done, its answer sent: the worker waits for c's task)
    got = _stopped_when(runner, monkeypatch, lambda: "do b" in world, _abc(world), graph)
    assert type(got) is KeyboardInterrupt
    assert world == ["do a", "do b"]
    assert set(stops) == {_execution(runner, world)}  # never left waiting for a worker
    assert got.__notes__ in (
        [f"Step Functions: the execution {how}; done, not undone: a, b"] for how in STOPPED
    )


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_the_timeout_stops_the_execution_and_names_what_is_in_effect(
    runner, graph, stops, monkeypatch
):
    world = []
    options = {"undo_order": "reverse_start"} if graph else {}
    # The runner's clock stands still until b's action has run, then runs on an hour later:
    # b ends once the time is out, however long moto takes to start the execution and a
    # (a b sleeping past a real second raced the start on a busy machine).
    still = time.monotonic()
    clock = types.SimpleNamespace(
        monotonic=lambda: time.monotonic() + 3600 if "do b" in world else still, sleep=time.sleep
    )
    for name in (StepFunctionsRunner.__module__, "rollback_lessons.runners.stepfunctions.live"):
        monkeypatch.setattr(sys.modules[name], "time", clock)  # (the list form; the graph's)
    with pytest.raises(StepFunctionsError) as raised:
        runner.run(_abc(world), {}, timeout=1, **options)
    assert world == ["do a", "do b"]
    assert str(raised.value) == (
        "the execution did not end within 1 s: it is stopped where it was; done, not undone: a, b"
    )
    assert set(stops) == {_execution(runner, world)}
    told = ["Step Functions: the execution was told to stop (it still says RUNNING)"]
    assert getattr(raised.value, "__notes__", []) in ([], told)


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_the_timeout_in_a_rollback_ends_it_there_with_saga_runs_words(
    runner, graph, stops, monkeypatch
):
    """attack151 F2: the timeout passing as b's undo waited to retry raised a TimedOut
    without ``saga.run``'s words (a Ctrl-C there had them), and "it is stopped, nothing
    undone" beside c's undo, done. Now as any stop once the rollback began."""
    world = []
    retry = UndoPolicy(RetryPolicy(max_attempts=9, initial_delay=1), then="dead_letter")
    steps = [*_abc(world).steps, Step("F", lambda s: (_ for _ in ()).throw(ValueError("F")))]
    steps[1] = Step("b", lambda s: world.append("do b"), lambda s: (world.append("undo b"), 1 / 0))
    still = time.monotonic()  # (the clock runs on an hour once b's undo failed: in its wait)
    clock = types.SimpleNamespace(
        monotonic=lambda: time.monotonic() + 3600 if "undo b" in world else still, sleep=time.sleep
    )
    for name in (StepFunctionsRunner.__module__, "rollback_lessons.runners.stepfunctions.live"):
        monkeypatch.setattr(sys.modules[name], "time", clock)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(
        lambda: runner.run(Saga(steps, name="late", policy=retry), {}, timeout=1, **options)
    )
    assert type(got) is TimedOut and world[-2:] == ["undo c", "undo b"]
    assert str(got) == ("the execution did not end within 1 s: it is stopped where it was; "
                        "done, not undone: a, b")  # fmt: skip
    assert got.__notes__[-1] == (
        "rollback: rollback interrupted by TimedOut('the execution did not end within 1 s') "
        "as the undo of b waited to retry; not known to be undone: b, a"
    )
    assert set(stops) == {_execution(runner, world)}


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_the_timeout_passing_once_the_work_is_done_gives_the_outcome(
    runner, graph, stops, monkeypatch
):
    """attack167 F3, attack171 F1: the timeout passing after the last undo, before the
    execution's end was read (the list form) or before the graph form's machine sent it its
    end state: ``TimedOut``, "it is stopped where it was", and the saga's ``rolled_back``
    lost. An execution past its last task is given a moment more to end. (The runner's clock
    stands still until the last undo ran, then runs on just past the timeout.)"""
    world = []
    steps = [*_abc(world).steps, Step("F", lambda s: (_ for _ in ()).throw(ValueError("F")))]
    still, switched = time.monotonic(), []

    def now() -> float:
        if "undo a" not in world:
            return still
        switched.append(switched[0] if switched else time.monotonic())
        return still + 1.1 + time.monotonic() - switched[0]

    clock = types.SimpleNamespace(monotonic=now, sleep=time.sleep)
    for name in (StepFunctionsRunner.__module__, "rollback_lessons.runners.stepfunctions.live"):
        monkeypatch.setattr(sys.modules[name], "time", clock)
    options = {"undo_order": "reverse_start"} if graph else {}
    outcome = runner.run(Saga(steps, name="done-in-time"), {}, timeout=1, **options)
    assert outcome.status.value == "rolled_back" and outcome.notes == () and stops == []
    assert world[-3:] == ["undo c", "undo b", "undo a"]


@pytest.mark.parametrize(
    "options, error, said",
    [
        ({"timeout": "5"}, InvalidPipelineError, "timeout must be a finite number of seconds"),
        ({"timeout": -1}, InvalidPipelineError, "timeout must be a finite number of seconds"),
        ({"timeout": math.nan}, InvalidPipelineError, "timeout must be a finite number"),
        ({"state": [1, 2]}, TypeError, "state must be a mutable mapping, got list"),
    ],
)
def test_bad_input_is_refused_with_saga_runs_words_before_an_execution_starts(
    runner, options, error, said
):
    world = []
    state = options.pop("state", {})
    executions = sum(len(runner.sfn.list_executions(stateMachineArn=arn)["executions"])
                     for arn in runner._machines.values())  # fmt: skip
    with pytest.raises(error, match=said):
        runner.run(_abc(world), state, **options)
    assert world == []
    assert executions == sum(len(runner.sfn.list_executions(stateMachineArn=arn)["executions"])
                             for arn in runner._machines.values())  # fmt: skip
    with pytest.raises(TypeError, match="state must be a mutable mapping, got list"):
        run_explicit(_abc(world), [1, 2])  # type: ignore[arg-type]
    assert world == []
    with pytest.raises(TypeError, match="state must be a mutable mapping, got list"):
        _abc(world).run([1, 2])  # type: ignore[arg-type]  (the words are saga.run's)


def test_an_interrupted_start_leaves_no_moto_mock_on(monkeypatch):
    import boto3
    from moto.core.models import MockAWS

    made = []

    def client(*args, **kwargs):
        made.append(args)
        if len(made) == 2:  # as the second client (sqs) is made: a Ctrl-C
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = boto3.client
    mocks = MockAWS._nested_count  # (the module's runner may hold one)
    monkeypatch.setattr(boto3, "client", client)
    kept = _raised(StepFunctionsRunner.start)  # kept, as a notebook keeps its last error
    assert type(kept) is KeyboardInterrupt
    assert len(made) == 2
    assert MockAWS._nested_count == mocks  # its mock ended: the user's boto3 calls go out


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_a_stop_after_a_step_failed_after_its_effect_names_that_step(runner, graph, monkeypatch):
    """attack25 F1: b's undo is logged before it; b charges, then times out; a Ctrl-C comes
    right after its failure was sent. b's effect is in effect and owed: the note names it
    (the machine says what is owed), as ``saga.run``'s rollback would have undone it. The
    rollback had begun (b's undo asked for, never called): it ends there, as in process,
    with ``saga.run``'s words, in both forms (before, the graph form said "done, not
    undone: a; may have happened, not undone: b" and the list form, since the stop told the
    rollback, this)."""
    world = []

    def b(state):
        world.append("do b")
        raise TimeoutError("b timed out after charging")

    saga = Saga(
        [
            Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
            Step("b", b, lambda s: world.append("undo b"), register="before"),
            Step("c", lambda s: world.append("do c"), lambda s: world.append("undo c")),
        ],
        name="f1",
    )
    real = runner.sfn.send_task_failure

    def then_ctrl_c(**kwargs):
        real(**kwargs)
        raise KeyboardInterrupt  # (a Ctrl-C right after the request returned)

    monkeypatch.setattr(runner.sfn, "send_task_failure", then_ctrl_c)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(lambda: runner.run(saga, {}, timeout=30, **options))
    monkeypatch.setattr(runner.sfn, "send_task_failure", real)
    assert type(got) is KeyboardInterrupt
    assert world == ["do a", "do b"]
    assert got.__notes__ in (
        [f"Step Functions: the execution {how}", "rollback: rollback interrupted by "
         "KeyboardInterrupt before the undo of b began; not known to be undone: b, a"]
        for how in STOPPED
    )  # fmt: skip


def _undo_cut(world, cut, on_event=None):
    """a, b, c, d; d fails; c's undo raises ``cut`` (a BaseException)."""

    def act(name):
        def action(state):
            world.append(f"do {name}")
            if name == "d":
                raise RuntimeError("d fails")

        return action

    def undo(name):
        def u(state):
            world.append(f"undo {name}")
            if name == "c" and cut is not None:
                raise cut()

        return u

    return Saga([Step(n, act(n), undo(n)) for n in "abcd"], name="uk", on_event=on_event)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cut", [KeyboardInterrupt, _exit], ids=["ctrl-c", "sys.exit"])
def test_a_ctrl_c_in_an_undo_is_raised_with_what_is_left_as_in_process(runner, engine, cut):
    """attack25 F2: BPMN's graph form raised it with no note; harden50: Step Functions said
    "done, not undone: c, ..." of the undo cut short, and its list form's observers heard
    no event. Now on every engine as ``saga.run``: the rollback ends there, the note names
    what is not known to be undone, the observers hear the same events (Step Functions
    stops the execution: its note says so first)."""
    local, remote, heard, told = [], [], [], []
    expected = _raised(lambda: _undo_cut(local, cut, lambda e: heard.append(e.kind)).run({}))
    saga = _undo_cut(remote, cut, lambda e: told.append(e.kind))
    got = _raised(lambda: ENGINES[engine](runner, saga))
    assert type(got) is type(expected)
    assert remote == local == ["do a", "do b", "do c", "do d", "undo c"]
    note = "rollback interrupted by {} during the undo of c; not known to be undone: c, b, a"
    assert expected.__notes__ == ["rollback: " + note.format(type(expected).__name__)]
    said = got.__notes__
    if engine.startswith("sf"):  # "...was stopped" (moto may say "told to stop"), then
        assert said[0].startswith("Step Functions: the execution ")  # saga.run's notes
        said = said[1:]  # (each its own: attack143 F3)
    assert said == expected.__notes__
    assert told == heard and heard[-2:] == ["undo", "rollback_done"]


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_bpmn_a_ctrl_c_in_the_engines_code_during_the_rollback_says_what_is_left(
    monkeypatch, graph
):
    """In SpiffWorkflow's code between two undo tasks: the rollback ends there, b's undo
    never called and never told (attack151 F1: both forms told ``undo b``)."""
    from SpiffWorkflow.task import Task

    world, told = [], []
    run = Task.run

    def cut_after_undo_c(self):
        if "undo c" in world:  # c's undo done: SpiffWorkflow is between two undo tasks
            raise KeyboardInterrupt  # (not from a script: eval's would mark it unhandled)
        return run(self)

    monkeypatch.setattr(Task, "run", cut_after_undo_c)
    saga = _undo_cut(world, None, lambda e: told.append((e.kind, e.step)))  # (c's undo: fine)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(lambda: run_explicit(saga, {}, **options))
    assert type(got) is KeyboardInterrupt
    assert world == ["do a", "do b", "do c", "do d", "undo c"]
    assert got.__notes__ == [
        "rollback: rollback interrupted by KeyboardInterrupt in the BPMN engine's own code, "
        "before the undo of b; not known to be undone: b, a"
    ]
    assert told[-4:] == [("rollback_start", None), ("undo", "c"), ("undo_done", "c"),
                         ("rollback_done", None)]  # fmt: skip


def test_bpmn_graph_a_ctrl_c_as_an_undo_waits_to_retry_says_so(monkeypatch):
    """attack158 F4: a Ctrl-C in the wait before b's undo is tried again was noted "in the
    BPMN engine's own code, before the undo of b" (b's undo had run once and failed);
    ``saga.run`` says where it was: "as the undo of b waited to retry" (attack178: once
    "during the undo of b", though none ran). The same words now."""
    from rollback_lessons.runners.bpmn import graph

    def ctrl_c(seconds):
        raise KeyboardInterrupt

    _, *rest = graph.GraphHost.__init__.__defaults__
    monkeypatch.setattr(graph.GraphHost.__init__, "__defaults__", (ctrl_c, *rest))
    broke = []

    def undo_b(state):
        broke.append(1)
        raise ConnectionError("the refund service is down")

    steps = [Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None, undo_b),
             Step("c", lambda s: (_ for _ in ()).throw(ValueError("c")))]  # fmt: skip
    retry = UndoPolicy(RetryPolicy(max_attempts=2, initial_delay=1), then="dead_letter")
    got = _raised(lambda: run_explicit(Saga(steps, name="w", policy=retry), {},
                                       undo_order="reverse_start"))  # fmt: skip
    assert type(got) is KeyboardInterrupt and broke == [1]
    assert got.__notes__ == [
        "rollback: rollback interrupted by KeyboardInterrupt as the undo of b waited to retry; "
        "not known to be undone: b, a"
    ]


def test_two_sagas_at_once_on_one_runner_each_get_their_own_tasks(runner):
    """attack25 F3: two threads ran two sagas on one runner; each run took the other's task
    messages from the shared queue and dropped them: both hung. Now each run's tasks are
    handed to it. Both runs are inside step a at once (a barrier), so they overlap."""
    import threading

    barrier = threading.Barrier(2, timeout=30)
    worlds = {"x": [], "y": []}
    results = {}

    def saga(name):
        world = worlds[name]

        def a(state):
            world.append("do a")
            barrier.wait()

        steps = [Step("a", a, lambda s: world.append("undo a")), Step("b", lambda s: None)]
        return Saga(steps, name=name)

    def run(name, options):
        try:
            results[name] = runner.run(saga(name), {}, timeout=30, inject={"b": "fail"},
                                       **options).status  # fmt: skip
        except BaseException as exc:  # (the point: each run ends, as in process)
            results[name] = exc

    graph = {"undo_order": "reverse_start"}
    threads = [threading.Thread(target=run, args=(n, o)) for n, o in (("x", {}), ("y", graph))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {"x": "rolled_back", "y": "rolled_back"}
    assert worlds["x"] == worlds["y"] == ["do a", "undo a"]


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_step_functions_gone_mid_run_is_one_step_functions_error_line(runner, graph, monkeypatch):
    """attack25 F7: the endpoint gone mid-run raised botocore's EndpointConnectionError;
    now the package's StepFunctionsError, one line, its note (what is in effect) kept."""
    from botocore.exceptions import EndpointConnectionError

    world = []

    def gone(**kwargs):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")

    real = runner.sfn.send_task_success

    def answering(**kwargs):
        return gone() if "do b" in world else real(**kwargs)

    monkeypatch.setattr(runner.sfn, "send_task_success", answering)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(lambda: runner.run(_abc(world), {}, timeout=30, **options))
    monkeypatch.setattr(runner.sfn, "send_task_success", real)
    assert type(got) is StepFunctionsError
    assert str(got) == (
        "Step Functions (moto) stopped answering: Could not connect to the endpoint URL: "
        '"http://127.0.0.1:9/"'
    )
    assert world == ["do a", "do b"]
    assert got.__notes__ in (
        [f"Step Functions: the execution {how}; done, not undone: a, b"] for how in STOPPED
    )


@pytest.mark.parametrize("at", ["undo_failed", "undo 2"])
def test_a_ctrl_c_in_an_observer_of_a_retried_undo_ends_the_graph_form_as_saga_run(runner, at):
    """attack37 F7: an observer's Ctrl-C at a retried undo's ``undo_failed`` (or at its second
    attempt's ``undo``) ended the machine's rollback, yet the undo state's Retry handed the
    task out again: the runner waited for ``What next`` and the execution for that retry,
    for ever. The retry is answered SagaStopping now: as ``saga.run``, at once."""
    from rollback_lessons import UndoPolicy

    def make(world):
        tries = []

        def undo_b(state):
            tries.append(1)
            if len(tries) == 1:
                raise ConnectionError("b's undo busy")
            world.append("undo b")

        def listen(e):
            kind, attempt = [*at.split(), "1"][:2]
            if (e.kind, e.step) == (kind, "b") and e.details.get("attempt", 1) == int(attempt):
                raise KeyboardInterrupt(f"at {at}")

        def refuses(state):
            raise ValueError("c refused")

        return Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                     Step("b", lambda s: world.append("do b"), undo_b), Step("c", refuses)],
                    name="retried", on_event=listen)  # fmt: skip

    options = {"policy": UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.02)),
               "undo_order": "reverse_start"}  # fmt: skip
    local, remote = [], []
    expected = _raised(lambda: make(local).run({}, **options))
    got = _raised(lambda: runner.run(make(remote), {}, timeout=30, **options))
    assert type(got) is type(expected) is KeyboardInterrupt, got
    assert got.__notes__ == expected.__notes__ and remote == local == ["do a", "do b"]


def _on(engine, runner, saga):
    return saga.run({}) if engine == "in process" else ENGINES[engine](runner, saga)


@pytest.mark.parametrize("engine", ["in process", *ENGINES])
@pytest.mark.parametrize("cut", [KeyboardInterrupt, _exit], ids=["ctrl-c", "sys.exit"])
def test_a_ctrl_c_cutting_the_pivot_is_never_compensated_across(runner, engine, cut):
    """attack142 F2: on Step Functions (list) a pivot whose action raised a Ctrl-C or
    ``sys.exit`` (in doubt: it may have happened) was answered by the error's name, which its
    Catch sent into the undos: a undone across the pivot, then HistoryDiverged, the Ctrl-C
    lost. As in process: halted, nothing undone, the interrupt re-raised."""
    world: list[str] = []

    def pivot(state):
        world.append("do P")
        raise cut()

    steps = [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
             Step("P", pivot, kind="pivot")]  # fmt: skip
    saga = Saga(steps, name="piv")
    run = partial(_on, engine, runner, saga)
    raised = _raised(run)
    assert isinstance(raised, KeyboardInterrupt | SystemExit), raised
    assert world == ["do a", "do P"]
    assert "rollback halted; left for a person: a" in raised.__notes__


@pytest.mark.parametrize("engine", ["in process", *ENGINES])
def test_a_dead_letter_before_an_undo_s_ctrl_c_is_named_on_every_engine(runner, engine):
    """attack142 F1: on Step Functions the note of b's dead letter was dropped when a's undo
    then raised a Ctrl-C: b's effect, still in the world, named nowhere."""

    def undo_b(state):
        raise RuntimeError("undo b broke")

    def undo_a(state):
        raise KeyboardInterrupt

    def c(state):
        raise ValueError("c fails")

    steps = [Step("a", lambda s: None, undo_a), Step("b", lambda s: None, undo_b), Step("c", c)]
    saga = Saga(steps, name="dl")
    run = partial(_on, engine, runner, saga)
    raised = _raised(run)
    assert isinstance(raised, KeyboardInterrupt), raised
    assert [n for n in raised.__notes__ if not n.startswith("Step Functions:")] == [
        "rollback: undo of b: RuntimeError('undo b broke') after 1 attempt (dead letter)",
        "rollback: rollback interrupted by KeyboardInterrupt during the undo of a; not known "
        "to be undone: a",
    ]  # (each its own note, as saga.run gives them: attack143 F3)


@pytest.mark.parametrize("engine", ["in process", *ENGINES])
def test_a_step_no_undo_covers_is_named_before_an_undo_s_ctrl_c_on_every_engine(runner, engine):
    """attack143 F2: b (no undo) failed after its effect, then a's undo raised a Ctrl-C: Step
    Functions never said b's effect stands."""
    from rollback_lessons.errors import MayHaveRun

    def b(state):
        raise MayHaveRun("b failed after its effect")

    def undo_a(state):
        raise KeyboardInterrupt

    saga = Saga([Step("a", lambda s: None, undo_a), Step("b", b)], name="lk")
    raised = _raised(partial(_on, engine, runner, saga))
    assert isinstance(raised, KeyboardInterrupt), raised
    assert "rollback: not undone (no undo logged for it): b" in raised.__notes__


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("shape", ["first wait", "second wait", "after c's retry"])
def test_a_ctrl_c_as_an_undo_waits_to_retry_ends_the_rollback_as_in_process(
    runner, graph, shape, monkeypatch
):
    """attack146: a Ctrl-C while b's failed undo waited for its retry. F1 (graph form): the
    observer heard an ``undo`` of b for the attempt never begun (told as its wait began), no
    ``rollback_done``; F2 (list form): it heard nothing at all, and the notes were not
    saga.run's. attack148 F1: the list form placed the stop at the rollback's first wait
    (b's second attempt never told; after c's undo retried, the note named c). Now both
    tell saga.run's events and notes, after the line on the stop."""
    cut_after = 2 if shape == "second wait" else 1  # (b's failed attempts before the Ctrl-C)

    def saga(world, events):
        def broken(name, fails):
            def undo(state):
                world.append(f"undo {name}")
                if world.count(f"undo {name}") <= fails:
                    raise RuntimeError(f"undo {name} broke")

            return undo

        steps = [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                 Step("b", lambda s: world.append("do b"), broken("b", 9)),
                 Step("c", lambda s: world.append("do c"),
                      broken("c", 1 if shape == "after c's retry" else 0)),
                 Step("F", lambda s: (_ for _ in ()).throw(ValueError("F failed")))]  # fmt: skip
        retry = RetryPolicy(max_attempts=3, initial_delay=1.5, max_delay=1.5)
        return Saga(steps, name="waitcut", policy=UndoPolicy(retry, then="dead_letter"),
                    on_event=lambda ev: events.append((ev.kind, ev.step)))  # fmt: skip

    class CutInTheWait(SystemClock):  # (saga.run's wait, as the SIGINT lands)
        def sleep(self, seconds):
            if world.count("undo b") >= cut_after:
                raise KeyboardInterrupt

    world, events = [], []
    local = _raised(lambda: saga(world, events).run({}, clock=CutInTheWait()))
    done = list(world)
    assert type(local) is KeyboardInterrupt and done.count("undo b") == cut_after
    told, said = list(events), local.__notes__
    assert told[-3:] == [("undo", "b"), ("undo_failed", "b"), ("rollback_done", None)]
    assert "as the undo of b waited to retry" in said[-1]  # (none runs: attack178 F1)
    world.clear(), events.clear()
    # (the Ctrl-C: the execution waits to retry b's undo)
    got = _stopped_when(
        runner, monkeypatch, lambda: world.count("undo b") >= cut_after, saga(world, events), graph
    )
    assert type(got) is KeyboardInterrupt and world == done
    assert events == told
    assert got.__notes__[0] in [f"Step Functions: the execution {how}" for how in STOPPED]
    assert got.__notes__[1:] == said


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_a_stop_as_a_step_waits_to_retry_tells_the_events_so_far_on_both_forms(
    runner, graph, monkeypatch
):
    """attack148 F2: a Ctrl-C as a step waited to retry stops the execution, nothing undone
    (README); the graph form's observers had heard each event live, the list form's none."""
    world, events = [], []
    tries = []

    def flaky(state):
        tries.append(1)
        world.append("do R")
        if len(tries) == 1:
            raise ValueError("R failed once")

    steps = [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
             Step("R", flaky, lambda s: None, retry=RetryPolicy(max_attempts=3, initial_delay=1.5)),
             Step("c", lambda s: world.append("do c"))]  # fmt: skip
    saga = Saga(steps, name="fwdwait", on_event=lambda ev: events.append((ev.kind, ev.step)))
    # (the Ctrl-C: R's first attempt failed: the execution waits to retry it)
    got = _stopped_when(runner, monkeypatch, lambda: tries, saga, graph)
    assert type(got) is KeyboardInterrupt and world == ["do a", "do R"]
    assert events == [("step_start", "a"), ("step_done", "a"), ("undo_registered", "a"),
                      ("step_start", "R"), ("step_retry", "R")]  # fmt: skip


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_a_stop_between_steps_tells_no_start_of_a_step_never_begun(runner, graph, monkeypatch):
    """attack150 F1: a Ctrl-C as the worker waited for c's task (b done): the list form told
    a ``step_start`` of c, never begun (the replay had asked for it); the graph form none."""
    world, events = [], []
    saga = _abc(world)
    saga = Saga(saga.steps, name="kx", on_event=lambda ev: events.append((ev.kind, ev.step)))
    got = _stopped_when(runner, monkeypatch, lambda: "do b" in world, saga, graph)
    assert type(got) is KeyboardInterrupt and world == ["do a", "do b"]
    assert events == [(kind, s) for s in "ab" for kind in ("step_start", "step_done",
                                                         "undo_registered")]  # fmt: skip


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("after", ["do F", "undo c"])
def test_a_stop_as_an_undo_is_handed_out_tells_no_undo_never_called(
    runner, graph, after, monkeypatch
):
    """attack150 (noted): a Ctrl-C as the worker waited for an undo's task (F failed, or c
    undone): both forms told ``undo`` of the next undo, never called (the machine told it as
    it asked for it). Told as its call begins now: the rollback ends there, as in process,
    ``rollback_done`` told, the notes ``saga.run``'s."""
    world, events = [], []

    def failed(state):
        world.append("do F")
        raise ValueError("F failed")

    steps = [*_abc(world).steps, Step("F", failed)]
    saga = Saga(steps, name="handed", on_event=lambda ev: events.append((ev.kind, ev.step)))
    got = _stopped_when(runner, monkeypatch, lambda: after in world, saga, graph)
    undone = ["undo c"] if after == "undo c" else []
    assert type(got) is KeyboardInterrupt and world == ["do a", "do b", "do c", "do F", *undone]
    told = [("undo", "c"), ("undo_done", "c")] if undone else []
    assert events[-3 - len(told) :] == [("pipeline_failed", "F"), ("rollback_start", None),
                                        *told, ("rollback_done", None)]  # fmt: skip
    first, left = ("b", "b, a") if undone else ("c", "c, b, a")
    assert got.__notes__[0] in [f"Step Functions: the execution {how}" for how in STOPPED]
    assert got.__notes__[1:] == [
        f"rollback: rollback interrupted by KeyboardInterrupt before "
        f"the undo of {first} began; not known to be undone: {left}"
    ]


def _asked_about_b(world, events):
    """a, b, c, F (fails); b's undo fails once and the policy halts: a person is asked about
    b. ``world`` records the calls, ``events`` what on_event heard."""
    broke = []

    def undo_b(state):
        world.append("undo b")
        if not broke:
            broke.append(1)
            raise ConnectionError("b's undo failed")

    steps = [*_abc(world).steps, Step("F", lambda s: (_ for _ in ()).throw(ValueError("F")))]
    steps[1] = Step("b", lambda s: world.append("do b"), undo_b)
    return Saga(steps, name="asked", policy=UndoPolicy(then="halt"),
                on_event=lambda ev: events.append((ev.kind, ev.step)))  # fmt: skip


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_a_request_answering_a_person_that_fails_ends_the_rollback_alike_in_both_forms(
    runner, graph, monkeypatch
):
    """attack151 F4: b's undo failed once, the policy halts, a person answers "retry"; the
    request carrying the answer fails. The list form's replay heard the answer, the graph's
    machine not (it was told after): "before the undo of b began" against "during the undo
    of b". The graph's machine hears it first now: both say where it was, "before attempt 2 of
    the undo of b began" (the retry never begun, never told: attack184 F1, once "during")."""
    from botocore.exceptions import ClientError

    world, events = [], []
    saga = _asked_about_b(world, events)
    real = runner.sfn.send_task_success

    def refused(**kwargs):
        if "answer" in kwargs["output"]:
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "SendTaskSuccess")
        return real(**kwargs)

    monkeypatch.setattr(runner.sfn, "send_task_success", refused)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(lambda: runner.run(saga, {}, timeout=30, answers=["retry"], **options))
    monkeypatch.setattr(runner.sfn, "send_task_success", real)
    assert type(got) is ClientError and world == ["do a", "do b", "do c", "undo c", "undo b"]
    assert got.__notes__[-1].endswith(
        "before attempt 2 of the undo of b began; not known to be undone: b, a"
    )
    assert events[-3:] == [("undo", "b"), ("undo_failed", "b"), ("rollback_done", None)]


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("answer", ["fixed", "retry"])
def test_a_ctrl_c_as_a_persons_answer_is_taken_is_heard_alike_in_both_forms(
    runner, graph, answer, monkeypatch
):
    """attack161 F1: a Ctrl-C right after the worker took the person's answer, before it was
    sent: the list form's replay heard the answer ("fixed": b undone by hand), the graph
    form's machine did not (b pending). Both hear it now, as it was taken."""
    from rollback_lessons.runners import history

    task = history.Worker.task

    def then_ctrl_c(self, call, step, *args, **kwargs):
        made = task(self, call, step, *args, **kwargs)
        if call == "ask":
            raise KeyboardInterrupt
        return made

    monkeypatch.setattr(history.Worker, "task", then_ctrl_c)
    world, events = [], []
    saga = _asked_about_b(world, events)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(lambda: runner.run(saga, {}, timeout=30, answers=[answer], **options))
    assert type(got) is KeyboardInterrupt and world == ["do a", "do b", "do c", "undo c", "undo b"]
    if answer == "fixed":  # (b fixed by hand: undone; a's undo never began)
        assert events[-2:] == [("undo_done", "b"), ("rollback_done", None)]
        said = "before the undo of a began; not known to be undone: a"
    else:  # (its retry never began: never told, nor "during" it: attack184 F1)
        assert events[-2:] == [("undo_failed", "b"), ("rollback_done", None)]
        said = "before attempt 2 of the undo of b began; not known to be undone: b, a"
    assert got.__notes__[-1] == f"rollback: rollback interrupted by KeyboardInterrupt {said}"


@pytest.mark.parametrize("when", ["asked", "heard"])
@pytest.mark.parametrize("answer", ["fixed", "retry"])
def test_bpmn_a_ctrl_c_as_a_person_is_asked_or_answered_says_what_step_functions_says(
    answer, when, monkeypatch
):
    """attack165: a Ctrl-C as a person is asked about b's undo (its call made, failed) was
    "in the BPMN engine's own code, before the undo of b" (F1); one right after the answer
    was taken, before the machine heard it, dropped it ("fixed": b pending, F2). Now as Step
    Functions says the same instants (above): before attempt 2 of the undo of b began; the
    answer heard once taken, "fixed" counting b undone by hand. (As it is asked: "as a person
    was asked about the undo of b", where the machine is, attack178.)"""
    from rollback_lessons.machine import Machine

    real = Machine.answer

    def ctrl_c(self, said):
        if when == "heard":
            real(self, said)
        raise KeyboardInterrupt

    monkeypatch.setattr(Machine, "answer", ctrl_c)
    world, events = [], []
    saga = _asked_about_b(world, events)
    got = _raised(lambda: run_explicit(saga, {}, undo_order="reverse_start", answers=[answer]))
    assert type(got) is KeyboardInterrupt and world == ["do a", "do b", "do c", "undo c", "undo b"]
    if when == "heard" and answer == "fixed":  # (b fixed by hand: undone; a's never began)
        assert events[-2:] == [("undo_done", "b"), ("rollback_done", None)]
        said = "before the undo of a began; not known to be undone: a"
    else:  # (asked, or its retry never began: never told)
        assert events[-2:] == [("undo_failed", "b"), ("rollback_done", None)]
        where = (
            "as a person was asked about the undo of b"
            if when == "asked"
            else (
                "before attempt 2 of the undo of b began"  # (none ran: attack178, 184 F1)
            )
        )
        said = f"{where}; not known to be undone: b, a"
    assert got.__notes__[-1] == f"rollback: rollback interrupted by KeyboardInterrupt {said}"


def test_a_ctrl_c_in_on_event_as_a_stopped_run_is_told_keeps_what_is_left(runner, monkeypatch):
    """attack150 F2: the list form tells a stopped run's events after the stop; a Ctrl-C
    the callback raised then said the saga "had committed: there is nothing to undo"
    (a and b done, not undone). It carries the stop's notes now."""
    world = []

    def on_event(ev):
        if ev.kind.value == "step_done":
            raise KeyboardInterrupt

    saga = Saga(_abc(world).steps, name="kx", on_event=on_event)
    got = _stopped_when(runner, monkeypatch, lambda: "do b" in world, saga)
    assert type(got) is KeyboardInterrupt and world == ["do a", "do b"]
    assert got.__notes__ in (
        [f"Step Functions: the execution {how}; done, not undone: a, b"] for how in STOPPED
    )


def test_a_callbacks_ctrl_c_is_raised_when_the_timeout_stops_its_rollback(runner):
    """attack150 F3: graph form, a Ctrl-C raised by ``on_event`` at a's ``step_done`` (the
    run fails there) as the timeout passed (a took longer): only the TimedOut was raised,
    the Ctrl-C lost. It is raised now, the stop's words on it (a not undone), the stop as
    its cause."""
    world = []

    def slow(state):
        world.append("do a")
        time.sleep(0.6)

    def on_event(ev):
        if ev.kind.value == "step_done":
            raise KeyboardInterrupt

    steps = [Step("a", slow, lambda s: world.append("undo a")),
             Step("b", lambda s: world.append("do b"))]  # fmt: skip
    saga = Saga(steps, name="kt", on_event=on_event)
    got = _raised(lambda: runner.run(saga, {}, undo_order="reverse_start", timeout=0.3))
    assert type(got) is KeyboardInterrupt and world == ["do a"]
    assert isinstance(got.__cause__, StepFunctionsError)
    assert got.__notes__[-1].endswith(  # (the stop's: its rollback ended, saga.run's words)
        "before the undo of a began; not known to be undone: a"
    ), got.__notes__


def test_the_timeout_passing_in_a_branch_starts_no_sibling_after_it(runner, stops, monkeypatch):
    """attack184 F2: the graph form's timeout passed while b ran; c, b's sibling, whose task
    had come with b's, was taken and run after it (read only as tasks were received): a whole
    step past the time the caller gave. Each task is taken in time now (whichever runs first,
    the time passes as it ends: the other never begins)."""
    from rollback_lessons import Parallel

    world: list[str] = []

    def act(name):
        return lambda s: world.append(f"do {name}")

    branches = Parallel(*(Step(n, act(n), lambda s: None) for n in "bc"))
    steps = [Step("a", act("a"), lambda s: None), branches]
    still = time.monotonic()  # (the clock runs on an hour once a branch's action has run)
    clock = types.SimpleNamespace(
        monotonic=lambda: time.monotonic() + 3600 if len(world) > 1 else still, sleep=time.sleep
    )
    for name in (StepFunctionsRunner.__module__, "rollback_lessons.runners.stepfunctions.live"):
        monkeypatch.setattr(sys.modules[name], "time", clock)
    got = _raised(lambda: runner.run(Saga(steps, name="sibling"), {}, timeout=1))
    assert isinstance(got, StepFunctionsError), got
    assert len(world) == 2 and world[0] == "do a", world  # (no sibling began past it)
