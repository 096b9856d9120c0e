"""A step given up as its work ran on (a sync run inside a loop handed that loop's
``run_in_executor``; a second cancel or Ctrl-C giving a pool's wait up) with its undo logged
before it: the journal wrote it ``leaked`` only with the run's end. A crash before that end
(in a later undo) and ``recover`` said ``rolled_back`` / a plain dead letter, exit 0 or
``leaked 0``, the work landing after its undo (attack100 F12, attack101 F2); a halt that
left its undo pending said ``leaked 0`` too (attack100 F7). Its ``step_failed`` event says
``runs_on``, durable before any undo runs: ``recover`` and ``journal show`` read it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from rollback_lessons import Registry
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.report import PENDING_RAN_ON
from rollback_lessons.durable.settle import table
from rollback_lessons.journal_end import DEAD_RAN_ON
from rollback_lessons.outcome import EARLY

CHILD = """
import asyncio, os, sys, time
from rollback_lessons import Registry, RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import BoundUndo

refund_fails, policy = sys.argv[2] == "dead", sys.argv[3]
registry = Registry()

def refund(item):
    if refund_fails:
        raise RuntimeError("refund down")

def release(item):
    if policy != "halt":
        os._exit(9)  # (the crash: after charge's undo, before the run's end)

registry.add("refund", refund)
registry.add("release", release)

async def main():
    loop = asyncio.get_running_loop()
    charge = lambda s: loop.run_in_executor(None, time.sleep, 0.05)
    saga = Saga([Step("hold", lambda s: None, BoundUndo("release", {"item": "h"}, registry)),
                 Step("charge", charge, BoundUndo("refund", {"item": "c"}, registry),
                      register="before"),
                 Step("ship", lambda s: 1 / 0)])
    retry = RetryPolicy(max_attempts=2, initial_delay=0.01)
    chosen = UndoPolicy(retry, then="halt") if policy == "halt" else UndoPolicy()
    with Journal(sys.argv[1]) as journal:
        saga.run({}, journal=journal, run_id="r1", policy=chosen)

