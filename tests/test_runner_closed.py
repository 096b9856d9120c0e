"""A runner used after ``close()`` (attack41 F5): every runner refuses every call in one line,
``RunnerClosed``, naming the runner and saying it was closed, before anything runs. A closed
DBOS runner ran its saga in the file of the runner open now (or raised DBOS's own "No DBOS was
created yet"); a closed Step Functions runner sent the run to AWS itself (moto's mock gone) and
called that "stopped answering"; a closed Temporal runner told of a server to start again."""

import asyncio
import sqlite3
import threading

import pytest
from conftest import raising_in_a_thread

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners import RunnerClosed
from rollback_lessons.runners.dbos import DBOSRunner
from rollback_lessons.runners.dbos import RunnerClosed as DBOSRunnerClosed

CLOSED = r"this {} \({}\) was closed: {}\(\) refused, nothing was done"


def _saga(ran: list[str], name: str = "closed") -> Saga:
    return Saga([Step("a", lambda s: ran.append("a"), lambda s: ran.append("undo a"))], name=name)


def _runs_in(path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT workflow_uuid FROM workflow_status")]


def test_one_runner_closed_error_for_every_engine():
    """The DBOS runner's ``RunnerClosed`` (a run its close stopped) is the same class."""
    from rollback_lessons.runners import bpmn, stepfunctions, temporal

    assert DBOSRunnerClosed is RunnerClosed
    assert bpmn.RunnerClosed is stepfunctions.RunnerClosed is temporal.RunnerClosed is RunnerClosed


def test_a_closed_dbos_runner_runs_nothing_in_the_file_open_now(tmp_path):
    """Runner A closed, runner B open on another file: ``A.run`` ran the saga in B's file
    (DBOS is process-global). Now every call on A is refused, naming A's file; B holds only
    its own run, and B goes on."""
    a_file, b_file, ran = tmp_path / "A.sqlite", tmp_path / "B.sqlite", []
    with DBOSRunner.start(a_file) as a:
        done = a.run(_saga(ran), {}, run_id="on-a")
    assert done.status is Status.COMMITTED and ran == ["a"]
    ran.clear()
    with DBOSRunner.start(b_file) as b:
        calls = {
            "run": lambda: a.run(_saga(ran), {}, run_id="via-closed-a"),
            "start_saga": lambda: a.start_saga(_saga(ran), {}, run_id="via-closed-a"),
            "handle_for": lambda: a.handle_for(_saga(ran), "on-a"),
            "record": lambda: a.record("on-a"),
            "waiting": a.waiting,
        }
        for call, made in calls.items():
            refused = CLOSED.format("DBOSRunner", r"on .*A\.sqlite", call)
            with pytest.raises(RunnerClosed, match=refused):
                made()
        assert ran == []
        assert _runs_in(b_file) == []
        assert b.run(_saga(ran), {}, run_id="on-b").status is Status.COMMITTED
        assert _runs_in(b_file) == ["on-b"]
    assert _runs_in(a_file) == ["on-a"]


def test_a_closed_dbos_runner_with_none_open_is_refused_in_one_line(tmp_path):
    """No runner open: it was DBOS's own ``DBOSException: No DBOS was created yet``."""
    ran: list[str] = []
    runner = DBOSRunner.start(tmp_path / "d.sqlite")
    runner.close()
    runner.close()  # (again: nothing)
    with pytest.raises(RunnerClosed, match=CLOSED.format("DBOSRunner", r"on .*d\.sqlite", "run")):
        runner.run(_saga(ran), {})
    assert ran == []


def test_a_dbos_handle_of_a_run_ended_before_close_says_where_its_record_is(tmp_path):
    """attack42 F4: a handle got before ``close()``, read after it: ``outcome()`` of a run
    that had committed said it was cut mid-step and left unfinished, ``pending()`` raised
    DBOS's raw "No DBOS was created yet". One line each, naming the file and the record."""
    ran: list[str] = []
    runner = DBOSRunner.start(tmp_path / "d.sqlite")
    assert runner.run(_saga(ran), {}, run_id="x1").status is Status.COMMITTED
    handle = runner.handle_for(_saga(ran), "x1")
    runner.close()
    for call in (handle.outcome, handle.pending):
        with pytest.raises(RunnerClosed) as said:
            call()
        assert "'x1'" in str(said.value) and "d.sqlite was closed" in str(said.value)
        assert "record('x1')" in str(said.value) and "ran a step" not in str(said.value)
    with DBOSRunner.start(tmp_path / "d.sqlite") as again:  # (where it said: there)
        assert again.record("x1").status is Status.COMMITTED


@pytest.fixture
def sent_to_aws(monkeypatch) -> list[str]:
    """The URLs of the requests botocore really sends (moto's mock answers before this;
    once it ended, a client's request would go to AWS itself): none may be."""
    import botocore.endpoint

    sent: list[str] = []

    def send(endpoint, request):
        sent.append(request.url)
        raise ConnectionError("no network in this test")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "_send", send)
    return sent


def test_a_closed_step_functions_runner_sends_no_request(sent_to_aws):
    """Closed, moto's mock is gone and its boto3 clients would reach AWS itself: every call
    is refused before any request is made."""
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    runner = StepFunctionsRunner.start()
    runner.close()
    runner.close()  # (again: nothing)
    ran: list[str] = []
    calls = {
        "run": lambda: runner.run(_saga(ran), {}),
        "execute": lambda: runner.execute(_saga(ran), {}),
        "machine": lambda: runner.machine({"StartAt": "x", "States": {}}),
        "receive": runner.receive,
    }
    for call, made in calls.items():
        refused = CLOSED.format("StepFunctionsRunner", "on moto", call)
        with pytest.raises(RunnerClosed, match=refused):
            made()
    assert sent_to_aws == [] and ran == []


