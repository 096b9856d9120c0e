"""The third attack on issue 25's promises, the engine's drivers (saga.py, _graph_drive.py,
_run.py, _drive.py, machine.py, schedule.py): each test is an attack that broke a promise of
the README (the reproductions were /work/wt-attack3/attacks/NN_*.py), made small and exact.
"""

import asyncio
import sqlite3
from dataclasses import dataclass

import pytest
from conftest import orphan

from rollback_lessons import Rollback, Saga, Status, Step
from rollback_lessons.clock import VirtualClock
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.graph import Parallel
from rollback_lessons.policies import RetryPolicy, UndoPolicy

# -- 1. a write that breaks going forward never leaves a branch behind (attacks 01, 10) ----


class World:
    """Each effect and each undo counted; undos idempotent through their key."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self.keys: set[str] = set()
        self.registry = Registry()
        self.undo = self.registry.add("undo", self._undo)

    def _undo(self, step: str, idempotency_key: str | None = None) -> None:
        if idempotency_key in self.keys:
            return
        self.keys.add(idempotency_key or "")
        self.seen.setdefault(step, []).append("undo")

    def step(self, name: str, delay: float = 0.0, register: str = "after") -> Step:
        async def act(state):
            await asyncio.sleep(delay)
            self.seen.setdefault(name, []).append("do")

        return Step(name, lambda s: act(s), self.undo.bind(step=name), register=register)

    def standing(self) -> list[str]:
        return sorted(k for k, v in self.seen.items() if v.count("do") > v.count("undo"))


def failing_writes(monkeypatch, n: int, sticky: bool) -> dict[str, int]:
    """The n-th journal write fails (once, or from then on: a disk that stays full)."""
    real = Journal.write
    count = {"n": 0}

    def write(journal, statements, **kw):
        count["n"] += 1
        if count["n"] == n or (sticky and count["n"] > n):
            raise sqlite3.OperationalError("database or disk is full")
        return real(journal, statements, **kw)

    monkeypatch.setattr(Journal, "write", write)
    return count


def test_arun_awaits_a_running_branch_when_a_sibling_launch_write_fails(tmp_path, monkeypatch):
    """Attack 01: the write of the second branch's start fails while the first runs; arun
    awaited the first, undid it, and only then returned (main: it rolled back at once and
    the first branch's effect landed later, under ``rolled_back``)."""
    world = World()
    saga = Saga([Parallel(world.step("slow", 0.2), world.step("fast")), Step("c", lambda s: None)])
    journal = Journal(tmp_path / "j.db")
    failing_writes(monkeypatch, 2, sticky=False)  # 1: slow's start (and the saga's); 2: fast's

    async def go():
        outcome = await saga.arun({}, journal=journal)
        at_return = world.standing()
        await asyncio.sleep(0.3)  # anything left behind lands now
        return outcome, at_return

    outcome, at_return = asyncio.run(go())
    assert at_return == [] and world.standing() == []
    assert "slow" in outcome.completed and "slow" in outcome.compensated


@pytest.mark.parametrize("sticky", [False, True])
def test_arun_every_failing_write_is_told_truly_and_recover_finishes(tmp_path, monkeypatch, sticky):
    """Attack 10 for ``arun`` (``saga.run`` held already): for every n, the n-th journal
    write fails; the outcome never says rolled_back, cancelled or committed against the
    world, no undo runs twice, and after ``recover`` nothing stands unreported."""
    world = World()

    def saga() -> Saga:
        return Saga(
            [
                Parallel(
                    world.step("a", 0.002),
                    world.step("b", 0.001, register="before"),
                    [world.step("c"), world.step("d", 0.001, register="before")],
                ),
                world.step("e"),
            ],
            name="trip",
        )

    journal = Journal(tmp_path / "clean.db")
    clean = failing_writes(monkeypatch, 10**6, sticky=False)
    asyncio.run(saga().arun({}, journal=journal))
    writes = clean["n"]
    assert writes > 5
    for n in range(1, writes + 1):
        world.seen.clear()
        world.keys.clear()
        path = tmp_path / f"j{n}.db"
        journal = Journal(path)
        failing_writes(monkeypatch, n, sticky)

        async def go(journal=journal):
            outcome = await saga().arun({}, journal=journal)
            await asyncio.sleep(0.01)
            return outcome

        outcome = asyncio.run(go())
        monkeypatch.undo()
        standing = world.standing()
        said = str(outcome.status)
        assert not (said in ("rolled_back", "cancelled") and standing), (n, said, standing)
        for saga_row in journal.sagas():
            orphan(path, saga_row.id)
        recover(journal, world.registry)
        if not journal.sagas():  # the saga's first write failed: only the outcome can tell
            told = {*outcome.pending, *outcome.leaked}
            assert set(world.standing()) <= told or said == "halted", (n, said)
            journal.close()
            continue
        row = journal.sagas()[0]
        states = {u.step: u.state for u in journal.undos(row.id)}
        if said == "committed":
            assert row.status == "committed" and "undo" not in str(world.seen), n
        for name, seen in world.seen.items():
            assert seen.count("undo") <= 1, (n, name, seen)
            if seen.count("do") > seen.count("undo") and row.status != "committed":
                assert states.get(name) in ("leaked", "pending", "dead") or row.status == "halted"
        journal.close()


# -- 2. a taken-over owner runs no other undo and says so (attack 17) ----------------------


class TakeOverWhileWaiting(VirtualClock):
    """``recover --force`` takes the saga over (its claim's generation bumped) while the
    owner waits to retry an undo."""

    def __init__(self, path) -> None:
        super().__init__()
        self.path = path

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        take_over(self.path)


def take_over(path) -> None:
    con = sqlite3.connect(path)
    con.execute("UPDATE sagas SET claim_gen = claim_gen + 1, claim_pid = 1, claim_host = 'b'")
    con.commit()
    con.close()


def test_an_owner_taken_over_during_an_undo_retry_wait_runs_no_other_undo(tmp_path):
    calls: list[str] = []
    registry = Registry()

    def refund(idempotency_key=None):
        calls.append("refund")
        if len(calls) == 1:
            raise ConnectionError("bank busy")

    undo = registry.add("refund", refund)

    def declined(state):
        raise RuntimeError("declined")

    path = tmp_path / "j.db"
    saga = Saga(
        [Step("charge", lambda s: None, undo.bind(), register="before"), Step("ship", declined)],
        policy=UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=3.0)),
    )
    outcome = saga.run({}, journal=Journal(path), clock=TakeOverWhileWaiting(path))
    assert calls == ["refund"]  # main: refunded again after the wait, and said rolled_back
    assert outcome.status is Status.HALTED
    assert outcome.pending == ("charge",)
    assert any("taken over" in note for note in outcome.notes), outcome.notes
    said = "\n".join(outcome.summary_lines())  # (attack45 F1: the new holder's, not a person's)
    assert "charge  (not undone here: the process that took the saga over has them)" in said


