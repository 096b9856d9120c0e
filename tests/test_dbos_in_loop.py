"""The DBOS runner called where an event loop runs: a Jupyter cell (ipykernel runs every cell
with its loop running) or code inside ``asyncio.run`` (attack46's F4: DBOS's raw
``RuntimeError: list_workflows() was called while an event loop is running. Use await
list_workflows_async(...)``, from the README's own example in a cell). It works there as
anywhere, as Step Functions and BPMN do: each call runs in a thread of its own."""

import asyncio
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import same_outcome
from trips import trip

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners.dbos import DBOSRunner, FileUnusable, RunIdInUse, RunnerClosed
from rollback_lessons.runners.dbos.offloop import in_own_thread
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


def _logged(log):
    def step(n):
        return Step(n, lambda s: log.append(f"do {n}"), lambda s: log.append(f"undo {n}"))

    return Saga([step(n) for n in "abc"], name="in-loop")


def test_every_call_of_the_runner_works_under_a_running_loop(tmp_path, no_run_left_behind):
    """start, run, start_saga and outcome, record, handle_for, waiting, close: each as
    without a loop (it raised DBOS's RuntimeError before anything ran); the file is let go."""
    path = tmp_path / "dbos.sqlite"
    log: list[str] = []

    async def main():
        await asyncio.sleep(0)
        with DBOSRunner.start(path) as runner:
            ran = runner.run(_logged(log), {}, inject={"c": "fail"}, run_id="loop-list")
            graph = runner.start_saga(trip(), {}, run_id="loop-graph").outcome()
            record = runner.record("loop-list")
            again = runner.handle_for(_logged([]), "loop-list").outcome()
            return ran, graph, record, again, runner.waiting()

    ran, graph, record, again, waiting = asyncio.run(main())
    here: list[str] = []
    same_outcome(_logged(here).run({}, inject={"c": "fail"}), ran)
    assert log == here == ["do a", "do b", "undo b", "undo a"]
    assert graph.status is Status.COMMITTED and waiting == {}
    assert record.status == again.status == Status.ROLLED_BACK
    with DBOSRunner.start(path) as runner:  # (no lock left: the same file, outside the loop)
        assert runner.record("loop-graph").status is Status.COMMITTED


def test_a_person_answers_a_halted_saga_under_a_running_loop(tmp_path, no_run_left_behind):
    """The handle's calls too: pending(), resolve(), outcome(); and the runner's own
    refusals are still its one-line errors, nothing run."""
    inject = {"step3": "fail", "step1": "undo_fails_once"}

    async def main():
        with pytest.raises(FileUnusable):
            DBOSRunner.start(tmp_path / "missing" / "dbos.sqlite")
        with DBOSRunner.start(tmp_path / "dbos.sqlite") as runner:
            handle = runner.start_saga(
                xyz_saga(), xyz_state(), inject=inject, policy="halt", halt_wait=30,
                run_id="loop-halt",
            )  # fmt: skip
            for _ in range(600):
                if (asked := handle.pending()) is not None:
                    break
                await asyncio.sleep(0.05)
            assert asked is not None and asked.undos == ("step1",)
            handle.resolve(asked, "retry")
            outcome = handle.outcome()
            state: dict[str, str] = {}
            with pytest.raises(RunIdInUse):
                runner.run(_logged([]), state, run_id="loop-halt")
            assert state == {}
            return outcome

    outcome = asyncio.run(main())
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("step2", "step1")


def test_the_readmes_example_runs_in_a_jupyter_cell(tmp_path):
    """The README's DBOS snippet, typed into a cell of a real kernel: what its steps print
    shows in the cell."""
    from jupyter_client.manager import start_new_kernel

    cell = textwrap.dedent(f"""
        from rollback_lessons import Saga, Step
        from rollback_lessons.runners.dbos import DBOSRunner
        saga = Saga([Step("step1", lambda s: print("did step1"), lambda s: print("undid step1")),
                     Step("step3", lambda s: None, lambda s: None)], name="booking")
        with DBOSRunner.start({str(tmp_path / "dbos.sqlite")!r}) as runner:
            outcome = runner.run(saga, {{}}, inject={{"step3": "fail"}})
        print(outcome.status.value, outcome.compensated)
    """)
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    said: list[str] = []
    try:
        client.execute_interactive(cell, timeout=120, output_hook=lambda msg: said.append(
            msg["content"].get("text", "") if msg["msg_type"] == "stream" else
            f"{msg['content']['ename']}: {msg['content']['evalue']}"
            if msg["msg_type"] == "error" else ""))  # fmt: skip
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert "".join(said).split() == ["did", "step1", "undid", "step1", "rolled_back", "('step1',)"]


def test_a_ctrl_c_while_the_call_runs_in_its_thread_is_raised_at_once_saying_so():
    """The caller is interrupted at once; the call ends in its own thread (a saga's step
    is not cut short there), and the note says where it goes on."""
    ended = threading.Event()

    def call():
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)  # (a Ctrl-C, landing while the caller waits)
        time.sleep(0.2)
        ended.set()

    with pytest.raises(KeyboardInterrupt) as caught:
        in_own_thread(call, "DBOSRunner.run")
    assert not ended.is_set()
    said = " ".join(caught.value.__notes__)
    assert "DBOSRunner.run() goes on in thread" in said
    assert "until it ends or the runner is closed (a with-block's end closes it" in said  # F14
    assert ended.wait(5)
    assert in_own_thread(lambda: 42, "x") == 42
    ended.clear()  # (a close cut: it goes on to its end, no with-block to close it: L3)
    with pytest.raises(KeyboardInterrupt) as caught:
        in_own_thread(call, "DBOSRunner.close")
    assert "DBOSRunner.close() goes on in thread" in " ".join(caught.value.__notes__)
    assert "to its end: an event loop" in " ".join(caught.value.__notes__)
    assert ended.wait(5)


def test_a_close_leaving_a_saga_running_still_warns_at_the_callers_with(
    tmp_path, monkeypatch, no_run_left_behind
):
    """Without a loop each call is as it was: the wrapper's frame does not move the
    ``RunsLeftRunning`` warning off the caller's ``with`` line onto the runner's code."""
    from rollback_lessons.runners.dbos import RunsLeftRunning, launch

    monkeypatch.setattr(launch, "GRACE", 0.3)
    started, go = threading.Event(), threading.Event()

    def slow(state):
        started.set()
        go.wait(30)

    saga = Saga([Step("a", slow, lambda s: None)], name="left")
    with pytest.warns(RunsLeftRunning) as warned:
        with DBOSRunner.start(tmp_path / "dbos.sqlite") as runner:  # the line warned at
            handle = runner.start_saga(saga, {}, run_id="left-a")
            assert started.wait(30)
    go.set()
    assert warned[0].filename == __file__
    assert "with DBOSRunner.start" in Path(__file__).read_text().splitlines()[warned[0].lineno - 1]
    for _ in range(600):  # (until its thread stopped: DBOS may launch again here)
        if not launch.LEFT:
            break
        time.sleep(0.05)
    assert not launch.LEFT
    with pytest.raises(RunnerClosed, match="closed while saga 'left-a' ran a step"):
        handle.outcome()
