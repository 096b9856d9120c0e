"""Runs on an event loop in a daemon thread once the program's end has begun (attack310): no
step of them begins from then on. A run the exit found starts no next step (F5: the cut was
queued behind a step that began after the end); a journalled one waits for ``recover`` as a
crash leaves it, no retry and no next step (F2: it went on and committed, said left to
``recover``); a run or block handed to such a loop only begins once the exit looked, and is
refused, said, nothing of it run (F4: its steps ran after the end, unsaid). Runs of the main
thread (an exit hook's) are not touched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

HEAD = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    import rollback_lessons._task_left as task_left
    from rollback_lessons import AsyncRollback, Registry, RetryPolicy, Saga, Step, UndoPolicy
    from rollback_lessons import _program_end
    from rollback_lessons.durable.journal import Journal

    def say(*words):
        print(*words, flush=True)

    begun = []  # (the runs the exit found and began to end: a blocked step waits for them)
    found = task_left.arun_begun

    def noting(run):
        try:
            return found(run)
        finally:
            begun.append(run.run_id)

    task_left.arun_begun = noting

    def blocking(name, runs):  # (holds the loop's thread until the exit began ``runs`` runs)
        def step(state):
            say("do", name)
            started.set()
            while len(begun) < runs:
                time.sleep(0.01)
        return step

    def did(name):
        return lambda state: say("do", name)

    def undo(name):
        return lambda state: say("undo", name)

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    started = threading.Event()
    """
)


def _run(body: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = HEAD + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def _interruptible(*args: str) -> subprocess.Popen[str]:
    """``python -c`` with ``args``, its Ctrl-C Python's own (as a terminal's), pipes read."""
    import signal

    def default_ctrl_c() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-c", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_ctrl_c,
    )


def _said(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("rollback-lessons:")]


def test_no_next_step_of_a_run_the_exit_found_begins_after_the_end() -> None:
    done = _run(
        """
        sa = Saga([Step("a1", did("a1"), undo("a1")), Step("a2", blocking("a2", 2), undo("a2"))],
                  name="sa")
        sb = Saga([Step("b1", did("b1"), undo("b1")), Step("b2", did("b2"), undo("b2"))], name="sb")
        loop.call_soon_threadsafe(lambda: [loop.create_task(saga.arun({})) for saga in (sa, sb)])
        started.wait(10)  # (a2 holds the loop: b2 is next, once it frees it)
        say("the script ends")
        """
    )
    lines = done.stdout.splitlines()
    assert lines[:4] == ["do a1", "do b1", "do a2", "the script ends"], done
    assert lines[4:] == ["undo b1"], done  # (b2 never began; sa committed as a2 returned)
    assert any(
        line.startswith("rollback-lessons: saga 'sa-")
        and line.endswith("committed there, before the cut came")
        for line in _said(done)
    ), done.stderr
    assert done.returncode == 0, done


def test_a_run_handed_to_the_loop_after_the_exit_looked_is_refused_and_said() -> None:
    done = _run(
        """
        sa = Saga([Step("a1", blocking("a1", 1), undo("a1")), Step("a2", did("a2"), undo("a2"))],
                  name="sa")
        sb = Saga([Step("b1", did("b1"), undo("b1"))], name="sb")

        async def block():
            async with AsyncRollback() as rb:
                await rb.do("c1", lambda: say("do c1"), lambda: say("undo c1"))

        asyncio.run_coroutine_threadsafe(sa.arun({}), loop)
        started.wait(10)
        for refused in (sb.arun({}), block()):  # (their tasks made once a1 frees the loop)
            asyncio.run_coroutine_threadsafe(refused, loop).add_done_callback(
                lambda f: say("refused:", type(f.exception()).__name__))
        say("the script ends")
        """
    )
    assert done.stdout.splitlines()[:2] == ["do a1", "the script ends"], done
    assert sorted(done.stdout.splitlines()[2:]) == [
        "refused: ProgramEnded",
        "refused: ProgramEnded",
        "undo a1",
    ], done  # (nothing of sb nor of the block ran)
    tail = ("began on an event loop in another thread (a daemon's) after the program's end "
            "began: refused, nothing of it ran (that thread ends with the process, cutting "
            "whatever it begins)")  # fmt: skip
    assert f"rollback-lessons: a saga.arun of 'sb' {tail}" in _said(done), done.stderr
    assert any(line.endswith(f": its AsyncRollback block {tail}") for line in _said(done)), (
        done.stderr
    )


