"""A Temporal runner's process stopped mid-saga (attack51): a relaunch on the same ``db_file``
given the run's undo before its ``handle_for`` hosted it (F1: dead-lettered ``NotHosted``,
the effect left); a SIGTERM handler's ``sys.exit`` while a step's action runs, which ends
``asyncio.run`` and so cancels the worker's activity task (F2: told as a clean failure, the
relaunch said rolled_back while the step's effect stood; F3: ``runner.run`` hung for ever)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import port_freed

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners import free_port, hosted
from rollback_lessons.runners.temporal import TemporalRunner, activities
from rollback_lessons.runners.temporal.activities import HOST_WAIT
from rollback_lessons.runners.temporal.handle import _release

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def run_async(coroutine_function):
    """asyncio.run in a thread of its own: the test session may have a loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function())).result()


def _saga(world: list[str], b=None) -> Saga:
    def step(name):
        return Step(name, lambda s: world.append(f"do {name}"),
                    lambda s: world.append(f"undo {name}"))  # fmt: skip

    steps = [step("a"), step("b")]
    if b is not None:
        steps[1] = Step("b", b, lambda s: world.append("undo b"))
    return Saga(steps, name="stops")


@pytest.mark.parametrize("wait, late", [(HOST_WAIT, 1.0), (0.5, 3.0)], ids=["held", "given-back"])
def test_a_relaunch_given_the_runs_undo_before_its_handle_for_runs_it_once(
    tmp_path, monkeypatch, wait, late
):
    """F1: the first runner closed while b ran (b abandoned, in doubt: a's undo scheduled);
    the runner started again on the same db_file, port and task_queue is given a's undo at
    once, ``late`` seconds before its ``handle_for`` hosts the run. The call waits to be
    hosted (``HOST_WAIT``), or is given back unbegun and given out again, never counted: a
    is undone once, no dead letter."""
    monkeypatch.setattr(activities, "HOST_WAIT", wait)
    db, port, queue = tmp_path / "t.db", free_port(), f"stops-{uuid.uuid4().hex[:8]}"
    world: list[str] = []
    go = threading.Event()

    def b(state):
        world.append("start b")
        go.wait(30)
        world.append("do b")

    async def main():
        runner = await TemporalRunner.start(db_file=db, port=port, task_queue=queue)
        handle = await runner.start_saga(_saga(world, b), {})
        await asyncio.to_thread(handle.started("b").wait, 30)
        with warnings.catch_warnings(record=True):  # (AbandonedCalls: b, on its thread)
            await runner.close()
        go.set()
        await asyncio.sleep(0.2)  # b's thread ends
        _release(handle.run_id)  # as in a new process: nothing of the run hosted here
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as again:
            await asyncio.sleep(late)  # its worker polls from its start: a's undo is given
            taken = await again.handle_for(_saga(world), handle.run_id)
            return await taken.outcome(), await taken.history(ids=False)

    outcome, history = run_async(main)
    unbegun = [row for row in history.rows if row == ("activity failed", "undo", "a")]
    assert (len(unbegun) >= 1) if late > wait else not unbegun  # (given back: not counted)
    assert outcome.dead_letters == ()
    assert outcome.compensated == ("a",) and outcome.leaked == ("b",)
    assert world.count("undo a") == 1 and world[-1] == "undo a"


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))  # how a service ends on SIGTERM
    db, port, queue, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

    def b(state):  # one SIGTERM as it runs; it outlasts the worker's grace (its end unknown)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        time.sleep(8.0)

    def refuse(state):
        raise ValueError("c refused")

    if mode in ("undo", "run-undo"):  # b done, c refused: the SIGTERM as b's undo runs
        saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None, b),
                     Step("c", refuse)], name="stops")
    else:
        saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", b, lambda s: None)],
                    name="stops")

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            if mode in ("run", "run-undo"):
                await r.run(saga, {})
            else:
                handle = await r.start_saga(saga, {})
                print("RUNID", handle.run_id, flush=True)
                await handle.outcome()

    asyncio.run(main())
    """
)


def _sigtermed(tmp_path, mode: str):
    """The child's run, ended by its SIGTERM handler's ``sys.exit(3)`` while b runs. Run again,
    once, on a db_file and port of its own, if the interpreter died of SIGSEGV as it finalized,
    after everything was said: the SDK's native bridge frees an object without the GIL as
    Python's last collection runs (a core dump's stack: fixtemp6; 2 of ~250 runs), as
    ``_child`` does for "PyGILState_Release"."""
    for attempt in range(2):
        db, port = tmp_path / f"t{attempt or ''}.db", free_port()
        queue = f"stops-{uuid.uuid4().hex[:8]}"
        try:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(db), str(port), queue, mode],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:  # (killed by ``subprocess.run``)
            raise AssertionError(f"the process never ended: {exc.stderr!r}") from None
        if done.returncode != -signal.SIGSEGV or "WorkerGone" not in done.stderr:
            break
    return db, port, queue, done


def _refused_at_c(world: list[str]) -> Saga:
    """The children's saga as a relaunch gives it: a, b, then c refusing."""

    def refuse(state):
        raise ValueError("c refused")

    return Saga([*_saga(world).steps, Step("c", refuse)], name="stops")


