"""attack46 F1: closing a runner on its own dev server with no ``db_file`` (a server that
keeps nothing) while a saga it started still runs. The saga's only record went with the
server, silently: its done steps never undone, nor named. Now close names each such saga
and what it did (``SagasLost``, ``runner.lost``), and its handle says so after."""

import asyncio
import contextlib
import os
import signal
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from rollback_lessons import RetryPolicy, Saga, Status, Step
from rollback_lessons.runners.temporal import RunnerClosed, SagasLost, TemporalRunner, UnknownRun

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def run_async(coroutine_function):
    """asyncio.run in a thread of its own: the test session may have a loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function())).result()


def _saga(world: list[str], name: str) -> Saga:
    """a, then b, which fails and waits 30 s to try again: the saga is unfinished for long."""

    def b(state):
        world.append("do b (fails)")
        raise ConnectionError("b's service is down")

    return Saga(
        [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
         Step("b", b, lambda s: world.append("undo b"),
              retry=RetryPolicy(max_attempts=3, initial_delay=30))],
        name=name,
    )  # fmt: skip


async def _until_b_failed(handle) -> None:
    """Until b's first attempt failed in the history (the saga waits on its retry timer)."""
    for _ in range(600):
        rows = (await handle.history()).rows
        if any(row[-3] == "activity failed" and row[-1] == "b" for row in rows):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("b never failed")


def test_close_of_a_server_that_keeps_nothing_names_each_unfinished_saga_and_what_it_did():
    world: list[str] = []

    async def main():
        runner = await TemporalRunner.start()
        ended = await runner.run(Saga([Step("x", lambda s: None)], name="ended"), {})
        handle = await runner.start_saga(_saga(world, "silent"), {})
        with pytest.raises(UnknownRun):  # (an id asked for, never a run: nothing to name)
            await runner.handle_for(_saga(world, "silent"), "no-such-run")
        await _until_b_failed(handle)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await runner.close()
        try:
            await handle.outcome()
        except RunnerClosed as exc:
            after = str(exc)
        return runner, handle.run_id, ended, caught, after

    runner, run_id, ended, caught, after = run_async(lambda: asyncio.wait_for(main(), 90))
    assert ended.status is Status.COMMITTED
    lost = [str(w.message) for w in caught if issubclass(w.category, SagasLost)]
    assert len(lost) == 1, [str(w.message) for w in caught]  # (without the fix: no warning)
    assert "1 saga unfinished" in lost[0] and "keeps nothing (no db_file)" in lost[0]
    assert f"saga {run_id}: done: a; undone: none" in lost[0]
    assert lost[0].endswith("so still in effect, or perhaps, undone by nobody: a")
    assert ended.run_id not in lost[0] and "no-such-run" not in lost[0]  # (nothing left)
    assert list(runner.lost) == [run_id] and runner.lost[run_id].in_effect == ("a",)
    assert "nothing will finish or undo it" in after and "undone by nobody: a" in after
    assert "nothing was done" not in after
    assert world == ["do a", "do b (fails)"]  # (named, never undone behind anyone's back)


def test_a_server_that_keeps_its_record_names_nothing_lost(tmp_path):
    """With a ``db_file`` the server keeps the saga for the next start: nothing is lost."""
    world: list[str] = []

    async def main():
        runner = await TemporalRunner.start(db_file=tmp_path / "t.db")
        handle = await runner.start_saga(_saga(world, "kept"), {})
        await _until_b_failed(handle)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await runner.close()
        try:
            await handle.outcome()
        except RunnerClosed as exc:
            after = str(exc)
        return runner, handle.run_id, caught, after

    runner, run_id, caught, after = run_async(lambda: asyncio.wait_for(main(), 90))
    from rollback_lessons.runners import hosted

    hosted.release(run_id)  # (kept on the file for a later start: forget it here)
    assert runner.lost == {} and not [w for w in caught if issubclass(w.category, SagasLost)]
    assert after.endswith("reads the saga there (handle_for)")


