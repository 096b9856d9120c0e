"""A step that returned has its undo in the journal before anything else runs (attack35 F4).

The README: "An undo logged after its step is written as soon as the step returns". A
process killed in the cancel function asked as the step returned, or in an observer told
``step_done`` (``on_event``), left the step reported leaked by ``recover`` although it had
returned and its undo was known: a person was asked to check what the saga could undo.
Now recover undoes it; a step with no undo that returned is written done (kept), never
leaked (attack36 F9).
"""

import contextlib
from functools import partial

import pytest
from conftest import as_killed, dead_pid
from test_journal_no_undo import Killed, World, registry, undo

from rollback_lessons import Rollback, Saga, Status, Step, VirtualClock
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.events import EventKind
from rollback_lessons.graph import Parallel


def _saga(world: World, parallel: bool, bare: bool) -> Saga:
    def step(name: str) -> Step:
        undone = None if bare and name == "s1" else undo.bind(world=world.name, step=name)
        return Step(name, partial(world.act, name, None), undone)

    s0, s1, s2, s3 = (step(f"s{i}") for i in range(4))
    return Saga([s0, Parallel(s1, s2), s3] if parallel else [s0, s1, s2, s3])


def _killed_then_recovered(tmp_path, world: World, saga: Saga, **run) -> tuple:
    journal = Journal(tmp_path / "j.db")
    world.wrap(journal)  # (killed: it writes nothing more)
    with contextlib.suppress(Killed):
        saga.run({}, journal=journal, run_id="r", clock=VirtualClock(), **run)
    return _recovered(tmp_path, world, journal)


def _recovered(tmp_path, world: World, journal: Journal) -> tuple:
    """The killed run's journal recovered by another process: (its record, states, leaked)."""
    assert world.dead, "the process was never killed"
    world.dead = False
    as_killed(journal)  # (a killed process closes nothing)
    with Journal(tmp_path / "j.db") as journal:
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        (recovered,) = recover(journal, registry).recovered
        states = {u.step: u.state for u in journal.undos("r")}
        return recovered, states, journal.leaked("r")


def _kill(world: World) -> None:
    world.dead = True
    raise Killed


@pytest.mark.parametrize("parallel", [False, True], ids=["list", "parallel"])
@pytest.mark.parametrize("bare", [False, True], ids=["undo", "no-undo"])
@pytest.mark.parametrize("where", ["cancel", "on_event"])
def test_a_kill_after_a_step_returned_leaves_it_undone_not_leaked(tmp_path, where, bare, parallel):
    world = World(f"ret-{where}-{bare}-{parallel}")

    def asked() -> bool:  # killed in the cancel function asked as s1 returned
        if "s1" in world.returned:
            _kill(world)
        return False

    def told(event) -> None:  # killed in an observer told s1 is done
        if event.kind is EventKind.STEP_DONE and event.step == "s1":
            _kill(world)

    how = {"cancel": asked} if where == "cancel" else {"on_event": told}
    recovered, states, leaked = _killed_then_recovered(
        tmp_path, world, _saga(world, parallel, bare), **how
    )
    assert leaked == [] and recovered.leaked == ()  # (no undo: written done, kept; F9)
    assert recovered.status is Status.ROLLED_BACK
    assert recovered.kept == (("s1",) if bare else ())
    assert world.undone == [s for s in reversed(world.effects) if not (bare and s == "s1")]
    assert "s1" in world.effects and world.undone.count("s0") == 1
    if not bare:
        assert states["s1"] == "done"


def test_a_kill_in_an_observer_of_a_with_block_leaves_the_step_undone(tmp_path):
    """A with-block's steps (``Rollback.do``) are written as they return too."""
    world = World("ret-with")

    def told(event) -> None:
        if event.kind is EventKind.STEP_DONE and event.step == "s1":
            _kill(world)

    journal = Journal(tmp_path / "j.db")
    world.wrap(journal)
    with contextlib.suppress(Killed):
        with Rollback(journal=journal, run_id="r", on_event=told) as rb:
            for name in ("s0", "s1", "s2"):
                rb.do(name, partial(world.act, name, None, {}),
                      undo.bind(world=world.name, step=name))  # fmt: skip
    assert world.effects == ["s0", "s1"]
    recovered, _, _ = _recovered(tmp_path, world, journal)
    assert (recovered.status, recovered.leaked) == (Status.ROLLED_BACK, ())
    assert world.undone == ["s1", "s0"]


