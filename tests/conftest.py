import asyncio
import contextlib
import os
import signal
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import settings

from rollback_lessons import Parallel, Saga, Step, UndoPolicy, VirtualClock

ROOT = Path(__file__).resolve().parent.parent

# The tests that press Ctrl-C (a real SIGINT to a child) need the child to hear it as from a
# terminal. A shell starts a background job (``make test &``, a CI step run in the background)
# with SIGINT ignored, and every child inherits that: asyncio.run then installs no handler and
# a child waiting for the cancellation waits forever. Heard here, the children inherit the
# default (Python's KeyboardInterrupt).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# ``make test`` runs a representative part of the costliest checks, ``make soak`` (SOAK=1) all
# of them: SOAK says which. Property tests: the "test" profile, or with SOAK the "soak" one
# (HYPOTHESIS_PROFILE=soak), ten times as many examples of every property (see examples()).
SOAK = os.environ.get("SOAK", "") not in ("", "0")
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "soak" if SOAK else "test")
settings.register_profile("test", deadline=None)
settings.register_profile("soak", deadline=None, max_examples=1000)
settings.load_profile(HYPOTHESIS_PROFILE)


# A sweep too costly to run whole in make test (every single fault of five sagas on Step
# Functions, say) runs a part of its cases there, a different part each run: TEST_SLICE (a
# number the run draws, printed in its header; give it to repeat a run's part) picks which.
# Over runs every case is run; make soak runs them all every time.
def _whole(name: str) -> int:
    """The environment's ``name`` as a whole number; 0 if it is none, which the root
    conftest.py's pytest_configure refuses in one line before any test is run."""
    try:
        return int(os.environ.get(name, "0"))
    except ValueError:
        return 0


def _slice() -> int:
    """TEST_SLICE, read when a part is chosen (at collection, once the root conftest.py drew
    it: this module is imported before that)."""
    return _whole("TEST_SLICE")


def a_part(cases: list, every: int, *, name: str) -> list:
    """Every ``every``-th of ``cases`` in make test, from an offset that TEST_SLICE and
    ``name`` (the sweep's: sweeps of one run start at different offsets) choose; all of
    them in make soak."""
    if SOAK:
        return list(cases)
    return list(cases)[(_slice() + zlib.crc32(name.encode())) % every :: every]


# make test's part of each test file (the root conftest.py: TEST_PARTS; 1 in make soak and
# where make test was given TESTS or PARTS=1): the files' tests are sampled there, so a
# sweep spread over several tests samples each of its groups instead (a_part_each).
PARTS = 1 if SOAK else max(1, _whole("TEST_PARTS"))  # (make test's: set before pytest starts)


def a_part_each(cases: list, every: int, *, name: str, group) -> list:
    """``a_part`` of each group of ``cases`` (``group(case)`` names it), at least one case of
    each: whichever of a file's tests make test runs (one group each), each runs a part of
    its cases (a lesson's panels, say)."""
    groups: dict = {}
    for case in cases:
        groups.setdefault(group(case), []).append(case)
    chosen = []
    for key, members in groups.items():
        part = a_part(members, every, name=f"{name} {key}")
        chosen += part or members[(_slice() + zlib.crc32(name.encode())) % len(members) :][:1]
    return chosen


@pytest.fixture(autouse=True)
def _dbos_logs_to_a_live_stream():
    """DBOS's console handler takes ``sys.stderr`` as it is when DBOS first starts in the
    process: where that was inside a test's ``capfd``/``capsys``, its stream closed with the
    test and every later DBOS launch in the process failed on writing its first line
    ("I/O operation on closed file", attack147 F1: a part of a file ran them in that order).
    After each test, a handler left on a closed stream is given the process's own again."""
    yield
    import sys

    logger = sys.modules.get("dbos._logger")
    for handler in getattr(getattr(logger, "dbos_logger", None), "handlers", ()):
        if getattr(getattr(handler, "stream", None), "closed", False):
            handler.stream = sys.stderr  # (not setStream: it flushes the closed one first)


