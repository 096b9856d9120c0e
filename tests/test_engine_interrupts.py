"""A Ctrl-C where the engine's own code runs, not a step (issue 25's leftovers): during Step
Functions' ``start_execution`` request itself (before it reached the service, or after, its
answer lost), and between two tasks inside SpiffWorkflow's engine. Injected at each instant
by patching the engine call to raise at its n-th call. Step Functions: an execution that
started is stopped before any step of it runs (nothing done: nothing to undo), one that did
not start is said so; BPMN: what was done is undone as ``saga.run`` would (a Ctrl-C between
two steps fails the run there, one between two undos halts it, the rest pending), then the
KeyboardInterrupt is raised again."""

from __future__ import annotations

import sys

import pytest
from test_sf_bpmn_interrupts import STOPPED, _abc, _raised

from rollback_lessons import Saga, Step
from rollback_lessons.runners.bpmn import run_explicit
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner
from rollback_lessons.runners.stepfunctions.stop import stop_execution


@pytest.fixture(scope="module")
def runner():
    with StepFunctionsRunner.start() as runner:
        yield runner


def _started(runner, name: str) -> list[dict]:
    """The executions of the runner's state machines whose name starts with ``name``."""
    listed = [runner.sfn.list_executions(stateMachineArn=arn) for arn in runner._machines.values()]
    return [e for page in listed for e in page["executions"] if e["name"].startswith(name)]


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_ctrl_c_during_start_execution_leaves_no_execution_waiting(
    runner, monkeypatch, graph, when
):
    """``before``: the request never left (no execution); ``after``: it started, its answer
    lost to the Ctrl-C: it is stopped before any step of it runs. Either way nothing was
    done, the Ctrl-C is raised with a note saying which, and the next run is unharmed."""
    world: list[str] = []
    start, stop = runner.sfn.start_execution, runner.sfn.stop_execution
    stopped: list[str] = []

    def starting(**kwargs):
        if when == "after":
            start(**kwargs)
        raise KeyboardInterrupt

    def stopping(**kwargs):
        stopped.append(kwargs["executionArn"])
        return stop(**kwargs)

    monkeypatch.setattr(runner.sfn, "start_execution", starting)
    monkeypatch.setattr(runner.sfn, "stop_execution", stopping)
    options = {"undo_order": "reverse_start"} if graph else {}
    name = f"start-{when}-{graph}"
    saga = Saga(list(_abc(world).steps), name=name)
    got = _raised(lambda: runner.run(saga, {}, timeout=30, **options))
    monkeypatch.setattr(runner.sfn, "start_execution", start)
    assert type(got) is KeyboardInterrupt and world == []
    started = _started(runner, name)
    if when == "before":
        assert started == [] and not stopped
        assert got.__notes__ == [
            "Step Functions: the execution was never started; nothing done is left in effect"
        ]
    else:
        assert [e["executionArn"] for e in started] == stopped[:1]  # never left waiting
        assert got.__notes__ in (
            [f"Step Functions: the execution {how}; nothing done is left in effect"]
            for how in STOPPED
        )
    after = []
    outcome = runner.run(_abc(after), {}, timeout=30, **options)
    assert str(outcome.status) == "committed" and after == ["do a", "do b", "do c"]
    assert world == []  # (the first execution's tasks never ran)


def test_a_started_execution_the_runner_cannot_stop_is_named_by_its_arn(runner, monkeypatch):
    """A Ctrl-C that lands in ``start_execution``'s own call after the service started the
    execution, and then no answer from Step Functions: the note said "could not be stopped
    (it may still run)" without saying which execution; it names its ARN, the one that
    started (for whoever stops it)."""
    from botocore.exceptions import EndpointConnectionError

    world: list[str] = []
    start, started = runner.sfn.start_execution, []

    def starting(**kwargs):
        started.append(start(**kwargs)["executionArn"])
        raise KeyboardInterrupt

    def silent(**kwargs):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    monkeypatch.setattr(runner.sfn, "start_execution", starting)
    monkeypatch.setattr(runner.sfn, "describe_execution", silent)
    got = _raised(lambda: runner.run(Saga(list(_abc(world).steps), name="unstoppable"), {}))
    monkeypatch.undo()
    assert stop_execution(runner.sfn, started[0], "Test", "clean-up") in STOPPED
    assert type(got) is KeyboardInterrupt and world == []
    assert got.__notes__ == [
        f"Step Functions: the execution could not be stopped (it may still run: {started[0]}); "
        "nothing done is left in effect"
    ]


# -- BPMN: a Ctrl-C inside SpiffWorkflow's own code, between two tasks ---------------------


