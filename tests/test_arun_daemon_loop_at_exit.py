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

    async def slowly_undone(step):  # (still running as the program ends, under any load)
        await asyncio.sleep(2.0)
        print("undo", step, "(slowly)", flush=True)

    def undone(step):
        print("undo", step, flush=True)

    def failing(state):
        raise RuntimeError("no room")

    undo = registry.add("undo", undone)
    journal = Journal(journal_at) if journal_at != "-" else None

    def undo_of(step):
        return undo.bind(step=step) if journal else (lambda state: undone(step))

    if how == "rolling":  # (b fails: a's undo takes 2 s, the program ends meanwhile)
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
        f" {HEAD}: its task is cancelled on that loop, its steps running cut (in doubt), its "
        "undos run there (end the run before the program exits)"
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
        f"saga 'r1' {HEAD}: no step of it begins from now, and that thread ends with the process, "
        "cutting any running (not known to "
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
    assert said[1].endswith(
        f"{busy} (not known to be undone: a), kept nowhere; no undo logged "
        "for: b, running then (check by hand)"
    ), said  # (310 F7)


MORE = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    from rollback_lessons import AsyncRollback, Saga, Step

    how = sys.argv[1]

    def say(line):
        print(line, flush=True)

    async def sleeping(name, seconds):
        say(f"{name} starts")
        await asyncio.sleep(seconds)
        say(f"{name} ends")

    def step(name, seconds=0.0, undo_takes=0.0):
        async def undone():
            await asyncio.sleep(undo_takes)
            say(f"undo {name}")
        act = (lambda s: sleeping(name, seconds)) if seconds else (lambda s: say(f"do {name}"))
        return Step(name, act, lambda s: undone())

    loop, rolling = asyncio.new_event_loop(), threading.Event()
    if how == "stops":  # (its thread ends 0.6 s in, as the close runs)
        threading.Thread(target=lambda: loop.run_until_complete(asyncio.sleep(0.6)),
                         daemon=True).start()
    else:
        threading.Thread(target=loop.run_forever, daemon=True).start()
    on = lambda coro: asyncio.run_coroutine_threadsafe(coro, loop)
    if how == "commits":  # (its last step a plain call blocking the loop past the end)
        on(Saga([step("a"), Step("b", lambda s: time.sleep(1.0) or say("b returns"),
                                 lambda s: say("undo b"))]).arun({}))
    elif how == "two":  # (A rolls back for 1 s; B must start no step meanwhile)
        on(Saga([step("a1", undo_takes=1.0), step("a2", 30)], name="A").arun({}))
        on(Saga([step("b1"), step("b2", 0.6), step("b3", 30)], name="B").arun({}))
    elif how == "stops":
        on(Saga([step("s1"), step("s2", undo_takes=1.0), step("s3", 30)]).arun({}))
    elif how == "service":  # (it catches everything, and takes the next job)
        async def service():
            try:
                await Saga([step("a", undo_takes=0.2), step("b", 30)]).arun({})
            except BaseException as exc:
                say(f"service goes on after {type(exc).__name__}")
                await Saga([step("x"), step("y", 30)]).arun({})
        on(service())
    elif how == "undo-blocks":  # (a plain undo blocking the loop as the program ends)
        import rollback_lessons._late_threads as late
        late.TAKEN = 0.5
        def fails(state):
            raise ValueError("no room")
        on(Saga([step("a"), Step("b", lambda s: None, lambda s: time.sleep(1.5)),
                 Step("c", fails)]).arun({}))
    elif how in ("block-service", "blocks-rolling"):  # (AsyncRollback blocks in tasks)
        async def block(name):
            try:
                async with AsyncRollback() as rb:
                    await rb.do(f"{name}1", lambda: None, lambda: say(f"undo {name}1"))
                    if how == "blocks-rolling":  # (their rollback under way as it ends)
                        await rb.do(f"{name}2", lambda: None, lambda: rolling.set() or
                                    time.sleep(0.6) or say(f"undo {name}2"))
                        raise RuntimeError("fails")
                    await rb.do(f"{name}2", lambda: sleeping(f"{name}2", 30))
            except BaseException as exc:  # (a service: it goes on, to its next job)
                if how == "blocks-rolling":
                    raise
                say(f"service goes on after {type(exc).__name__}")
                await asyncio.sleep(3600)
        on(block("A"))
        on(block("B"))
    elif how == "service-stops":  # (it stops its loop once its run raised: all undone)
        async def stopping():
            try:
                await Saga([step("a", undo_takes=0.2), step("b", 30)]).arun({})
            finally:
                loop.stop()
        on(stopping())
    elif how == "block":  # (an AsyncRollback's plain step blocking the loop past the end)
        async def block():
            async with AsyncRollback() as rb:
                await rb.do("a", lambda: say("do a"), lambda: say("undo a"))
                await rb.do("b", lambda: time.sleep(1.0) or say("b returns"),
                            lambda: say("undo b"))
        on(block())
    if how == "blocks-rolling":  # (A's first undo runs: both blocks are rolling back)
        rolling.wait(10)
    else:
        time.sleep(0.3)
    say("the script ends")
    """
)


def _more(how: str) -> tuple[list[str], list[str]]:
    done = subprocess.run([sys.executable, "-c", MORE, how], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Task was destroyed" not in done.stderr, done.stderr
    return done.stdout.splitlines(), _said(done)


def test_a_run_that_commits_before_the_cut_comes_is_said_committed() -> None:
    """attack309 F1: its last step (a plain call) blocked the loop past the program's end:
    the line said cancelled and undone, the run committed, nothing more said."""
    out, said = _more("commits")
    assert out == ["do a", "the script ends", "b returns"], out
    assert said[-1].endswith(" committed there, before the cut came"), said


def test_every_run_on_the_loop_is_cut_before_any_is_waited_for() -> None:
    """attack309 F2: closed one after the other, B started b3 after the program ended, while
    A's rollback was waited for."""
    out, said = _more("two")
    assert "b3 starts" not in out and out[-2:] in (["undo a1", "undo b1"], ["undo b1", "undo a1"])
    assert len(said) == 4 and all("no undo logged" in line for line in said[2:]), said