@pytest.fixture(autouse=True)
def _owed_of_closed_journals_unhooked(monkeypatch):
    """A test's journals closed with runs still owed (writes failing to the end, as a fault
    test makes them): their try at this process's end is unhooked, as it could only say, once
    per journal, that a journal closed on a full disk left them to recover (184 such lines
    at a soak's end), and it kept each alive until then. Each is held weakly: a journal a
    test lets go is collected as ever (its finalizer takes its mark away)."""
    import atexit
    import weakref

    from rollback_lessons.durable.owed import Owed

    made: list[weakref.ref[Owed]] = []
    real = Owed.__init__

    def init(self, journal):  # type: ignore[no-untyped-def]
        real(self, journal)
        made.append(weakref.ref(self))

    monkeypatch.setattr(Owed, "__init__", init)
    yield
    for ref in made:
        if (owed := ref()) is not None and owed._journal.closed:
            atexit.unregister(owed._at_end)


@pytest.fixture(autouse=True, scope="session")
def _late_calls_not_waited_for_at_the_end():
    """The helper threads of timed calls a test left hung (past their timeout on purpose)
    are not waited for as a test process ends (5 s, and a line, each worker): what the
    process's end does with them is tested in processes of their own (test_late_thread_end)."""
    yield
    from rollback_lessons import _late_threads

    _late_threads.waited(0.0)


def examples(n: int) -> int:
    """A property's example count: ``n`` in make test, ten times as many in make soak."""
    return n * 10 if HYPOTHESIS_PROFILE == "soak" else n


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def sent_states(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, object]]:
    """Every widget state message sent from here on, as (widget, keys): what one change
    costs in messages, and in which order they go."""
    import ipywidgets as w

    sent: list[tuple[object, object]] = []
    original = w.Widget.send_state

    def spy(self, key=None):
        if key is None or len(key):  # (an empty set sends nothing)
            sent.append((self, key))
        return original(self, key)

    monkeypatch.setattr(w.Widget, "send_state", spy)
    return sent