def _child(code: str, *args: object) -> subprocess.CompletedProcess[str]:
    """``code`` run in a process of its own (its SIGTERM, its Ctrl-Cs, its exit). Run again,
    once, if the interpreter crashed as it finalized, after everything was said (the SDK's
    native core, rarely: "Fatal Python error: PyGILState_Release", shared notes; attack57 L4)."""
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code, *map(str, args)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        if "Fatal Python error: PyGILState_Release" not in done.stderr:
            break
    return done


def _relaunched(db, port, queue, run_id: str, world: list[str], saga=None):
    port_freed(port)

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as again:
            return await (await again.handle_for(saga or _saga(world), run_id)).outcome()

    return run_async(main)


def test_an_undo_cut_by_the_loops_end_is_asked_again_never_a_dead_letter(tmp_path):
    """F2, mid-undo: ``sys.exit`` in a SIGTERM handler while b's undo runs: its attempt was
    failed ``CancelledError`` and dead-lettered, though it ran. Its end unheard, it is asked
    again (undos are idempotent), as one the server timed out: then a's undo; rolled_back."""
    db, port, queue, done = _sigtermed(tmp_path, "undo")
    assert done.returncode == 3, done.stderr[-2000:]
    run_id = done.stdout.split("RUNID ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world, _refused_at_c(world))
    assert outcome.dead_letters == () and outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == ("b", "a") and world == ["undo b", "undo a"]


def test_an_action_cut_by_the_loops_end_is_in_doubt_never_a_clean_failure(tmp_path):
    """F2: ``sys.exit`` in a SIGTERM handler while b's action runs: ``asyncio.run`` cancels
    the worker's activity task and the SDK reports it failed (``CancelledError``). b's call
    went on (its end unknown): the relaunch names b (leaked: its undo is logged after its
    action), never rolled_back with b's effect standing."""
    db, port, queue, done = _sigtermed(tmp_path, "start")
    assert done.returncode == 3, done.stderr[-2000:]
    run_id = done.stdout.split("RUNID ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE
    assert outcome.compensated == ("a",) and outcome.leaked == ("b",)
    assert repr(outcome.error) in (  # (b outlasts the worker's grace: its activity cut, or
        "CancelledError('its worker stopped mid-call: its end unknown')",  # its end never
        "TimeoutError('activity Heartbeat timeout')",  # sent, timed out by the server (its
        "TimeoutError('activity StartToClose timeout')",  # heartbeats gone), or abandoned,
        "AbandonedCall('abandoned when the runner closed: its end unknown')",  # as close does
    )
    assert world == ["undo a"]
    assert hosted.find(run_id) is None


def test_run_under_asyncio_run_ended_by_sys_exit_mid_step_ends_and_says_what_is_left(tmp_path):
    """F3: ``runner.run``'s task cancelled by ``asyncio.run``'s end awaited the compensated
    outcome for ever, the worker cancelled too: the process hung, its server with it. Now
    the wait stops once the worker is gone, a ``WorkerGone`` warning naming what is in doubt
    and where the saga is left; a relaunch on the db_file finishes it (cancelled: undone)."""
    db, port, queue, done = _sigtermed(tmp_path, "run")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "WorkerGone: the worker running saga stops-" in done.stderr
    assert "so in effect, or perhaps: a" in done.stderr
    assert "same db_file, port and task_queue takes it up (handle_for)" in done.stderr
    assert "Traceback" not in done.stderr
    run_id = done.stderr.split("the worker running saga ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world)
    assert "a" in outcome.compensated and world[-1] == "undo a"
    assert outcome.leaked in ((), ("b",))


EXIT_AS_IT_STARTS = """
import asyncio, sys
from rollback_lessons.runners.temporal import TemporalRunner, server

def exiting(self, *_):  # a SIGTERM handler's sys.exit as the start reads the processes
    sys.exit(3)

server._Guarded.__init__ = exiting
asyncio.run(TemporalRunner.start())
"""


def test_a_sys_exit_as_the_server_starts_leaves_no_coroutine_unawaited():
    """attack51 L3's aside: a ``sys.exit`` at once in ``TemporalRunner.start`` printed
    "RuntimeWarning: coroutine 'WorkflowEnvironment.start_local' was never awaited"."""
    done = subprocess.run([sys.executable, "-W", "always", "-c", EXIT_AS_IT_STARTS],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3 and "never awaited" not in done.stderr, done.stderr[-2000:]


def test_the_worker_gone_mid_undo_names_the_undo_running_and_a_relaunch_asks_it_again(tmp_path):
    """attack54 F1: ``WorkerGone`` said "in doubt: none" while b's undo ran (actions only);
    it names the undo running as the worker stopped, and a relaunch runs it again."""
    db, port, queue, done = _sigtermed(tmp_path, "run-undo")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "undoing here as it stopped (each undo's end unknown): b;" in done.stderr
    assert "so in effect, or perhaps: a, b." in done.stderr
    run_id = done.stderr.split("the worker running saga ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world, _refused_at_c(world))
    assert outcome.status is Status.ROLLED_BACK and outcome.dead_letters == ()
    assert world == ["undo b", "undo a"]


ABANDONING = textwrap.dedent(
    """
    import asyncio, sys, threading, time, warnings
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    db, port, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    began = threading.Event()

    def slow_undo(state):  # outlives close's two seconds: abandoned on its thread
        began.set()
        time.sleep(30)

    def refuse(state):
        raise ValueError("c refused")

    saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None, slow_undo),
                 Step("c", refuse)], name="stops")

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            handle = await r.start_saga(saga, {})
            print("RUNID", handle.run_id, flush=True)
            await asyncio.to_thread(began.wait, 30)
        print("ABANDONED", r.abandoned, flush=True)

    asyncio.run(main())
    """
)


def test_an_undo_abandoned_by_a_closing_runner_is_asked_again_never_a_dead_letter(tmp_path):
    """attack54 F1: leaving ``async with`` while b's undo ran abandoned it (``AbandonedCall``)
    and a relaunch dead-lettered b though its undo never ended; b's effect stood. Its end
    unknown, the attempt is asked again of the runner that takes the run up."""
    db, port, queue = tmp_path / "t.db", free_port(), f"stops-{uuid.uuid4().hex[:8]}"
    done = _child(ABANDONING, str(db), str(port), queue)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ABANDONED" in done.stdout and "AbandonedCalls" in done.stderr
    run_id = done.stdout.split("RUNID ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world, _refused_at_c(world))
    assert outcome.status is Status.ROLLED_BACK and outcome.dead_letters == ()
    assert outcome.compensated == ("b", "a") and world == ["undo b", "undo a"]


TWICE = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    db, port, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def undo_b(state):  # two Ctrl-Cs as it runs: the first cancels run, the second its wait
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGINT)).start()
        time.sleep(8.0)  # (past the worker's grace: its end unknown)

    def refuse(state):
        raise ValueError("c refused")

    saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None, undo_b),
                 Step("c", refuse)], name="stops")

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            await r.run(saga, {})

    asyncio.run(main())
    """
)


def test_a_second_ctrl_c_during_the_compensation_says_what_is_left_and_who_finishes_it(tmp_path):
    """attack54 F2: a second Ctrl-C while ``run`` awaited its saga's compensation was a bare
    KeyboardInterrupt (asyncio's own, from its SIGINT handler): the loop's end cancels the
    worker too, so ``WorkerGone`` names what is left and the relaunch that finishes it. The
    KeyboardInterrupt is the last thing said: no "RuntimeError: Event loop is closed" after
    it (the SDK's poll begun during the worker's shutdown, never cancelled: fixtemp5)."""
    db, port, queue = tmp_path / "t.db", free_port(), f"stops-{uuid.uuid4().hex[:8]}"
    done = _child(TWICE, str(db), str(port), queue)
    said = done.stderr[-2000:]
    assert done.returncode != 0 and done.stderr.endswith("\nKeyboardInterrupt\n"), said
    assert "WorkerGone: the worker running saga stops-" in done.stderr, done.stderr[-2000:]
    assert "undoing here as it stopped (each undo's end unknown): b;" in done.stderr
    assert "same db_file, port and task_queue takes it up (handle_for)" in done.stderr
    run_id = done.stderr.split("the worker running saga ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world, _refused_at_c(world))
    assert outcome.status is Status.ROLLED_BACK and world == ["undo b", "undo a"]


RETRYING = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading
    from rollback_lessons import RetryPolicy, Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))  # how a service ends on SIGTERM
    db, port, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tries = []

    def b(state):  # refuses once (nothing done), then waits to retry: the SIGTERM then
        tries.append(1)
        if len(tries) == 1:
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
            raise ConnectionError("busy")

    saga = Saga([Step("a", lambda s: None, lambda s: None),
                 Step("b", b, lambda s: None, retry=RetryPolicy(max_attempts=3, initial_delay=3)),
                 Step("c", lambda s: None)], name="stops")

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            await r.run(saga, {})

    asyncio.run(main())
    """
)


def test_a_sys_exit_as_run_waits_sends_the_sagas_cancel_and_the_relaunch_compensates(tmp_path):
    """attack57 F1: a SIGTERM's sys.exit while ``run`` waited (b to retry) cancelled the
    worker at the instant ``run`` would cancel the saga: the cancel never reached the server,
    WorkerGone said "asked to cancel" and "undoes it", and the relaunch went on forward,
    committed. The cancel is sent all the same: the relaunch compensates (a undone)."""
    db, port, queue = tmp_path / "t.db", free_port(), f"stops-{uuid.uuid4().hex[:8]}"
    done = _child(RETRYING, str(db), str(port), queue)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "before the saga, asked to cancel, compensated" in done.stderr
    run_id = done.stderr.split("the worker running saga ")[1].split()[0]
    world: list[str] = []
    from rollback_lessons import RetryPolicy

    a, b = _saga(world).steps
    retry = RetryPolicy(max_attempts=3, initial_delay=3)
    saga = Saga([a, Step("b", b.action, b.undo, retry=retry), Step("c", lambda s: None)],
                name="stops")  # fmt: skip
    outcome = _relaunched(db, port, queue, run_id, world, saga)
    assert outcome.status is Status.CANCELLED and world == ["undo a"]


LOSING = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
    began = threading.Event()

    def c(state):  # running as the runner closes, its SIGTERM 0.5 s into close (or argv[2])
        began.set()
        time.sleep(12)  # (past every grace: its end unknown)

    saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None,
                 lambda s: None), Step("c", c, lambda s: None)], name="stops")

    async def main():
        kept = {"db_file": sys.argv[1]} if len(sys.argv) > 1 else {}  # (none: it keeps nothing)
        async with await TemporalRunner.start(**kept) as r:
            handle = await r.start_saga(saga, {}, step_timeout=8)  # (a lost end: 13 s at most)
            port = r.address.rsplit(":", 1)[1]
            print("RUNID", handle.run_id, port, r.task_queue, flush=True)
            await asyncio.to_thread(began.wait, 30)
            after = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
            threading.Timer(after, os.kill, (os.getpid(), signal.SIGTERM)).start()

    asyncio.run(main())
    """
)


def test_a_sys_exit_as_close_waits_names_the_action_cut_among_what_may_be_in_effect():
    """attack57 F2: no db_file, a SIGTERM's sys.exit while close waited for c's action: the
    worker's end cut c's activity (the SDK's CancelledError, no record of ours), counted a
    clean failure: SagasLost left c out of what may be in effect, though its call went on."""
    done = _child(LOSING)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "SagasLost" in done.stderr, done.stderr[-2000:]
    assert "running or timed out (their effect may land): c;" in done.stderr
    assert "so still in effect, or perhaps, undone by nobody: a, b, c" in done.stderr


TURNS = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from rollback_lessons import Parallel, Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
    db, port, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def b(state):  # its SIGTERM as it runs (past the worker's grace); e waits for its turn
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        time.sleep(8.0)

    def e(state):
        print("E CALLED", flush=True)

    saga = Saga([Parallel(Step("b", b, lambda s: None), Step("e", e, lambda s: None))],
                name="turns")

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            await r.run(saga, {}, completion=["b", "e"])

    asyncio.run(main())
    """
)


