"""The fifth attacker's breaks of the recovery promises, each as a test (its scenario, not its
script): a pivot retried after a timeout stays in doubt; a step that lands after ``--force``
undid it is never overwritten by recover's record; a COMMIT that SQLite refused (a real
file-size limit) is not taken as written; a cancelled run recovered ends ``cancelled``; a NUL
or a dead symbolic link in a journal path is refused; odd registry modules are one line;
``bind`` refuses arguments the compensation cannot be called with; an async action in a
Step is told what to do instead."""

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import orphan

import rollback_lessons
from rollback_lessons import Kind, Parallel, Registry, RetryPolicy, Saga, Step, compensation
from rollback_lessons.durable.files import JournalError
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover

HERE = os.path.dirname(os.path.dirname(rollback_lessons.__file__))  # (children import this)

# -- 1. a pivot retried after a timeout, then refused: still in doubt --------------------


def _email(answers):
    """A pivot whose attempts fail in turn with ``answers`` (a timeout: it may have gone)."""
    tries = iter(answers)

    def email(state):
        raise next(tries)

    return email


PIVOTS = Registry()
REFUNDS: list[str] = []


@compensation("pivot.refund", PIVOTS)
def _refund(order: str, idempotency_key: str | None = None) -> None:
    REFUNDS.append(order)


def _pivot_saga(refunds, answers, attempts, graph=False):
    refunds.clear()  # (REFUNDS: the compensation's record)
    charge = Step("charge", lambda s: None, _refund.bind(order="refund"))
    first = Parallel(charge, Step("note", lambda s: None)) if graph else charge
    retry = RetryPolicy(max_attempts=attempts, initial_delay=0.01)
    return Saga([first, Step("email", _email(answers), kind=Kind.PIVOT, retry=retry)])


TIMED_OUT_THEN_REFUSED = [TimeoutError("SMTP timed out after DATA"), ValueError("SMTP 550")]


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_a_pivot_that_timed_out_then_refused_is_never_compensated_across(tmp_path, graph):
    refunds = REFUNDS
    saga = _pivot_saga(refunds, TIMED_OUT_THEN_REFUSED, 2, graph)
    with Journal(tmp_path / "j.db") as journal:
        out = saga.run({}, journal=journal, run_id="s1")
        record = journal.saga("s1")
    assert (str(out.status), refunds) == ("halted", [])
    halted = [e.details["reason"] for e in out.events if e.kind == "halted"]
    assert "'email' failed with a timeout, so it may have happened" in halted[0]
    assert (record.pivot_state, record.status) == ("started", "halted")  # recover halts too


def test_a_pivot_refused_cleanly_every_time_is_still_compensated_across():
    refunds = REFUNDS
    out = _pivot_saga(refunds, [ValueError("550"), ValueError("550")], 2).run({})
    assert (str(out.status), refunds) == ("rolled_back", ["refund"])


def test_a_ctrl_c_in_the_backoff_after_a_pivot_timed_out_compensates_nothing(tmp_path):
    refunds = REFUNDS
    saga = _pivot_saga(refunds, [TimeoutError("t/o")] * 3, 3)

    def ctrl_c(event):
        if event.kind == "step_retry":
            raise KeyboardInterrupt

    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(KeyboardInterrupt):
            saga.run({}, journal=journal, run_id="s2", on_event=ctrl_c)
        record = journal.saga("s2")
    assert refunds == []
    assert (record.pivot_state, record.status) == ("started", "halted")


def test_step_functions_refuses_a_pivot_retried_after_a_timeout_before_anything_runs():
    """Its Retry would forget the timed-out attempt, and its Catch compensate across the
    pivot on a later clean refusal: refused when written (BPMN refuses every retried task)."""
    from rollback_lessons.runners.stepfunctions.asl import UnsupportedOnStepFunctions, to_asl

    with pytest.raises(UnsupportedOnStepFunctions, match="retried after a failure"):
        to_asl(_pivot_saga(REFUNDS, [], 2))
    before_its_effect = RetryPolicy(max_attempts=2, retry_on=(ConnectionError,))
    saga = Saga(
        [
            Step("charge", lambda s: None, _refund.bind(order="o")),
            Step("email", lambda s: None, kind=Kind.PIVOT, retry=before_its_effect),
        ]
    )
    assert "States" in to_asl(saga)


# -- 2. a step that lands after recover --force undid it ---------------------------------