asyncio.run(main())
"""


def _registry() -> Registry:
    registry = Registry()
    registry.add("refund", lambda item: None)
    registry.add("release", lambda item: None)
    return registry


@pytest.mark.parametrize(("undo", "said"), [("ok", EARLY), ("dead", DEAD_RAN_ON)])
def test_a_crash_before_the_runs_end_keeps_it_leaked(tmp_path, undo, said):
    path = tmp_path / "j.db"
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    died = subprocess.run([sys.executable, tmp_path / "child.py", path, undo, "continue"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert died.returncode == 9, died.stderr
    report = recover(Journal(path), _registry())
    [line] = report.recovered
    assert line.status == "rollback_incomplete" and line.leaked == ("charge",), line
    assert f"leaked charge ({said})" in str(line)
    with Journal(path) as journal:
        rows = {u.step: u for u in journal.undos("r1")}
        assert rows["charge"].state == "leaked" and said in (rows["charge"].error or "")
        assert rows["hold"].state == "done"
        assert table(journal).splitlines()[1].split()[-1] == "1"  # (leaked 1)


def test_a_halt_that_leaves_its_undo_pending_says_it_may_still_run(tmp_path):
    path = tmp_path / "j.db"
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    ran = subprocess.run([sys.executable, tmp_path / "child.py", path, "dead", "halt"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    with Journal(path) as journal:
        assert table(journal).splitlines()[1].split()[2:] == ["halted", "2", "0", "0", "1"]
    report = recover(Journal(path), _registry())
    assert [w.leaked for w in report.waiting] == [(f"charge ({PENDING_RAN_ON})",)]


@pytest.mark.parametrize("policy", ["dead_letter", "halt"])
def test_its_notes_never_say_no_undo_was_logged(policy):
    """attack100 F8: the raised error's notes said "not undone (no undo logged for it):
    charge" of a step whose undo was logged before it and failed (or a halt left pending):
    nobody retries an undo they are told does not exist."""
    import asyncio
    import time

    from rollback_lessons import RetryPolicy, Saga, Step, UndoPolicy

    def refund(state: object) -> None:
        raise RuntimeError("refund down")

    async def main() -> tuple[object, BaseException]:
        loop = asyncio.get_running_loop()
        charge = Step("charge", lambda s: loop.run_in_executor(None, time.sleep, 0.05), refund,
                      register="before")  # fmt: skip
        chosen = UndoPolicy(RetryPolicy(max_attempts=2, initial_delay=0.01), then=policy)
        outcome = Saga([charge, Step("ship", lambda s: None)], policy=chosen).run({})
        with pytest.raises(BaseException) as raised:
            outcome.raise_for_status()
        return outcome, raised.value

    outcome, error = asyncio.run(main())
    assert outcome.leaked == ("charge",)  # type: ignore[attr-defined]
    assert not [n for n in error.__notes__ if "no undo logged" in n], error.__notes__
    said = DEAD_RAN_ON if policy == "dead_letter" else PENDING_RAN_ON
    assert outcome.leaked_said == ((("charge",), said),)  # type: ignore[attr-defined]


@pytest.mark.parametrize("driver", ["saga.run", "Rollback"])
def test_a_ctrl_c_caught_during_the_rollback_lets_recover_finish_it_in_that_process(
    tmp_path, driver
):
    """attack101 F5: the Interrupt button of a notebook (a Ctrl-C caught) during a
    journalled rollback: ``recover``, in the next cell, said "its process ... is still
    running; stop it first" for as long as the kernel lived, the undos left undone. The run
    lets the saga go as it ends: recover finishes it, each undo once."""
    from rollback_lessons import Rollback, Saga, Step
    from rollback_lessons.durable.registry import BoundUndo

    undone: list[str] = []
    registry = Registry()
    registry.add("undo", lambda step: undone.append(step))

    def interrupt(event) -> None:
        if (event.kind, event.step) == ("undo_done", "c"):
            raise KeyboardInterrupt

    def fails(*args: object) -> None:
        raise RuntimeError("d fails")

    path = tmp_path / "j.db"
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        if driver == "saga.run":
            steps = [Step(n, lambda s: None, BoundUndo("undo", {"step": n}, registry))
                     for n in "abc"]  # fmt: skip
            Saga([*steps, Step("d", fails)]).run({}, journal=journal, run_id="r1",
                                                  on_event=interrupt)  # fmt: skip
        else:
            with Rollback(journal=journal, run_id="r1", on_event=interrupt) as rb:
                for n in "abc":
                    rb.do(n, lambda: None, BoundUndo("undo", {"step": n}, registry))
                fails()
    assert undone == ["c"]
    [done] = recover(Journal(path), registry).recovered  # (this process lives on)
    assert done.status == "rolled_back" and undone == ["c", "b", "a"], (done, undone)


PIVOT_CHILD = """
import os, sys
from rollback_lessons import Parallel, Registry, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import BoundUndo

registry = Registry()
registry.add("undo", lambda step: None)
step = lambda n: Step(n, lambda s: None, BoundUndo("undo", {"step": n}, registry))
saga = Saga([step("a"), Parallel(Step("p", lambda s: None, kind="pivot"), step("b")),
             Step("c", lambda s: os._exit(9))], name="piv", allow_unsafe_order=True)
with Journal(sys.argv[1]) as journal:
    saga.run({}, journal=journal, run_id="r1", completion=["b", "p"])
"""


def test_recover_never_sends_forward_a_pivots_sibling_the_journal_shows_done(tmp_path):
    """attack101 F1: a sibling done before the pivot was named both done (its undo pending)
    and a step to finish forward by hand: a person following the line books it twice."""
    path = tmp_path / "j.db"
    (tmp_path / "child.py").write_text(textwrap.dedent(PIVOT_CHILD))
    died = subprocess.run([sys.executable, tmp_path / "child.py", path],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert died.returncode == 9, died.stderr
    registry = Registry()
    registry.add("undo", lambda step: None)
    [line] = recover(Journal(path), registry).recovered
    said = str(line)
    assert "done already: b" in said and "; forward c (" in said, said


STOPPED_CHILD = """
import asyncio, sys
from rollback_lessons import AsyncRollback, Registry
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import BoundUndo

registry = Registry()
began = []

async def slow(step):
    began.append(step)
    await asyncio.sleep(5)

registry.add("undo", slow)

async def body():
    async with AsyncRollback(journal=Journal(sys.argv[1]), run_id="r1") as rb:
        await rb.do("s1", lambda: None, BoundUndo("undo", {"step": "s1"}, registry))
        raise RuntimeError("s2 fails")

loop = asyncio.new_event_loop()
task = loop.create_task(body())

def watch():
    if began:
        loop.stop()
    else:
        loop.call_later(0.01, watch)