def test_a_step_functions_run_served_as_its_runner_closes_sends_nothing_to_aws(sent_to_aws):
    """``close()`` from another thread while a run is served: once moto's mock ended, the
    run's next request (the step's answer) went to AWS itself (https://states.us-east-1...).
    Now it is refused: the run ends with ``RunnerClosed``, no request leaves this process."""
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    began, go, ran = threading.Event(), threading.Event(), []

    def slow(state):
        began.set()
        assert go.wait(30)
        ran.append("a")

    runner = StepFunctionsRunner.start()
    raised: list[BaseException] = []

    def serve():
        try:
            runner.run(Saga([Step("a", slow, lambda s: ran.append("undo a"))], name="cut"), {})
        except BaseException as exc:
            raised.append(exc)

    served = threading.Thread(target=serve)
    served.start()
    assert began.wait(30)
    runner.close()
    go.set()
    served.join(60)
    assert not served.is_alive() and sent_to_aws == [] and ran == ["a"]
    assert [type(e) for e in raised] == [RunnerClosed], raised
    assert "was closed while saga 'cut' ran on it: the saga stopped there" in str(raised[0])


def test_a_closed_bpmn_runner_is_refused_as_every_runner_is():
    from rollback_lessons.runners.bpmn import BpmnRunner

    ran: list[str] = []
    with BpmnRunner.start() as runner:
        assert runner.run(_saga(ran), {}).status is Status.COMMITTED
    with pytest.raises(RunnerClosed, match=r"this BpmnRunner was closed: run\(\) refused"):
        runner.run(_saga(ran), {})
    assert ran == ["a"]


def test_a_closed_temporal_runner_is_refused_before_anything_reaches_the_server(on_temporal):
    """A runner connected to the module's server, closed (its worker stopped, the server
    alive): ``run`` and ``start_saga`` started a workflow no worker would ever take (waited for
    for ever), ``handle_for`` gave a handle; with its own server stopped, they told of a server
    to start again. Now each is refused at once; closing again does nothing."""
    from rollback_lessons.runners.temporal import TemporalRunner

    ran: list[str] = []

    async def scenario(shared):
        runner = await TemporalRunner.start(shared.address)
        done = await runner.run(_saga(ran, "closed-t"), {})
        await runner.close()
        await runner.close()  # (again: nothing)
        said = {}
        calls = {
            "run": lambda: runner.run(_saga(ran, "closed-t"), {}),
            "start_saga": lambda: runner.start_saga(_saga(ran, "closed-t"), {}),
            "handle_for": lambda: runner.handle_for(_saga(ran, "closed-t"), done.run_id),
        }
        for call, made in calls.items():
            try:
                result = await asyncio.wait_for(made(), 10)
            except RunnerClosed as exc:
                said[call] = str(exc)
            else:
                said[call] = f"not refused: {result!r}"
        return done, said, runner.address

    done, said, address = on_temporal(scenario)
    assert done.status is Status.COMMITTED and ran == ["a"]
    for call, text in said.items():
        where = f"on the Temporal server at {address}, which it connected to"
        assert text == (
            f"this TemporalRunner ({where}) was closed: {call}() refused, nothing was done; "
            "start another (TemporalRunner.start(...))"
        )


def test_a_temporal_handle_read_after_its_runners_close_is_one_line_naming_it(on_temporal):
    """attack42 F4: a handle got before ``close()``: each of its calls after it waited for
    a server that would not answer, then told to start it again "to finish the saga" (a
    saga that had committed). Now each is refused at once, naming where the saga is kept."""
    from rollback_lessons.runners.temporal import TemporalRunner

    ran: list[str] = []

    async def scenario(shared):
        runner = await TemporalRunner.start(shared.address)
        handle = await runner.start_saga(_saga(ran, "closed-h"), {})
        done = await handle.outcome()
        await runner.close()
        said = {}
        for call in ("outcome", "pending", "history", "cancel"):
            try:
                result = await asyncio.wait_for(getattr(handle, call)(), 10)
            except RunnerClosed as exc:
                said[call] = str(exc)
            else:
                said[call] = f"not refused: {result!r}"
        return done, said

    done, said = on_temporal(scenario)
    assert done.status is Status.COMMITTED
    for text in said.values():
        assert text.startswith(f"the runner of saga {done.run_id!r} (the Temporal server at ")
        assert text.endswith("was closed: this handle reads nothing more, this call did nothing; "
                             "the server keeps the saga: a runner connected to it again reads "
                             "it (handle_for)")  # fmt: skip


def test_a_step_functions_saga_whose_step_ran_another_on_it_is_named_as_it_closes():
    """attack100 F6: the inner run's end dropped the outer saga from the thread's record: the
    close then gave the old unnamed "its request ... was not sent" RunnerClosed."""
    import time
    import warnings

    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    world: list[str] = []
    ran_inner = threading.Event()
    runner = StepFunctionsRunner.start()
    inner = Saga([Step("i1", lambda s: world.append("i1"), lambda s: None)], name="inner")

    def b(state) -> None:
        runner.run(inner, {})
        ran_inner.set()
        time.sleep(1.0)  # (closed meanwhile, from the main thread)

    outer = Saga([Step("a", lambda s: world.append("a"), lambda s: None), Step("b", b),
                  Step("c", lambda s: world.append("c"))], name="outer")  # fmt: skip
    thread, raised = raising_in_a_thread(lambda: runner.run(outer, {}))
    assert ran_inner.wait(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.close()
    thread.join(60)
    [error] = raised
    assert isinstance(error, RunnerClosed) and "saga 'outer'" in str(error), error
    assert "c" not in world