@pytest.mark.parametrize("bare", [False, True], ids=["undo", "no-undo"])
@pytest.mark.parametrize("event", ["step_failed", "pipeline_failed"])
def test_a_kill_in_an_observer_of_a_clean_refusal_reports_nothing_leaked(tmp_path, event, bare):
    """attack36 F7: s1 refused cleanly (an ordinary error: nothing done), its ``not_run``
    only queued; killed in an observer of its failure, recover reported it leaked, "may have
    happened", for a person. Its records are written before the observers hear them."""
    world = World(f"refused-{event}-{bare}")
    s0 = Step("s0", partial(world.act, "s0", None), undo.bind(world=world.name, step="s0"))
    s1 = Step("s1", partial(world.act, "s1", "before"),
              None if bare else undo.bind(world=world.name, step="s1"))  # fmt: skip

    def told(e) -> None:
        if e.kind == event:
            _kill(world)

    recovered, _, leaked = _killed_then_recovered(tmp_path, world, Saga([s0, s1]), on_event=told)
    assert (recovered.status, recovered.leaked, leaked) == (Status.ROLLED_BACK, (), [])
    assert world.effects == ["s0"] and world.undone == ["s0"]


def test_a_graphs_undos_after_a_kill_in_a_gate_run_in_its_declared_order(tmp_path):
    """attack36 F1: undos logged before their steps; b, then a returned; killed while the
    gate after the group ran: their done events were still in memory, and recover undid
    them in the order they started (b, a) where the run undoes them newest done first (a,
    b). The done events are written before anything else runs."""
    world = World("graph-gate")

    def step(name: str) -> Step:
        return Step(name, partial(world.act, name, None),
                    undo.bind(world=world.name, step=name), register="before")  # fmt: skip

    def gate(state) -> None:
        _kill(world)

    saga = Saga([step("s0"), Parallel(step("a"), step("b")), Step("g", gate, kind="gate")])
    recovered, _, leaked = _killed_then_recovered(
        tmp_path, world, saga, completion=["s0", "b", "a", "g"]
    )
    assert world.effects == ["s0", "b", "a"] and leaked == []
    local = World("graph-gate-local")  # (the run itself, its gate failing at that instant)

    def here(name: str) -> Step:
        return Step(name, partial(local.act, name, None), partial(_undone, local, name))

    def refuses(state) -> None:
        raise ValueError("g")

    in_process = Saga([here("s0"), Parallel(here("a"), here("b")), Step("g", refuses, kind="gate")])
    in_process.run({}, completion=["s0", "b", "a", "g"], clock=VirtualClock())
    assert world.undone == local.undone == ["a", "b", "s0"]
    assert recovered.completed == ("s0", "b", "a")


def _undone(world: World, step: str, state: object) -> None:
    world.undone.append(step)


def test_a_kill_after_a_cancel_was_heard_is_recovered_cancelled(tmp_path):
    """attack36 F3: the cancel function answered True as s1 returned; killed in an observer
    of s1's done event (before the rollback started, whose event said ``cancelled``),
    recover ended the saga ``rolled_back`` where the run ends ``cancelled``."""
    world = World("cancel-heard")

    def told(e) -> None:
        if e.kind == "step_done" and e.step == "s1":
            _kill(world)

    recovered, _, leaked = _killed_then_recovered(
        tmp_path, world, _saga(world, False, False), on_event=told,
        cancel=lambda: "s1" in world.returned,
    )  # fmt: skip
    assert (recovered.status, leaked) == (Status.CANCELLED, [])
    assert world.undone == ["s1", "s0"]