def test_a_late_effect_reported_during_recover_is_not_overwritten(tmp_path):
    """The owner (made to look as if on another host) is inside step S; ``recover --force``
    runs S's undo (nothing to undo yet); S's effect lands and its owner reports it; recover's
    own record must not say ``rolled_back`` over it."""
    path = tmp_path / "j.db"
    world: dict[str, int] = {}
    in_s, go = threading.Event(), threading.Event()
    registry = Registry()

    def leaked() -> bool:
        con = sqlite3.connect(path, timeout=30)
        try:
            row = con.execute("SELECT state FROM undos WHERE step = 'S'").fetchone()
        finally:
            con.close()
        return row is not None and row[0] == "leaked"

    @compensation("late.undo", registry)
    def undo(step: str, idempotency_key: str | None = None) -> None:
        world.pop(step, None)  # S: nothing there yet
        if step == "S":
            go.set()  # ... and now the owner's step lands, and it reports it
            end = time.monotonic() + 20
            while not leaked() and time.monotonic() < end:
                time.sleep(0.01)

    def s(state):
        in_s.set()
        go.wait(20)
        world["S"] = 1  # the effect lands after its undo ran

    saga = Saga(
        [
            Step("a", lambda st: world.update(a=1), undo.bind(step="a"), register="before"),
            Step("S", s, undo.bind(step="S"), register="before"),
        ]
    )
    outcomes = []

    def owner() -> None:
        with Journal(path) as journal:
            outcomes.append(saga.run({}, journal=journal, run_id="s1"))

    thread = threading.Thread(target=owner)
    thread.start()
    assert in_s.wait(20)
    con = sqlite3.connect(path, timeout=30)
    con.execute(  # (another machine: its own boot too; a host name alone is checked here)
        "UPDATE sagas SET owner_host = 'another-host',"
        " owner_space = 'pid:[1] boot 00000000-0000-0000-0000-000000000001' WHERE id = 's1'"
    )
    con.commit()
    con.close()
    with Journal(path) as journal:
        report = recover(journal, registry, force=True)
        status = journal.saga("s1").status
        undos = {u.step: u.state for u in journal.undos("s1")}
    thread.join(30)
    assert world == {"S": 1}  # S's effect stands
    assert str(outcomes[0].status) == "halted"
    assert undos == {"a": "done", "S": "leaked"}
    assert status == "rollback_incomplete"
    assert str(report.recovered[0].status) == "rollback_incomplete"
    assert "S" in report.recovered[0].leaked


# -- 3. a COMMIT that SQLite refused (a real file-size limit) ----------------------------

DISK_FULL_CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys
    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.journal import Journal
    from regfull import undo

    SOFT, HARD = resource.getrlimit(resource.RLIMIT_FSIZE)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    journal, effects = sys.argv[1], sys.argv[2]

    def step1(state):
        with open(effects, "a") as f:
            f.write("step1\\n")
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, HARD))  # full as step1 returns

    def step2(state):
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies inside step2

    def free(event):  # told after the (failed) write that confirms step1's undo
        if event.kind == "undo_registered":
            resource.setrlimit(resource.RLIMIT_FSIZE, (SOFT, HARD))

    saga = Saga([Step("step1", step1, undo.bind(effects=effects, step="step1")),
                 Step("step2", step2, undo.bind(effects=effects, step="step2"))])
    with Journal(journal) as j:
        saga.run({}, journal=j, run_id="s1", on_event=free)
    """
)

REG_FULL = textwrap.dedent(
    """
    from rollback_lessons import Registry, compensation
    registry = Registry()

    @compensation("full.undo", registry)
    def undo(effects, step, idempotency_key=None):
        with open(effects, "a") as f:
            f.write("undo " + step + "\\n")
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_a_commit_refused_for_a_full_disk_is_written_with_the_next_write(tmp_path, monkeypatch):
    (tmp_path / "regfull.py").write_text(REG_FULL)
    journal, effects = tmp_path / "j.db", tmp_path / "effects.txt"
    Journal(journal).close()  # made before the limit: the limit hits the confirm's COMMIT
    child = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(journal), str(effects)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{HERE}"),
    )  # fmt: skip
    assert child.returncode == -9, child.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    import regfull

    with Journal(journal) as j:
        assert {u.step: u.state for u in j.undos("s1")}["step1"] == "pending"
        report = recover(j, regfull.registry)
    assert report.recovered[0].undone == ("step1",)
    assert effects.read_text().splitlines() == ["step1", "undo step1"]