def _bpmn_cut_at(n: int, fails: bool, monkeypatch) -> tuple[list[str], object]:
    """Run a, b, c (c failing if ``fails``) with a KeyboardInterrupt raised as SpiffWorkflow
    completes its ``n``-th task (its own code: gateways, flows, the scripts' tasks)."""
    from SpiffWorkflow.task import Task

    world: list[str] = []
    count = [0]
    complete = Task.complete

    def completing(self, *args, **kwargs):
        count[0] += 1
        if count[0] == n:
            raise KeyboardInterrupt
        return complete(self, *args, **kwargs)

    steps = list(_abc(world, cut=ValueError if fails else None).steps)
    if fails:  # (c fails, not b: a and b to undo)
        steps = [steps[0], Step("b", lambda s: world.append("do b"), steps[1].undo),
                 Step("c", _refuses(world), steps[2].undo)]  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(Task, "complete", completing)
        got = _raised_or(lambda: run_explicit(Saga(steps, name="cut"), {}))
    return world, got


def _refuses(world):
    def action(state):
        world.append("do c")
        raise ValueError("c refused")

    return action


def _raised_or(run):
    try:
        return run()
    except BaseException as exc:
        return exc


@pytest.mark.parametrize("fails", [False, True], ids=["commits", "c fails"])
def test_a_ctrl_c_between_two_bpmn_tasks_at_every_instant(monkeypatch, fails):
    """At every instant: the KeyboardInterrupt is raised (unless the run had ended); no undo
    runs twice; every step done is undone, or the notes say it is left (pending, leaked, the
    saga committed); unless the rollback was cut short (halted: "not known to be undone") or
    the saga had committed, what was done is undone in reverse, as ``saga.run`` does."""
    n, seen = 0, set()
    while True:
        n += 1
        world, got = _bpmn_cut_at(n, fails, monkeypatch)
        if not isinstance(got, BaseException):  # past the last task: the run's own end
            assert str(got.status) == ("rolled_back" if fails else "committed")
            break
        assert type(got) is KeyboardInterrupt, got
        notes = " ".join(getattr(got, "__notes__", []))
        done = [e[3:] for e in world if e.startswith("do ")]
        for step in done:
            assert world.count(f"undo {step}") <= 1
            if f"undo {step}" not in world and not (fails and step == "c"):
                assert step in notes or "committed" in notes, (n, world, notes)
        if "not known to be undone" not in notes and "committed" not in notes:  # (else halted,
            assert [e for e in world if e.startswith("undo ")] == [
                f"undo {s}" for s in reversed(done) if not (fails and s == "c")
            ], (n, world)  # the rest named pending; or nothing to undo)
        seen.add(tuple(world))
    assert n > 5 and len(seen) > 2  # (instants before, between and after the tasks)


def test_a_ctrl_c_in_a_bpmn_undo_halts_there_as_in_process():
    """An undo's own KeyboardInterrupt: the rollback ends there, the rest pending, and the
    notes are ``saga.run``'s (before: raised with no note, the outcome never made)."""

    def saga(world):
        def undo_b(state):
            raise KeyboardInterrupt

        return Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                     Step("b", lambda s: world.append("do b"), undo_b),
                     Step("c", _refuses(world))], name="undo-cut")  # fmt: skip

    local, remote = [], []
    expected = _raised(lambda: saga(local).run({}))
    got = _raised(lambda: run_explicit(saga(remote), {}))
    assert type(got) is type(expected) is KeyboardInterrupt
    assert remote == local == ["do a", "do b", "do c"]
    assert got.__notes__ == expected.__notes__


SCRIPT = """
import sys
from rollback_lessons import Saga, Step
from rollback_lessons.runners.bpmn import run_explicit

def undo_b(state):
    raise KeyboardInterrupt

def refuse(state):
    raise ValueError("no")

saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None, undo_b),
             Step("c", refuse)], name="undo-cut")
try:
    run_explicit(saga, {})
except KeyboardInterrupt:
    if sys.argv[1] == "raise":
        raise
print("caught")
"""