loop.call_soon(watch)
try:
    loop.run_until_complete(task)
except RuntimeError:
    pass
"""


def test_an_async_block_whose_loop_stops_in_its_rollback_says_so_as_the_program_ends(tmp_path):
    """attack101 F4: stopped in a step, the block said its undos stay for recover; stopped
    as its rollback ran, nothing was said (exit 0), the rollback half done."""
    (tmp_path / "child.py").write_text(textwrap.dedent(STOPPED_CHILD))
    ended = subprocess.run([sys.executable, tmp_path / "child.py", tmp_path / "j.db"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    said = [line for line in ended.stderr.splitlines() if line.startswith("rollback-lessons")]
    assert said == [  # (said at the end, Python whole: attack305 F4; named: attack302 F5)
        "rollback-lessons: saga 'r1': its AsyncRollback block was left rolling back as the "
        "program ended, its event loop stopped: nothing more of it runs; the undos not known to "
        "be done (s1) stay in the journal, and recover runs them"
    ], ended.stderr


def test_a_ctrl_c_inside_an_undos_call_lets_nothing_go(tmp_path):
    """attack102 F1: a Ctrl-C in an undo's call, which runs on in a helper thread (it has a
    timeout), let the saga go: recover ran that undo again at once, two refunds at a time.
    Cut in a call, the saga waits for its process to end, as before."""
    import os
    import signal
    import threading
    import time

    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.registry import BoundUndo

    registry = Registry()
    ran: list[str] = []

    def undo(step: str) -> None:
        ran.append(step)
        time.sleep(0.5 if step == "c" else 0)

    def interrupt(event) -> None:
        if (event.kind, event.step) == ("undo", "c"):
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()

    registry.add("undo", undo)
    steps = [Step(n, lambda s: None, BoundUndo("undo", {"step": n}, registry), undo_timeout=5)
             for n in "abc"]  # fmt: skip
    path = tmp_path / "j.db"
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        Saga([*steps, Step("d", lambda s: 1 / 0)]).run({}, journal=journal, run_id="r1",
                                                      on_event=interrupt)  # fmt: skip
    report = recover(Journal(path), registry)
    assert report.recovered == () and "still running" in str(report), str(report)
    time.sleep(0.6)  # (the helper thread's undo ends)
    assert ran == ["c"]


@pytest.mark.parametrize("cuts", [1, 2, 3])
def test_a_second_ctrl_c_as_the_saga_is_let_go_writes_it_again_or_says_so(
    tmp_path, monkeypatch, cuts
):
    """attack102 F8: a second Ctrl-C as the cut run let its saga go (the write waiting for
    the journal's lock) was swallowed: recover, in that process, said the saga may still be
    running, for as long as it lived, the note saying the journal keeps it for recover. The
    release is written again; cut every time, the note says recover takes it once the
    process ends."""
    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.records import JournalRun
    from rollback_lessons.durable.registry import BoundUndo
    from rollback_lessons.journal_end import NOT_LET_GO

    undone: list[str] = []
    registry = Registry()
    registry.add("undo", lambda step: undone.append(step))
    real, calls = JournalRun.release, []

    def cut(self: JournalRun) -> None:
        calls.append(1)
        if len(calls) <= cuts:
            raise KeyboardInterrupt  # (a second press)
        real(self)

    def interrupt(event) -> None:
        if (event.kind, event.step) == ("undo_done", "b"):
            raise KeyboardInterrupt

    monkeypatch.setattr(JournalRun, "release", cut)
    steps = [Step(n, lambda s: None, BoundUndo("undo", {"step": n}, registry)) for n in "ab"]
    path = tmp_path / "j.db"
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt) as raised:
        Saga([*steps, Step("c", lambda s: 1 / 0)]).run({}, journal=journal, run_id="r1",
                                                      on_event=interrupt)  # fmt: skip
    notes = [n for n in raised.value.__notes__ if NOT_LET_GO in n]
    report = recover(Journal(path), registry)
    if cuts < 3:  # (let go: no note says recover waits for the process, attack103 F10)
        assert [n for n in raised.value.__notes__ if "once this process ends" in n] == []
        assert notes == [] and [r.status for r in report.recovered] == ["rolled_back"]
        assert undone == ["b", "a"], (undone, str(report))
    else:
        assert len(notes) == 1 and report.recovered == () and "still running" in str(report)
        assert undone == ["b"]


@pytest.mark.parametrize("how", ["timeout", "handed back"])
@pytest.mark.parametrize("policy", ["retry", "halt"])
def test_a_ctrl_c_after_an_undo_left_running_lets_nothing_go(tmp_path, policy, how):
    """attack103 F1: a Ctrl-C at the ``undo_failed`` event of an undo past its timeout (its
    call going on in a helper thread) let the saga go: recover, in that process, refunded
    again at once, two refunds at a time; so did one whose undo handed back begun work
    (attack104 F1). A run with a call left running keeps its saga until its process ends,
    and its note says so."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.registry import BoundUndo
    from rollback_lessons.journal_end import HELD

    registry = Registry()
    running, most = [0], [0]
    lock = threading.Lock()

    def refund(step: str) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.5)
        with lock:
            running[0] -= 1

    def interrupt(event) -> None:
        if (event.kind, event.step) == ("undo_failed", "charge"):
            raise KeyboardInterrupt

    pool = ThreadPoolExecutor(1)

    async def holding(future: object) -> object:
        return future

    def handed_back(step: str) -> object:  # (its work begun in a pool, handed back)
        return holding(pool.submit(refund, step))

    registry.add("refund", refund if how == "timeout" else handed_back)
    charge = Step("charge", lambda s: None, BoundUndo("refund", {"step": "charge"}, registry),
                  undo_timeout=0.1 if how == "timeout" else None)  # fmt: skip
    path = tmp_path / "j.db"
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt) as raised:
        Saga([charge, Step("d", lambda s: 1 / 0)], policy=policy).run(
            {}, journal=journal, run_id="r1", on_event=interrupt
        )
    assert f"rollback: {HELD}" in raised.value.__notes__
    report = recover(Journal(path), registry)
    assert report.recovered == () and "still running" in str(report), str(report)
    time.sleep(0.6)
    pool.shutdown()
    assert most == [1]