CLOSED_BY_CTRL_C = """
import asyncio, os, signal, sys, threading, time
from rollback_lessons import Saga, Step
from rollback_lessons.runners.temporal import TemporalRunner

started = threading.Event()

def b(state):
    started.set()
    time.sleep(5)

saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", b, lambda s: None)],
            name="closing")

async def main():
    async with await TemporalRunner.start() as runner:  # no db_file: it keeps nothing
        await runner.start_saga(saga, {})
        await asyncio.to_thread(started.wait, 30)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # in close
    print("closed")

asyncio.run(main())
"""


def test_a_ctrl_c_while_close_waits_still_names_the_sagas_lost():
    """attack51 F6: a Ctrl-C while ``async with``'s close waited for a running step ended close
    there: ``_name_lost`` never ran, the saga's only record went with the server unnamed. The
    Ctrl-C still ends the process; the ``SagasLost`` warning names the saga and a first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CLOSED_BY_CTRL_C], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "closed" not in done.stdout
    assert "KeyboardInterrupt" in done.stderr
    assert "SagasLost: closed with 1 saga unfinished" in done.stderr, done.stderr[-3000:]
    assert "saga closing-" in done.stderr and "done: a;" in done.stderr


CUT_WITH_A_DB_FILE = """
import asyncio, os, signal, socket, sys, threading, time
from rollback_lessons import Saga, Step
from rollback_lessons.runners.temporal import TemporalRunner

db, undone = sys.argv[1], []
started = threading.Event()

def b_undo(state):
    started.set()
    time.sleep(4)
    undone.append("b")

def c(state):
    raise ValueError("c refuses")

saga = Saga([Step("a", lambda s: None, lambda s: undone.append("a")),
             Step("b", lambda s: None, b_undo), Step("c", c)], name="cut")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
where = dict(db_file=db, port=port, task_queue="cut-q")

async def first():
    runner = await TemporalRunner.start(**where)
    handle = await runner.start_saga(saga, {})
    await asyncio.to_thread(started.wait, 30)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # in its grace
    try:
        await runner.close()
    finally:
        print("run", handle.run_id, flush=True)
        globals().update(runner=runner, run_id=handle.run_id)

try:
    asyncio.run(first())
except KeyboardInterrupt:
    print("Ctrl-C in close", flush=True)
asyncio.run(runner.close())  # (again, from another loop: harmless)
print("closed again", flush=True)

async def again():
    async with await TemporalRunner.start(**where) as runner2:  # (its lock let go)
        outcome = await (await runner2.handle_for(saga, run_id)).outcome()
        print("again:", outcome.status, flush=True)

asyncio.run(again())
"""


def test_a_ctrl_c_in_closes_grace_still_stops_its_server_and_lets_the_file_go(tmp_path):
    """attack212 F1: a Ctrl-C as close gave the calls still running their grace (under
    asyncio.run: its task cancelled) left the dev server running, the db_file's lock held
    for the rest of the process (a runner started again there: ``DbFileInUse``); and close
    called again from a new event loop raised asyncio's "The future belongs to a different
    loop". Now the cut close stops its server all the same, close again is harmless from any
    loop, and a runner started again in the process takes the saga up and finishes it."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CUT_WITH_A_DB_FILE, str(tmp_path / "t.db")],
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    said = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr[-3000:]
    assert said[1:3] == ["Ctrl-C in close", "closed again"], said
    assert said[3].startswith("again: rolled_back"), said
    assert "AbandonedCalls: close was cut" in done.stderr  # (b's undo, left on its thread)


def _server_of(runner) -> int:
    """The pid of the dev server (a child of this process) ``runner`` started."""
    from rollback_lessons.runners.temporal import server as server_module

    port = int(runner.address.rsplit(":", 1)[1])
    pids = [
        pid
        for pid in server_module._server_processes(server_module.server_binary())
        if port in {p for _, p in server_module.listening_sockets(pid)}
    ]
    assert len(pids) == 1, pids
    return pids[0]