def test_a_takeover_found_at_the_last_undo_done_write_is_reported(tmp_path):
    path = tmp_path / "j.db"
    registry = Registry()
    undo = registry.add("release", lambda idempotency_key=None: take_over(path))

    def declined(state):
        raise RuntimeError("declined")

    saga = Saga([Step("hold", lambda s: None, undo.bind()), Step("pay", declined)])
    outcome = saga.run({}, journal=Journal(path))
    assert outcome.compensated == ("hold",)
    assert outcome.status is Status.HALTED  # main: rolled_back, not a word of the takeover
    assert any("taken over" in note for note in outcome.notes), outcome.notes


# -- 3. Ctrl-C between steps going forward (attacks 03, 24) --------------------------------


def interrupt_at(kind: str, step: str):
    def observer(event):
        if event.kind == kind and event.step == step:
            raise KeyboardInterrupt

    return observer


def three_steps(world: dict[str, int]) -> list[Step]:
    def do(name):
        def act(state):
            world[name] = 1

        return act

    def undo(name):
        def u(state):
            world[name] = 0

        return u

    return [Step(n, do(n), undo(n)) for n in ("a", "b", "c")]


@pytest.mark.parametrize("graph", [False, True])
def test_ctrl_c_between_steps_in_saga_run_undoes_then_is_re_raised(graph):
    """Main: the KeyboardInterrupt left saga.run with a and b done and nothing said."""
    world: dict[str, int] = {}
    steps = three_steps(world)
    saga = Saga([Parallel(steps[0], steps[1]), steps[2]] if graph else steps)
    with pytest.raises(KeyboardInterrupt):
        saga.run({}, on_event=interrupt_at("step_done", "b"))
    assert world == {"a": 0, "b": 0}