def test_a_journalled_run_neither_retries_nor_goes_on_after_the_end(tmp_path) -> None:
    at = str(tmp_path / "j.db")
    done = _run(
        """
        registry = Registry()
        note = registry.add("note", lambda name: say("undo", name))
        tries = []

        async def flaky(state):  # (fails once the program's end began: retried later)
            tries.append(1)
            say("do q2 try", len(tries))
            started.set()
            while not _program_end.ENDED:
                await asyncio.sleep(0.01)
            raise ConnectionError("down")

        async def slow_undo(state):  # (keeps the exit waiting past q2's retry)
            await asyncio.sleep(1.5)
            say("undo p1")

        async def for_ever(state):
            await asyncio.sleep(1000)

        plain = Saga([Step("p1", did("p1"), lambda s: slow_undo(s)),
                      Step("p2", lambda s: for_ever(s))], name="plain")
        jr = Saga([Step("q1", did("q1"), note.bind(name="q1")),
                   Step("q2", lambda s: flaky(s), note.bind(name="q2"),
                        retry=RetryPolicy(max_attempts=3, initial_delay=0.3)),
                   Step("q3", did("q3"), note.bind(name="q3"))], name="jr")
        asyncio.run_coroutine_threadsafe(plain.arun({}), loop)
        asyncio.run_coroutine_threadsafe(jr.arun({}, journal=Journal(sys.argv[1]), run_id="q"),
                                         loop)
        started.wait(10)
        say("the script ends")
        """,
        at,
    )
    assert sorted(done.stdout.splitlines()) == sorted(
        ["do p1", "do q1", "do q2 try 1", "the script ends", "undo p1"]
    ), done  # (no second try of q2, no q3: the journal keeps it for recover)
    assert any(line.startswith("rollback-lessons: saga 'q' ") and "no step of it begins from now"
               in line for line in _said(done)), done.stderr  # fmt: skip
    assert "Task was destroyed" not in done.stderr, done.stderr
    with sqlite3.connect(at) as db:
        (status,) = db.execute("select status from sagas where id = 'q'").fetchone()
    assert status == "running"


def test_a_run_of_the_main_thread_in_a_late_exit_hook_still_runs() -> None:
    body = textwrap.dedent(
        """
        import atexit, asyncio

        def late():  # (registered before the package loads: runs after its own hooks)
            from rollback_lessons import Saga, Step
            from rollback_lessons import _program_end
            saga = Saga([Step("m1", lambda s: print("do m1", flush=True))], name="m")
            print("ended:", bool(_program_end.ENDED), asyncio.run(saga.arun({})).status)

        atexit.register(late)
        import rollback_lessons
        """
    )
    done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout == "do m1\nended: True committed\n", done


BLOCK = """
    from rollback_lessons import _task_left as left
    seen = []
    ended_in = left.ended_in_task

    def noting(task, blocks):
        seen.append(task)
        return ended_in(task, blocks)

    left.ended_in_task = noting
    registry = Registry()
    note = registry.add("note", lambda name: say("undo", name))
    journal = Journal(sys.argv[1]) if sys.argv[1] != "-" else None

    async def block():
        kw = {"journal": journal, "run_id": "k"} if journal else {}
        async with AsyncRollback(**kw) as rb:
            await rb.do("c1", lambda: say("do c1"),
                        note.bind(name="c1") if journal else lambda: say("undo c1"))
            started.set()
            await asyncio.sleep(0.05)  # (ends as the loop is held: the next step is due)
            await rb.do("c2", lambda: say("do c2"),
                        note.bind(name="c2") if journal else lambda: say("undo c2"))

    async def holding():  # (holds the loop's thread until the exit found the block)
        while not seen:
            time.sleep(0.01)

    asyncio.run_coroutine_threadsafe(block(), loop)
    started.wait(10)
    asyncio.run_coroutine_threadsafe(holding(), loop)
    say("the script ends")
    """


