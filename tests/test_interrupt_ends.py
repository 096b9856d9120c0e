"""A Ctrl-C at the instants that end a run (attack52): the commit's write, the rollback's
last events, the last undo's record. Whatever the driver, nothing says committed or
rolled back unless the journal does, and what stands is named."""

from __future__ import annotations

import asyncio
import gc

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Status, Step, _forward
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.errors import InjectedTimeout

DRIVERS = ["list", "graph", "arun", "rollback", "arollback"]


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", ()))


def run_on(driver: str, steps: list[tuple[str, object, object]], fail: bool = False, **kw):
    """(outcome or None, the Ctrl-C raised or None) of ``steps`` on ``driver``; ``fail``:
    the saga fails after its steps (a last step that raises; a with-block that raises)."""
    outcome, raised = None, None

    def boom(*_a: object) -> None:
        raise ValueError("boom")

    try:
        if driver in ("rollback", "arollback"):
            rb = Rollback(**kw) if driver == "rollback" else AsyncRollback(**kw)
            try:
                if driver == "rollback":
                    with rb:
                        for name, act, undo in steps:
                            rb.do(name, act, undo)  # type: ignore[arg-type]
                        if fail:
                            boom()
                else:

                    async def block() -> None:
                        async with rb:  # type: ignore[union-attr]
                            for name, act, undo in steps:
                                await rb.do(name, act, undo)  # type: ignore[arg-type,misc]
                            if fail:
                                boom()

                    asyncio.run(block())
            finally:
                outcome = rb.outcome
        else:
            saga = Saga(
                [Step(n, a, u) for n, a, u in steps]  # type: ignore[arg-type]
                + ([Step("z", boom)] if fail else [])
            )
            if driver == "list":
                outcome = saga.run({}, **kw)
            elif driver == "graph":
                outcome = saga.run({}, completion=list(saga.names), **kw)
            else:
                outcome = asyncio.run(saga.arun({}, **kw))
    except (KeyboardInterrupt, ValueError) as exc:
        raised = exc if isinstance(exc, KeyboardInterrupt) else None
        outcome = outcome or getattr(exc, "outcome", None)
    return outcome, raised


def world_steps(world: list[str], journalled: bool = False):
    """Steps a, b: each appends to ``world`` as it is done and undone (a registered
    compensation when ``journalled``)."""

    def undo(k: str, idempotency_key: str | None = None) -> None:
        world.append(f"undo {k}")

    registered = compensation(f"undo_{id(world)}", Registry())(undo)
    return [
        (
            k,
            lambda *_, k=k: world.append(f"do {k}"),
            registered.bind(k=k) if journalled else lambda *_, k=k: undo(k),
        )
        for k in "ab"
    ]


def _unread(saga_id: str) -> None:
    """The journal's read-back failing too: the commit's fate unknown (attack70 F4)."""
    raise OSError("disk I/O error")