def test_ctrl_c_at_a_branch_end_in_arun_undoes_then_is_re_raised():
    """Main: asyncio ended the loop with it; the other branch left behind, nothing undone."""
    world: dict[str, int] = {}

    async def slow(state):
        await asyncio.sleep(0.05)
        world["slow"] = 1

    def undo_slow(state):
        world["slow"] = 0

    steps = three_steps(world)
    saga = Saga([Parallel(Step("slow", lambda s: slow(s), undo_slow), steps[0]), steps[2]])
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(saga.arun({}, on_event=interrupt_at("step_done", "a")))
    assert world == {"slow": 0, "a": 0}


def test_ctrl_c_as_the_next_step_starts_undoes_the_steps_done():
    """A Ctrl-C in the engine as step c begins (its start event's observer): a and b are
    undone, c never ran, and the KeyboardInterrupt is re-raised (main: nothing undone)."""
    world: dict[str, int] = {}
    saga = Saga(three_steps(world))
    with pytest.raises(KeyboardInterrupt):
        saga.run({}, on_event=interrupt_at("step_start", "c"))
    assert world == {"a": 0, "b": 0}


# -- 4. a cancel function that raises (attack 09) ------------------------------------------


def raises_at(n: int):
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        if calls["n"] == n:
            raise ConnectionError("the cancel flag's store is unreachable")
        return False

    return cancel


def counted(world: dict[str, int]):
    def do(name):
        def act(state):
            world[name] = world.get(name, 0) + 1

        return act

    def undo(name):
        def u(state):
            world[name] -= 1

        return u

    return do, undo


@pytest.mark.parametrize("graph", [False, True])
def test_a_raising_cancel_function_fails_the_run_and_loses_no_step(graph):
    world: dict[str, int] = {}
    do, undo = counted(world)
    if graph:
        saga = Saga(
            [Parallel(Step("a", do("a"), undo("a")), Step("b", do("b"), undo("b"))),
             Step("c", do("c"), undo("c"))]
        )  # fmt: skip
        outcome = saga.run({}, cancel=raises_at(3))
    else:
        saga = Saga([Step("a", do("a"), undo("a")), Step("b", do("b"), undo("b"))])
        outcome = saga.run({}, cancel=raises_at(2))
    assert {k: v for k, v in world.items() if v} == {}, (outcome.status, world)
    assert outcome.status is Status.ROLLED_BACK
    assert isinstance(outcome.error, ConnectionError)
    assert "a" in outcome.compensated


def test_a_raising_cancel_function_in_arun_awaits_the_sibling_and_undoes_it():
    world: dict[str, int] = {}
    do, undo = counted(world)

    async def slow(state):
        await asyncio.sleep(0.1)
        do("slow")(state)

    saga = Saga(
        [Parallel(Step("slow", lambda s: slow(s), undo("slow")), Step("b", do("b"), undo("b"))),
         Step("c", do("c"), undo("c"))]
    )  # fmt: skip

    async def go():
        outcome = await saga.arun({}, cancel=raises_at(3))
        await asyncio.sleep(0.2)
        return outcome

    outcome = asyncio.run(go())
    assert {k: v for k, v in world.items() if v} == {}
    assert outcome.status is Status.ROLLED_BACK
    assert set(outcome.compensated) == {"slow", "b"}


# -- 5. an error that refuses notes (attack 25) --------------------------------------------


@dataclass(frozen=True)
class PaymentDeclined(Exception):
    code: str


class NotesTuple(Exception):
    __notes__ = ("from the bank's SDK",)


def refund_fails(*args, **kwargs):
    raise RuntimeError("the refund service is down")


@pytest.mark.parametrize("error", [PaymentDeclined("51"), NotesTuple("declined")])
def test_an_error_that_refuses_notes_is_never_replaced(error, tmp_path):
    with pytest.raises(type(error)) as caught:
        with Rollback() as rb:
            rb.do("charge", lambda: None, refund_fails)
            raise error
    assert caught.value is error
    assert rb.outcome is not None and any("refused" in n for n in rb.outcome.notes)

    def pay(state):
        raise error

    outcome = Saga(
        [Step("charge", lambda s: None, lambda s: refund_fails()), Step("pay", pay)]
    ).run({})
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.error is error
    assert any("refused" in n for n in outcome.notes)

    registry = Registry()
    refund = registry.add("refund", refund_fails)
    journal = Journal(tmp_path / "j.db")
    saga = Saga(
        [Step("charge", lambda s: None, refund.bind(), register="before"), Step("pay", pay)]
    )
    assert saga.run({}, journal=journal).status is Status.ROLLBACK_INCOMPLETE
    assert journal.sagas()[0].status == "rollback_incomplete"


