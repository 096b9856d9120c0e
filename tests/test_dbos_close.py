"""A DBOS runner closed while its saga still runs a step (attack20's N1, N2, N4): ``close``
waits for the step (DBOS's ``destroy`` did not), and keeps the file locked while one still
runs after ``GRACE``, so a relaunch never takes a live run for a dead process's; a launch
refused for a changed saga resumes nothing first; the lock's holder is named truly."""

import os
import subprocess
import sys
import threading
import warnings

import pytest
from conftest import raising_in_a_thread, refund_down
from dbos import DBOS

from rollback_lessons import Saga, Status, Step, UndoPolicy
from rollback_lessons.runners.dbos import (
    DBOSRunner,
    DBOSUnavailable,
    FileInUse,
    RunnerClosed,
    RunsLeftRunning,
    SagaChanged,
    launch,
    stops,
)
from rollback_lessons.runners.dbos import runner as dbos_runner
from rollback_lessons.runners.dbos.held import hold, let_go


def _saga(world: list[str], started: threading.Event, go: threading.Event, name="b") -> Saga:
    """a -> b -> c; b's action waits for ``go`` (a slow service), its effect after that."""

    def b(s):
        started.set()
        assert go.wait(60)
        world.append(f"do {name}")

    return Saga(
        [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
         Step("b", b, lambda s: world.append(f"undo {name}")),
         Step("c", lambda s: world.append("do c"), lambda s: world.append("undo c"))],
        name=name,
    )  # fmt: skip


def _until(done) -> None:
    waited = threading.Event()
    for _ in range(1200):  # (a bound, not a timing: 60 s)
        if done():
            return
        waited.wait(0.05)
    raise AssertionError("never happened")


def _relaunched(db, world: list[str], go: threading.Event, at_once: bool = False):
    """Once the closed runner's saga stopped, a relaunch finds b in doubt and undoes it
    after its effect, once: its record. (``at_once``: no wait for the file to be let go.)"""
    if not at_once:
        _until(lambda: not launch.LEFT)
    again = threading.Event()
    with DBOSRunner.start(db, sagas={"b": lambda run_id: _saga(world, again, go)}) as runner:
        record = runner.record("run-b")
    assert world == ["do a", "do b", "undo b", "undo a"]
    assert record.status is Status.ROLLED_BACK and record.compensated == ("b", "a")
    return record


def _left_running(db, sagas) -> DBOSRunner:
    """Start each saga (run ``run-<name>``) and close while each runs b, GRACE made short:
    the runs are left running, then (b let go) stop unsaved, unfinished on the file."""
    runner = DBOSRunner.start(db)
    for saga, started, _ in sagas:
        runner.start_saga(saga, {}, run_id=f"run-{saga.name}", register="before")
        assert started.wait(60)
    with pytest.warns(
        RunsLeftRunning, match=r"still running after [\d.]+ s: run-\w+ \(b's action\)"
    ):
        runner.close()
    assert launch.LEFT
    return runner


def test_close_while_a_step_runs_keeps_the_file_until_it_ends_then_a_relaunch_undoes_it_once(
    tmp_path, monkeypatch
):
    """N1: close() returned at once and let the file go while b still ran; a relaunch took
    the live run for a dead process's and undid b before b's action ended (b's effect stayed,
    reported undone). Now the file stays held, in this process and for any other, until b
    ends; the relaunch then finds b in doubt and undoes it after its effect, once."""
    monkeypatch.setattr(launch, "GRACE", 0.05)
    world: list[str] = []
    started, go = threading.Event(), threading.Event()
    db = tmp_path / "d.sqlite"
    runner = _left_running(db, [(_saga(world, started, go), started, go)])
    runner.close()  # (again, as a with block's end does: it lets nothing go)
    with pytest.raises(
        FileInUse, match=r"in this process still: .* saga run-b \(b's action\) still ran"
    ):
        DBOSRunner.start(db)
    with pytest.raises(
        DBOSUnavailable, match=r"while saga run-b \(b's action\) of the runner closed"
    ):
        DBOSRunner.start(tmp_path / "other.sqlite")  # (its threads would write to it)
    with pytest.raises(FileInUse):  # the lock itself, as another process meets it
        hold(db)
    go.set()
    record = _relaunched(db, world, go)
    assert "died (or closed its runner)" in str(record.error)