def test_an_action_waiting_for_its_turn_as_the_worker_ends_is_never_called_not_leaked(tmp_path):
    """attack57 F3: a SIGTERM's sys.exit while b ran and e waited for its turn (after b):
    the worker's end failed e's attempt with the SDK's CancelledError, counted cut short, and
    the relaunch reported e leaked ("may have happened"), though never called. It is failed
    as never begun: the relaunch plays it in its turn (and undoes it: b failed). attack59 T2:
    the loop's end also failed the runner's own task asking e's turn, which asyncio printed
    ("unhandled exception during asyncio.run() shutdown", a traceback): it ends cancelled."""
    from rollback_lessons import Parallel

    db, port, queue = tmp_path / "t.db", free_port(), f"stops-{uuid.uuid4().hex[:8]}"
    done = _child(TURNS, str(db), str(port), queue)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "unhandled exception" not in done.stderr and "Traceback" not in done.stderr
    assert "E CALLED" not in done.stdout
    run_id = done.stderr.split("the worker running saga ")[1].split()[0]
    world: list[str] = []

    def step(name):
        return Step(name, lambda s: world.append(f"do {name}"),
                    lambda s: world.append(f"undo {name}"))  # fmt: skip

    saga = Saga([Parallel(step("b"), step("e"))], name="turns")
    outcome = _relaunched(db, port, queue, run_id, world, saga)
    assert outcome.leaked == ("b",), outcome
    assert "e" not in outcome.leaked and world.count("undo e") == world.count("do e")


