"""A Ctrl-C while a DBOS runner's call runs in its own thread under a running event loop
(attack48): under ``asyncio.run`` (whose SIGINT handler only cancels the main task) it is
raised at once too (F5), and a ``start`` so cut short closes the runner it made, which
nobody holds, instead of keeping DBOS launched until the process ends (F7)."""

import asyncio
import os
import signal
import textwrap
import threading
import time

import pytest

from rollback_lessons import Saga, Status, Step
from rollback_lessons.runners.dbos import DBOSRunner, offloop
from rollback_lessons.runners.dbos import runner as runner_module
from rollback_lessons.runners.dbos.offloop import in_own_thread


def _ctrl_c_in(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_under_asyncio_run_a_ctrl_c_is_raised_at_once_not_after_the_call():
    """asyncio.run's handler cancels its main task and returns; the caller, blocked in the
    wait, raised nothing until the call ended (2 s here). Now at once, as at an ``await``
    (CancelledError, then asyncio.run's KeyboardInterrupt), with the note, and asyncio.run's
    own handler is back afterwards."""
    ended = threading.Event()
    seen: dict[str, object] = {}

    def call():
        time.sleep(2)
        ended.set()

    async def main():
        seen["handler"] = signal.getsignal(signal.SIGINT)
        began = time.monotonic()
        _ctrl_c_in(0.2)
        try:
            in_own_thread(call, "DBOSRunner.run")
        except asyncio.CancelledError as exc:
            seen["after"] = time.monotonic() - began
            seen["notes"] = exc.__notes__
            seen["ended"] = ended.is_set()
            seen["handler after"] = signal.getsignal(signal.SIGINT)
            raise

    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(main())
    assert caught.value.__context__.__notes__ == seen["notes"]
    assert seen["after"] < 1 and seen["ended"] is False
    assert "DBOSRunner.run() goes on in thread" in " ".join(seen["notes"])
    assert seen["handler after"] is seen["handler"] is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert ended.wait(5)


def test_a_runs_ctrl_c_under_asyncio_run_is_raised_while_its_saga_still_runs(
    tmp_path, no_run_left_behind
):
    """The README's promise with DBOS itself: the run goes on in its thread and commits
    there; the caller heard the Ctrl-C before that, and reads the run's record after."""
    slow, log = threading.Event(), []

    def wait_a_while(state):
        log.append("do b")
        slow.wait(1.5)

    saga = Saga(
        [Step("a", lambda s: log.append("do a"), lambda s: None),
         Step("b", wait_a_while, lambda s: None)], name="slow",
    )  # fmt: skip
    seen: dict[str, object] = {}

    async def main(runner):
        _ctrl_c_in(0.5)
        try:
            runner.run(saga, {}, run_id="slow-1")
        except asyncio.CancelledError as exc:
            seen["log"], seen["notes"] = list(log), exc.__notes__
            raise

    with DBOSRunner.start(tmp_path / "dbos.sqlite") as runner:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(main(runner))
        for _ in range(200):  # (until the run ended in its thread)
            if runner.record("slow-1").status is Status.COMMITTED:
                break
            time.sleep(0.05)
        seen["record"] = runner.record("slow-1").status
    assert seen["log"] == ["do a", "do b"]  # (heard mid-step, not after the saga)
    assert "DBOSRunner.run() goes on in thread" in " ".join(seen["notes"])
    assert seen["record"] is Status.COMMITTED


def test_a_call_left_by_its_caller_hands_what_it_made_to_left():
    """What the thread returns once its caller left reaches ``left`` (a start's runner is
    closed so), and ``wait_abandoned`` waits for it."""
    made: list[int] = []

    async def main():
        _ctrl_c_in(0.1)
        in_own_thread(lambda: time.sleep(0.6) or 42, "DBOSRunner.start", made.append)

    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(main())
    assert "what it makes is closed then" in " ".join(caught.value.__context__.__notes__)
    assert made == [] and offloop.ABANDONED
    offloop.wait_abandoned(5)
    assert made == [42] and not any(t.is_alive() for t in offloop.ABANDONED)


def _slow_hold(monkeypatch, seconds: float) -> None:
    hold = runner_module.hold
    monkeypatch.setattr(runner_module, "hold", lambda path: time.sleep(seconds) or hold(path))


def test_a_start_cut_short_under_a_loop_leaves_no_runner_nobody_holds(tmp_path, monkeypatch):
    """F7: the start went on in its thread and its runner (DBOS launched, the file locked)
    was dropped: every later start, on any file, said "close that runner first". Now the
    runner is closed when that start ends, and the next start (on that file or another)
    waits for it and launches."""
    _slow_hold(monkeypatch, 0.6)

    async def main():
        _ctrl_c_in(0.2)
        DBOSRunner.start(tmp_path / "first.sqlite")

    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(main())
    assert "DBOSRunner.start() goes on in thread" in " ".join(caught.value.__context__.__notes__)
    monkeypatch.undo()
    with DBOSRunner.start(tmp_path / "other.sqlite") as runner:  # (at once: no wait here)
        assert runner.run(Saga([Step("a", lambda s: None)], name="x"), {}).status is (
            Status.COMMITTED
        )
    with DBOSRunner.start(tmp_path / "first.sqlite"):  # (its lock let go)
        pass


def test_a_start_cut_short_by_ctrl_c_in_a_jupyter_cell_is_closed(tmp_path):
    """The same in a real kernel, interrupted as JupyterLab's stop button does."""
    from jupyter_client.manager import start_new_kernel

    slow = textwrap.dedent("""
        import time
        from rollback_lessons.runners.dbos import DBOSRunner, runner as m
        hold = m.hold
        m.hold = lambda path: time.sleep(1) or hold(path)
    """)
    cut = f"runner = DBOSRunner.start({str(tmp_path / 'first.sqlite')!r})"
    after = textwrap.dedent(f"""
        m.hold = hold
        for name in ("first", "other"):
            with DBOSRunner.start({str(tmp_path)!r} + f"/{{name}}.sqlite"):
                print(name, "started")
    """)
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    said: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            said.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            said.append(f"{msg['content']['ename']}: {msg['content']['evalue']}\n")

    try:
        client.execute_interactive(slow, timeout=60, output_hook=hook)
        threading.Timer(0.4, manager.interrupt_kernel).start()
        client.execute_interactive(cut, timeout=60, output_hook=hook)
        client.execute_interactive(after, timeout=60, output_hook=hook)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert "".join(said).splitlines() == ["KeyboardInterrupt: ", "first started", "other started"]