def test_a_launch_while_the_left_runs_are_let_go_is_told_why_never_close_that_runner(
    tmp_path, monkeypatch
):
    """CI (s45) saw a relaunch, made once ``launch.LEFT`` was empty, refused "DBOS already
    runs in this process: close that runner first" (false: it was closed): the left runs'
    watcher emptied LEFT before it let the file and the launch go. A launch in between is
    told why now (the closed runner's sagas), and once LEFT is empty it launches."""
    monkeypatch.setattr(launch, "GRACE", 0.05)
    world: list[str] = []
    started, go = threading.Event(), threading.Event()
    db = tmp_path / "d.sqlite"
    letting, free = threading.Event(), threading.Event()
    real = launch.let_go

    def slow_let_go(fd: int) -> None:  # (the watcher, between the runs' end and the launch's)
        letting.set()
        assert free.wait(60)
        real(fd)

    _left_running(db, [(_saga(world, started, go), started, go)])
    monkeypatch.setattr(launch, "let_go", slow_let_go)
    go.set()
    assert letting.wait(60)
    try:
        with pytest.raises((FileInUse, DBOSUnavailable), match=r"saga run-b"):
            DBOSRunner.start(db)
    finally:
        free.set()
    monkeypatch.setattr(launch, "let_go", real)
    _relaunched(db, world, go)


def test_close_from_another_thread_while_run_goes_keeps_the_file_until_its_step_ends(
    tmp_path, monkeypatch
):
    """attack21's D1: ``run()`` runs its workflow in the caller's thread, which DBOS does not
    count as active: a ``close`` from another thread returned at once and let the file go,
    and a relaunch undid b before b's action ended (b's effect stayed, reported undone).
    Now close warns and keeps the file until that thread's step ended, as for N1; and
    ``run()`` then raises ``RunnerClosed`` in one line (attack24's M1: DBOS's own "System
    database accessed before DBOS was launched", with a traceback)."""
    monkeypatch.setattr(launch, "GRACE", 0.05)
    world: list[str] = []
    started, go = threading.Event(), threading.Event()
    db = tmp_path / "d.sqlite"
    runner = DBOSRunner.start(db)
    saga = _saga(world, started, go)
    raised: list[BaseException] = []

    def run() -> None:
        try:  # (DBOS destroyed under it: it stops at its next DBOS call, b unsaved)
            runner.run(saga, {}, run_id="run-b", register="before")
        except BaseException as exc:
            raised.append(exc)

    caller = threading.Thread(target=run)
    caller.start()
    assert started.wait(60)
    with pytest.warns(RunsLeftRunning, match=r"still running after [\d.]+ s: run-b \(b's action\)"):
        runner.close()
    with pytest.raises(FileInUse):  # (without: the relaunch undid b while b ran)
        DBOSRunner.start(db)
    go.set()
    caller.join(60)
    assert [type(exc) for exc in raised] == [RunnerClosed], raised
    assert str(raised[0]) == (
        f"the runner closed while saga 'run-b' ran a step; it is left unfinished on {db}, "
        "that step unsaved: a launch there goes on with it"
    )
    _relaunched(db, world, go, at_once=True)  # (as it says: attack293 F2, refused FileInUse
    # "still ran" 4 of 5, the file let go at the watcher's next look only)


def test_close_waits_for_a_running_step_to_end(tmp_path, monkeypatch, capfd):
    """N1: with GRACE to spare, close() returns once the running step ended (the saga stops
    at its next step, unsaved), with no warning, and lets the file go: the relaunch is not
    refused, and b's undo follows b's effect. A run never read is not kept past the close."""
    monkeypatch.setattr(launch, "GRACE", 60.0)
    world: list[str] = []
    started, go = threading.Event(), threading.Event()
    db = tmp_path / "d.sqlite"
    runner = DBOSRunner.start(db)
    runner.start_saga(_saga(world, started, go), {}, run_id="run-b", register="before")
    assert started.wait(60)
    runner.start_saga(Saga([Step("q", lambda s: None)]), {}, run_id="never-read")
    _until(lambda: DBOS.get_workflow_status("never-read").status == "SUCCESS")
    stops.ENDED["never-read"] = {}  # (as kept for a run resumed here, its result unread)
    threading.Timer(0.3, go.set).start()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        runner.close()
    assert not [w for w in warned if issubclass(w.category, RunsLeftRunning)]
    assert "Traceback" not in capfd.readouterr().err  # (DBOS's error for the stopped thread)
    assert world == ["do a", "do b"] and not launch.LEFT
    assert stops.ENDED == {}  # closed: no handle of it is read again (diag15: it grew)
    with DBOSRunner.start(db, sagas={"b": lambda run_id: _saga(world, started, go)}) as runner:
        assert runner.record("run-b").status is Status.ROLLED_BACK
    assert world == ["do a", "do b", "undo b", "undo a"]