def test_a_loop_that_stops_as_the_close_runs_is_said_once() -> None:
    """attack309 F3: said three times, and asyncio's "Task was destroyed" twice."""
    _, said = _more("stops")
    assert len(said) == 2 and ": its event loop stopped " in said[1], said


def test_a_service_that_goes_on_after_the_cut_does_not_hold_the_exit() -> None:
    """attack309 F10: the task ran on into its next job: the exit waited on it for ever."""
    out, said = _more("service")
    assert "service goes on after LoopEnded" in out and "undo a" in out, out
    assert said[-1].endswith("no undo logged for: b (check by hand)"), said


def test_a_blocks_plain_step_running_as_the_program_ends_is_not_taken_for_freed() -> None:
    """attack309 F5: its undos ran on another loop while its step still ran ("a coroutine
    freed unfinished"), that step named nowhere."""
    out, said = _more("block")
    assert "undo a" not in out and out[-1] == "b returns", out
    assert "freed" not in " ".join(said) and said[-1].endswith("committed there, before the "
                                                              "cut came"), said  # fmt: skip


ENTRY = textwrap.dedent(
    """
    import asyncio, atexit, signal, sys, threading, time
    from rollback_lessons import Saga, Step

    async def for_ever(state):
        await asyncio.sleep(30)

    saga = Saga([Step("a", lambda s: None, lambda s: print("undo a", flush=True)),
                 Step("b", lambda s: for_ever(s), lambda s: print("undo b", flush=True))])
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(saga.arun({}), loop)
    time.sleep(0.3)

    def profiled(frame, event, arg):  # (a real Ctrl-C as the package's exit hook is called)
        if event == "call" and frame.f_code.co_name == "left_unfinished":
            sys.setprofile(None)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    atexit.register(lambda: sys.setprofile(profiled))
    print("the script ends", flush=True)
    """
)


def test_a_ctrl_c_as_the_exit_hook_begins_is_noted_and_the_run_still_ended() -> None:
    """attack309 F9: a Ctrl-C at the hook's first line, before its own handler: Python's
    traceback, the run on the daemon's loop neither undone nor said."""
    done = subprocess.run([sys.executable, "-c", ENTRY], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "the script ends\nundo a\n", done
    assert _said(done)[-1].endswith("no undo logged for: b (check by hand)"), done.stderr


def test_a_loop_blocked_in_an_undo_is_not_said_to_have_run_none() -> None:
    """attack309 F7: "none of its undos ran", an undo mid-call there."""
    _, said = _more("undo-blocks")
    assert said[-1].endswith(": its event loop did not take the close within 0.5 s, its "
                             "rollback running there (not known to be undone: b, a), kept "
                             "nowhere"), said  # fmt: skip


def test_blocks_whose_service_goes_on_after_the_cut_do_not_hold_the_exit() -> None:
    """attack310 F1: waited for to their task's end, which never came: the exit hung."""
    out, said = _more("block-service")
    assert {"undo A1", "undo B1"} <= set(out), out
    assert [line.endswith("no undo logged for: A2 (check by hand)") or
            line.endswith("no undo logged for: B2 (check by hand)") for line in said].count(
                True) == 2, said  # fmt: skip


def test_blocks_rolling_back_on_a_daemon_loop_are_waited_for_and_said() -> None:
    """attack310 F3: the process ended at once, an undo cut mid-call, nothing said."""
    out, said = _more("blocks-rolling")  # (B's second step, if it came after the end, is
    assert {"undo A2", "undo A1", "undo B1"} <= set(out), out  # refused: 311 F2; B rolls back)
    rolling = sum("its rollback is waited for on that loop" in line for line in said)
    assert rolling == 2 or (rolling == 1 and "undo B2" not in out), (out, said)


def test_a_loop_its_service_stops_once_every_undo_ran_is_not_said_to_have_cut_them() -> None:
    """attack310 F6: "its undos did not all run" when every undo had run, said twice."""
    out, said = _more("service-stops")
    assert "undo a" in out, out
    assert len(said) == 2 and said[1].endswith("no undo logged for: b (check by hand)"), said