# -- 4. a cancelled run, crashed in its rollback, recovered ------------------------------


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_a_cancelled_run_recovered_after_a_crash_ends_cancelled(tmp_path, graph):
    stop, undone, crash = threading.Event(), [], [True]
    registry = Registry()

    @compensation("c.undo", registry)
    def undo(step: str, idempotency_key: str | None = None) -> None:
        if step == "b" and crash and crash.pop():
            raise KeyboardInterrupt  # the process is cut short during its rollback
        undone.append(step)

    b, c = Step("b", lambda s: None, undo.bind(step="b")), Step("c", lambda s: stop.set())
    middle = [Parallel(b, c)] if graph else [b, c]
    saga = Saga([Step("a", lambda s: None, undo.bind(step="a")), *middle, Step("d", print)])
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt):
            saga.run({}, journal=journal, run_id="s1", cancel=stop)
        assert journal.saga("s1").status == "rolling_back"
    orphan(path, "s1")
    with Journal(path) as journal:
        report = recover(journal, registry)
        status = journal.saga("s1").status
    assert undone == ["b", "a"]
    assert (status, str(report.recovered[0].status)) == ("cancelled", "cancelled")
    stop.clear()
    with Journal(tmp_path / "control.db") as journal:  # the same run, uncut: cancelled too
        assert str(saga.run({}, journal=journal, run_id="s1", cancel=stop).status) == "cancelled"


# -- 5. a NUL or a dead symbolic link in a journal's path -------------------------------


def test_a_nul_in_a_journal_path_is_refused_before_any_file_is_touched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = sqlite3.connect(".x")  # SQLite would cut 'x\0y' to '.x' for its temporary file
    other.execute("CREATE TABLE mine (v TEXT)")
    other.commit()
    other.close()
    for path in ("a\0b", "x\0y", tmp_path / "x\0y"):
        with pytest.raises(ValueError, match="NUL"):
            Journal(path)
    assert sorted(os.listdir(tmp_path)) == [".x"]
    con = sqlite3.connect(".x")
    assert [t for (t,) in con.execute("SELECT name FROM sqlite_master")] == ["mine"]
    con.close()


@pytest.mark.parametrize("readonly", [False, True])
def test_a_dangling_or_looping_symlink_is_a_journal_error(tmp_path, readonly):
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone" / "j.db")
    for name in ("loop1", "dangling"):
        with pytest.raises(JournalError, match="symbolic link"):
            Journal(tmp_path / name, readonly=readonly)


# -- 6. odd registry modules on the command line -----------------------------------------

ODD_REGISTRIES = {
    "raises_a_base_exception": "class Stop(BaseException):\n    pass\nraise Stop('no')\n",
    "raises_an_error_whose_repr_raises": (
        "class E(Exception):\n    def __repr__(self):\n        raise ValueError('repr')\n"
        "    def __str__(self):\n        raise ValueError('str')\nraise E()\n"
    ),
    "contains_raises_generator_exit": (
        "from rollback_lessons import Registry\nclass R(Registry):\n"
        "    def __contains__(self, name):\n        raise GeneratorExit('down')\nregistry = R()\n"
    ),
}


@pytest.mark.parametrize("case", sorted(ODD_REGISTRIES))
def test_an_odd_registry_module_is_one_line_and_the_saga_stays(tmp_path, case):
    path = tmp_path / "j.db"
    undo = Registry().add("odd.undo", lambda k, idempotency_key=None: None)
    with Journal(path) as journal:
        run = journal.start("odd", "s1")
        run.register("step1", undo.bind(k=1), "pending")  # (a name to ask the registry)
        run.flush()
    orphan(path, "s1")
    (tmp_path / "oddreg.py").write_text(ODD_REGISTRIES[case])
    result = subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry", "oddreg"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{HERE}"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("rollback-lessons: ")
    with Journal(path, readonly=True) as journal:
        assert journal.saga("s1").status == "running"


# -- 7. bind checks the call it binds ----------------------------------------------------


def test_bind_refuses_arguments_the_compensation_cannot_be_called_with():
    registry = Registry()

    @compensation("b.undo", registry)
    def undo(k, idempotency_key=None):
        pass

    @compensation("b.any", registry)
    def undo_any(**kwargs):
        pass

    with pytest.raises(TypeError, match="idempotency_key"):
        undo.bind(k=1, idempotency_key="mine")  # the engine passes its own key
    with pytest.raises(TypeError, match="cannot be called with"):
        undo.bind(wrong=1)
    with pytest.raises(TypeError, match="cannot be called with"):
        undo.bind()
    with pytest.raises(TypeError, match="idempotency_key"):
        undo_any.bind(idempotency_key="mine")
    assert undo.bind(k=1).args == {"k": 1}
    assert undo_any.bind(anything=[1]).args == {"anything": [1]}


# -- minor: an async action in a Step -----------------------------------------------------


def test_an_async_action_in_a_step_is_told_to_return_an_awaitable_for_arun():
    async def book(state):
        return None

    with pytest.raises(TypeError) as refused:
        Step("book", book)
    assert "saga.arun" in str(refused.value)
    assert "synchronous Rollback" not in str(refused.value)
    saga = Saga([Step("book", lambda state: book(state))])  # what the message says works
    assert str(asyncio.run(saga.arun({})).status) == "committed"