def test_a_step_of_a_block_the_exit_found_does_not_begin_after_the_end() -> None:
    done = _run(BLOCK, "-")
    assert done.stdout.splitlines() == ["do c1", "the script ends", "undo c1"], done
    assert "Traceback" not in done.stderr, done.stderr


def test_a_journalled_block_begins_no_step_after_the_end(tmp_path) -> None:
    at = str(tmp_path / "j.db")
    done = _run(BLOCK, at)
    assert done.stdout.splitlines() == ["do c1", "the script ends"], done  # (recover's)
    assert "Task was destroyed" not in done.stderr, done.stderr
    with sqlite3.connect(at) as db:
        (status,) = db.execute("select status from sagas where id = 'k'").fetchone()
    assert status == "running"


def test_a_ctrl_c_as_the_exit_waits_names_the_runs_still_rolling_back() -> None:
    """attack310 F8: the line named the run waited for first (whose undos had all run, or
    that had none), not those whose undos still ran."""
    import os
    import signal
    import time

    body = HEAD + textwrap.dedent(
        """
        async def for_ever(state):
            await asyncio.sleep(1000)

        async def slow_undo(state):  # (the loop free meanwhile: the others' rollbacks end)
            say("undo-start b1")
            await asyncio.sleep(2.0)
            say("undo b1")

        quick = Saga([Step("a1", did("a1"), undo("a1")), Step("a2", lambda s: for_ever(s))])
        slow = Saga([Step("b1", did("b1"), lambda s: slow_undo(s)),
                     Step("b2", lambda s: for_ever(s))])
        for saga, run_id in ((quick, "quick"), (slow, "slow"), (slow, "slow2")):
            asyncio.run_coroutine_threadsafe(saga.arun({}, run_id=run_id), loop)
        ended_at_end = task_left.ended_at_end

        def waiting(*args, **kwargs):  # (the exit waits for the runs now: its Ctrl-C line's)
            say("the exit waits")
            return ended_at_end(*args, **kwargs)

        task_left.ended_at_end = waiting
        time.sleep(0.3)
        say("the script ends")
        """
    )

    child = _interruptible(body)
    seen: list[str] = []
    assert child.stdout is not None
    while seen.count("undo-start b1") < 2 or "undo a1" not in seen or "the exit waits" not in seen:
        line = child.stdout.readline()
        assert line, (seen, child.stderr.read() if child.stderr else "")
        seen.append(line.strip())
    time.sleep(0.5)  # (the quick run's rollback over: no more to undo)
    os.kill(child.pid, signal.SIGINT)  # (slow's undo runs still)
    out, err = child.communicate(timeout=60)
    assert [*seen, *out.splitlines()].count("undo b1") == 2, (seen, out, err)  # (ran on)
    [line] = [line for line in err.splitlines() if "a Ctrl-C as the program ends" in line]
    assert "the undos of sagas 'slow" in line and "'quick'" not in line, err
    assert "'slow'" in line and "'slow2'" in line, err  # (both, not the one waited for)