def test_a_launch_refused_for_a_changed_saga_resumes_nothing(tmp_path, monkeypatch):
    """N2: start(sagas=) refused a changed saga (SagaChanged) only after DBOS's launch had
    resumed the file's other runs: run x's undos ran on, and a retried launch ran them again.
    The check is now made before DBOS launches: nothing runs until a launch is accepted, and
    that launch undoes each step once."""
    monkeypatch.setattr(launch, "GRACE", 0.05)
    world: list[str] = []
    sagas = [(_saga(world, e, g, name), e, g)
             for name, e, g in [("x", threading.Event(), threading.Event()),
                                ("y", threading.Event(), threading.Event())]]  # fmt: skip
    db = tmp_path / "d.sqlite"
    _left_running(db, sagas)
    for _, _, go in sagas:
        go.set()
    _until(lambda: not launch.LEFT)
    del world[:]
    done = threading.Event()
    done.set()

    def changed_y(run_id: str) -> Saga:
        threading.Event().wait(2.0)  # (a service read: x's undos ran meanwhile, before the fix)
        return Saga([Step("z", lambda s: None)], name="y")

    good = {"x": lambda run_id: _saga(world, done, done, "x")}
    with pytest.raises(SagaChanged, match="launch refused, the run left as it was"):
        DBOSRunner.start(db, sagas={**good, "y": changed_y})
    assert world == []
    good["y"] = lambda run_id: _saga(world, done, done, "y")
    with DBOSRunner.start(db, sagas=good) as runner:
        assert [runner.record(f"run-{n}").status for n in "xy"] == [Status.ROLLED_BACK] * 2
    assert sorted(world) == ["undo a", "undo a", "undo x", "undo y"]


_FORKED = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
child = os.fork()
if child == 0:  # (its output let go: the test reads the parent's to its end)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1), os.dup2(null, 2)
    time.sleep(60)
    os._exit(0)
print(os.getpid(), child, flush=True)
"""


def test_a_lock_a_forked_child_kept_after_its_parent_died_is_named_truly(tmp_path):
    """N4: a child forked by the runner's process shares its lock and keeps it after that
    process died; the refusal called the dead pid "another live process"."""
    db = tmp_path / "d.sqlite"
    out = subprocess.run([sys.executable, "-c", _FORKED, db], capture_output=True, text=True)
    parent, child = out.stdout.split()
    try:
        with pytest.raises(FileInUse, match=rf"forked from pid {parent}, which has died"):
            hold(db)
    finally:
        os.kill(int(child), 9)
    _until(lambda: _free(db))


def test_a_lock_let_go_is_free_though_a_process_forked_while_it_was_held_lives_on(tmp_path):
    """attack21's D4: a child forked while the runner held the file (a multiprocessing pool)
    shares the lock; ``close`` only closed its descriptor, so the lock stayed with the child
    and a relaunch was refused ("close that runner first"). Let go, it is free."""
    db = tmp_path / "d.sqlite"
    db.touch()
    fd = hold(db)
    child = os.fork()
    if child == 0:  # (the fork: holds what its parent held, lives on)
        threading.Event().wait(30)
        os._exit(0)
    try:
        let_go(fd)
        let_go(hold(db))  # (without: FileInUse, the fork holding it)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


def _free(db) -> bool:
    try:
        let_go(hold(db))
    except FileInUse:
        return False
    return True


def _halting(world: list[str], tried: list[str], on_event=None) -> Saga:
    """a -> b -> c; c fails, a's undo fails at its first try (a's service down)."""

    def undo_a(s):
        tried.append("undo a")
        if len(tried) == 1:
            raise RuntimeError("a's service is down")
        world.append("undo a")

    def c(s):
        raise RuntimeError("c fails")

    return Saga(
        [Step("a", lambda s: world.append("do a"), undo_a),
         Step("b", lambda s: world.append("do b"), lambda s: world.append("undo b")),
         Step("c", c)],
        name="halting", on_event=on_event,
    )  # fmt: skip


def _closed_while_halted(tmp_path, run_id: str, on_event=None):
    """A saga halted for good (``halt_wait=None``), waiting for a person; its runner closed
    (``_closed_waiting``). Returns the file, the handle, the world and the undos tried."""
    world: list[str] = []
    tried: list[str] = []
    db = tmp_path / "d.sqlite"
    runner = DBOSRunner.start(db)
    handle = runner.start_saga(_halting(world, tried, on_event), {}, run_id=run_id,
                               policy="halt", halt_wait=None)  # fmt: skip
    _until(lambda: handle.pending() is not None and _waits_now(run_id))  # (asked, and in
    _closed_waiting(runner)  # its wait: ``pending`` is told just before the wait begins)
    return db, handle, world, tried


def _waits_now(run_id: str) -> bool:
    """The run's workflow is in a wait ``close`` stops (a close just before, between the
    question told and the wait, finds it in workflow code: "ran a step", ci60's flake)."""
    from rollback_lessons.runners.dbos import waits

    return any(w[0] == run_id for w in list(waits.WAITS.values()))