def test_a_sys_exit_as_close_waits_on_a_db_file_names_the_call_left_running(tmp_path):
    """attack57 F4: with a db_file, a SIGTERM's sys.exit during close's wait for c's action
    printed nothing of c (no AbandonedCalls, ``runner.abandoned`` empty), nor that the
    db_file keeps the saga. They are named as the grace's end would name them."""
    done = _child(LOSING, tmp_path / "t.db")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "AbandonedCalls: close was cut (its task cancelled" in done.stderr, done.stderr[-2000:]
    assert "with 1 call still running, left on its thread: the action of 'c'" in done.stderr
    assert f"{tmp_path / 't.db'} keeps its saga: a runner started again" in done.stderr


def test_a_sys_exit_past_closes_grace_leaves_the_abandoned_action_in_doubt(tmp_path):
    """attack59 T4: a SIGTERM's sys.exit 2.5 s into close (past its grace, c abandoned and
    named) let the SDK fail c's activity "WorkerShutdown", which the relaunch counted a clean
    failure: rolled_back, c's effect (its call went on) reported nowhere. It is in doubt."""
    db = tmp_path / "t.db"
    done = _child(LOSING, db, 2.5)
    assert done.returncode == 3, done.stderr[-2000:]
    run_id, port, queue = done.stdout.split("RUNID ")[1].split()[:3]
    world: list[str] = []

    def step(name):
        return Step(name, lambda s: world.append(f"do {name}"),
                    lambda s: world.append(f"undo {name}"))  # fmt: skip

    saga = Saga([step("a"), step("b"), step("c")], name="stops")
    outcome = _relaunched(db, int(port), queue, run_id, world, saga)
    assert outcome.leaked == ("c",) and outcome.status is Status.ROLLBACK_INCOMPLETE, outcome
    assert world == ["undo b", "undo a"]


