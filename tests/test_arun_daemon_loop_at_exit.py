"""A ``saga.arun`` still running as the program ends, in a task of an event loop that runs in
a daemon thread (a service's background work): that thread dies with the program, mid-step,
and nothing was said (the atexit scan skipped a loop that "runs"). Now, with no journal, its
task is cancelled on that loop, the steps running cut (in doubt, as ``asyncio.run``'s end
cuts them: a cancel alone waits for a step of hours), its undos run there, waited for, and
what the rollback left is said; one rolling back already is waited for; with a journal it is
said and left to ``recover``; a loop too busy to take the cancel is said, the exit going on."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    import rollback_lessons._late_threads as late
    from rollback_lessons import Registry, Saga, Step
    from rollback_lessons.durable.journal import Journal

    journal_at, how = sys.argv[1], sys.argv[2]
    late.TAKEN = 0.5
    registry = Registry()

    async def for_ever(state):
        await asyncio.sleep(1000)

    async def slowly_undone(step):
        await asyncio.sleep(0.5)
        print("undo", step, "(slowly)", flush=True)

    def undone(step):
        print("undo", step, flush=True)

    def failing(state):
        raise RuntimeError("no room")

    undo = registry.add("undo", undone)
    journal = Journal(journal_at) if journal_at != "-" else None

    def undo_of(step):
        return undo.bind(step=step) if journal else (lambda state: undone(step))

    if how == "rolling":  # (b fails: a's undo takes 0.5 s, the program ends meanwhile)
        steps = [Step("a", lambda s: print("do a", flush=True), lambda s: slowly_undone("a")),
                 Step("b", failing)]
    elif how == "busy":  # (a step blocking the loop's thread as the program ends)
        steps = [Step("a", lambda s: print("do a", flush=True), undo_of("a")),
                 Step("b", lambda s: time.sleep(30), undo_of("b"))]
    else:
        steps = [Step("a", lambda s: print("do a", flush=True), undo_of("a")),
                 Step("b", lambda s: for_ever(s), undo_of("b")),
                 Step("c", lambda s: print("do c", flush=True), undo_of("c"))]
    saga = Saga(steps)
    kept = []
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    kw = {"journal": journal, "run_id": "r1"} if journal else {}
    loop.call_soon_threadsafe(lambda: kept.append(loop.create_task(saga.arun({}, **kw))))
    time.sleep(0.3)
    print("the script ends", flush=True)
    """
)


def _run(journal_at: str, how: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", CHILD, journal_at, how], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr
    return done


def _said(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [s[len("rollback-lessons: ") :] for s in done.stderr.splitlines()
            if s.startswith("rollback-lessons")]  # fmt: skip


HEAD = ("was left running in a task of an event loop in another thread (a daemon's) as the "
        "program ended")  # fmt: skip


def test_an_arun_on_a_daemon_loop_is_cancelled_there_its_step_cut_and_undone() -> None:
    done = _run("-", "step")
    assert done.stdout == "do a\nthe script ends\nundo a\n", done
    said = _said(done)
    assert len(said) == 2, done.stderr
    assert said[0].endswith(
        f" {HEAD}: its task is cancelled now, its steps running cut (in doubt), its undos run "
        "on that loop (end the run before the program exits)"
    ), said
    assert said[1].endswith(" ended rollback_incomplete there (kept nowhere): no undo logged "
                            "for: b (check by hand)"), said  # fmt: skip


def test_an_arun_rolling_back_on_a_daemon_loop_is_waited_for() -> None:
    done = _run("-", "rolling")
    assert done.stdout == "do a\nthe script ends\nundo a (slowly)\n", done
    assert _said(done)[0].endswith(f" {HEAD}: its rollback is waited for on that loop (end the "
                                   "run before the program exits)"), done.stderr  # fmt: skip
    assert len(_said(done)) == 1, done.stderr  # (rolled back: nothing left to say)


def test_a_journalled_arun_on_a_daemon_loop_is_said_and_left_to_recover(tmp_path) -> None:
    at = str(tmp_path / "j.db")
    done = _run(at, "step")
    assert done.stdout == "do a\nthe script ends\n", done  # (no undo run at the exit)
    assert _said(done) == [
        f"saga 'r1' {HEAD}: that thread ends with it, cutting it wherever it is (not known to "
        "be undone: a); the journal keeps it unfinished, and recover finishes it"
    ], done.stderr
    with sqlite3.connect(at) as db:
        (status,) = db.execute("select status from sagas where id = 'r1'").fetchone()
    assert status == "running"


def test_a_daemon_loop_too_busy_for_the_cancel_is_said_and_the_exit_goes_on() -> None:
    done = _run("-", "busy")
    assert done.stdout == "do a\nthe script ends\n", done
    said = _said(done)
    busy = ": its event loop did not take the close within 0.5 s: none of its undos ran"
    assert said[1].endswith(f"{busy} (not known to be undone: a), kept nowhere"), said