def _closed_waiting(runner: DBOSRunner) -> None:
    """Close while the saga only waits: no warning, the file let go at once."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        runner.close()
    assert [str(w.message) for w in warned if w.category is RunsLeftRunning] == []
    assert not launch.LEFT


def test_close_while_a_saga_waits_for_a_person_lets_the_file_go_and_a_relaunch_asks_again(
    tmp_path, monkeypatch
):
    """attack21's D2: the saga halted, waiting for a person (``halt_wait=None``); ``close``
    waited GRACE, warned it "ran a step" (it waited on ``DBOS.recv``, which DBOS's shutdown
    does not wake) and kept the file for the wait's length (here: for good): every relaunch
    refused ``FileInUse``, and the process hung at exit (DBOS's thread joined). Now the wait
    stops at once, unsaved (its ``outcome()`` says so in one line, not the wait's
    BaseException), DBOS's threads end, and the relaunch asks again."""
    monkeypatch.setattr(launch, "GRACE", 30.0)  # (without the fix: 30 s, then the warning)
    heard: list = []  # (what on_event hears: harden38, nothing of a run whose outcome raised)
    db, handle, world, tried = _closed_while_halted(tmp_path, "run-h", heard.append)
    with pytest.raises(RunnerClosed, match="'run-h' waited; it is left unfinished on"):
        handle.outcome()  # (one line: not DBOS's wait's own BaseException)
    assert [(e.seq, e.kind, e.step) for e in heard][-4:] == [  # up to the person asked
        (11, "undo", "b"),
        (12, "undo_done", "b"),
        (13, "undo", "a"),
        (14, "undo_failed", "a"),
    ]
    _until(lambda: not [t for t in threading.enumerate() if t.name.startswith("dbos-executor")])
    sagas = {"halting": lambda run_id: _halting(world, tried, heard.append)}
    with DBOSRunner.start(db, sagas=sagas) as again:  # (without the fix: FileInUse)
        resumed = again.handle_for(_halting(world, tried, heard.append), "run-h")
        _until(lambda: resumed.pending() is not None)
        question = resumed.pending()
        assert question is not None and question.undos == ("a",)
        resumed.resolve(question, "retry")
        record = resumed.outcome()  # (tells only what was not told before: each event once)
    assert record.status is Status.ROLLED_BACK and record.compensated == ("b", "a")
    assert world == ["do a", "do b", "undo b", "undo a"] and tried == ["undo a"] * 2
    assert [(e.seq, e.kind, e.step) for e in heard] == [
        (e.seq, e.kind, e.step) for e in record.events
    ]


def test_close_while_run_waits_to_retry_an_undo_lets_the_file_go_and_a_relaunch_retries_it(
    tmp_path, monkeypatch
):
    """attack21's D2, an undo's backoff (``DBOS.sleep``, which nothing wakes): ``close`` from
    another thread while ``run()`` waited kept the file for the whole backoff. Now the wait
    stops at once: ``run()`` says so in one line (``RunnerClosed``), and the relaunch waits
    what is left of the backoff, then tries a's undo again, once."""
    from rollback_lessons.policies import Retry, RetryPolicy

    monkeypatch.setattr(launch, "GRACE", 30.0)
    world: list[str] = []
    tried: list[str] = []
    db = tmp_path / "d.sqlite"
    runner = DBOSRunner.start(db)
    policy = Retry(RetryPolicy(max_attempts=2, initial_delay=1.0))
    raised: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(_halting(world, tried), {}, run_id="run-r", policy=policy)
        except Exception as exc:
            raised.append(exc)

    caller = threading.Thread(target=run)
    caller.start()
    _until(lambda: tried == ["undo a"])
    _closed_waiting(runner)
    caller.join(60)
    assert [type(e) for e in raised] == [RunnerClosed], raised
    assert "left unfinished on" in str(raised[0]) and world == ["do a", "do b", "undo b"]
    with DBOSRunner.start(db, sagas={"halting": lambda run_id: _halting(world, tried)}) as again:
        record = again.record("run-r")
    assert record.status is Status.ROLLED_BACK and record.compensated == ("b", "a")
    assert world == ["do a", "do b", "undo b", "undo a"] and tried == ["undo a"] * 2


def test_close_while_a_resumed_run_makes_its_saga_slowly_is_bounded_by_grace(tmp_path, monkeypatch):
    """attack21's D3: a run resumed at launch has its saga made by ``sagas=`` while
    ``_HOSTING`` was held, and ``close`` waits for that lock: a slow factory held ``close``
    past GRACE (a hung one, for good). Now ``close`` returns after GRACE, warning what runs
    on, keeps the file until the factory returned, and the run is left for the next launch
    (nothing ran: its saga was never used)."""
    from rollback_lessons.runners import hosted

    db, _, world, tried = _closed_while_halted(tmp_path, "run-f")
    monkeypatch.setattr(launch, "GRACE", 0.3)  # (after the silent close: at CI's load its
    # waiting saga's thread took longer than 0.3 s to end, and that close warned)
    hosted.release("run-f")  # (as in another process: its saga is made by sagas=)
    making, go = threading.Event(), threading.Event()
    slow = threading.Timer(20.0, go.set)  # (without the fix, close waits for it)
    slow.start()
    calls: list[str] = []

    def factory(run_id: str) -> Saga:
        calls.append(run_id)
        if len(calls) > 1:  # (the launch's own check is the first call)
            making.set()
            assert go.wait(60)
        return _halting(world, tried)

    slowly = DBOSRunner.start(db, sagas={"halting": factory})
    assert making.wait(60)
    with pytest.warns(RunsLeftRunning, match=r"run-f \(making its saga: sagas=\{'halting'"):
        slowly.close()
    with pytest.raises(FileInUse):  # (its thread lives on: the file is kept until it ends)
        DBOSRunner.start(db)
    go.set()
    slow.cancel()
    _until(lambda: not launch.LEFT)
    with DBOSRunner.start(db, sagas={"halting": lambda run_id: _halting(world, tried)}) as again:
        resumed = again.handle_for(_halting(world, tried), "run-f")
        _until(lambda: resumed.pending() is not None)
        resumed.resolve(resumed.pending(), "retry")  # type: ignore[arg-type]
        record = again.record("run-f")
    assert record.status is Status.ROLLED_BACK and record.compensated == ("b", "a")
    assert world == ["do a", "do b", "undo b", "undo a"] and tried == ["undo a"] * 2


def test_close_while_a_branch_at_once_waits_to_retry_lets_the_file_go_and_a_relaunch_retries_it(
    tmp_path, monkeypatch
):
    """attack21's D2 at once: the saga's workflow waits for its branches' messages, the
    failed branch's child workflow for its backoff (both ``DBOS.recv``): ``close`` kept the
    file for the backoff. Both stop at once now; the relaunch waits what is left of the
    backoff (the wake time DBOS saved), tries room again, and commits, each effect once."""
    from dbos import DBOS

    from rollback_lessons import Parallel, RetryPolicy

    monkeypatch.setattr(launch, "GRACE", 30.0)
    world: list[str] = []

    def room(s):
        world.append("try room")
        if world.count("try room") == 1:
            raise RuntimeError("the hotel is busy")

    def saga() -> Saga:
        quick = RetryPolicy(max_attempts=2, initial_delay=1.0)
        return Saga(
            [Parallel(Step("room", room, lambda s: world.append("undo room"), retry=quick),
                      Step("car", lambda s: world.append("do car")))],
            name="branches",
        )  # fmt: skip

    db = tmp_path / "d.sqlite"
    runner = DBOSRunner.start(db)
    runner.start_saga(saga(), {}, run_id="run-p", at_once=True)

    def backing_off() -> bool:  # (a child's wait began: DBOS saved its wake time)
        children = DBOS.list_workflows(parent_workflow_id="run-p", status="PENDING")
        steps = [DBOS.list_workflow_steps(c.workflow_id) for c in children]
        return any(s["function_name"] == "DBOS.sleep" for saved in steps for s in saved)

    _until(backing_off)
    _until(lambda: "do car" in world)
    _closed_waiting(runner)
    with DBOSRunner.start(db, sagas={"branches": lambda run_id: saga()}) as again:
        record = again.record("run-p")
    assert record.status is Status.COMMITTED
    assert sorted(world) == ["do car", "try room", "try room"]


def test_a_start_interrupted_after_dbos_launched_stops_dbos_before_the_lock_goes(
    tmp_path, monkeypatch
):
    """A Ctrl-C in ``start`` after ``DBOS.launch()`` (a notebook's "interrupt kernel" while
    the cell launches) let the file's lock go with DBOS still launched, resuming the file's
    sagas on its threads: another launch on the file was not refused and ran them too
    (attack22's H3). Now it is stopped as ``close`` stops it, then the lock goes."""
    import dbos._dbos as launched
    from dbos import DBOS

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    db = tmp_path / "d.sqlite"
    with monkeypatch.context() as patched:
        patched.setattr(DBOS, "list_workflows", staticmethod(interrupted))
        with pytest.raises(KeyboardInterrupt):
            DBOSRunner.start(db)
    assert launched._dbos_global_instance is None  # DBOS stopped, not left resuming
    lock = hold(db)  # and the file is free again
    let_go(lock)
    runner = DBOSRunner.start(db)  # so is the launch slot
    try:
        world: list[str] = []
        step = Step("a", lambda s: world.append("a"), lambda s: world.append("-a"))
        saga = Saga([step], name="s")
        assert runner.run(saga, {}).status is Status.COMMITTED and world == ["a"]
    finally:
        runner.close()


SEEN: list[str] = []  # what RetryConnectionErrors.decide was given, by class name


class RetryConnectionErrors(UndoPolicy):
    """A policy of one's own: a ConnectionError (``isinstance``) is retried after a second;
    any other error halts."""

    def decide(self, attempt, error):
        SEEN.append(type(error).__name__)
        return 1.0 if isinstance(error, ConnectionError) and attempt < 3 else "halt"


def _retrying_connection_errors(world: list[str]) -> Saga:
    """a -> b; b fails, a's undo raises ConnectionError at its first try."""

    def undo_a(s):
        world.append("undo a")
        if world.count("undo a") == 1:
            raise ConnectionError("a's service is throttled")

    def b(s):
        raise RuntimeError("b fails")

    return Saga([Step("a", lambda s: world.append("do a"), undo_a), Step("b", b)],
                name="throttled", policy=RetryConnectionErrors())  # fmt: skip


def test_a_run_resumed_here_by_a_later_launch_decides_as_its_first_execution(tmp_path):
    """attack30 F2's replay: ``run()``'s decide was given the very ConnectionError and waited
    to retry; the runner closed (``RunnerClosed``), and a later launch in this process resumed
    the run: its replayed decide was given a stand-in (the errors were dropped when the call
    ended), said halt, and the run ended halted, a's undo pending, where its first execution
    had retried. A call that raises leaves its run's errors kept (``error_record.keeping``):
    the replay decides as the first execution did, a's undo is retried, rolled back."""
    world: list[str] = []
    SEEN.clear()
    db = tmp_path / "d.sqlite"
    runner = DBOSRunner.start(db)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(_retrying_connection_errors(world), {}, run_id="run-t")
        except Exception as exc:
            raised.append(exc)

    caller = threading.Thread(target=run)
    caller.start()
    _until(lambda: SEEN == ["ConnectionError"])
    _closed_waiting(runner)
    caller.join(60)
    assert [type(e) for e in raised] == [RunnerClosed], raised
    sagas = {"throttled": lambda run_id: _retrying_connection_errors(world)}
    with DBOSRunner.start(db, sagas=sagas) as again:
        record = again.record("run-t")
    assert SEEN == ["ConnectionError", "ConnectionError"]  # (the replay's: as the first's)
    assert record.status is Status.ROLLED_BACK and record.compensated == ("a",)
    assert world == ["do a", "undo a", "undo a"]


def test_a_run_over_before_the_close_is_read_after_it_as_it_ended(tmp_path):
    """A ``start_saga`` run whose result DBOS saved before the runner closed, read after the
    close: its Outcome (committed), its events told once. Its handle asked DBOS, closed by
    then, and said ``RunnerClosed``: "left unfinished... a launch there goes on with it", of a
    run that had committed (harden51, with issue #25: its handle keeps the record)."""
    heard: list = []
    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a"))], on_event=heard.append)
    runner = DBOSRunner.start(tmp_path / "d.sqlite")
    state: dict = {}
    handle = runner.start_saga(saga, state, run_id="over-then-closed")
    _until(lambda: DBOS.get_workflow_status("over-then-closed").status == "SUCCESS")
    _until(lambda: "over-then-closed" not in stops.ENDED)  # (its execution done: saved)
    runner.close()
    outcome = handle.outcome()
    assert outcome.status is Status.COMMITTED and outcome.state_after == {"a": 1}
    assert [e.kind for e in heard] == [e.kind for e in outcome.events] and heard
    assert handle.outcome().events == outcome.events and len(heard) == len(outcome.events)


def test_a_closed_runners_handle_stops_nothing_on_the_file_open_now(tmp_path):
    """attack35 F2: runner A ran ``order-1`` and closed; runner B, on another file in this
    process, ran its own ``order-1``; ``stop()`` on A's old handle stopped B's run (halted,
    nothing undone). Now one line, RunnerClosed, nothing stopped; B's run is B's."""
    go, world = threading.Event(), {}

    def saga(tag):
        def slow(state):
            go.wait(10)
            world[f"{tag}.b"] = "done"

        return Saga([Step("a", lambda s: world.__setitem__(f"{tag}.a", "done"),
                          lambda s: world.pop(f"{tag}.a", None)),
                     Step("b", slow, lambda s: world.pop(f"{tag}.b", None))], name="s")  # fmt: skip

    go.set()
    with DBOSRunner.start(tmp_path / "one.sqlite") as a:
        old = a.start_saga(saga("A"), {}, run_id="order-1")
        assert old.outcome().status is Status.COMMITTED
    go.clear()
    with DBOSRunner.start(tmp_path / "two.sqlite") as b:
        mine = b.start_saga(saga("B"), {}, run_id="order-1")
        with pytest.raises(RunnerClosed, match=r"the runner of saga 'order-1' on .*one\.sqlite"):
            old.stop()
        go.set()
        assert mine.outcome().status is Status.COMMITTED
    with pytest.raises(RunnerClosed):  # (none open: it was DBOS's own error)
        old.stop()
    assert world == {"A.a": "done", "A.b": "done", "B.a": "done", "B.b": "done"}


COLLECTED = """
import os, signal, sys, tempfile
from rollback_lessons import Saga, Step
from rollback_lessons.runners.dbos import DBOSRunner
armed = [False]
def hook(frame, event, arg):  # a Ctrl-C as SQLAlchemy's weakref callback runs, in close
    if armed[0] and event == "call" and frame.f_code.co_name == "_collection_gced":
        armed[0] = False
        os.kill(os.getpid(), signal.SIGINT)
sys.setprofile(hook)
saga = Saga([Step(n, lambda s: s, lambda s: s) for n in "abc"], name="s")
try:
    with DBOSRunner.start(os.path.join(tempfile.mkdtemp(), "d.sqlite")) as runner:
        print(runner.run(saga, {}).status.value, flush=True)
        armed[0] = True
    print("closed, nothing raised")
except KeyboardInterrupt:
    print("KeyboardInterrupt raised")
"""


def test_a_ctrl_c_as_dbos_engines_are_finalized_in_close_is_raised_not_dropped():
    """attack56 F4: a Ctrl-C heard in SQLAlchemy's ``_collection_gced`` (a weakref callback)
    as close destroyed DBOS was dropped by Python, the script going on, exit 0. Held back
    while DBOS is destroyed and collected, it is raised after, from ``close``."""
    done = subprocess.run([sys.executable, "-c", COLLECTED], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.stdout.split() == ["committed", "KeyboardInterrupt", "raised"], done.stderr[-2000:]
    assert "Exception ignored" not in done.stderr


def test_record_cut_by_a_close_from_another_thread_names_record(tmp_path, monkeypatch):
    """attack69's F7: ``record`` waiting for a run while another thread closes the runner
    was refused as "waiting() refused", a call the caller never made: now it names
    ``record()``. The close lands while record waits between two looks (a hook, no timing)."""
    monkeypatch.setattr(launch, "GRACE", 0.05)
    world: list[str] = []
    started, go = threading.Event(), threading.Event()
    db = tmp_path / "d.sqlite"
    looking, closed = threading.Event(), threading.Event()

    class Look:  # (record's wait between two looks: it lets the close land there)
        def wait(self, timeout: float) -> bool:
            looking.set()
            return closed.wait(60)

    monkeypatch.setattr(dbos_runner, "_LOOK", Look())
    runner = DBOSRunner.start(db)
    runner.start_saga(_saga(world, started, go), {}, run_id="run-b", register="before")
    assert started.wait(60)
    raised: list[BaseException] = []

    def record() -> None:
        try:
            runner.record("run-b")
        except BaseException as exc:
            raised.append(exc)

    reader = threading.Thread(target=record)
    reader.start()
    assert looking.wait(60)
    with pytest.warns(RunsLeftRunning):
        runner.close()
    closed.set()
    reader.join(60)
    assert [type(exc) for exc in raised] == [RunnerClosed], raised
    assert "record() refused" in str(raised[0]) and "waiting()" not in str(raised[0])
    go.set()
    _relaunched(db, world, go)


def test_close_while_a_branch_at_once_runs_its_action_says_the_branches_steps_are_unsaved(
    tmp_path, monkeypatch
):
    """attack97 F7: the saga's workflow waits for its branches while a branch's action runs
    in its child: ``run`` raised "closed while saga 'r1' waited", though a step ran (and a
    relaunch finds it in doubt). The line says what it waited for and that those branches'
    steps that ran are unsaved."""
    from rollback_lessons import Parallel

    monkeypatch.setattr(launch, "GRACE", 30.0)
    began, go = threading.Event(), threading.Event()

    def slow(s) -> None:
        began.set()
        go.wait(10)

    saga = Saga([Parallel(Step("b", slow, lambda s: None), Step("x", lambda s: None))],
                name="branches")  # fmt: skip
    runner = DBOSRunner.start(tmp_path / "d.sqlite")
    raised: list[BaseException] = []
    ended = []

    def run() -> None:
        try:
            ended.append(runner.run(saga, {}, run_id="r1", at_once=True))
        except BaseException as exc:  # (any: a flake raised another, unseen; s6x, s76)
            raised.append(exc)

    closing = launch.close

    def close_then_go(*args, **kwargs):  # (its action ends within the close's grace, well
        threading.Timer(1.5, go.set).start()  # after the close began: under load, before it,
        return closing(*args, **kwargs)  # the saga ended first, nothing cut: ci140, ci157)

    monkeypatch.setattr(launch, "close", close_then_go)
    thread = threading.Thread(target=run)
    thread.start()
    assert began.wait(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.close()
    thread.join(30)
    assert not thread.is_alive(), "run() had not returned 30 s after the close"
    if ended:  # (under load: the saga heard b end and committed before DBOS was shut down,
        assert ended[0].status == "committed" and not raised  # within the close: s75)
        return
    assert len(raised) == 1 and isinstance(raised[0], RunnerClosed), repr(raised)
    said = str(raised[0])
    if "ran a step" in said:  # (closed as the workflow still made its branches, under load:
        assert "that step unsaved" in said, said  # a DBOS call of its own ended; ci102)
        return
    assert "closed while saga 'r1' waited for its branches (b" in said, said
    assert "the steps of those branches that ran unsaved" in said


def test_a_stop_and_a_close_at_once_end_one_then_the_other(tmp_path, monkeypatch):
    """attack185: ``handle.stop()`` in b's undo's backoff and ``close()`` from another thread
    as it stopped: the close destroyed DBOS under the stop (its cancel written, the run
    CANCELLED), the outcome said "left unfinished ... a launch there goes on with it" (the
    launch then said it was stopped elsewhere), or ``stop()`` raised DBOS's own "No DBOS was
    created yet". The stop ends first now, and the outcome is its record."""
    from rollback_lessons import RetryPolicy, UndoPolicy
    from rollback_lessons.runners.dbos import stops

    failed, world = threading.Event(), []
    steps = refund_down(world, failed, Step("a", lambda s: None, lambda s: world.append("undo a")))
    saga = Saga(steps, name="stop-close")
    runner = DBOSRunner.start(tmp_path / "d.sqlite")
    retry = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=30), then="halt")
    handle = runner.start_saga(saga, {}, policy=retry)
    assert failed.wait(60)
    stop_run, closing = stops.stop_run, []

    def closed_meanwhile(run_id: str) -> None:  # (the close comes as the stop has begun)
        closing.append(threading.Thread(target=runner.close))
        closing[0].start()
        threading.Event().wait(0.2)
        stop_run(run_id)

    monkeypatch.setattr(stops, "stop_run", closed_meanwhile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        handle.stop()
        closing[0].join(30)
    outcome = handle.outcome()
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a"), outcome
    assert outcome.notes == (
        "rollback interrupted by WorkflowCancelled as the undo of b waited to retry "
        "(DBOS.cancel_workflow); not known to be undone: b, a",
    )
    assert world == ["undo b tried"]


def test_dbos_failing_under_a_run_as_the_runner_closes_leaves_it_for_the_next_launch(
    tmp_path, monkeypatch
):
    """s78 (once in a full run): DBOS's own error met by a run's workflow as the runner
    closed (its executor stops first: "cannot schedule new futures after shutdown") was
    saved by DBOS as the run's ERROR, which DBOS never resumes: ``run`` raised WorkflowFailed.
    It is the close's: the run stays unfinished (RunnerClosed), and the next launch ends it.
    DBOS is destroyed once the error was met (its records still written then, as in s78)."""
    from rollback_lessons.runners.dbos import waits, workflow

    monkeypatch.setattr(launch, "GRACE", 30.0)
    world: list[str] = []
    began, destroy, met = workflow.began, DBOS.destroy, threading.Event()

    def failing(step: str) -> str:
        if step == "b" and waits.closing():
            met.set()
            raise RuntimeError("cannot schedule new futures after shutdown")
        return began(step)

    def destroyed_once_met(*args, **kwargs) -> None:
        met.wait(10)
        destroy(*args, **kwargs)

    monkeypatch.setattr(workflow, "began", failing)
    monkeypatch.setattr(DBOS, "destroy", destroyed_once_met)

    def a(s) -> None:
        while not waits.closing():  # (returns once the close began)
            threading.Event().wait(0.01)
        world.append("do a")

    def saga() -> Saga:
        return Saga([Step("a", a, lambda s: world.append("undo a")),
                     Step("b", lambda s: world.append("do b"))], name="cut")  # fmt: skip

    db = tmp_path / "d.sqlite"
    runner = DBOSRunner.start(db)
    thread, raised = raising_in_a_thread(lambda: runner.run(saga(), {}, run_id="r1"))
    threading.Event().wait(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.close()
    thread.join(30)
    assert met.is_set() and world == ["do a"], world
    assert len(raised) == 1 and isinstance(raised[0], RunnerClosed), repr(raised)
    assert "r1' ran a step; it is left unfinished" in str(raised[0]), raised[0]
    monkeypatch.setattr(workflow, "began", began)
    monkeypatch.setattr(DBOS, "destroy", destroy)
    with DBOSRunner.start(db, sagas={"cut": lambda run_id: saga()}) as again:
        outcome = again.handle_for(saga(), "r1").outcome()
    assert outcome.status is Status.COMMITTED, (outcome, outcome.notes)
    assert world == ["do a", "do b"], world