@pytest.mark.parametrize("read_back", ["unread", "read"])
@pytest.mark.parametrize("landed", ["before", "after"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_as_the_commit_is_written_never_says_committed_unless_the_journal_does(
    driver, landed, read_back, tmp_path
):
    """attack52 F1: a Ctrl-C as the journal's write of the commit began: the with-blocks said
    ``committed`` ("nothing to undo") though the journal never recorded it, and ``recover``
    undid the saga its process called committed. Now, on every driver, the journal is read
    back (attack70 F4): committed there, the run is, nothing undone; not, it rolls back, as
    recover would. Unreadable, the Ctrl-C is raised with a note that the journal alone knows;
    no outcome says committed; nothing is undone."""
    world: list[str] = []
    with Journal(str(tmp_path / "j.db")) as journal:
        real, saga_of = journal.write, journal.saga

        def write(statements, **kw):
            commit = any("committed" in str(s) for s in statements)
            if commit and landed == "before":
                raise KeyboardInterrupt
            out = real(statements, **kw)
            if commit:
                raise KeyboardInterrupt
            return out

        journal.write = write  # type: ignore[method-assign]
        if read_back == "unread":
            journal.saga = _unread  # type: ignore[method-assign,assignment]
        outcome, raised = run_on(driver, world_steps(world, True), journal=journal, run_id="r")
        journal.write, journal.saga = real, saga_of  # type: ignore[method-assign]
        status = journal.saga("r").status
    assert isinstance(raised, KeyboardInterrupt)
    if read_back == "read" and landed == "after":
        assert world == ["do a", "do b"]
        assert "the Ctrl-C came once the saga had committed" in notes(raised)
        assert status == "committed"
        assert outcome is None or outcome.status is Status.COMMITTED
    elif read_back == "read":
        assert world == ["do a", "do b", "undo b", "undo a"]
        assert status == "rolled_back"
        assert outcome is None or outcome.status is Status.ROLLED_BACK
    else:
        assert world == ["do a", "do b"]
        assert "the journal says whether it committed" in notes(raised)
        assert "there is nothing to undo" not in notes(raised)
        assert status == ("running" if landed == "before" else "committed")
        assert outcome is None or outcome.status is not Status.COMMITTED


def failing_undo_steps(world: list[str]):
    """Steps a, c: c's undo always fails (a, c, then the saga fails)."""

    def undo_c(*_: object) -> None:
        world.append("try-undo c")
        raise RuntimeError("refund service down")

    return [
        ("a", lambda *_: world.append("do a"), lambda *_: world.append("undo a")),
        ("c", lambda *_: world.append("do c"), undo_c),
    ]


@pytest.mark.parametrize("policy", ["halt", "continue"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_at_any_event_of_the_rollback_names_every_step_it_left_standing(driver, policy):
    """attack52 F3: with ``halt``, a Ctrl-C in the observer of the ``undo_failed`` that halts
    (or of ``rollback_done``) was raised with no note, and no outcome: a and c stood, named
    nowhere. At every event from the rollback's start on, on every driver, each step left
    standing is named in the Ctrl-C's notes."""
    kinds: list[str] = []
    run_on(driver, failing_undo_steps([]), fail=True, policy=policy, on_event=kinds.append)
    kinds = [str(e.kind) for e in kinds]  # type: ignore[attr-defined]
    start = kinds.index("rollback_start")
    assert kinds[-1] == "rollback_done"
    for n in range(start, len(kinds)):
        world: list[str] = []
        seen: list[object] = []

        def on_event(event: object, n: int = n, seen: list[object] = seen) -> None:
            seen.append(event)
            if len(seen) == n + 1:
                raise KeyboardInterrupt

        _, raised = run_on(
            driver, failing_undo_steps(world), fail=True, policy=policy, on_event=on_event
        )
        assert isinstance(raised, KeyboardInterrupt), (n, kinds[n])
        standing = [k for k in "ac" if f"do {k}" in world and f"undo {k}" not in world]
        said = notes(raised)
        assert standing and all(f" {k}" in said for k in standing), (kinds[n], world, said)


@pytest.mark.parametrize("where", ["write", "event"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_as_an_undos_record_is_written_says_recover_will_call_it_again(
    driver, where, tmp_path
):
    """attack52 M1, attack53 F5: a Ctrl-C as the write of the rollback's last ``undo_done``
    began (or its event, before the journal heard of it): the outcome said "every undo had
    run", the journal kept that undo pending, and ``recover`` called it again with nothing in
    the process saying it would. Now the Ctrl-C's notes and the outcome name the undo that
    ran and that recover will call again (by its key)."""
    from rollback_lessons.events import EventKind
    from rollback_lessons.machine import Machine

    world: list[str] = []
    emit = Machine._emit

    def event(self, kind, step=None, details=()):  # type: ignore[no-untyped-def]
        if kind is EventKind.UNDO_DONE:
            raise KeyboardInterrupt  # (as the call began)
        return emit(self, kind, step, details)

    with Journal(str(tmp_path / "j.db")) as journal, pytest.MonkeyPatch.context() as mp:
        real = journal.write

        def write(statements, **kw):
            if any("undo_done" in str(s) for s in statements):
                raise KeyboardInterrupt
            return real(statements, **kw)

        if where == "write":
            mp.setattr(journal, "write", write)
        else:
            mp.setattr(Machine, "_emit", event)
        steps = world_steps(world, True)[:1]
        outcome, raised = run_on(driver, steps, fail=True, journal=journal, run_id="r")
        mp.undo()
        shown = {u.step: u.state for u in journal.undos("r")}
    assert world == ["do a", "undo a"] and shown == {"a": "pending"}
    assert isinstance(raised, KeyboardInterrupt)
    said = "the undo of 'a' ran here; the Ctrl-C cut the write of its record: unless it landed, "
    said += "recover will call it again"
    assert said in notes(raised)
    assert outcome is None or any(said in n for n in outcome.notes)


def async_steps(world: list[str]):
    """Steps a, b whose actions await before and after their effect."""

    def act(k: str):
        async def action() -> None:
            await asyncio.sleep(0)
            world.append(f"do {k}")
            await asyncio.sleep(0)

        return action

    return [(k, act(k), lambda *_, k=k: world.append(f"undo {k}")) for k in "ab"]


def left_to_the_loops_end(which: str, turns: int):
    """``saga.arun`` (or an AsyncRollback block that fails after its steps) started as a
    task that ``main`` leaves running after ``turns`` turns of the loop, as a script does
    whose other part failed: asyncio.run's end cancels it (and every task of the engine's).
    (world, the notes of what the loop logged, the outcome if any reached the caller)."""
    world: list[str] = []
    logged: list[str] = []
    outcome: list[object] = []
    steps = async_steps(world)

    async def part() -> None:
        if which == "arun":
            saga = Saga([Step(n, lambda s, a=a: a(), u) for n, a, u in steps])  # type: ignore[misc]
            try:
                outcome.append(await saga.arun({}))
            except asyncio.CancelledError as cancelled:  # (carrying the outcome, if any)
                outcome.append(getattr(cancelled, "outcome", None))
                raise
            return
        rb = AsyncRollback()
        try:
            async with rb:
                for n, a, u in steps:
                    await rb.do(n, a, u)  # type: ignore[arg-type]
                raise ValueError("the block fails")
        finally:
            outcome.append(rb.outcome)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, ctx: logged.append(notes(ctx.get("exception") or Exception()))
        )
        task = asyncio.ensure_future(part())
        for _ in range(turns):
            if task.done():
                break
            await asyncio.sleep(0)

    asyncio.run(main())
    return world, "\n".join(logged), outcome[0] if outcome else None


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("which", ["arun", "block"])
def test_a_saga_left_to_asyncio_runs_end_at_any_turn_is_undone_or_named(which):
    """attack52 F2: ``asyncio.run``'s end cancels every task left, the engine's own too: a
    ``saga.arun`` left running ended in a bare CancelledError (nothing logged, no outcome),
    a step's effect standing; an AsyncRollback block's rollback task, cancelled before it
    began, undid nothing. At every turn, each effect standing is now undone, or named in
    the outcome the caller got or in the notes of what the loop logged."""
    for turns in range(16):
        world, logged, outcome = left_to_the_loops_end(which, turns)
        standing = [k for k in "ab" if f"do {k}" in world and f"undo {k}" not in world]
        if outcome is not None and outcome.status is Status.COMMITTED:  # type: ignore[attr-defined]
            continue
        if "once the saga had committed: there is nothing to undo" in logged:
            continue
        told = {*getattr(outcome, "leaked", ()), *getattr(outcome, "pending", ())}
        for k in standing:
            assert k in told or f": {k}" in logged, (turns, world, logged, outcome)


def _at_the_nth_call(n: int, driver: str, world: list[str]):
    """Run a saga whose step a fails after its effect (a leaked), a Ctrl-C raised as the
    ``n``-th function of the package starts (where CPython hears a signal): (how many
    started, the Ctrl-C or None)."""
    import os
    import sys

    import rollback_lessons

    package = os.path.dirname(rollback_lessons.__file__)
    count = [0]

    def a(s: object) -> None:  # (a failure the engine knows came after the effect)
        world.append("do a")
        raise InjectedTimeout("a", "fail_after_effect", "charged, then timed out")

    saga = Saga(
        [
            Step("a", a, lambda s: world.append("undo a")),
            Step("b", lambda s: None, lambda s: None),
        ]
    )

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_filename.startswith(package):
            count[0] += 1
            if count[0] == n:
                sys.settrace(None)
                raise KeyboardInterrupt
        return None

    returned: list[object] = []

    async def main() -> None:
        returned.append(await saga.arun({}))

    gc.disable()  # (an earlier trial's leftovers closed by the gc, never under the tracer)
    sys.settrace(tracer)
    try:
        if driver == "list":
            saga.run({})
        else:
            asyncio.run(main())
    except KeyboardInterrupt as exc:  # (not one in asyncio's own code once arun returned)
        return count[0], None if returned else exc
    finally:
        sys.settrace(None)
        gc.enable()
    return count[0], None


@pytest.mark.filterwarnings("error")  # (and no step's loop closed with a machine error)
@pytest.mark.parametrize("driver", ["list", "arun"])
def test_a_ctrl_c_at_any_instant_of_a_run_that_leaked_a_step_names_it(driver):
    """attack52 F3, wider: a Ctrl-C at any of ~25 instants as ``saga.run`` (or ``arun``)
    closed the run and built its outcome was raised bare: no note, no outcome, and the step
    whose effect stood (a, failed after it) named nowhere. At every instant now, a Ctrl-C
    raised after a's effect names it (or carries an outcome that does)."""
    total, _ = _at_the_nth_call(10**9, driver, [])
    assert total > 50
    for n in range(1, total + 1):
        world: list[str] = []
        _, raised = _at_the_nth_call(n, driver, world)
        if raised is None or "do a" not in world or "undo a" in world:
            continue
        outcome = getattr(raised, "outcome", None)
        assert "a" in getattr(outcome, "leaked", ()) or ": a" in notes(raised), (n, notes(raised))


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_ctrl_c_at_the_commits_event_entry_leaves_the_journal_writable(driver, tmp_path):
    """attack52 M2: a Ctrl-C heard as the machine's ``_emit`` of the commit began (before its
    row was made): the commit's failure took back a row anyway, the previous event's, so
    every later write reused a sequence number (IntegrityError); the journal recorded none of
    the rollback and recover ran every undo again. Now the rollback is recorded as it runs."""
    from rollback_lessons.events import EventKind
    from rollback_lessons.machine import Machine

    world: list[str] = []
    real = Machine._emit

    def emit(self, kind, step=None, details=()):  # type: ignore[no-untyped-def]
        if kind is EventKind.COMMITTED:
            raise KeyboardInterrupt  # (as the call began: no row made)
        return real(self, kind, step, details)

    with Journal(str(tmp_path / "j.db")) as journal, pytest.MonkeyPatch.context() as mp:
        mp.setattr(Machine, "_emit", emit)
        _, raised = run_on(driver, world_steps(world, True), journal=journal, run_id="r")
        mp.undo()
        shown = {u.step: u.state for u in journal.undos("r")}
        status = journal.saga("r").status
    assert isinstance(raised, KeyboardInterrupt)
    assert "journal write failed" not in notes(raised), notes(raised)
    assert world == ["do a", "do b", "undo b", "undo a"]
    assert status == "rolled_back" and shown == {"a": "done", "b": "done"}


@pytest.mark.parametrize("driver", ["list", "arun", "rollback", "arollback"])
def test_a_clock_that_fails_as_an_undo_waits_to_retry_never_replaces_the_runs_error(driver):
    """attack52 M3: a clock whose wait raised (an OSError) as an undo waited to be retried:
    the with-blocks raised that OSError out of the block in place of the block's own error.
    Now the block's error is raised (the saga's outcome keeps it), the undo pending, and the
    notes say what cut the rollback."""
    from rollback_lessons import Retry, RetryPolicy
    from rollback_lessons.clock import VirtualClock

    class Failing(VirtualClock):
        def sleep(self, seconds: float) -> None:
            raise OSError("the clock's sleep failed")

        async def asleep(self, seconds: float) -> None:
            raise OSError("the clock's sleep failed")

    world: list[str] = []

    def flaky(*_: object) -> None:
        world.append("try-undo a")
        raise ConnectionError("busy")

    steps = [("a", lambda *_: world.append("do a"), flaky)]
    policy = Retry(RetryPolicy(max_attempts=3))
    outcome, raised = None, None
    try:
        outcome, raised = run_on(driver, steps, fail=True, policy=policy, clock=Failing())
    except OSError as exc:
        pytest.fail(f"the clock's error replaced the run's: {exc!r}")
    assert raised is None
    assert outcome is not None and outcome.status is Status.HALTED, outcome
    assert outcome.pending == ("a",) and "the clock's sleep failed" in " ".join(outcome.notes)
    assert isinstance(outcome.error, ValueError)


@pytest.mark.parametrize("driver", ["list", "rollback"])
def test_a_sys_exit_that_ends_a_halted_rollback_says_what_stands_on_stderr(driver, tmp_path):
    """attack52 F3: a service's SIGTERM handler calling sys.exit(0) as a halted rollback
    ended: the process exited 0 and printed nothing (Python never prints a SystemExit's
    notes), a and c standing. Now a warning on stderr names them."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import signal, os, sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from test_interrupt_ends import failing_undo_steps, run_on
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        def on_event(event):
            if str(event.kind) == "rollback_done":
                os.kill(os.getpid(), signal.SIGTERM)
        run_on({driver!r}, failing_undo_steps([]), fail=True, policy="halt", on_event=on_event)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "ended by sys.exit(0)" in done.stderr and "left for a person: c, a" in done.stderr


@pytest.mark.parametrize("where", ["_commit", "_emit"])
@pytest.mark.parametrize("driver", ["rollback", "arollback"])
def test_a_ctrl_c_before_the_commits_write_began_fails_the_block_there(driver, where, tmp_path):
    """attack52 F1, the other 25 instants: a Ctrl-C heard in the commit before its journal
    write began (the machine's commit, its event, the journal's watch) said "the saga had
    committed: there is nothing to undo" and ``rb.outcome`` committed; the journal never
    recorded it, and recover undid the saga. Now the block fails there, as in its last step:
    undone, the Ctrl-C re-raised, nothing says committed."""
    from rollback_lessons.events import EventKind
    from rollback_lessons.machine import Machine

    world: list[str] = []
    real = getattr(Machine, where)

    def cut(self, *args, **kw):  # type: ignore[no-untyped-def]
        if where == "_commit" or args[0] is EventKind.COMMITTED:
            raise KeyboardInterrupt  # (as the call began)
        return real(self, *args, **kw)

    with Journal(str(tmp_path / "j.db")) as journal, pytest.MonkeyPatch.context() as mp:
        mp.setattr(Machine, where, cut)
        outcome, raised = run_on(driver, world_steps(world, True), journal=journal, run_id="r")
        mp.undo()
        status = journal.saga("r").status
    assert isinstance(raised, KeyboardInterrupt)
    assert "committed" not in notes(raised), notes(raised)
    assert world == ["do a", "do b", "undo b", "undo a"]
    assert outcome is not None and outcome.status is Status.ROLLED_BACK
    assert status == "rolled_back"


@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("driver", ["list", "parallel", "arun", "rollback", "arollback"])
def test_a_ctrl_c_as_an_undo_logged_before_its_step_is_told_never_runs_that_undo(
    driver, journalled, tmp_path
):
    """attack53 F2, F3: a Ctrl-C at the very entry of the ``undo_registered`` event of b (its
    undo logged before it: ``register="before"``): b's undo ran though b's action was never
    called, nothing said b was not run; on arun and with a Parallel group a KeyError('b')
    escaped instead, nothing undone. Now b is not run, its undo never called, a undone."""
    from rollback_lessons import Parallel
    from rollback_lessons.events import EventKind
    from rollback_lessons.machine import Machine

    world: list[str] = []
    (a, act_a, undo_a), (b, act_b, undo_b) = world_steps(world, journalled)
    real = Machine._emit

    def emit(self, kind, step=None, details=()):  # type: ignore[no-untyped-def]
        if kind is EventKind.UNDO_REGISTERED and step == "b":
            raise KeyboardInterrupt  # (as the call began)
        return real(self, kind, step, details)

    journal = Journal(str(tmp_path / "j.db")) if journalled else None
    kw = {"journal": journal, "run_id": "r"} if journalled else {}
    outcome, raised = None, None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Machine, "_emit", emit)
        try:
            if driver in ("rollback", "arollback"):
                rb = Rollback(**kw) if driver == "rollback" else AsyncRollback(**kw)
                try:
                    if driver == "rollback":
                        with rb:
                            rb.do(a, act_a, undo_a)
                            rb.do(b, act_b, undo_b, register="before")
                    else:

                        async def block() -> None:
                            async with rb:  # type: ignore[union-attr]
                                await rb.do(a, act_a, undo_a)  # type: ignore[misc]
                                await rb.do(b, act_b, undo_b, register="before")  # type: ignore[misc]

                        asyncio.run(block())
                finally:
                    outcome = rb.outcome
            else:
                second = Step(b, act_b, undo_b, register="before")  # type: ignore[arg-type]
                steps = [Step(a, act_a, undo_a)]  # type: ignore[arg-type]
                if driver == "parallel":
                    steps.append(Parallel(second, Step("c", lambda s: None)))  # type: ignore[arg-type]
                else:
                    steps.append(second)
                saga = Saga(steps)
                if driver == "arun":
                    asyncio.run(saga.arun({}, **kw))
                else:
                    saga.run({}, **kw)
        except KeyboardInterrupt as exc:
            raised = exc
    status = journal.saga("r").status if journal is not None else None
    if journal is not None:
        journal.close()
    assert isinstance(raised, KeyboardInterrupt), raised
    assert world == ["do a", "undo a"], world
    assert "b was not run" in notes(raised)
    assert outcome is None or outcome.status is Status.ROLLED_BACK
    assert status in (None, "rolled_back")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_ctrl_c_as_a_returned_steps_undo_is_kept_writes_one_row(driver, tmp_path, capsys):
    """attack53 F1: a Ctrl-C as the journal took a returned step's intent out (heard as a
    ``dict.pop`` returned: CPython checks for a signal as a C call returns) lost it: the undo
    was written a second time, a row the journal never writes, and ``journal show`` and
    ``recover`` refused the whole file as damaged (every other saga in it left undone). At
    each call's return inside the journal's ``settle`` now: one row per step, the file reads."""
    import sys

    from rollback_lessons.cli import main

    def at(n: int, path):  # type: ignore[no-untyped-def]
        count = [0]

        def hook(frame, event, arg):  # type: ignore[no-untyped-def]
            caller = frame.f_back.f_code.co_name if frame.f_back is not None else ""
            heard = event == "c_return" and frame.f_code.co_name == "settle"  # (or a callee's
            if heard or (event == "call" and caller == "settle"):  # entry, where it is heard)
                count[0] += 1
                if count[0] == n:
                    sys.setprofile(None)
                    raise KeyboardInterrupt

        world: list[str] = []
        with Journal(str(path)) as journal:
            sys.setprofile(hook)
            try:
                _, raised = run_on(driver, world_steps(world, True), journal=journal, run_id="r")
            finally:
                sys.setprofile(None)
            steps = [u.step for u in journal.undos("r")]
        return count[0], raised, steps

    total, _, _ = at(10**9, tmp_path / "all.db")
    assert total > 0
    for n in range(1, total + 1):
        path = tmp_path / f"j{n}.db"
        _, raised, steps = at(n, path)
        assert isinstance(raised, KeyboardInterrupt), n
        assert sorted(steps) == sorted(set(steps)), (n, steps)
        assert main(["journal", "show", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("driver", ["list", "graph", "arun", "rollback", "arollback"])
def test_a_ctrl_c_as_a_done_steps_undo_begins_to_be_logged_still_undoes_it(driver, tmp_path):
    """attack53 F4: on arun (the graph machine), a Ctrl-C at the very entry of the log of a's
    undo (logged after it, a done) lost that undo: nothing undone, the journal rolled_back
    with a pending, recover doing nothing. On every driver now, a is undone."""
    from rollback_lessons.machine import Machine

    world: list[str] = []
    real, heard = Machine._log, []

    def log(self, spec):  # type: ignore[no-untyped-def]
        if spec.name == "a" and not heard:
            heard.append(spec.name)
            raise KeyboardInterrupt  # (as the call began; one Ctrl-C)
        return real(self, spec)

    with Journal(str(tmp_path / "j.db")) as journal, pytest.MonkeyPatch.context() as mp:
        mp.setattr(Machine, "_log", log)
        _, raised = run_on(driver, world_steps(world, True), journal=journal, run_id="r")
        mp.undo()
        shown = {u.step: u.state for u in journal.undos("r")}
    assert isinstance(raised, KeyboardInterrupt)
    assert world == ["do a", "undo a"], world
    assert shown == {"a": "done"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_sys_exit_as_the_commit_is_written_says_so_on_stderr(driver, tmp_path):
    """attack53 F6: a SIGTERM handler's sys.exit(143) heard as the journal recorded the
    commit ended the process 143, not a word (its only note, never printed, said Ctrl-C)."""
    world: list[str] = []
    with Journal(str(tmp_path / "j.db")) as journal:
        real = journal.write

        def write(statements, **kw):
            if any("committed" in str(s) for s in statements):
                raise SystemExit(143)
            return real(statements, **kw)

        journal.write, saga_of = write, journal.saga  # type: ignore[method-assign]
        journal.saga = _unread  # type: ignore[method-assign,assignment]  # (its fate unknown)
        with pytest.warns(RuntimeWarning, match=r"sys\.exit\(143\).*SystemExit came as the"):
            with pytest.raises(SystemExit):
                run_on(driver, world_steps(world, True), journal=journal, run_id="r")
        journal.write, journal.saga = real, saga_of  # type: ignore[method-assign]
    assert world == ["do a", "do b"]


@pytest.mark.parametrize("driver", ["graph", "arun"])
def test_a_ctrl_c_as_a_graph_step_is_told_done_still_undoes_it(driver, tmp_path):
    """attack53 F4, wider: on the graph machine, a Ctrl-C as any call returned while a step
    was told done (before its undo, logged after it, was logged) left its effect standing,
    the journal rolled_back. At every such instant now, each step done is undone."""
    import sys

    def at(n: int):  # type: ignore[no-untyped-def]
        count = [0]

        def hook(frame, event, arg):  # type: ignore[no-untyped-def]
            if event == "c_return" and frame.f_code.co_name == "step_done":
                count[0] += 1
                if count[0] == n:
                    sys.setprofile(None)
                    raise KeyboardInterrupt

        world: list[str] = []
        with Journal(str(tmp_path / f"j{n}.db")) as journal:
            sys.setprofile(hook)
            try:
                _, raised = run_on(driver, world_steps(world, True), journal=journal, run_id="r")
            finally:
                sys.setprofile(None)
        return count[0], raised, world

    total, _, _ = at(10**9)
    assert total > 2
    for n in range(1, total + 1):
        _, raised, world = at(n)
        assert isinstance(raised, KeyboardInterrupt), n
        done = [w[3:] for w in world if w.startswith("do ")]
        assert all(f"undo {k}" in world for k in done), (n, world, notes(raised))


def _pivot_fails(world: list[str], graph: bool) -> Saga:
    """a (with b alongside, ``graph``), then a pivot timing out after its effect: halted."""
    from rollback_lessons import Parallel

    def act(name):
        return lambda s: world.append(f"do {name}")

    def undo(name):
        return lambda s: world.append(f"undo {name}")

    def pivot(state):
        world.append("do p")
        raise InjectedTimeout("p", "fail_after_effect", "timed out after its effect")

    first: list = [Step("a", act("a"), undo("a"))]
    if graph:
        first = [Parallel(Step("a", act("a"), undo("a")), Step("b", act("b"), undo("b")))]
    return Saga([*first, Step("p", pivot, kind="pivot"), Step("c", act("c"), kind="retriable")],
                policy="halt")  # fmt: skip


@pytest.mark.parametrize("driver, graph", [("run", False), ("arun", False), ("arun", True)])
def test_a_ctrl_c_as_a_generator_of_the_engine_resumes_is_never_dropped(driver, graph):
    """attack54 F4: ``Outcome.forward``'s ``next(genexpr)`` and arun's per-step generators
    were left suspended, closed later by the gc, where Python drops an exception ("Exception
    ignored"): a Ctrl-C there was lost, the run returned ``halted``, the script went on. At
    every resumption of a generator of the package, the Ctrl-C is raised, none dropped."""
    import gc
    import sys

    import rollback_lessons

    package = rollback_lessons.__file__.rsplit("/", 1)[0]
    generators = {"<genexpr>", "step_ops", "operations"}

    def go(n: int) -> tuple[bool, BaseException | None, list[object]]:
        seen, dropped, world = [0], [], []

        def tracer(frame, event, arg):
            code = frame.f_code
            ours = code.co_name in generators and code.co_filename.startswith(package)
            if event == "call" and ours:
                seen[0] += 1
                if seen[0] == n:
                    sys.settrace(None)
                    raise KeyboardInterrupt
            return None

        saga = _pivot_fails(world, graph)
        old = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: dropped.append(unraisable.exc_value)
        sys.settrace(tracer)
        raised = None
        try:
            saga.run({}) if driver == "run" else asyncio.run(saga.arun({}))
        except KeyboardInterrupt as exc:
            raised = exc
        finally:
            sys.settrace(None)
            gc.collect()
            sys.unraisablehook = old
        return seen[0] >= n, raised, dropped

    n = 0
    while True:  # (the count varies a little from run to run: caches warm up)
        n += 1
        fired, raised, dropped = go(n)
        assert not [d for d in dropped if isinstance(d, KeyboardInterrupt)], (n, dropped)
        if not fired:
            break
        assert raised is not None, f"the Ctrl-C at resumption {n} was not raised"
    assert n > 10


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_arun_interrupted_as_a_branch_task_is_made_says_the_step_was_not_run(
    tmp_path, monkeypatch, raised
):
    """attack55 F5: a Ctrl-C or sys.exit heard as a task was made (``engine_task``), in
    arun's ``start_ready`` (a's start written, its task never made): a, never called, was
    reported leaked in the note and the journal, for a person. It is said not run."""
    import sqlite3
    import warnings

    world: list[str] = []
    real = _forward.engine_task  # (where the engine makes its tasks)
    armed = [True]

    def ensure_future(coroutine, *args, **kwargs):
        if armed[0] and getattr(coroutine, "__qualname__", "").endswith("branch"):
            armed[0] = False
            raise raised(143) if raised is SystemExit else raised()
        return real(coroutine, *args, **kwargs)

    monkeypatch.setattr(_forward, "engine_task", ensure_future)
    steps = world_steps(world, journalled=True)
    from rollback_lessons import Parallel

    saga = Saga([Parallel(Step(*steps[0]), Step(*steps[1]))], name="tasked")
    path = str(tmp_path / "j.db")
    with warnings.catch_warnings(record=True), pytest.raises(raised) as got:
        asyncio.run(saga.arun({}, journal=Journal(path), run_id="r1"))
    assert world == []
    assert "rollback: a was not run: the run failed before its turn" in got.value.__notes__
    rows = sqlite3.connect(path).execute("SELECT step, state FROM undos").fetchall()
    assert [state for _, state in rows] in ([], ["not_run"])


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_arun_interrupted_as_its_driver_waits_awaits_the_branches_and_says_how_it_ended(
    monkeypatch, raised
):
    """attack55 F4: a Ctrl-C or sys.exit heard as arun's driver called ``asyncio.wait``
    (b waiting to retry) left the driver with b's branch behind: asyncio.run's end cancelled
    it, a MachineError was logged, and nothing said how the run ended. Now the branches are
    awaited and told, then the run fails there: a undone, b failed, said in a note."""
    from rollback_lessons import Parallel, RetryPolicy

    world: list[str] = []
    real = asyncio.wait
    armed = [False]

    async def wait(waited, *args, **kwargs):
        if armed[0] and isinstance(waited, dict):
            armed[0] = False
            raise raised(143) if raised is SystemExit else raised()
        return await real(waited, *args, **kwargs)

    def b(state):
        world.append("try b")
        if world.count("try b") == 1:
            raise ConnectionError("refused")

    def heard(event):
        if event.kind.value == "step_retry":
            armed[0] = True

    monkeypatch.setattr(asyncio, "wait", wait)
    retry = RetryPolicy(max_attempts=3, initial_delay=1.0)
    a = Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a"))
    saga = Saga([Parallel(a, Step("b", b, lambda s: world.append("undo b"), retry=retry))],
                on_event=heard)  # fmt: skip
    logged: list[object] = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: logged.append(ctx))
        return await saga.arun({})

    with pytest.raises(raised) as got:
        asyncio.run(main())
    assert logged == []
    assert world == ["do a", "try b", "undo a"]
    assert any("b also failed" in note for note in got.value.__notes__)


def test_a_sys_exit_as_a_step_starts_is_named_for_what_it_is():
    """attack55 L2: a SIGTERM handler's sys.exit heard at b's step_start was noted "b was not
    run: the Ctrl-C came as it started", on the warning too: it names the SystemExit."""
    import warnings

    world: list[str] = []

    def heard(event):
        if event.kind.value == "step_start" and event.step == "b":
            raise SystemExit(143)

    saga = Saga([Step(*step) for step in world_steps(world)], on_event=heard)
    with warnings.catch_warnings(record=True), pytest.raises(SystemExit) as got:
        saga.run({})
    assert "rollback: b was not run: the SystemExit came as it started" in got.value.__notes__
    assert world == ["do a", "undo a"]


@pytest.mark.parametrize("pivot", [False, True], ids=["step", "pivot"])
def test_a_ctrl_c_as_a_steps_start_returns_before_its_call_says_it_was_not_run(monkeypatch, pivot):
    """attack58 F1: a Ctrl-C as the machine's ``step_ok`` returned b's start (its intent
    written, its action not yet called) cut b short as if it ran: "not undone (no undo logged
    for it): b", recover reporting it leaked; a pivot there halted the saga for a person with
    a and its undo left. The driver knows b's call had not begun: b was not run."""
    from rollback_lessons.machine import Machine

    world: list[str] = []
    real = Machine.step_ok
    armed = [True]

    def step_ok(self, *args, **kwargs):
        op = real(self, *args, **kwargs)
        if armed[0] and getattr(op, "step", None) == "b":
            armed[0] = False
            raise KeyboardInterrupt  # (b begun, its action not called)
        return op

    monkeypatch.setattr(Machine, "step_ok", step_ok)
    a = Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a"))
    b = (Step("b", lambda s: world.append("do b"), kind="pivot") if pivot else
         Step("b", lambda s: world.append("do b"), lambda s: world.append("undo b")))  # fmt: skip
    saga = Saga([a, b, Step("c", lambda s: world.append("do c"), kind="retriable")])
    with pytest.raises(KeyboardInterrupt) as got:
        saga.run({})
    assert got.value.__notes__ == ["rollback: b was not run: the Ctrl-C came as it started"]
    assert world == ["do a", "undo a"]


@pytest.mark.parametrize("made", [False, True], ids=["before", "as-it-returns"])
def test_a_ctrl_c_as_arun_makes_its_own_task_leaves_nothing_running_behind(monkeypatch, made):
    """attack58 F2: a Ctrl-C as arun made its own task raised a bare KeyboardInterrupt while
    the saga ran on in the background and committed (a notebook's loop goes on): the cell run
    again did the work twice. Nothing of that run ever runs now, and the Ctrl-C says so."""
    world: list[str] = []
    real = _forward.engine_task  # (where the engine makes its tasks)
    armed = [True]

    def ensure_future(coroutine, *args, **kwargs):
        if armed[0] and getattr(coroutine, "__qualname__", "") == "kept":
            armed[0] = False
            if made:
                real(coroutine, *args, **kwargs)  # (made, then the Ctrl-C as it returns)
            raise KeyboardInterrupt
        return real(coroutine, *args, **kwargs)

    monkeypatch.setattr(_forward, "engine_task", ensure_future)
    saga = Saga([Step(*step) for step in world_steps(world)])

    async def cell():
        try:
            await saga.arun({})
        except KeyboardInterrupt as exc:
            await asyncio.sleep(0.2)  # (the loop goes on, as a kernel's does)
            return exc
        return None

    got = asyncio.run(cell())
    assert got is not None and world == []
    assert "rollback: the Ctrl-C came as the run began: nothing of it ran" in got.__notes__