class OnALoop:
    """An async runner kept on an event loop of its own thread, so that a module's sync
    tests share one (one Temporal dev server for the module, not one per test):
    ``on(scenario)`` runs ``await scenario(runner)`` there and returns its result."""

    def __init__(self, start) -> None:
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = self.call(start())

    def call(self, coroutine):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(600)

    def __call__(self, scenario):
        return self.call(scenario(self.runner))

    def close(self) -> None:
        try:
            self.call(self.runner.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


@pytest.fixture(scope="module")
def on_temporal():
    """One Temporal dev server for the module's tests (each starts its workflows with ids and
    task queues of its own), not one per test: a start is about 0.7 CPU s and 1.5 s of wall
    time. A test that restarts the server starts its own."""
    from rollback_lessons.runners.temporal import TemporalRunner

    on = OnALoop(TemporalRunner.start)
    try:
        yield on
    finally:
        on.close()


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel built from this tree, alone in a fresh venv (its third-party libraries come
    from the test venv through a path entry, so only our own packaging is under test): (venv,
    wheel). Built once for the whole run: under xdist the first worker to ask builds it and
    the other waits on a lock and uses it (test_packaging and test_browser both need it)."""
    import fcntl
    import shutil
    import subprocess
    import sys
    import sysconfig

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    tmp = root / "wheel"
    with open(root / "wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        venv = tmp / "venv"
        if not (tmp / "built").exists():
            shutil.rmtree(tmp, ignore_errors=True)
            src = tmp / "src"
            files = subprocess.run(
                ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                cwd=ROOT, capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            for name in files:
                if (ROOT / name).is_file():
                    (src / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / name, src / name)
            # built as make builds the venv: by uv where it is there (its build environment
            # with setuptools cached, not made again by pip: 19.6 -> 7.4 s, 5.4 -> 1.7 CPU s,
            # the same wheel byte for byte, s44), else by pip
            uv = Path(sys.executable).parent / "uv"
            subprocess.run(
                [str(uv), "build", "-q", "--wheel", "-o", str(tmp / "dist"), str(src)]
                if uv.exists()
                else [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                      str(tmp / "dist"), str(src)],
                check=True,
            )  # fmt: skip
            wheel = next((tmp / "dist").glob("rollback_lessons-*.whl"))
            # no pip of its own (ensurepip is most of a venv's cost): this venv's pip
            # installs into it, as it would its own
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            python = venv / "bin" / "python"
            subprocess.run(
                [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                 "--no-deps", "--no-index", str(wheel)], check=True,
            )  # fmt: skip
            purelib = subprocess.run(
                [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            (Path(purelib) / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
            (tmp / "built").touch()
    return venv, next((tmp / "dist").glob("rollback_lessons-*.whl"))


@pytest.fixture(scope="module")
def sfn_runner():
    """Step Functions on moto, in this process, for a module."""
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    with StepFunctionsRunner.start() as runner:
        yield runner


@pytest.fixture(scope="module")
def bpmn_runner():
    """BPMN on SpiffWorkflow (a library: nothing to start), for a module."""
    from rollback_lessons.runners.bpmn import BpmnRunner

    with BpmnRunner.start() as runner:
        yield runner


@pytest.fixture(scope="module")
def dbos_runner():
    """DBOS, launched once for a module (it is one per process), on a temporary file; closed
    when the module is done, so that its threads do not run beside other modules' tests.

    DBOS's queue thread jitters its polling with the global ``random`` (dbos/_queue.py:
    ``random.uniform``, ``random.shuffle``), every second or so: Hypothesis saw the global
    state change while a strategy was drawing and blamed the strategy ("Do not use the
    `random` module inside strategies"). Here that thread draws from a Random of its own."""
    import random

    import dbos._queue

    from rollback_lessons.runners.dbos import DBOSRunner

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dbos._queue, "random", random.Random())
        with DBOSRunner.start() as runner:
            yield runner


LOW_HISTORY_LIMIT = 120
"""The history limit of ``temporal_with_a_low_history_limit``'s server (the default is
51,200): a few undo retries past a short saga's run."""


def _until_healthy(address: str, server, deadline: float) -> None:
    """A dev server listens before its frontend is healthy: a client connecting then is
    refused ("Frontend is not healthy yet", a fresh-clone CI at load 12). Until a client
    connects, as ``WorkflowEnvironment.start_local`` waits for the servers it starts."""
    import asyncio
    import time

    from temporalio.client import Client

    from rollback_lessons.runners.temporal.server import client_options

    while True:
        assert server.poll() is None, f"the Temporal dev server exited ({server.returncode})"
        try:
            asyncio.run(Client.connect(address, **client_options()))
            return
        except Exception as exc:  # (RuntimeError from the SDK's core: not yet healthy)
            assert time.monotonic() < deadline, f"the Temporal dev server is not healthy: {exc}"
            time.sleep(0.2)