@pytest.mark.parametrize("how", [signal.SIGSTOP, signal.SIGKILL], ids=["frozen", "killed"])
def test_close_names_the_unfinished_saga_of_a_server_that_no_longer_answers(how, monkeypatch):
    """attack218 F1: the server frozen (SIGSTOP) or killed mid-saga, close's read of what ran
    there timed out (its client retrying, no RPCError) and it named nothing: no warning,
    ``runner.lost`` empty, a's effect standing, told by nobody. The saga is named by this
    process's word."""
    from rollback_lessons.runners.temporal import runner as runner_module

    monkeypatch.setattr(runner_module, "LOST_READ", 1.0)
    reads: list[str] = []  # (attack255 F2: a killed server read all the same, 5 s more)
    real_read = runner_module.unfinished
    monkeypatch.setattr(
        runner_module, "unfinished", lambda *a: reads.append("read") or real_read(*a)
    )
    world: list[str] = []

    async def main():
        runner = await TemporalRunner.start()
        handle = await runner.start_saga(_saga(world, "unheard"), {})
        await _until_b_failed(handle)
        pid = _server_of(runner)
        os.kill(pid, how)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await runner.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # (a frozen one left by a failed close)
        try:
            await handle.outcome()
        except RunnerClosed as exc:
            after = str(exc)
        return runner, handle.run_id, caught, after

    runner, run_id, caught, after = run_async(lambda: asyncio.wait_for(main(), 90))
    lost = [str(w.message) for w in caught if issubclass(w.category, SagasLost)]
    assert len(lost) == 1, [str(w.message) for w in caught]  # (without the fix: none)
    assert f"saga {run_id}: its history unread, this process did: done: a;" in lost[0]
    assert lost[0].endswith("so still in effect, or perhaps, undone by nobody: a")
    assert list(runner.lost) == [run_id] and runner.lost[run_id].in_effect == ("a",)
    told = str(runner.lost[run_id])  # (attack233 F4: "the server terminated ... its history says")
    assert "its history unread" in told and "terminated" not in told and "says done" not in told
    assert "undone by nobody: a" in after
    assert world == ["do a", "do b (fails)"]
    assert reads == ([] if how == signal.SIGKILL else ["read"])


def test_a_server_lost_is_told_as_the_runner_knows_it():
    """attack233 F2, F3: its own dev server with no db_file, frozen, was said gone ("nothing
    will finish or undo the saga"), then the saga went on; killed, the cancel's line said
    both that and "outcome() tells once the server is back"."""
    from rollback_lessons.runners.temporal.handle import CANCEL_FATE
    from rollback_lessons.runners.temporal.lost import RESTART, ServerLost

    lost = ServerLost.of("r1", ConnectionError("down"), CANCEL_FATE)
    assert RESTART in str(lost) and CANCEL_FATE in str(lost)
    gone = lost.told_by(True, None, lambda: True)
    assert "it went with the server" in str(gone) and CANCEL_FATE not in str(gone)
    silent = lost.told_by(True, None, lambda: False)
    assert "does not answer: if it answers again, the saga goes on" in str(silent)
    assert CANCEL_FATE in str(silent) and "it went with the server" not in str(silent)
    assert lost.told_by(True, "t.db", lambda: True) is lost
    assert "If that server keeps its histories" in str(lost.told_by(False, None, lambda: True))


def test_two_runners_of_one_queue_name_each_name_only_their_own_calls_abandoned(tmp_path):
    """attack228 F3: two runners of one process, each on a dev server of its own (two
    db_files), both given task_queue "orders": closing one named the other's running call
    abandoned (the calls under way were kept by the queue's name, process-wide), though it
    went on and its saga ended as ever."""
    import threading

    from rollback_lessons.runners import hosted
    from rollback_lessons.runners.temporal import AbandonedCalls
    from rollback_lessons.runners.temporal.activities import step_started

    release = threading.Event()

    def slow(state) -> None:
        release.wait(30)

    def saga(name: str) -> Saga:
        return Saga([Step("a", slow, lambda s: None)], name=name)

    async def main():
        one = await TemporalRunner.start(db_file=tmp_path / "1.db", task_queue="orders")
        two = await TemporalRunner.start(db_file=tmp_path / "2.db", task_queue="orders")
        try:
            first = await one.start_saga(saga("one"), {})
            second = await two.start_saga(saga("two"), {})
            for handle in (first, second):
                started = step_started(handle.run_id, "a")
                assert await asyncio.to_thread(started.wait, 30)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await one.close()
            release.set()
            ended = await second.outcome()
        finally:
            release.set()
            await two.close()
        hosted.release(first.run_id)  # (kept for a runner started again on 1.db: none here)
        return one.abandoned, first.run_id, second.run_id, caught, ended

    abandoned, first, second, caught, ended = run_async(lambda: asyncio.wait_for(main(), 90))
    assert len(abandoned) == 1 and first in abandoned[0] and second not in abandoned[0]
    said = [str(w.message) for w in caught if issubclass(w.category, AbandonedCalls)]
    assert len(said) == 1 and second not in said[0], said
    assert ended.status is Status.COMMITTED