SUBMIT_CUT = textwrap.dedent(
    """
    import asyncio, sys
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner, activities
    from rollback_lessons.runners.temporal.workflow import StepCall

    db, port, queue, when = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    submit = activities.Threads.submit

    def cut(self, fn, *args, **kwargs):  # a SIGTERM's sys.exit in the loop's thread as the
        call = args[-1] if args else None  # SDK starts b's action (Thread.start: attack59 T1)
        if not (isinstance(call, StepCall) and call.step == "b"):
            return submit(self, fn, *args, **kwargs)
        if when == "after":  # its thread started: the call runs
            submit(self, fn, *args, **kwargs)
        sys.exit(3)

    activities.Threads.submit = cut

    def b(state):
        print("DO b", flush=True)

    def refuse(state):
        raise ValueError("c refused")

    saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", b, lambda s: None),
                 Step("c", refuse)], name="stops")

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            print(await r.run(saga, {}), flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_sys_exit_as_the_sdk_starts_an_activity_ends_the_process_never_the_steps_failure(
    tmp_path, when
):
    """attack59 T1: a SIGTERM's ``sys.exit`` heard in the loop's thread as the SDK started
    b's action on the runner's executor (``Threads.submit``, its ``Thread.start``) became b's
    failure, "SystemExit: 3": the process went on, exited 0 and said rolled_back, b's effect
    standing. It ends the process as any ``sys.exit`` does (WorkerGone); b either ran (in
    doubt: the relaunch undoes it or reports it leaked) or was failed as never begun."""
    db, port, queue = tmp_path / "t.db", free_port(), f"stops-{uuid.uuid4().hex[:8]}"
    done = _child(SUBMIT_CUT, db, port, queue, when)
    assert done.returncode == 3, (done.stdout, done.stderr[-2000:])
    assert "WorkerGone: the worker running saga stops-" in done.stderr, done.stderr[-2000:]
    assert "SystemExit" not in done.stderr and "Traceback" not in done.stderr
    run_id = done.stderr.split("the worker running saga ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world, _refused_at_c(world))
    assert "SystemExit" not in repr(outcome.error), outcome
    assert world[-1] == "undo a" and outcome.dead_letters == ()  # (run's wait cut: cancelled)
    if when == "before":  # never begun: the relaunch calls it not run (attack69 F2), or, when
        assert "DO b" not in done.stdout and world == ["undo a"]  # the process ended before
        if "b" in outcome.leaked:  # the SDK sent b's "never begun", in doubt (its attempt
            assert outcome.status is Status.ROLLBACK_INCOMPLETE  # timed out by the server),
        else:  # never undone nor counted done
            assert outcome.status is Status.CANCELLED and "b" not in outcome.completed
            assert any("b was not run" in note for note in outcome.notes), outcome.notes
    else:  # run here: undone by the relaunch, or reported leaked (in doubt), never both
        assert ("b" in outcome.leaked) != ("undo b" in world), (outcome, world)
        assert (outcome.status is Status.CANCELLED) == ("undo b" in world), outcome


ENDED_UNHEARD = textwrap.dedent(
    """
    import asyncio, sys
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.temporal import TemporalRunner, activities
    from rollback_lessons.runners.temporal.workflow import StepCall

    db, port, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    submit = activities.Threads.submit

    def heard(self, fn, *args, **kwargs):  # a SIGTERM's sys.exit the instant c's call ended,
        future = submit(self, fn, *args, **kwargs)  # before its end reached the SDK's task
        call, loop = args[-1] if args else None, asyncio.get_running_loop()
        if isinstance(call, StepCall) and call.step == "c":
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(sys.exit, 3))
        return future

    activities.Threads.submit = heard

    def refuse(state):
        raise ValueError("c refused")

    saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None,
                 lambda s: None), Step("c", refuse)], name="stops")

    async def main():
        async with await TemporalRunner.start(db_file=db, port=port, task_queue=queue) as r:
            handle = await r.start_saga(saga, {})
            print("RUNID", handle.run_id, flush=True)
            await handle.outcome()

    asyncio.run(main())
    """
)


def test_a_call_ended_as_the_loop_ends_reports_its_end_not_cut_short(tmp_path):
    """attack59 L2: c refused (nothing done), then a SIGTERM's sys.exit ended the loop before
    the SDK's task took c's end: its activity was failed as cut short (the SDK's
    CancelledError), and the relaunch reported c leaked, "its worker stopped mid-call". Its
    end is known here: it is reported as it was (c's refusal), and the relaunch rolls back."""
    db, port, queue = tmp_path / "t.db", free_port(), f"stops-{uuid.uuid4().hex[:8]}"
    done = _child(ENDED_UNHEARD, db, port, queue)
    assert done.returncode == 3, (done.stdout, done.stderr[-2000:])
    run_id = done.stdout.split("RUNID ")[1].split()[0]
    world: list[str] = []
    outcome = _relaunched(db, port, queue, run_id, world, _refused_at_c(world))
    assert outcome.status is Status.ROLLED_BACK and outcome.leaked == (), outcome
    assert repr(outcome.error) == "ValueError('c refused')" and outcome.failed_step == "c"
    assert world == ["undo b", "undo a"]