# -- 6. arun keeps a synchronous undo's timeout (attack 15) --------------------------------


def test_arun_keeps_the_timeout_of_a_synchronous_undo_as_run_does():
    import threading

    release = threading.Event()  # (until the test ends, not a time: a 1 s sleep once ended,
    # at load, before the caller looked, 1 of 100 runs)

    def hung_undo(state):
        release.wait(30)  # (a real one may hang for ever)

    def declined(state):
        raise RuntimeError("card declined")

    saga = Saga([Step("hold", lambda s: None, hung_undo, undo_timeout=0.1), Step("pay", declined)])
    try:
        in_run = saga.run({})
        in_arun = asyncio.run(saga.arun({}))  # main: waited for the undo, said rolled_back
    finally:
        release.set()
    assert in_run.status is in_arun.status is Status.ROLLBACK_INCOMPLETE
    assert [type(d.error) for d in in_arun.dead_letters] == [TimeoutError]


# -- 7. a step's own CancelledError is a step failure (attack 19) ---------------------------


def test_a_steps_own_cancelled_error_is_a_failure_and_arun_returns_its_outcome():
    world: dict[str, int] = {}

    async def book(state):
        world["room"] = 1

    def unbook(state):
        world["room"] = 0

    async def quote(state):
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.cancel)  # its client gives up
        await fut

    saga = Saga(
        [Parallel(Step("room", lambda s: book(s), unbook), Step("quote", lambda s: quote(s))),
         Step("pay", lambda s: None)]
    )  # fmt: skip
    outcome = asyncio.run(saga.arun({}))  # main: raised CancelledError, no outcome
    assert outcome.status is Status.ROLLED_BACK and world == {"room": 0}
    assert outcome.failed_step == "quote"
    assert isinstance(outcome.error, asyncio.CancelledError)


# -- 8. a cancel ends a branch's retry wait (attack 11) ------------------------------------