@pytest.mark.parametrize("then", ["catch", "raise"])
def test_a_caught_ctrl_c_from_a_bpmn_run_leaves_the_process_exit_code_alone(tmp_path, then):
    """The Ctrl-C went through SpiffWorkflow's ``exec`` of a script task's text, and CPython
    marked it unhandled for good: a script that caught it, all done, ended killed by SIGINT
    (exit 130; harden50). Caught: exit 0; raised on: killed by SIGINT as any Ctrl-C."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "caught.py"
    script.write_text(SCRIPT)
    ran = subprocess.run([sys.executable, str(script), then], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    if then == "catch":
        assert (ran.returncode, ran.stdout) == (0, "caught\n"), ran.stderr
    else:
        assert ran.returncode == -signal.SIGINT and "caught" not in ran.stdout


@pytest.mark.parametrize(
    "graph, at",
    [(False, "StepFunctionsRunner._history"), (False, "walk"), (False, "outcome_of"),
     (False, "Worker.reraise"), (True, "StepFunctionsRunner._history"), (True, "outcome_of"),
     (True, "Worker.reraise")],
)  # fmt: skip
def test_a_ctrl_c_once_the_execution_ended_names_what_it_left(runner, monkeypatch, graph, at):
    """attack51 F4: a Ctrl-C as the ended execution's history is read, walked or made an
    Outcome was a bare KeyboardInterrupt: a's undo dead-lettered, a's effect standing, named
    nowhere (on moto in process the history dies with the process). Now its note says what
    a Ctrl-C a moment earlier says: the execution was over, and what is done, not undone."""
    from rollback_lessons.runners.stepfunctions import runner as module

    world: list[str] = []
    saga = _saga_a_dead_letter(world, f"over-{graph}")
    owner, name = (module, at) if "." not in at else (getattr(module, at.split(".")[0]),
                                                     at.split(".")[1])  # fmt: skip
    real = getattr(owner, name)

    def cut(*args, **kwargs):
        if (
            name == "_history"
            and runner.sfn.describe_execution(executionArn=args[1])["status"] == "RUNNING"
        ):  # (read as it runs, on a loaded machine: ``live._engine_ended``)
            return real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(owner, name, cut)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(lambda: runner.run(saga, {}, timeout=30, **options))
    monkeypatch.setattr(owner, name, real)
    assert type(got) is KeyboardInterrupt
    assert world == ["do a", "do b", "undo b", "undo a fails"]
    assert got.__notes__ == ["Step Functions: the execution was over; done, not undone: a"]


def test_a_second_ctrl_c_as_the_execution_is_stopped_still_names_what_is_left(runner, monkeypatch):
    """attack51 L5: a Ctrl-C in b's undo stops the execution; a second one as the runner
    stops it (``_stop``) left as two bare KeyboardInterrupts: nothing said a stands, nor that
    the execution may still run. The second is raised with the note, naming its ARN."""
    world: list[str] = []

    def undo_b(state):
        world.append("undo b cut")
        raise KeyboardInterrupt

    def refuse(state):
        raise ValueError("c refused")

    saga = Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                 Step("b", lambda s: world.append("do b"), undo_b), Step("c", refuse)],
                name="second-cut")  # fmt: skip

    def stopping(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(StepFunctionsRunner, "_stop", stopping)
    got = _raised(lambda: runner.run(saga, {}, timeout=30))
    monkeypatch.undo()
    assert type(got) is KeyboardInterrupt and isinstance(got.__cause__, KeyboardInterrupt)
    assert world == ["do a", "do b", "undo b cut"]
    [arn] = [e["executionArn"] for e in _started(runner, "second-cut")]
    assert got.__notes__ == [
        f"Step Functions: the execution could not be stopped (it may still run: {arn})",
        "rollback: rollback interrupted by KeyboardInterrupt during the undo of b; not known to "
        "be undone: b, a",
    ]  # (saga.run's notes, each its own: attack143 F3)


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("at", ["outcome_of", "Worker.reraise"])
def test_a_ctrl_c_once_the_bpmn_run_ended_names_what_it_left(monkeypatch, graph, at):
    """attack51 F4, BPMN's like window: after the workflow ended, a Ctrl-C as the run is made
    an Outcome (or as it returns) was a bare KeyboardInterrupt, a dead-lettered a unnamed."""
    from rollback_lessons.runners.bpmn import spiff

    world: list[str] = []

    def undo_a(state):
        world.append("undo a fails")
        raise RuntimeError("a's service is down")

    def refuse(state):
        raise ValueError("c refused")

    saga = Saga([Step("a", lambda s: world.append("do a"), undo_a),
                 Step("b", lambda s: world.append("do b"), lambda s: world.append("undo b")),
                 Step("c", refuse)], name="bpmn-over")  # fmt: skip

    def cut(*args, **kwargs):
        raise KeyboardInterrupt

    owner = spiff if "." not in at else getattr(spiff, at.split(".")[0])
    monkeypatch.setattr(owner, at.split(".")[-1], cut)
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _raised(lambda: run_explicit(saga, {}, **options))
    monkeypatch.undo()
    assert type(got) is KeyboardInterrupt
    assert world == ["do a", "do b", "undo b", "undo a fails"]
    assert got.__notes__ == ["BPMN: the run was over; done, not undone: a"]


def _saga_a_dead_letter(world: list[str], name: str) -> Saga:
    """a, b done, c refused, b undone, a's undo failing: a stands (a dead letter)."""

    def undo_a(state):
        world.append("undo a fails")
        raise RuntimeError("a's service is down")

    def refuse(state):
        raise ValueError("c refused")

    return Saga([Step("a", lambda s: world.append("do a"), undo_a),
                 Step("b", lambda s: world.append("do b"), lambda s: world.append("undo b")),
                 Step("c", refuse)], name=name)  # fmt: skip