@pytest.mark.parametrize("how", ["task", "token"])
def test_a_kill_while_a_cancelled_tasks_branch_finishes_is_recovered_cancelled(tmp_path, how):
    """attack36 F3: ``arun``'s task cancelled while branch a still ran; its machine hears
    the cancel only as a ends, so a process killed before (a real one: as long as a ran)
    was recovered ``rolled_back``. The journal says it as the task is cancelled."""
    import asyncio
    import os
    import signal

    world = World("cancel-task")  # (its undos, in this process: recover's)

    def step(name: str, action) -> Step:  # (logged before: recover undoes a too)
        return Step(name, action, undo.bind(world=world.name, step=name), register="before")

    pid = os.fork()
    if pid == 0:  # the child: killed while a runs on after its task was cancelled
        try:
            cancelled: list[bool] = []

            async def slow(state) -> None:
                while not cancelled:
                    await asyncio.sleep(0)
                os.kill(os.getpid(), signal.SIGKILL)

            saga = Saga([step("s0", lambda state: None),
                         Parallel(step("a", lambda state: slow(state)),
                                  step("b", lambda state: None))])  # fmt: skip

            async def scenario() -> None:
                journal = Journal(tmp_path / "j.db")
                token = asyncio.Event() if how == "token" else None  # (or its task's cancel)
                task = asyncio.ensure_future(saga.arun({}, journal=journal, run_id="r",
                                                       cancel=token))  # fmt: skip
                for _ in range(50):  # (s0 done, a and b started: b returns at once)
                    await asyncio.sleep(0)
                if token is not None:
                    token.set()  # (heard by arun as it polls, while a runs on)
                    await asyncio.sleep(0.2)
                else:
                    task.cancel()
                    await asyncio.sleep(0)
                cancelled.append(True)
                await task

            asyncio.run(scenario())
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    with Journal(tmp_path / "j.db") as journal:
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        (recovered,) = recover(journal, registry).recovered
    assert recovered.status is Status.CANCELLED
    assert recovered.leaked == () and set(recovered.compensated) == {"a", "b", "s0"}


def _busy(step: str, idempotency_key: str | None = None) -> None:
    raise ConnectionError(f"{step}'s service is down")


BUSY = registry.add("returned.busy_undo", _busy)


def test_a_halted_recoverys_report_line_names_its_kept_steps(tmp_path):
    """attack38 F4: the report line of a saga ``recover`` left halted (its undo policy halts)
    never named its kept steps, though ``Recovery.kept`` listed them."""
    world = World("halted-kept")
    saga = Saga([
        Step("s0", partial(world.act, "s0", None), undo.bind(world=world.name, step="s0")),
        Step("k", partial(world.act, "k", None), None),
        Step("s2", partial(world.act, "s2", None), BUSY.bind(step="s2")),
        Step("s3", partial(world.act, "s3", "before"), None),
    ])  # fmt: skip

    def told(e) -> None:
        if e.kind == "pipeline_failed":
            _kill(world)

    recovered, _, _ = _killed_then_recovered(tmp_path, world, saga, on_event=told, policy="halt")
    assert recovered.status is Status.HALTED and recovered.kept == ("k",)
    assert str(recovered).endswith("; kept (no undo: its effect stands) k"), str(recovered)


def test_an_async_block_step_cut_by_its_tasks_cancel_says_cancelled_at_its_failure(tmp_path):
    """attack38 F3: an ``AsyncRollback`` block whose task is cancelled inside a step, the
    process killed as the step's failure is told (its ``step_failed`` observer): the journal
    said the cancel then, so recover ends it ``cancelled``, as the block would have (it said
    ``rolled_back``: nothing of the cancel was written before the rollback's start)."""
    import asyncio

    from rollback_lessons import AsyncRollback

    world, path = World("f3"), tmp_path / "j.db"
    journal = Journal(path)
    world.wrap(journal)
    said: list[bool] = []

    def watch(event) -> None:
        if event.kind == EventKind.STEP_FAILED:
            with Journal(path) as other:  # (what a recover would read now)
                said.append(other.cancelled("r"))
            _kill(world)

    async def slow() -> None:
        world.effects.append("s1")
        await asyncio.sleep(30)

    async def block() -> None:
        rb = AsyncRollback(journal=journal, run_id="r", on_event=watch)
        async with rb:
            await rb.do("s0", lambda: world.act("s0", None, None), undo.bind(world="f3", step="s0"))
            await rb.do("s1", slow, undo.bind(world="f3", step="s1"), register="before")

    async def main() -> None:
        task = asyncio.ensure_future(block())
        while "s1" not in world.effects:
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task

    asyncio.run(main())
    assert said == [True]
    recovered, states, leaked = _recovered(tmp_path, world, journal)
    assert recovered.status == Status.CANCELLED
    assert (states, leaked) == ({"s0": "done", "s1": "done"}, [])
    assert world.undone == ["s1", "s0"]