@contextlib.contextmanager
def dev_server(*settings: str):
    """A Temporal dev server on 127.0.0.1 with these dynamic config values (``key=json``),
    started and healthy: its address; stopped as the block ends."""
    import socket
    import subprocess
    import time

    from rollback_lessons.runners import free_port
    from rollback_lessons.runners.temporal.server import server_binary

    port = free_port()
    server = subprocess.Popen(
        [server_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
         "--headless", "--log-level", "error",
         *(arg for value in settings for arg in ("--dynamic-config-value", value))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # until it listens
            assert server.poll() is None, f"the Temporal dev server exited ({server.returncode})"
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Temporal dev server did not listen"
                time.sleep(0.1)
        _until_healthy(f"127.0.0.1:{port}", server, deadline)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def temporal_with_a_low_history_limit():
    """A Temporal dev server on 127.0.0.1 whose history limit is ``LOW_HISTORY_LIMIT``
    (``limit.historyCount.error``, the mechanism of the default), started once per pytest
    process (an xdist worker) for the tests of the limit: its address. Each test runs its
    sagas on a task queue of its own (``TemporalRunner.start``), so they share it."""
    with dev_server(f"limit.historyCount.error={LOW_HISTORY_LIMIT}") as address:
        yield address


@pytest.fixture
def temporal_deleting_soon():
    """A Temporal dev server that deletes a closed run about 4 s after it is asked, not 30:
    a DeleteExecutionTask waits until the transfer queue's ack level has passed the run's
    close, and that level is saved every ``history.transferProcessorUpdateAckInterval``
    (30 s by default; 1 s here, as Temporal's own tests of deletion set it): its address."""
    with dev_server('history.transferProcessorUpdateAckInterval="1s"') as address:
        yield address


def port_freed(port: int, within: float = 20.0) -> None:
    """Wait until a stopped process's Temporal dev server let ``port`` go (its reaper stops
    it as the process ends, which a loaded machine may take seconds to finish; a relaunch
    then refused: "port ... is in use"). Free as the relaunch's server binds it, with
    SO_REUSEADDR (``server.port_in_use``, what ``TemporalRunner.start`` checks): a plain bind
    also waited for the old server's connections in TIME_WAIT, so out to ``within``, 20 s a
    relaunch (issue 26)."""
    import time

    from rollback_lessons.runners.temporal.server import port_in_use

    deadline = time.monotonic() + within
    while port_in_use(int(port)) and time.monotonic() < deadline:
        time.sleep(0.1)


LOST_SOON = 2.0
"""Seconds a Temporal client keeps asking a server these tests killed (the SDK's 10 s, kept
by the runner, otherwise): ``ServerLost`` or ``TemporalUnavailable`` the same, sooner."""


@pytest.fixture
def server_lost_soon(monkeypatch):
    """A Temporal server that stops answering is given up on after ``LOST_SOON`` seconds."""
    from rollback_lessons.runners.temporal import server

    monkeypatch.setattr(server, "LOST_AFTER", LOST_SOON)


@pytest.fixture
def no_run_left_behind():
    """A test on an engine releases every run it hosted in this process (``hosted.RUNS``,
    ``hosted.POLICIES``): one left there stays for the rest of the xdist worker's tests."""
    from rollback_lessons.runners import hosted

    before = set(hosted.RUNS) | set(hosted.POLICIES)
    yield
    left = (set(hosted.RUNS) | set(hosted.POLICIES)) - before
    assert not left, f"this test left runs hosted (never awaited to their outcome): {sorted(left)}"


def same_outcome(local, remote, *, events: bool = True) -> None:
    """A saga run elsewhere (Temporal, Step Functions, BPMN) ended as it did in process:
    field by field, errors by their repr, and (unless told) event by event."""
    assert remote.status == local.status
    assert remote.completed == local.completed
    assert remote.compensated == local.compensated
    assert [(d.step, d.attempts, repr(d.error)) for d in remote.dead_letters] == [
        (d.step, d.attempts, repr(d.error)) for d in local.dead_letters
    ]
    assert remote.pending == local.pending
    assert remote.leaked == local.leaked
    assert remote.semantic == local.semantic
    assert remote.failed_step == local.failed_step
    assert repr(remote.error) == repr(local.error)
    assert remote.state_after == local.state_after
    if events:
        assert remote.events == local.events


class HaltOnAnythingButTimeouts(UndoPolicy):
    """A policy of one's own (it decides in code): a timeout is retried at once, twice;
    anything else halts for a person."""

    def decide(self, attempt, error):
        if isinstance(error, TimeoutError) and attempt < 3:
            return 0.0
        return "halt"


def every_single_fault_ends_the_same(run) -> set:
    """``run(saga, state, inject=...)`` on an engine, for every single fault of the lesson
    worlds, against ``saga.run`` in process; the statuses seen."""
    worlds, seen = lesson_worlds(), set()
    for name, inject in single_faults():
        make_saga, make_state = worlds[name]
        local = make_saga().run(make_state(), inject=inject, clock=VirtualClock())
        remote = run(make_saga(), make_state(), inject=inject)
        same_outcome(local, remote)
        seen.add(remote.status)
    return seen


def lesson_worlds() -> dict:
    """Five lesson sagas (name: (make_saga, make_state)) that every runner is checked on."""
    from rollback_lessons.worlds import examples
    from rollback_lessons.worlds.demo import xyz_saga, xyz_state

    return {
        "xyz": (xyz_saga, xyz_state),
        "folder": (examples.folder_saga, examples.folder_state),
        "account": (examples.account_saga, examples.account_state),
        "order": (examples.order_saga, examples.order_state),
        "booking": (examples.booking_saga, examples.booking_state),
    }


def single_faults(*, no_fault: bool = True) -> list[tuple[str, dict]]:
    """(world, inject) for every single fault of the lesson worlds: each action fault of
    each step, each undo fault with the last step failing (so that the undo runs), and,
    with ``no_fault``, a run with none."""
    from rollback_lessons.faults import UNDO_FAULTS, fault_space

    cases: list[tuple[str, dict]] = []
    for name, (make_saga, _) in lesson_worlds().items():
        saga = make_saga()
        last = saga.names[-1]
        if no_fault:
            cases.append((name, {}))
        for step, fault in fault_space((s.name, s.undo is not None) for s in saga.steps):
            if fault in UNDO_FAULTS and step == last:
                continue
            cases.append(
                (name, {step: fault, last: "fail"} if fault in UNDO_FAULTS else {step: fault})
            )
    return cases


def text_problems(fig) -> list[str]:
    """Texts of a drawn figure that collide with each other or are cut by its edge (the
    package's own check, which its pictures also report about themselves)."""
    from rollback_lessons.lab.quality import text_problems as problems

    return problems(fig)


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def orphan(path, saga_id: str) -> None:
    """Make a saga look as if its process died (a crash), without killing this one."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        con.execute(
            "UPDATE sagas SET owner_pid = ?, owner_started = NULL WHERE id = ?",
            (dead_pid(), saga_id),
        )
        con.commit()
    finally:
        con.close()


def crash_at_first_undo(path, saga, set_sql: str | None = None, params=()) -> None:
    """Run ``saga`` journalled at ``path`` (run id "s") until its first undo, where its process
    'dies' (a KeyboardInterrupt: every undo left pending); then ``set_sql`` on the journal, by
    default the owner made a dead process (a crash), so ``recover`` takes it up."""
    import sqlite3

    from rollback_lessons.durable.journal import Journal

    def crash(event):
        if event.kind == "undo":
            raise KeyboardInterrupt

    awaits = any(s.undo is not None and getattr(s.undo, "awaits", bool)() for s in saga.steps)
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        if awaits:  # (an async def compensation: saga.run refuses it, attack91 F2)
            import asyncio

            asyncio.run(saga.arun({}, journal=journal, run_id="s", on_event=crash))
        else:
            saga.run({}, journal=journal, run_id="s", on_event=crash)
    con = sqlite3.connect(path)
    try:  # (a crash lets nothing go: the Ctrl-C's release, for a process living on, undone)
        con.execute("DELETE FROM events WHERE kind = 'released'")
        con.commit()
    finally:
        con.close()
    if set_sql is None:
        orphan(path, "s")
        return
    con = sqlite3.connect(path)
    try:
        con.execute(set_sql, params)
        con.commit()
    finally:
        con.close()


def recover_command(tmp_path, path, *flags: str) -> tuple[list[str], dict[str, str]]:
    """``python -m rollback_lessons recover PATH FLAGS`` with a registry module (in
    ``tmp_path``) whose undo 'u' prints ``UNDID <step>``, and the environment that finds it:
    for running recover as another process would (another namespace, host name)."""
    import os
    import sys

    (tmp_path / "printing_reg.py").write_text(
        "from rollback_lessons.durable.registry import Registry\n"
        "registry = Registry()\n"
        "registry.add('u', lambda step, idempotency_key=None: print('UNDID', step))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "rollback_lessons", "recover", str(path)]
    return [*command, "--registry", "printing_reg", *flags], env


@pytest.fixture
def crashed(tmp_path):
    """A journal whose process was killed after two of three steps (undos logged first)."""
    import subprocess
    import sys

    journal, world = tmp_path / "j.db", tmp_path / "w.db"
    crash = subprocess.run(
        [sys.executable, "-m", "rollback_lessons.worlds.crashlab", "--journal", str(journal),
         "--world", str(world), "--kill-at", "4"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert crash.returncode == -9
    return journal, world


def world_saga(world: list[str], graph: bool = False) -> Saga:
    """a, b, c (or a, b | c, d as a graph), each noting ``do x`` and ``undo x`` in ``world``:
    the saga an engine error's tests run, the world its own record of what stands."""

    def step(name: str) -> Step:
        return Step(name, lambda s: world.append(f"do {name}"),
                    lambda s: world.append(f"undo {name}"))  # fmt: skip

    if graph:
        return Saga([step("a"), Parallel(step("b"), step("c")), step("d")], name="eng")
    return Saga([step("a"), step("b"), step("c")], name="eng")


@pytest.fixture
def pool():
    """A thread pool an action or undo hands its work to (its Future handed back)."""
    with ThreadPoolExecutor(2) as pool:
        yield pool


@pytest.fixture
def other_loop():
    """A loop running in a thread of its own: an async client a sync app talks to."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def registry_module(tmp_path, name: str, source: str):
    """A registry module of ``source`` written to ``tmp_path/name.py`` and imported here (the
    test binds its compensations); a ``recover`` run with ``PYTHONPATH=tmp_path`` imports it
    by that name."""
    import importlib
    import sys

    (tmp_path / f"{name}.py").write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))


def refund_down(tried: list[str], failed: threading.Event, a: Step) -> list[Step]:
    """``a``, then b, then c, which refuses (ValueError): b's undo fails every time (the
    refund service down), each try said in ``tried`` ("undo b tried") and ``failed``: a run
    whose rollback waits to retry b's undo, or halts there (a stop, a close to land in)."""

    def undo_b(s: dict) -> None:
        tried.append("undo b tried")
        failed.set()
        raise ConnectionError("the refund service is down")

    def refuses(s: dict) -> None:
        raise ValueError("no seats")

    return [a, Step("b", lambda s: s.update(b="done"), undo_b), Step("c", refuses)]


def raising_in_a_thread(call) -> tuple[threading.Thread, list[BaseException]]:
    """``call()`` on a thread of its own, started: what it raised, if anything, is kept in
    the list (a run a close lands under, read once the thread is joined)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, raised


def as_killed(journal) -> None:
    """``journal``'s process killed: its connection just goes, no finalizer runs; and, as the
    next journal opened with the -wal a kill leaves would, its mark taken away (this close,
    the last, wrote the -wal back: ``writers``)."""
    import sqlite3

    journal._mark.leave.detach()
    journal._con.close()
    con = sqlite3.connect(journal.path)
    try:
        con.execute("UPDATE sagas SET writer = NULL")
        con.execute("DELETE FROM meta WHERE key LIKE 'writer %'")
        con.commit()
    finally:
        con.close()


def full_to_the_end(journal) -> None:
    """The disk stays full until the process ends: what the journal owes (``durable.owed``:
    a run's last writes that failed, written with its next write or as it closes) is lost,
    as that process's end loses it. For a test that plays the rest of the story (a recover
    after that process died) in this one, on the same journal, its writes restored."""
    import atexit

    from rollback_lessons.durable.owed import Owed

    atexit.unregister(journal.owed._at_end)  # (its try at this process's end: none)
    journal.owed = Owed(journal)