class Sleeps:
    """The system's time, recording each wait that ran to its end."""

    def __init__(self) -> None:
        from rollback_lessons.clock import SystemClock

        self.system = SystemClock()
        self.finished: list[float] = []

    def time(self) -> float:
        return self.system.time()

    def monotonic(self) -> float:
        return self.system.monotonic()

    def run_id(self, name: str) -> str:
        return self.system.run_id(name)

    def sleep(self, seconds: float) -> None:  # pragma: no cover (arun only)
        self.system.sleep(seconds)
        self.finished.append(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.finished.append(seconds)


@pytest.mark.parametrize("how", ["token", "task"])
def test_a_cancel_ends_a_branch_waiting_to_retry(how):
    import threading

    attempts: list[int] = []

    def busy(state):
        attempts.append(1)
        raise ConnectionError("busy, try later")

    saga = Saga(
        [Parallel(Step("a", busy, lambda s: None, retry=RetryPolicy(3, initial_delay=2.0)),
                  Step("b", lambda s: None, lambda s: None)),
         Step("c", lambda s: None)]
    )  # fmt: skip
    clock = Sleeps()

    async def go():
        token = threading.Event()
        task = asyncio.ensure_future(saga.arun({}, cancel=token, clock=clock))
        await asyncio.sleep(0.2)
        if how == "token":
            token.set()
            return await task
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as caught:
            await task
        return caught.value.outcome

    outcome = asyncio.run(go())
    assert outcome.status is Status.CANCELLED
    assert attempts == [1] and clock.finished == []  # main: the 2 s wait ran to its end


# -- 9. bad input refused with a typed error before anything runs (attack 12) ---------------


def test_bad_run_arguments_are_refused_before_any_step():
    calls: list[str] = []
    saga = Saga(
        [Parallel(Step("a", lambda s: calls.append("a"), lambda s: None),
                  Step("b", lambda s: calls.append("b"), lambda s: None)),
         Step("c", lambda s: calls.append("c"))]
    )  # fmt: skip
    from rollback_lessons.errors import InvalidPipelineError

    with pytest.raises(TypeError, match="journal must be a Journal"):
        saga.run({}, journal="orders.db")
    with pytest.raises(TypeError, match="journal must be a Journal"):
        asyncio.run(saga.arun({}, journal="orders.db"))
    with pytest.raises(TypeError, match="journal must be a Journal"):
        Rollback(journal="orders.db")
    with pytest.raises(TypeError, match="clock must be a Clock"):
        saga.run({}, clock="fast")
    with pytest.raises(InvalidPipelineError, match="has no undo"):
        saga.run({}, inject={"c": "undo_fails"})
    with pytest.raises(InvalidPipelineError, match="has no undo"):
        saga.run({}, inject={"c": ("fail", "undo_fails_once")})
    with pytest.raises(InvalidPipelineError, match="unknown steps 'zz'"):
        saga.run({}, completion=["zz"])
    with pytest.raises(TypeError, match="completion"):
        saga.run({}, completion="ab")
    assert calls == []
    assert (
        saga.run({}, inject={"a": "undo_fails", "c": "fail"}).status is Status.ROLLBACK_INCOMPLETE
    )


# -- 10. every branch that lands after a --force takeover is reported (attack 02) ---------


def test_two_branches_landing_after_a_takeover_are_both_reported(tmp_path):
    path = tmp_path / "j.db"
    registry = Registry()
    undo = registry.add("undo", lambda step, idempotency_key=None: None)
    landed: list[str] = []

    def branch(name, delay):
        async def act(state):
            await asyncio.sleep(delay)
            landed.append(name)

        return Step(name, lambda s: act(s), undo.bind(step=name), register="before")

    saga = Saga([Parallel(branch("a", 0.1), branch("b", 0.2)), Step("c", lambda s: None)])
    journal = Journal(path)

    async def go():
        task = asyncio.ensure_future(saga.arun({}, journal=journal))
        await asyncio.sleep(0.05)
        take_over(path)  # recover --force, on another host, while both branches run
        return await task

    outcome = asyncio.run(go())
    assert landed == ["a", "b"] and outcome.status is Status.HALTED
    row = journal.sagas()[0]
    states = {u.step: u.state for u in journal.undos(row.id)}
    assert states == {"a": "leaked", "b": "leaked"}  # main: b still pending, unreported
    assert any("'b'" in note for note in outcome.notes)


def test_a_ctrl_c_as_the_commit_is_written_undoes_nothing(tmp_path, monkeypatch):
    """Attack 18's instant, for the engine: a Ctrl-C just after the journal committed the
    commit. The process cannot tell whether it landed, so it undoes nothing (the journal
    decides; here it says committed) and re-raises the KeyboardInterrupt with a note. (A
    guard for the Ctrl-C handling above: it must never undo a committed saga.)"""
    world = World()
    journal = Journal(tmp_path / "j.db")
    real = Journal.write

    def write(self, statements, **kw):
        real(self, statements, **kw)
        if any("status = 'committed'" in sql for sql, _ in statements):
            raise KeyboardInterrupt

    monkeypatch.setattr(Journal, "write", write)

    def step(name):
        def act(state):
            world.seen.setdefault(name, []).append("do")

        return Step(name, act, world.undo.bind(step=name))

    saga = Saga([step("a"), step("b")])
    with pytest.raises(KeyboardInterrupt) as caught:
        saga.run({}, journal=journal)
    monkeypatch.undo()
    assert world.standing() == ["a", "b"]
    assert journal.sagas()[0].status == "committed"
    assert any("commit" in note for note in caught.value.__notes__)


@pytest.mark.parametrize("graph", [False, True])
def test_a_ctrl_c_once_the_saga_committed_undoes_nothing_and_says_so(graph):
    """A Ctrl-C in an observer of the commit: the saga committed, so nothing is undone; the
    KeyboardInterrupt is re-raised, with a note saying the saga had committed."""
    world: dict[str, int] = {}
    steps = three_steps(world)
    saga = Saga([Parallel(steps[0], steps[1]), steps[2]] if graph else steps)

    def observer(event):
        if event.kind == "committed":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        saga.run({}, on_event=observer)
    assert world == {"a": 1, "b": 1, "c": 1}
    assert any("committed" in note for note in caught.value.__notes__)