def _ctrl_c_at(code_name: str, nth: int, run):
    """``run()`` with a KeyboardInterrupt raised at the ``nth`` "call" trace event of a
    function named ``code_name`` (a generator's resumption is one: a ``with``'s exit)."""
    import rollback_lessons

    package, seen = rollback_lessons.__file__.rsplit("/", 1)[0], [0]

    def tracer(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_name == code_name and code.co_filename.startswith(package):
            seen[0] += 1
            if seen[0] == nth:
                sys.settrace(None)
                raise KeyboardInterrupt
        return None

    sys.settrace(tracer)
    try:
        return _raised(run)
    finally:
        sys.settrace(None)


AFTER_THE_END = [("over_noted", 1), ("_inbox", 2), ("_answering", 2), ("keeping", 2)]


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("code_name, nth", AFTER_THE_END)
def test_a_ctrl_c_as_run_returns_the_ended_execution_names_what_it_left(
    runner, graph, code_name, nth
):
    """attack54 F3: a Ctrl-C at the entry of the block that notes it, or as ``run``'s
    ``with`` blocks closed (the Outcome made, then dropped) was bare: a's effect standing,
    named nowhere. The worker knows the execution ended as it ends: said from then on."""
    world: list[str] = []
    saga = _saga_a_dead_letter(world, f"ended-{graph}")
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _ctrl_c_at(code_name, nth, lambda: runner.run(saga, {}, timeout=30, **options))
    assert type(got) is KeyboardInterrupt
    assert world == ["do a", "do b", "undo b", "undo a fails"]
    assert got.__notes__ == ["Step Functions: the execution was over; done, not undone: a"]


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
@pytest.mark.parametrize("code_name, nth", [("over_noted", 1), ("keeping", 2)])
def test_a_ctrl_c_as_a_bpmn_run_returns_names_what_it_left(graph, code_name, nth):
    """attack54 F3, on BPMN: the same instants of ``BpmnRunner.run``."""
    from rollback_lessons.runners.bpmn import BpmnRunner

    world: list[str] = []
    saga = _saga_a_dead_letter(world, f"ended-{graph}")
    options = {"undo_order": "reverse_start"} if graph else {}
    got = _ctrl_c_at(code_name, nth, lambda: BpmnRunner.start().run(saga, {}, **options))
    assert type(got) is KeyboardInterrupt
    assert world == ["do a", "do b", "undo b", "undo a fails"]
    assert got.__notes__ == ["BPMN: the run was over; done, not undone: a"]


@pytest.mark.parametrize("engine", ["run_explicit", "BpmnRunner", "StepFunctionsRunner"])
def test_a_sys_exit_that_ends_an_engines_run_says_what_it_left_on_stderr(runner, engine):
    """attack56 F1: a SIGTERM handler's ``sys.exit`` in an undo ended ``runner.run`` (and
    ``run_explicit``) with its notes, what the rollback left, on the SystemExit, which Python
    never prints: the process ended 143, not a word. ``saga.run`` warned; now every engine."""
    import warnings

    from rollback_lessons.runners.bpmn import BpmnRunner

    def undo_b(state):
        raise SystemExit(143)

    def refuse(state):
        raise ValueError("c refused")

    saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None, undo_b),
                 Step("c", refuse)], name=f"exits-{engine}")  # fmt: skip
    run = {
        "run_explicit": lambda: run_explicit(saga, {}),
        "BpmnRunner": lambda: BpmnRunner.start().run(saga, {}),
        "StepFunctionsRunner": lambda: runner.run(saga, {}, timeout=30),
    }[engine]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _raised(run)
    assert type(got) is SystemExit and got.code == 143
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(said) == 1, said
    assert said[0].startswith(f"saga 'exits-{engine}' ended by sys.exit(143), whose notes Python")
    assert "not known to be undone: b, a" in said[0]