def test_a_server_lost_names_the_steps_still_running_here():
    """attack236 F2: a step whose action ran on here as the server died was named nowhere in
    ServerLost ("still in effect: a"), its effect standing for good."""
    from concurrent.futures import Future

    from rollback_lessons.runners.temporal.activities import IN_FLIGHT
    from rollback_lessons.runners.temporal.lost import ServerLost

    IN_FLIGHT["r2"] = {("action", "b", 1): Future()}
    try:
        said = str(ServerLost.of("r2", ConnectionError("down")))
    finally:
        IN_FLIGHT.pop("r2", None)
    assert "running here (its effect may land): b; so still in effect: b." in said


@pytest.mark.parametrize("late", ["undo", "action"])
def test_a_saga_that_ended_with_a_call_running_on_is_not_named_lost(late):
    """attack255 F1: a saga ended (its outcome awaited, the server saying COMPLETED) while a
    call of it ran on past its timeout (an undo past undo_timeout, an action past
    step_timeout); close named it lost all the same ("nothing will finish or undo it",
    ``runner.lost``, its handle after), for the call still running: only the call is told."""
    release = threading.Event()

    def hang(state):
        release.wait(30)

    def b(state):
        raise ValueError("b refuses")

    if late == "undo":
        saga = Saga([Step("a", lambda s: None, hang, undo_timeout=0.5), Step("b", b)],
                    name="ended")  # fmt: skip
        options = {}
    else:
        slow = Step("slow", hang, lambda s: None, register="before")
        saga = Saga([Step("a", lambda s: None, lambda s: None), slow], name="ended")
        options = {"step_timeout": 1.0}

    async def main():
        runner = await TemporalRunner.start()
        try:
            handle = await runner.start_saga(saga, {}, **options)
            outcome = await asyncio.wait_for(handle.outcome(), 30)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await runner.close()
        finally:
            release.set()
        with pytest.raises(RunnerClosed) as closed:
            await handle.outcome()
        return runner, outcome, caught, str(closed.value)

    runner, outcome, caught, after = run_async(lambda: asyncio.wait_for(main(), 90))
    assert outcome.status in (Status.ROLLBACK_INCOMPLETE, Status.ROLLED_BACK), outcome
    named = [w.category.__name__ for w in caught]
    assert "AbandonedCalls" in named and "SagasLost" not in named, named
    assert runner.lost == {} and "nothing will finish or undo it" not in after, after


@pytest.mark.parametrize("db", [False, True])
def test_a_run_awaited_as_its_runner_closes_is_told_closed_not_a_server_lost(tmp_path, db):
    """attack293 F1: ``runner.run`` awaited in a task as the runner closed got ServerLost
    ("the Temporal server stopped answering ... so still in effect: none") though its step
    a was done and the close itself named it in effect: the runner's own stop, told so."""
    world: list[str] = []

    async def main():
        runner = await TemporalRunner.start(db_file=tmp_path / "t.db" if db else None)
        task = asyncio.ensure_future(runner.run(_saga(world, "closing"), {}))
        for _ in range(600):  # (until b's first attempt failed: a is done)
            if "do b (fails)" in world:
                break
            await asyncio.sleep(0.05)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            await runner.close()
        with pytest.raises(RunnerClosed) as closed:
            await asyncio.wait_for(task, 30)
        return str(closed.value)

    said = run_async(lambda: asyncio.wait_for(main(), 90))
    assert said.startswith("the runner of saga 'closing-") and " was closed: " in said, said
    if db:
        assert "a runner started again on the same db_file" in said, said
    else:
        assert "done: a; undone: none" in said and said.endswith("undone by nobody: a"), said