def _recovered(at: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    from rollback_lessons import Registry
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.recovery import recover

    registry, undone = Registry(), []
    registry.add("note", lambda name: undone.append(name))
    with Journal(at) as journal:
        [back] = recover(journal, registry).recovered
    return str(back.status), tuple(undone), tuple(back.leaked)


KEEPS_THE_EXIT = """
    async def slow_undo(state):  # (an unjournalled run's: the exit waits for it 1.5 s)
        await asyncio.sleep(1.5)
        say("undo p1")

    async def for_ever(state):
        await asyncio.sleep(1000)

    plain = Saga([Step("p1", did("p1"), lambda s: slow_undo(s)), Step("p2", lambda s: for_ever(s))])
    asyncio.run_coroutine_threadsafe(plain.arun({}), loop)
    registry = Registry()
    note = registry.add("note", lambda name: say("undo", name))
    journal = Journal(sys.argv[1])

    async def after_the_end(then):  # (waits for the program's end, then a moment more)
        while not _program_end.ENDED:
            await asyncio.sleep(0.01)
        await asyncio.sleep(then)
    """


def test_a_journalled_retry_due_after_the_end_is_not_written_begun(tmp_path) -> None:
    """attack311 F1: its next attempt was written as started, never called: recover then
    reported the step leaked ("may have happened") and paged a person."""
    at = str(tmp_path / "j.db")
    done = _run(
        KEEPS_THE_EXIT
        + """
    async def refused(state):
        started.set()
        await after_the_end(0.0)
        raise ConnectionError("down")  # (retried 0.2 s later: during the end)

    jr = Saga([Step("q1", did("q1"), note.bind(name="q1")),
               Step("q2", lambda s: refused(s), note.bind(name="q2"),
                    retry=RetryPolicy(max_attempts=3, initial_delay=0.2))], name="jr")
    asyncio.run_coroutine_threadsafe(jr.arun({}, journal=journal, run_id="q"), loop)
    started.wait(10)
    say("the script ends")
    """,
        at,
    )
    assert "undo p1" in done.stdout.splitlines(), done
    assert _recovered(at) == ("rolled_back", ("q1",), ()), done.stderr


def test_a_journalled_blocks_step_after_the_end_is_not_written_begun(tmp_path) -> None:
    """attack311 F2: the step was written started, never called: reported leaked."""
    at = str(tmp_path / "j.db")
    done = _run(
        KEEPS_THE_EXIT
        + """
    async def block():
        async with AsyncRollback(journal=journal, run_id="k") as rb:
            await rb.do("c1", lambda: say("do c1"), note.bind(name="c1"))
            started.set()
            await after_the_end(0.2)
            await rb.do("c2", lambda: say("do c2"), note.bind(name="c2"))

    asyncio.run_coroutine_threadsafe(block(), loop)
    started.wait(10)
    say("the script ends")
    """,
        at,
    )
    assert "do c2" not in done.stdout.splitlines() and "undo p1" in done.stdout, done
    assert _recovered(at) == ("rolled_back", ("c1",), ()), done.stderr


def test_a_run_refused_in_a_task_nobody_awaits_is_said_in_one_line() -> None:
    """attack311 F3: asyncio's "Task exception was never retrieved" and a traceback too."""
    done = _run("""
    async def slowly(state):
        await asyncio.sleep(0.8)

    async def for_ever(state):
        await asyncio.sleep(1000)

    cut = Saga([Step("a", did("a"), lambda s: slowly(s)), Step("b", lambda s: for_ever(s))])
    asyncio.run_coroutine_threadsafe(cut.arun({}), loop)
    late = Saga([Step("n", did("n"))], name="late")

    def feeding():  # (once the program's end began: a task no one awaits)
        while not _program_end.ENDED:
            time.sleep(0.01)
        loop.call_soon_threadsafe(lambda: loop.create_task(late.arun({}, run_id="late1")))

    threading.Thread(target=feeding, daemon=True).start()
    time.sleep(0.2)
    say("the script ends")
    """)
    assert done.stdout.splitlines() == ["do a", "the script ends"], done
    refused = [line for line in done.stderr.splitlines() if "refused" in line]
    assert refused == ["rollback-lessons: a saga.arun of 'late' (run_id 'late1') began on an "
                       "event loop in another thread (a daemon's) after the program's end began: "
                       "refused, nothing of it ran (that thread ends with the process, cutting "
                       "whatever it begins)"], done.stderr  # fmt: skip
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr


def test_a_journalled_run_awaited_in_a_cut_block_does_not_hold_the_exit(tmp_path) -> None:
    """attack311 F5: the outer block waited for the inner run, held for recover, for ever:
    the program never ended, the outer's undo never ran."""
    at = str(tmp_path / "j.db")
    done = _run(
        """
    registry = Registry()
    note = registry.add("note", lambda name: say("undo", name))
    inner_started = threading.Event()

    async def slow(state):
        inner_started.set()
        await asyncio.sleep(1.0)  # (returns during the end: the next step would begin)

    inner = Saga([Step("ia", did("ia"), note.bind(name="ia")),
                  Step("ib", lambda s: slow(s), note.bind(name="ib")),
                  Step("ic", did("ic"), note.bind(name="ic"))], name="inner")

    async def outer():
        async with AsyncRollback() as rb:
            await rb.do("o1", lambda: say("do o1"), lambda: say("undo o1"))
            await inner.arun({}, journal=Journal(sys.argv[1]), run_id="in")

    asyncio.run_coroutine_threadsafe(outer(), loop)
    inner_started.wait(10)
    say("the script ends")
    """,
        at,
    )
    assert done.returncode == 0 and "undo o1" in done.stdout.splitlines(), done
    assert "do ic" not in done.stdout, done
    status, undone, _ = _recovered(at)  # (left to recover, as a crash leaves it)
    assert undone == ("ia",), (status, undone, done.stderr)


def test_a_journalled_block_awaiting_a_cut_run_is_left_to_recover(tmp_path) -> None:
    """attack311 F6: said left to recover, then rolled back there all the same."""
    at = str(tmp_path / "j.db")
    done = _run(
        """
    registry = Registry()
    note = registry.add("note", lambda name: say("undo", name))

    async def for_ever(state):
        started.set()
        await asyncio.sleep(1000)

    inner = Saga([Step("ia", did("ia"), undo("ia")), Step("ib", lambda s: for_ever(s))])

    async def outer():
        async with AsyncRollback(journal=Journal(sys.argv[1]), run_id="out") as rb:
            await rb.do("o1", lambda: say("do o1"), note.bind(name="o1"))
            await inner.arun({})

    asyncio.run_coroutine_threadsafe(outer(), loop)
    started.wait(10)
    say("the script ends")
    """,
        at,
    )
    assert "undo o1" not in done.stdout and "undo ia" in done.stdout, done
    assert sum("saga 'out'" in line for line in _said(done)) == 1, done.stderr
    assert _recovered(at)[:2] == ("rolled_back", ("o1",)), done.stderr


def test_no_step_of_any_run_begins_once_the_program_end_began() -> None:
    """attack311 F9: steps (retries too) of unjournalled runs began in the 20-60 ms before
    the exit handed out its cut."""
    done = _run("""
    class Noted(list):
        def append(self, item):
            super().append(item)
            say("=== the end began")

    _program_end.ENDED = Noted()

    def quick(name, fails):
        tries = []

        async def act(state):
            tries.append(1)
            say(f"begin {name}")
            await asyncio.sleep(0.002)
            if len(tries) <= fails:
                raise ConnectionError("down")
        return Step(name, lambda s: act(s), undo(name),
                    retry=RetryPolicy(max_attempts=3, initial_delay=0.003))

    async def slowly(state):
        await asyncio.sleep(0.5)

    loops = [loop, asyncio.new_event_loop()]
    threading.Thread(target=loops[1].run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(
        Saga([Step("z", did("z"), lambda s: slowly(s)), quick("zz", 0)]).arun({}), loop)
    for i in range(8):
        steps = [quick(f"r{i}s{k}", int(k % 5 == 2)) for k in range(200)]
        asyncio.run_coroutine_threadsafe(Saga(steps).arun({}), loops[i % 2])
    time.sleep(0.3)
    """)
    lines = done.stdout.splitlines()
    assert "=== the end began" in lines, done
    after = lines[lines.index("=== the end began") :]  # (one a loop's thread had called as
    begun = [line for line in after if line.startswith("begin ")]  # the end began, at most)
    assert len(begun) <= 2, after[:10]


def test_an_exit_hook_waiting_for_a_journalled_run_left_to_recover_ends(tmp_path) -> None:
    """attack312 F2: the run held for recover never ended its arun: a service's exit hook
    (registered before the package loaded: run after its own) waited for it for ever."""
    at = str(tmp_path / "j.db")
    body = textwrap.dedent(
        """
        import atexit, asyncio, sys, threading

        def hook():  # (a service's: waits for its work in flight)
            try:
                pending[0].result(timeout=30)
            except BaseException as exc:
                print("the hook's wait ended:", type(exc).__name__, flush=True)

        atexit.register(hook)
        pending = []
        from rollback_lessons import Registry, Saga, Step
        from rollback_lessons.durable.journal import Journal

        note = Registry().add("note", lambda name: None)
        started = threading.Event()

        async def slow(state):
            started.set()
            await asyncio.sleep(0.5)

        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        saga = Saga([Step("a", lambda s: None, note.bind(name="a")),
                     Step("b", lambda s: slow(s), note.bind(name="b")),
                     Step("c", lambda s: print("do c", flush=True), note.bind(name="c"))])
        run = saga.arun({}, journal=Journal(sys.argv[1]), run_id="q")
        pending.append(asyncio.run_coroutine_threadsafe(run, loop))
        started.wait(10)
        """
    )
    done = subprocess.run([sys.executable, "-c", body, at], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout == "the hook's wait ended: CancelledError\n", done  # (no c)
    with sqlite3.connect(at) as db:
        (status,) = db.execute("select status from sagas where id = 'q'").fetchone()
    assert status == "running"


def test_a_ctrl_c_as_a_journalled_blocks_rollback_is_waited_for_says_the_journal_keeps_it(
    tmp_path,
) -> None:
    """attack312 F8: the line said "their only chance ... nothing keeps them": the journal
    keeps them, and recover finishes them."""
    import os
    import signal
    import time

    body = HEAD + textwrap.dedent(
        """
        registry = Registry()

        def slowly(name):
            say("undo-start " + name)
            time.sleep(2.0)
            say("undo " + name)

        note = registry.add("note", slowly)

        async def block():
            async with AsyncRollback(journal=Journal(sys.argv[1]), run_id="k") as rb:
                await rb.do("c1", lambda: say("do c1"), note.bind(name="c1"))
                raise RuntimeError("the block fails")

        asyncio.run_coroutine_threadsafe(block(), loop)
        time.sleep(0.3)
        say("the script ends")
        """
    )

    child = _interruptible(body, str(tmp_path / "j.db"))
    assert child.stderr is not None
    seen: list[str] = []
    while not any("its rollback is waited for on that loop" in line for line in seen):
        line = child.stderr.readline()  # (the exit found the block rolling back: it waits)
        assert line, seen
        seen.append(line.strip())
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=60)
    [line] = [line for line in err.splitlines() if "a Ctrl-C as the program ends" in line]
    assert line.endswith("the undos of saga 'k' still run; a second Ctrl-C ends the process now; "
                         "the journal keeps those not yet run, for recover"), err  # fmt: skip


def test_a_ctrl_c_as_the_exit_looks_is_said_and_the_next_ends_the_process() -> None:
    """attack312 F9: one landing as the exit looked for runs was dropped unsaid, and the next
    was taken for a first again: it took three to end the process."""
    import os
    import signal

    body = HEAD + textwrap.dedent(
        """
        import os, signal
        looks = task_left.aruns

        def looking():  # (a Ctrl-C as the exit looks: sent at its start)
            os.kill(os.getpid(), signal.SIGINT)
            return looks()

        task_left.aruns = looking

        async def for_ever(state):
            started.set()
            await asyncio.sleep(1000)

        async def slow_undo(state):
            await asyncio.sleep(30)

        saga = Saga([Step("a", did("a"), lambda s: slow_undo(s)), Step("b", lambda s: for_ever(s))])
        asyncio.run_coroutine_threadsafe(saga.arun({}), loop)
        started.wait(10)
        """
    )

    child = _interruptible(body)
    assert child.stderr is not None
    lines: list[str] = []
    while not any("as it looked for runs and blocks left open" in line for line in lines):
        line = child.stderr.readline()
        assert line, lines
        lines.append(line.strip())
    os.kill(child.pid, signal.SIGINT)  # (the second: ends it, its undo never done)
    child.communicate(timeout=20)
    assert child.returncode == -signal.SIGINT, lines