@pytest.mark.parametrize("where", ["abandon_now", "note"])
def test_a_second_ctrl_c_before_the_release_still_lets_the_saga_go(tmp_path, monkeypatch, where):
    """attack104 F10: a second Ctrl-C as the cut run wrote its refused step's record
    (``abandon_now``) escaped before the release: the saga was held until the process
    ended, recover in that process saying it may still run. The saga is let go all the
    same: recover finishes it, each undo once, nothing of the step that refused; and so it
    is after a second press in an observer of the note the first one left (of an undo's
    record it cut)."""
    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.records import JournalRun
    from rollback_lessons.durable.registry import BoundUndo

    undone: list[str] = []
    registry = Registry()
    registry.add("undo", lambda step: undone.append(step))
    real_abandon, real_done, presses = JournalRun.abandon_now, JournalRun.undo_done, []

    def second_press(self: JournalRun, *args: object) -> None:
        presses.append("abandon_now")
        raise KeyboardInterrupt

    def first_press(self: JournalRun, position: int, *args: Any, **kwargs: Any) -> Any:
        done = real_done(self, position, *args, **kwargs)  # (written, then the press)
        if not presses:
            presses.append("undo_done")
            raise KeyboardInterrupt
        return done

    def interrupt(event) -> None:
        if where == "abandon_now" and (event.kind, event.step) == ("undo_done", "b"):
            raise KeyboardInterrupt
        if where == "note" and event.kind == "journal_failed" and "note" not in presses:
            presses.append("note")
            raise KeyboardInterrupt  # (a second press, in an observer)

    monkeypatch.setattr(JournalRun, "abandon_now" if where == "abandon_now" else "undo_done",
                        second_press if where == "abandon_now" else first_press)  # fmt: skip

    def refuses(state: object) -> None:
        raise RuntimeError("c refused, nothing done")

    steps = [Step(n, lambda s: None, BoundUndo("undo", {"step": n}, registry)) for n in "ab"]
    path = tmp_path / "j.db"
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        Saga([*steps, Step("c", refuses)]).run({}, journal=journal, run_id="r1",
                                               on_event=interrupt)  # fmt: skip
    assert presses[-1] == where, presses
    monkeypatch.setattr(JournalRun, "abandon_now", real_abandon)
    monkeypatch.setattr(JournalRun, "undo_done", real_done)
    report = recover(Journal(path), registry)
    assert [r.status for r in report.recovered] == ["rolled_back"], str(report)
    assert undone == ["b", "a"], (undone, str(report))
